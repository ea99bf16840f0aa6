"""AWS test fixtures: moto in server mode, and a small HTTP shim in front of it.

Import into a test module with `from tests.aws_fixtures import *  # noqa: F403` or by name:

    moto_server  session: a started tools.throwaway_moto.ThrowawayMoto
    aws_shim     session: AwsShim, a stdlib HTTP server on 127.0.0.1 forwarding every request
                 to moto, adding what moto leaves out (below)
    aws          function: AwsWorld — admin clients straight to moto, helpers that create
                 uniquely named users, groups and permission sets, and connector(**settings)
                 making an AwsConnector whose endpoint_url is the shim

Why a shim: the SDK speaks real HTTP to a real server either way, but moto answers
CreateAccountAssignment/DeleteAccountAssignment with SUCCEEDED at once and ignores MaxItems on
IAM GetGroup / ListGroupsForUser. AWS does neither: its assignment requests start IN_PROGRESS
and are polled, and IAM lists come in pages (IsTruncated + Marker). The shim restores that:

- every Create/DeleteAccountAssignment answer says IN_PROGRESS (the request is done at moto),
  and the first `pending_polls` Describe…Status calls for it say IN_PROGRESS too;
- with `fail_reason` set, Create/Delete are NOT forwarded and Describe answers FAILED with it;
- IAM GetGroup / ListGroupsForUser with MaxItems are cut into pages of that size.

It also enforces IAM Identity Center's documented throttle limits
(https://docs.aws.amazon.com/singlesignon/latest/userguide/limits.html): sso-admin and
identitystore together at most `tps` (20) transactions per second (a token bucket of `tps`
tokens, `clock` injectable), and at most `max_outstanding` (10) account assignment requests in
progress (from Create/Delete until a Describe…Status reports them final); past either, AWS's
ThrottlingException (HTTP 400), counted in `throttled`. `identity_center_calls` counts the
calls let through, `peak_outstanding` the most requests in progress at once; `log` has every
call, the throttled ones too.

Without moto the tests are skipped on a laptop and FAIL when the CI environment variable is set.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from jitpol.connectors.aws import AwsConnector
from jitpol.connectors.pacing import Pacing
from tests.doubles.server import LocalServer, QuietHandler
from tests.services import serve

try:
    from tools.throwaway_moto import MotoNotFound, ThrowawayMoto, ThrowawayMotoError
except ModuleNotFoundError:  # `tools` is a plain directory at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.modules.pop("tools", None)
    from tools.throwaway_moto import MotoNotFound, ThrowawayMoto, ThrowawayMotoError

__all__ = ["AWS_ENV", "AWS_TARGET", "AwsShim", "AwsWorld", "_aws_admin", "aws", "aws_shim", "moto_server"]

AWS_TARGET = "aws-test"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto accepts any
REGION = "us-east-1"
_IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_SSO_TARGET = "SWBExternalService."
_STORE_TARGET = "AWSIdentityStore."
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class AwsShim:
    """The shim's knobs and request log. reset() before every test (the `aws` fixture does)."""

    upstream: str  # moto's http://127.0.0.1:PORT
    port: int = 0
    pending_polls: int = 0  # Describe…Status calls per request that still say IN_PROGRESS
    fail_reason: str | None = None  # Create/Delete fail asynchronously with this reason
    deny: set[str] = field(default_factory=set)  # operations answered with AWS's access-denied error
    log: list[str] = field(default_factory=list)  # "sso-admin CreateAccountAssignment", "iam GetGroup", ...
    tps: float = 20.0
    max_outstanding: int = 10
    clock: Callable[[], float] = time.monotonic
    throttled: int = 0
    identity_center_calls: int = 0
    peak_outstanding: int = 0
    _level: tuple[float, float] | None = None  # (tokens, at)
    _outstanding: set[str] = field(default_factory=set)
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> status answer
    _polls_left: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.pending_polls, self.fail_reason = 0, None
            self.deny.clear()
            self.log.clear()
            self._pending.clear()
            self._polls_left.clear()
            self.tps, self.max_outstanding, self.clock = 20.0, 10, time.monotonic
            self.throttled = self.identity_center_calls = self.peak_outstanding = 0
            self._level = None
            self._outstanding.clear()

    def _take(self) -> bool:
        """A token of the Identity Center bucket; False (none taken) when it is empty."""
        with self._lock:
            now = self.clock()
            level, at = self._level or (self.tps, now)
            level = min(self.tps, level + (now - at) * self.tps)
            if level < 1:
                self._level = (level, now)
                self.throttled += 1
                return False
            self._level = (level - 1, now)
            self.identity_center_calls += 1
            return True

    def calls(self, name: str) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry.endswith(" " + name))

    # -- request handling (called from the server's threads) -------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        target = headers.get("x-amz-target", "")
        if target.startswith(_STORE_TARGET):
            with self._lock:
                self.log.append(f"identitystore {target[len(_STORE_TARGET):]}")
        if target.startswith(_SSO_TARGET):
            with self._lock:
                self.log.append(f"sso-admin {target[len(_SSO_TARGET):]}")
        if target.startswith((_SSO_TARGET, _STORE_TARGET)) and not self._take():
            return _json(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
        if target.startswith(_SSO_TARGET):
            operation = target[len(_SSO_TARGET) :]
            if operation in self.deny:
                return _json(400, {"__type": "AccessDeniedException", "message": f"not authorized: sso:{operation}"})
            return self._sso(operation, method, path, headers, body)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
        action = form.get("Action", [""])[0]
        if action:
            with self._lock:
                self.log.append(f"iam {action}")
            if action in self.deny:
                return _iam_denied(action)
            if action in ("GetGroup", "ListGroupsForUser") and "MaxItems" in form:
                return self._iam_page(action, form, method, path, headers)
        return self._forward(method, path, headers, body)

    def _sso(
        self, operation: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        key = {
            "CreateAccountAssignment": "AccountAssignmentCreationStatus",
            "DeleteAccountAssignment": "AccountAssignmentDeletionStatus",
        }.get(operation)
        if key is not None:
            with self._lock:
                if len(self._outstanding) >= self.max_outstanding:
                    self.throttled += 1
                    return _json(400, {"__type": "ThrottlingException",
                                       "message": "Too many outstanding account assignment requests"})
            if self.fail_reason is not None:
                request = json.loads(body)
                status = {
                    "Status": "IN_PROGRESS",
                    "RequestId": str(uuid.uuid4()),
                    "TargetId": request.get("TargetId"),
                    "TargetType": request.get("TargetType"),
                    "PermissionSetArn": request.get("PermissionSetArn"),
                    "PrincipalType": request.get("PrincipalType"),
                    "PrincipalId": request.get("PrincipalId"),
                }
                with self._lock:
                    failed = {**status, "Status": "FAILED", "FailureReason": self.fail_reason}
                    self._pending[status["RequestId"]] = failed
                    self._polls_left[status["RequestId"]] = 0
                    self._start(status["RequestId"])
                return _json(200, {key: status})
            code, out_headers, out = self._forward(method, path, headers, body)
            if code != 200:
                return code, out_headers, out
            answer = json.loads(out)
            status = {**answer[key], "Status": "IN_PROGRESS"}
            with self._lock:
                self._pending[status["RequestId"]] = status
                self._polls_left[status["RequestId"]] = self.pending_polls
                self._start(status["RequestId"])
            return _json(200, {**answer, key: status})
        describe = {
            "DescribeAccountAssignmentCreationStatus": (
                "AccountAssignmentCreationRequestId", "AccountAssignmentCreationStatus"
            ),
            "DescribeAccountAssignmentDeletionStatus": (
                "AccountAssignmentDeletionRequestId", "AccountAssignmentDeletionStatus"
            ),
        }.get(operation)
        if describe is not None:
            request_id = json.loads(body).get(describe[0], "")
            with self._lock:
                pending = self._pending.get(request_id)
                left = self._polls_left.get(request_id, 0)
                if pending is not None and (left > 0 or pending["Status"] == "FAILED"):
                    self._polls_left[request_id] = left - 1
                    if pending["Status"] == "FAILED":
                        self._outstanding.discard(request_id)
                    return _json(200, {describe[1]: pending})
            code, out_headers, out = self._forward(method, path, headers, body)
            if code == 200 and json.loads(out).get(describe[1], {}).get("Status") != "IN_PROGRESS":
                with self._lock:
                    self._outstanding.discard(request_id)
            return code, out_headers, out
        return self._forward(method, path, headers, body)

    def _start(self, request_id: str) -> None:
        """A request now in progress (the caller holds the lock)."""
        self._outstanding.add(request_id)
        self.peak_outstanding = max(self.peak_outstanding, len(self._outstanding))

    def _iam_page(
        self, action: str, form: dict[str, list[str]], method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        size = int(form["MaxItems"][0])
        offset = int(form.get("Marker", ["0"])[0])
        upstream_form = {k: v[0] for k, v in form.items() if k not in ("MaxItems", "Marker")}
        code, out_headers, out = self._forward(
            method, path, headers, urllib.parse.urlencode(upstream_form).encode()
        )
        if code != 200:
            return code, out_headers, out
        ET.register_namespace("", _IAM_NS)
        root = ET.fromstring(out)  # noqa: S314 (moto's own answer on 127.0.0.1)
        result = root.find(f"{{{_IAM_NS}}}{action}Result")
        assert result is not None, out
        listing = result.find(f"{{{_IAM_NS}}}{'Users' if action == 'GetGroup' else 'Groups'}")
        assert listing is not None, out
        members = list(listing)
        for member in members:
            listing.remove(member)
        for member in members[offset : offset + size]:
            listing.append(member)
        for old in result.findall(f"{{{_IAM_NS}}}IsTruncated") + result.findall(f"{{{_IAM_NS}}}Marker"):
            result.remove(old)
        truncated = offset + size < len(members)
        ET.SubElement(result, f"{{{_IAM_NS}}}IsTruncated").text = "true" if truncated else "false"
        if truncated:
            ET.SubElement(result, f"{{{_IAM_NS}}}Marker").text = str(offset + size)
        return 200, {**out_headers, "Content-Type": "text/xml"}, ET.tostring(root, encoding="utf-8")

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(self.upstream)
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={k: v for k, v in headers.items() if k not in _HOP_BY_HOP})
            response = conn.getresponse()
            data = response.read()
            out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, out, data
        finally:
            conn.close()


def _json(code: int, body: object) -> tuple[int, dict[str, str], bytes]:
    return code, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode()


def _iam_denied(action: str) -> tuple[int, dict[str, str], bytes]:
    body = (
        f'<ErrorResponse xmlns="{_IAM_NS}"><Error><Type>Sender</Type><Code>AccessDenied</Code>'
        f"<Message>User: arn:aws:iam::123456789012:user/jitpol is not authorized to perform: iam:{action}</Message>"
        f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return 403, {"Content-Type": "text/xml"}, body.encode()


def _serve(shim: AwsShim) -> LocalServer:
    class Handler(QuietHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, out_headers, out = shim.handle(self.command, self.path, headers, body)
            self.send_response(code)
            for k, v in out_headers.items():
                if k.lower() not in ("date", "server"):  # send_response wrote its own
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = _any

    server = LocalServer(Handler)
    server.start()
    return server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[ThrowawayMoto]:
    yield from serve(ThrowawayMoto(), what="moto", missing=MotoNotFound, failed=ThrowawayMotoError, name="moto")


@pytest.fixture(scope="session")
def aws_shim(moto_server: ThrowawayMoto) -> Iterator[AwsShim]:
    shim = AwsShim(upstream=moto_server.endpoint_url)
    server = _serve(shim)
    shim.port = server.port
    try:
        yield shim
    finally:
        server.stop()


class _Admin:
    """Clients straight to moto (behind jitpol's back), made once per session: boto3 spends
    ~0.1 s loading each service model."""

    def __init__(self, moto: ThrowawayMoto) -> None:
        import boto3

        kw: dict[str, Any] = {
            "region_name": REGION,
            "endpoint_url": moto.endpoint_url,
            "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        }
        self.sso = boto3.client("sso-admin", **kw)
        self.iam = boto3.client("iam", **kw)
        self.store = boto3.client("identitystore", **kw)
        instance = self.sso.list_instances()["Instances"][0]
        self.instance_arn: str = instance["InstanceArn"]
        self.store_id: str = instance["IdentityStoreId"]

    def close(self) -> None:
        for client in (self.sso, self.iam, self.store):
            client.close()


@pytest.fixture(scope="session")
def _aws_admin(moto_server: ThrowawayMoto) -> Iterator[_Admin]:
    admin = _Admin(moto_server)
    try:
        yield admin
    finally:
        admin.close()


class AwsWorld:
    """Arranges state straight on moto (behind jitpol's back) and makes connectors."""

    ACCOUNT = "111122223333"

    def __init__(self, admin: _Admin, shim: AwsShim) -> None:
        self.shim = shim
        self.sso, self.iam, self.store = admin.sso, admin.iam, admin.store
        self.instance_arn, self.store_id = admin.instance_arn, admin.store_id
        self._opened = ExitStack()  # closes every connector made

    @staticmethod
    def unique(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    # identity center
    def user(self, prefix: str = "user") -> str:
        name = self.unique(prefix)
        out = self.store.create_user(
            IdentityStoreId=self.store_id, UserName=name, DisplayName=name, Name={"GivenName": name, "FamilyName": "T"}
        )
        return str(out["UserId"])

    def group(self, prefix: str = "group") -> str:
        return str(self.store.create_group(IdentityStoreId=self.store_id, DisplayName=self.unique(prefix))["GroupId"])

    def permission_set(self, prefix: str = "ps") -> str:
        out = self.sso.create_permission_set(InstanceArn=self.instance_arn, Name=self.unique(prefix)[:32])
        return str(out["PermissionSet"]["PermissionSetArn"])

    def missing_permission_set(self) -> str:
        """A well-formed permission set ARN of this instance that does not exist."""
        instance_id = self.instance_arn.rsplit("/", 1)[1]
        return f"arn:aws:sso:::permissionSet/{instance_id}/ps-{uuid.uuid4().hex[:16]}"

    def assign(
        self, permission_set: str, kind: Literal["USER", "GROUP"], principal_id: str, account: str = ACCOUNT
    ) -> None:
        self.sso.create_account_assignment(
            InstanceArn=self.instance_arn, TargetId=account, TargetType="AWS_ACCOUNT",
            PermissionSetArn=permission_set, PrincipalType=kind, PrincipalId=principal_id,
        )

    def holders(self, permission_set: str, account: str = ACCOUNT) -> set[tuple[str, str]]:
        pages = self.sso.get_paginator("list_account_assignments").paginate(
            InstanceArn=self.instance_arn, AccountId=account, PermissionSetArn=permission_set
        )
        return {(a["PrincipalType"], a["PrincipalId"]) for page in pages for a in page["AccountAssignments"]}

    # iam
    def iam_user(self, prefix: str = "iamuser") -> str:
        name = self.unique(prefix)
        self.iam.create_user(UserName=name)
        return name

    def iam_group(self, prefix: str = "iamgroup") -> str:
        name = self.unique(prefix)
        self.iam.create_group(GroupName=name)
        return name

    def iam_members(self, group: str) -> set[str]:
        return {u["UserName"] for u in self.iam.get_group(GroupName=group)["Users"]}

    def connector(
        self, env: Mapping[str, str] = AWS_ENV, pacing: Pacing | None = None, **settings: Any
    ) -> AwsConnector:
        """An AwsConnector talking to the shim; settings override region/endpoint_url."""
        merged: dict[str, Any] = {"region": REGION, "endpoint_url": self.shim.endpoint_url, **settings}
        connector = AwsConnector(AWS_TARGET, merged, env, pacing=pacing)
        self._opened.callback(connector.close)
        return connector

    def close(self) -> None:
        self._opened.close()


@pytest.fixture
def aws(_aws_admin: _Admin, aws_shim: AwsShim) -> Iterator[AwsWorld]:
    aws_shim.reset()
    world = AwsWorld(_aws_admin, aws_shim)
    try:
        yield world
    finally:
        world.close()
        aws_shim.reset()

