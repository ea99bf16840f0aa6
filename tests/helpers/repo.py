"""Build policy repositories in temporary directories, with real SSH keys and signatures."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jitpol.model.canonical import approval_message, grant_digest
from jitpol.model.sshkey import fingerprint
from jitpol.vcs import sshsig


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is YAML 1.2 and round-trips every value exactly through the strict reader
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "jitpol/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@dataclass
class RepoBuilder:
    """A policy repository on disk. Targets default to one fake target `db` (state in a file)."""

    root: Path
    keydir: Path
    keys: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.keydir.mkdir(parents=True, exist_ok=True)

    # -- documents ------------------------------------------------------------------------
    def config(self, targets: dict[str, Any] | None = None, admins: list[str] | None = None) -> None:
        targets = targets if targets is not None else {
            "db": {"type": "fake", "state_file": str(self.root.parent / "fake-db.json")}
        }
        write_yaml(self.root / "jitpol.yaml",
                   doc("Config", "test", {"admins": admins or ["team:admins"], "targets": targets}))

    def key(self, person: str, kind: str = "ed25519") -> Path:
        if person not in self.keys:
            path = self.keydir / f"{person}-{kind}"
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", person, "-f", str(path)], check=True)
            self.keys[person] = path
        return self.keys[person]

    def person(self, name: str, accounts: dict[str, Any] | None = None, **extra: Any) -> None:
        pub = Path(str(self.key(name)) + ".pub").read_text()
        spec = {"email": f"{name}@example.com", "keys": [pub.strip()],
                "accounts": accounts if accounts is not None else {"fake": name}, **extra}
        write_yaml(self.root / "people" / f"{name}.yaml", doc("Person", name, spec))

    def team(self, name: str, members: list[str]) -> None:
        write_yaml(self.root / "teams" / f"{name}.yaml", doc("Team", name, {"members": members}))

    def workflow(self, name: str, **spec: Any) -> None:
        base: dict[str, Any] = {"requesters": ["team:eng"], "approvals": {"required": 1, "approvers": ["team:leads"]},
                                "maxDuration": "4h"}
        base.update(spec)
        write_yaml(self.root / "workflows" / f"{name}.yaml", doc("Workflow", name, base))

    def resource(self, name: str, **spec: Any) -> None:
        base: dict[str, Any] = {"target": "db", "workflow": "prod", "model": "role-membership",
                                "roles": {"read": {"grants": ["app_read"]},
                                          "write": {"grants": ["app_read", "app_write"]}}}
        base.update(spec)
        base = {k: v for k, v in base.items() if v is not None}  # roles=None: a resource without roles
        write_yaml(self.root / "resources" / f"{name}.yaml", doc("Resource", name, base))

    def grant(self, name: str, requester: str, start: str, duration: str = "2h", *, resource: str = "db-prod",
              role: str | None = "read", approvers: tuple[str, ...] = (), **spec: Any) -> Path:
        body: dict[str, Any] = {"requester": requester, "resource": resource, "role": role,
                                "window": {"start": start, "duration": duration},
                                "justification": "INC-1 testing"}
        body.update(spec)
        if role is None:
            del body["role"]
        data = doc("Grant", name, body)
        data["spec"]["approvals"] = [self.sign(data, who) for who in approvers]
        if not data["spec"]["approvals"]:
            del data["spec"]["approvals"]
        return write_yaml(self.root / "grants" / f"{name}.yaml", data)

    def sign(self, data: dict[str, Any], who: str) -> dict[str, str]:
        key = self.key(who)
        signature = sshsig.sign(approval_message(grant_digest(data)), key)
        pub = Path(str(key) + ".pub").read_text()
        return {"by": who, "key": fingerprint(pub), "signature": signature}

    def standard(self) -> RepoBuilder:
        """alice, bob (engineers), lead (approver), admin; workflow prod; resource db-prod."""
        self.config()
        for p in ("alice", "bob", "lead", "admin"):
            self.person(p)
        self.team("eng", ["alice", "bob"])
        self.team("leads", ["lead", "bob"])
        self.team("admins", ["admin"])
        self.workflow("prod")
        self.resource("db-prod")
        return self

    def fake_state(self) -> dict[str, Any]:
        path = self.root.parent / "fake-db.json"
        return json.loads(path.read_text()) if path.exists() else {"members": {}}

    def set_fake_state(self, state: dict[str, Any]) -> None:
        (self.root.parent / "fake-db.json").write_text(json.dumps(state))

    def members(self, privilege: str) -> list[str]:
        return sorted(self.fake_state()["members"].get(privilege, []))


def load_doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data
