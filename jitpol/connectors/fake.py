"""In-memory twin of a target with the same semantics as the real connectors.

State lives in a JSON file named by the target's `state_file` setting, so separate jitpol
processes (tests, docs) see one world. The file holds {"members": {privilege: [principal]},
"down": bool, "fail": [principal]}: `down` makes every call raise TargetUnavailable, `fail`
makes additions for those principals fail permanently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope


class FakeConnector:
    type: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(models=frozenset({"role-membership"}))

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        self._path = Path(str(settings["state_file"]))

    def _load(self) -> dict[str, Any]:
        state: dict[str, Any] = (
            json.loads(self._path.read_text()) if self._path.exists() else {"members": {}}
        )
        if state.get("down"):
            raise TargetUnavailable(f"target {self.name}: connection refused (fake is down)")
        state.setdefault("members", {})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self._path)

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        members = self._load()["members"]
        return frozenset(
            Assignment(self.name, scope.model, principal, privilege)
            for privilege in scope.privileges
            for principal in members.get(privilege, [])
        )

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        state = self._load()
        a = action.assignment
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
                self._save(state)
            return Outcome(changed=True, before=False, after=not check, operations=(op,))
        if action.op == "revoke":
            if not present:
                return Outcome(changed=False, before=True, after=True)
            op = f"REMOVE {a.principal} FROM {a.privilege}"
            if not check:
                holders.remove(a.principal)
                self._save(state)
            return Outcome(changed=True, before=False, after=not check, operations=(op,))
        raise PermanentTargetError(f"target {self.name}: fake does not support {action.op}")

    def close(self) -> None:
        pass
