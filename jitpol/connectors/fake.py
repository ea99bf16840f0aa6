"""In-memory twin of a target with the same semantics as the real connectors.

State lives in a JSON file named by the target's `state_file` setting, so separate jitpol
processes (tests, docs) see one world. The file holds
  {"members": {privilege: [principal]},                      role-membership
   "owned": {privilege: [principal]},                        the members jitpol added (its marker)
   "accounts": {name: {"groups", "password", "expires"}},    ephemeral-account (all jitpol's)
   "shared": {account: {"password", "until"}},              credential-checkout (must pre-exist)
   "down": bool, "fail": [principal]}
`down` makes every call raise TargetUnavailable, `fail` makes additions for those principals fail
permanently. Like a real target, the fake keeps the passwords it is given (tests use that to
prove a secret appears nowhere else).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from jitpol.connectors.kit import marker_driven
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.fsutil import write_atomic
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json


class FakeConnector:
    type: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({"role-membership", "ephemeral-account", "credential-checkout"}),
        native_expiry=frozenset({"ephemeral-account"}),
        marks=frozenset({"role-membership", "ephemeral-account"}),
    )

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        self._path = Path(str(settings["state_file"]))
        self._latency = int(settings.get("latency_ms", 0)) / 1000  # a remote target's round trip

    def _load(self) -> dict[str, Any]:
        if self._latency:
            time.sleep(self._latency)
        state: dict[str, Any] = (
            json.loads(self._path.read_text()) if self._path.exists() else {"members": {}}
        )
        if state.get("down"):
            raise TargetUnavailable(f"target {self.name}: connection refused (fake is down)")
        state.setdefault("members", {})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        write_atomic(self._path, json.dumps(state, indent=1, sort_keys=True).encode("utf-8"), mode=0o644)

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        state = self._load()
        if scope.model == "ephemeral-account":
            return frozenset(
                Assignment(self.name, scope.model, name, canonical_json(sorted(acct["groups"])),
                           datetime.fromisoformat(acct["expires"]) if acct.get("expires") else None, owned=True)
                for name, acct in state.get("accounts", {}).items()
            )
        if scope.model == "credential-checkout":
            return frozenset()
        members = state["members"]
        owned = state.get("owned", {})
        return frozenset(
            Assignment(self.name, scope.model, principal, privilege, owned=principal in owned.get(privilege, []))
            for privilege in scope.privileges
            for principal in members.get(privilege, [])
        )

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        state = self._load()
        a = action.assignment
        if a.model in ("ephemeral-account", "credential-checkout"):
            return self._account(state, action, check)
        holders: list[str] = state["members"].setdefault(a.privilege, [])
        present = a.principal in holders
        if action.op == "grant":
            if a.principal in state.get("fail", []):
                raise PermanentTargetError(f"target {self.name}: permission denied for {a.principal}")
            if present:
                return Outcome(changed=False, before=True, after=True)
            op = f"ADD {a.principal} TO {a.privilege}"
            if not check:
                holders.append(a.principal)
                state.setdefault("owned", {}).setdefault(a.privilege, []).append(a.principal)
                self._save(state)
            return Outcome(changed=True, before=False, after=not check, operations=(op,))
        if action.op == "revoke":
            mine = state.setdefault("owned", {}).setdefault(a.privilege, [])
            if not present or (marker_driven(action) and a.principal not in mine):
                # a revoke only the marker backs takes nothing unmarked (as the real connectors)
                return Outcome(changed=False, before=True, after=True)
            op = f"REMOVE {a.principal} FROM {a.privilege}"
            if not check:
                holders.remove(a.principal)
                if a.principal in mine:
                    mine.remove(a.principal)
                self._save(state)
            return Outcome(changed=True, before=False, after=not check, operations=(op,))
        raise PermanentTargetError(f"target {self.name}: fake does not support {action.op}")

    def _account(self, state: dict[str, Any], action: Action, check: bool) -> Outcome:
        a = action.assignment
        accounts: dict[str, Any] = state.setdefault("accounts", {})
        password = action.detail("password") or None
        until = action.until.isoformat() if action.until else None
        if action.op == "rotate":
            shared = state.setdefault("shared", {})
            if a.principal not in shared:
                raise PermanentTargetError(f"target {self.name}: shared account {a.principal} does not exist")
            if not password:
                raise PermanentTargetError(f"target {self.name}: a rotation needs a new password")
            if not check:
                shared[a.principal] = {"password": password, "until": until if a.privilege != "[]" else None}
                self._save(state)
            return Outcome(changed=True, before=False, after=not check,
                           operations=(f"SET PASSWORD {a.principal} '***'",))
        if action.op == "create-account":
            want = {"groups": sorted(json.loads(a.privilege)), "password": password, "expires": until}
            have = accounts.get(a.principal)
            if have is not None and not password and have["groups"] == want["groups"] and (
                    not until or have.get("expires") == until):  # the end follows the grant both ways
                return Outcome(changed=False, before=True, after=True)
            if have is not None and not password:
                want["password"] = have.get("password")
            if not check:
                accounts[a.principal] = want
                self._save(state)
            return Outcome(changed=True, before=False, after=not check,
                           operations=(f"CREATE ACCOUNT {a.principal} PASSWORD '***'",))
        if action.op == "delete-account":
            if a.principal not in accounts:
                return Outcome(changed=False, before=True, after=True)
            if not check:
                del accounts[a.principal]
                self._save(state)
            return Outcome(changed=True, before=False, after=not check, operations=(f"DELETE ACCOUNT {a.principal}",))
        raise PermanentTargetError(f"target {self.name}: {action.op} does not apply to {a.model}")

    def close(self) -> None:
        pass
