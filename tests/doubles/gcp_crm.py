"""A local HTTP double of Cloud Resource Manager v3 IAM policy methods (REST/JSON).

The real `google-cloud-resource-manager` clients (REST transport, `api_endpoint` pointing here)
talk to it, so tests exercise the SDK's request building, protobuf JSON mapping and error
mapping. What it reproduces of the documented service:

    POST /v3/{projects|folders|organizations}/{id}:getIamPolicy
        body {"options": {"requestedPolicyVersion": N}}. A policy holding conditional bindings
        asked for with N < 3 comes back as version 1 with those bindings rewritten to
        "<role>_withcond_<hash>" and no condition (as Google does); with N = 3 it comes back whole.
    POST .../{id}:setIamPolicy
        body {"policy": {...}, "updateMask"?}. A stale etag -> 409 ABORTED (optimistic
        concurrency); no etag -> blind overwrite. Conditional bindings need version 3; a version
        1 write over a policy that holds conditions, a `_withcond_` role, a condition without
        expression or title, a condition on a basic role (owner/editor/viewer) or on allUsers /
        allAuthenticatedUsers, or a malformed member/role -> 400 INVALID_ARGUMENT. Bindings with
        the same role and condition are merged and empty ones dropped; the stored policy is
        returned with a new etag. auditConfigs are kept.
    Unknown resources and resources in `deny` -> 403 PERMISSION_DENIED (Google does not say
    whether a project exists); a bearer token in `rejected` -> 401 UNAUTHENTICATED.
    Service account keys authenticate with self-signed JWTs (what google-auth sends for Google
    APIs): the bearer must be an RS256 JWT whose issuer is in `service_accounts` and whose
    signature that account's public key verifies, else 401.

Quotas (https://cloud.google.com/iam/quotas, IAM v1 API): per caller (Authorization header) at
most `read_limit` getIamPolicy (default 6,000) and `write_limit` setIamPolicy (default 600)
calls per `window_s` (default 60 s; Google counts quotas per 60-second interval); past them
429 RESOURCE_EXHAUSTED, counted in `throttled`. `clock` (monotonic seconds) is injectable, and a
benchmark may shorten the window. `calls` counts every answered call per (resource, method).

Errors use Google's body `{"error": {"code", "message", "status"}}`.

Test hooks: `conflicts = N` makes the next N setIamPolicy calls meet a concurrent writer, which
changes the policy first (adds an unrelated binding), so the caller's etag is stale -> 409;
`fail_next` injects responses; `has_access()` evaluates bindings and their
`request.time < timestamp(...)` conditions at a given time, as IAM does at access-check time.
Expired conditional bindings stay in the policy (Google never deletes them) but grant nothing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.doubles.server import QuietHandler, Served

_PATH = re.compile(r"^/v3/((?:projects|folders|organizations)/[^/:]+):(getIamPolicy|setIamPolicy)$")
_ROLE = re.compile(r"roles/[A-Za-z0-9_.]+|(?:projects|organizations)/[A-Za-z0-9_.-]+/roles/[A-Za-z0-9_.]+")
_MEMBER = re.compile(
    r"(?:deleted:)?(?:user|group|serviceAccount):[^\s@]+@[^\s@]+(?:\?uid=\d+)?|domain:[A-Za-z0-9.-]+"
    r"|allUsers|allAuthenticatedUsers|principal(?:Set)?://\S+"
)
_BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
_EXPIRY = re.compile(r'request\.time < timestamp\("([0-9T:.\-]+Z)"\)')


class CrmError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def etag_of(policy: dict[str, Any]) -> str:
    body = {k: policy.get(k) for k in ("version", "bindings", "auditConfigs")}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()[:8]
    return base64.b64encode(b"\x07" + digest).decode()  # real etags start with "Bw"


def _condition_key(binding: dict[str, Any]) -> str:
    return json.dumps(binding.get("condition"), sort_keys=True)


class FakeCrm(Served):
    """State and server. start() -> endpoint URL ("http://127.0.0.1:P"); stop() when done."""

    def __init__(
        self,
        *,
        read_limit: int = 6000,
        write_limit: int = 600,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read_limit, self.write_limit, self.window_s, self.clock = read_limit, write_limit, window_s, clock
        self._epoch = clock()
        self._used: Counter[tuple[str, str, int]] = Counter()  # (caller, method, window) -> calls
        self.throttled = 0
        self.calls: Counter[tuple[str, str]] = Counter()  # (resource, method) -> calls answered
        self.policies: dict[str, dict[str, Any]] = {}
        self.deny: set[str] = set()
        self.rejected: set[str] = set()  # bearer tokens answered 401
        # service account email -> public key (PEM): self-signed JWTs from these are accepted
        self.service_accounts: dict[str, bytes] = {}
        self.authorizations: list[str] = []  # Authorization header of every API call
        self.conflicts = 0
        self.concurrent_writes = 0
        self.log: list[tuple[str, str, dict[str, Any]]] = []  # (resource, method, body)
        self.fail_next: list[tuple[int, dict[str, Any]]] = []
        self.lock = threading.RLock()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> str:
        return self._serve(_handler(self))

    # -- test helpers -----------------------------------------------------------------------

    def add_resource(self, resource: str, bindings: list[dict[str, Any]] | None = None, *,
                     audit_configs: list[dict[str, Any]] | None = None) -> None:
        """Create `resource` with these bindings (behind jitpol's back)."""
        with self.lock:
            version = 3 if any("condition" in b for b in bindings or ()) else 1
            policy: dict[str, Any] = {"version": version, "bindings": copy.deepcopy(bindings or [])}
            if audit_configs:
                policy["auditConfigs"] = copy.deepcopy(audit_configs)
            policy["etag"] = etag_of(policy)
            self.policies[resource] = policy

    def policy(self, resource: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.policies[resource])

    def set_bindings(self, resource: str, bindings: list[dict[str, Any]]) -> None:
        """Replace the bindings behind jitpol's back (a concurrent admin)."""
        with self.lock:
            policy = self.policies[resource]
            policy["bindings"] = copy.deepcopy(bindings)
            if any("condition" in b for b in bindings):
                policy["version"] = 3
            policy["etag"] = etag_of(policy)

    def has_access(self, resource: str, role: str, member: str, at: datetime) -> bool:
        """Would IAM let `member` use `role` on `resource` at time `at`? Unconditional bindings
        always do; `request.time < timestamp(T)` conditions do before T; other conditions are
        not evaluated by this double and count as not granting."""
        with self.lock:
            for b in self.policies[resource]["bindings"]:
                if b["role"] != role or member not in b["members"]:
                    continue
                cond = b.get("condition")
                if cond is None:
                    return True
                m = _EXPIRY.fullmatch(cond.get("expression", ""))
                if m and at < datetime.fromisoformat(m.group(1).replace("Z", "+00:00")):
                    return True
            return False

    def verify_jwt(self, token: str) -> bool:
        """Is `token` an RS256 JWT signed by the key of the service account it names?"""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        def part(text: str) -> bytes:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

        try:
            head, body, signature = token.split(".")
            header, claims = json.loads(part(head)), json.loads(part(body))
            key = serialization.load_pem_public_key(self.service_accounts[claims["iss"]])
            if header.get("alg") != "RS256" or not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(part(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, TypeError, InvalidSignature):
            return False
        return True

    def writes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [e for e in self.log if e[1] == "setIamPolicy"]

    def over_quota(self, caller: str, method: str) -> bool:
        """Count this call against the caller's quota of its window; True when it is past it."""
        window = int((self.clock() - self._epoch) // self.window_s)
        key = (caller, method, window)
        limit = self.write_limit if method == "setIamPolicy" else self.read_limit
        if self._used[key] >= limit:
            self.throttled += 1
            return True
        self._used[key] += 1
        return False

    # -- behaviour --------------------------------------------------------------------------

    def handle(self, resource: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if resource not in self.policies or resource in self.deny:
            raise CrmError(403, "PERMISSION_DENIED", f"The caller does not have permission to access {resource}, "
                           "or it may not exist.")
        current = self.policies[resource]
        if method == "getIamPolicy":
            requested = int((body.get("options") or {}).get("requestedPolicyVersion") or 1)
            if requested not in (1, 3):
                raise CrmError(400, "INVALID_ARGUMENT", f"Invalid requested policy version {requested}.")
            out = copy.deepcopy(current)
            if requested < 3 and any("condition" in b for b in out["bindings"]):
                out["version"] = 1
                for b in out["bindings"]:
                    cond = b.pop("condition", None)
                    if cond is not None:
                        b["role"] += "_withcond_" + hashlib.sha1(  # noqa: S324 - a label, not security
                            json.dumps(cond, sort_keys=True).encode()).hexdigest()[:20]
            return out
        new = body.get("policy")
        if not isinstance(new, dict):
            raise CrmError(400, "INVALID_ARGUMENT", "Request contains an invalid argument: policy is required.")
        if self.conflicts > 0:  # another writer gets there first
            self.conflicts -= 1
            self.concurrent_writes += 1
            current["bindings"].append({"role": "roles/viewer",
                                        "members": [f"user:concurrent{self.concurrent_writes}@example.org"]})
            current["etag"] = etag_of(current)
        if new.get("etag") and new["etag"] != current["etag"]:
            raise CrmError(409, "ABORTED", "There were concurrent policy changes. Please retry the whole "
                           "read-modify-write with exponential backoff.")
        version = int(new.get("version") or 1)
        bindings = new.get("bindings") or []
        conditional = any("condition" in b for b in bindings)
        if conditional and version != 3:
            raise CrmError(400, "INVALID_ARGUMENT", "Request contains an invalid argument: policies with "
                           "conditional role bindings must have version 3.")
        if version < 3 and any("condition" in b for b in current["bindings"]):
            raise CrmError(400, "INVALID_ARGUMENT", "Request contains an invalid argument: a version 1 policy "
                           "cannot overwrite a policy that holds conditional role bindings.")
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for b in bindings:
            role = b.get("role", "")
            if not _ROLE.fullmatch(role) or "_withcond_" in role:
                raise CrmError(400, "INVALID_ARGUMENT", f"Role {role} is not supported for this resource.")
            for m in b.get("members") or []:
                if not _MEMBER.fullmatch(m):
                    raise CrmError(400, "INVALID_ARGUMENT", f"Invalid member {m!r}.")
            cond = b.get("condition")
            if cond is not None and (not cond.get("expression") or not cond.get("title")):
                raise CrmError(400, "INVALID_ARGUMENT", "A condition needs an expression and a title.")
            if cond is not None and role in _BASIC_ROLES:
                raise CrmError(400, "INVALID_ARGUMENT", f"Conditions are not supported for the basic role {role}.")
            if cond is not None and set(b.get("members") or []) & {"allUsers", "allAuthenticatedUsers"}:
                raise CrmError(400, "INVALID_ARGUMENT", "Conditions are not supported for allUsers and "
                               "allAuthenticatedUsers.")
            key = (role, _condition_key(b))
            slot = merged.setdefault(key, {k: copy.deepcopy(v) for k, v in b.items() if k != "members"}
                                     | {"members": []})
            slot["members"].extend(m for m in b.get("members") or [] if m not in slot["members"])
        stored: dict[str, Any] = {"version": version, "bindings": [b for b in merged.values() if b["members"]]}
        audit = new.get("auditConfigs", current.get("auditConfigs"))
        if audit:
            stored["auditConfigs"] = audit
        stored["etag"] = etag_of(stored)
        self.policies[resource] = stored
        return copy.deepcopy(stored)


def _handler(crm: FakeCrm) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, status: str, message: str) -> None:
            self._send(code, {"error": {"code": code, "message": message, "status": status}})

        def do_POST(self) -> None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with crm.lock:
                crm.authorizations.append(self.headers.get("Authorization") or "")
                m = _PATH.fullmatch(path)
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    return self._error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
                crm.log.append((m.group(1) if m else path, m.group(2) if m else "?", body))
                if crm.fail_next:
                    code, out = crm.fail_next.pop(0)
                    return self._send(code, out)
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
                if token in crm.rejected or (token.count(".") == 2 and not crm.verify_jwt(token)):
                    return self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                                       "Expected OAuth 2 access token, login cookie or other valid authentication "
                                       "credential.")
                if not m:
                    return self._error(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")
                if crm.over_quota(auth, m.group(2)):
                    kind = "Write" if m.group(2) == "setIamPolicy" else "Read"
                    return self._error(429, "RESOURCE_EXHAUSTED", f"Quota exceeded for quota metric '{kind} requests' "
                                       f"and limit '{kind} requests per minute' of service "
                                       "'cloudresourcemanager.googleapis.com'.")
                crm.calls[(m.group(1), m.group(2))] += 1
                try:
                    return self._send(200, crm.handle(m.group(1), m.group(2), body))
                except CrmError as exc:
                    return self._error(exc.code, exc.status, exc.message)

        def do_GET(self) -> None:
            self._error(404, "NOT_FOUND", "Only the IAM policy methods are served by this double.")

    return Handler

