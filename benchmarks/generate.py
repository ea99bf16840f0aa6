"""Generate realistic jitpol policy repositories for the benchmarks.

    .venv/bin/python benchmarks/generate.py OUT [--grants 10000] [--people 1000] [--resources 200]
                                                [--now 2026-06-17T10:00:00Z] [--seed 7]
    .venv/bin/python benchmarks/generate.py OUT --apply-repo 1000     # the `apply` benchmark's repo

Contract:
- `generate(root, keydir, ...)` writes jitpol.yaml, people/, teams/, workflows/, resources/ and
  grants/YYYY-MM/*.yaml under `root` (which must not exist or be empty) and returns a Summary.
  Every file is block-style YAML that jitpol's strict reader accepts; the result validates.
- Everything is drawn from `random.Random(seed)`: the same arguments give the same names,
  windows, teams and workflows. The only exception is key material: approvers' ed25519 keys
  come from `ssh-keygen` (kept in `keydir` and reused when already there), so signatures
  differ between key directories.
- Grants span a year around `now` (about 300 days before, 65 after). About 3.5% of them are
  placed so their window contains `now` (some hundreds active), about 12% lie in the future
  and the rest in the past. Grants of workflows that need approvals and that end after `now`
  carry real SSH signatures (`jitpol.vcs.sshsig.sign`) from approvers other than the requester;
  one in ten future ones is left unsigned (pending). Past grants carry none: they are expired
  whatever their approvals say, and signing them all would only make generation slow.
- Non-approvers get a syntactically valid ed25519 public key made of seeded random bytes (no
  private key exists for it): people files look real without running ssh-keygen 1,000 times.
- `generate_apply_repo(root, n, now)` writes the smaller repository of the apply benchmark:
  `n` people with PostgreSQL logins `bench_u00001`..., one pre-approved resource whose role
  gives group role `bench_group`, and one grant per person active from now-1h to now+3h.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jitpol.model.canonical import approval_message, grant_digest  # noqa: E402
from jitpol.model.sshkey import fingerprint  # noqa: E402
from jitpol.vcs import sshsig  # noqa: E402

DEFAULT_NOW = "2026-06-17T10:00:00Z"  # a Wednesday, 12:00 in Berlin: inside the office-hours schedules
BERLIN = ZoneInfo("Europe/Berlin")
TARGET = "pg-main"
DSN_ENV = "BENCH_PG_DSN"
APPLY_GROUP_ROLE = "bench_group"

FIRST = ("alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil "
         "trent victor walter xena yusuf zoe amir bea chen dmitri eva farah goran hana igor jana kofi "
         "lena mateo nora omar pia quinn rosa sven tara uma vera wen ximena yara").split()
LAST = ("smith jones garcia mueller schmidt novak rossi silva kim tanaka nguyen patel cohen berg "
        "larsen dubois moreau fischer weber wagner becker hoffmann schulz koch richter klein wolf "
        "neumann schwarz braun zimmer kruger hartmann lange").split()
TEAMS = ("payments search checkout identity growth mobile web platform sre data ml billing "
         "logistics catalog support-tools infra dba security-eng observability release").split()
PRIVILEGED_TEAMS = ("sre", "platform", "dba", "infra")
SERVICES = ("orders billing ledger catalog search users auth sessions payments invoices shipping "
            "inventory pricing reviews carts wishlist notify audit reports metrics events kafka-meta "
            "feature-flags recommendations fraud kyc support tickets warehouse etl crm marketing "
            "loyalty coupons geo media thumbnails mail sms").split()
ENVS = ("prod", "staging", "dev", "analytics", "replica")
PHRASES = ("slow queries on the checkout path", "backfill after the schema migration", "customer escalation",
           "verify a data fix", "nightly job failed", "investigate replication lag", "one-off export for finance",
           "rotate a broken sequence", "debug a deadlock", "check index bloat", "reconcile totals")


# -- YAML ------------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./@:+= -]*|[0-9]+[mhd]")
# plain words YAML 1.1 reads as something other than a string (the strict reader refuses them)
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if (_PLAIN.fullmatch(text) and text.lower() not in _YAML11_WORDS and not text.endswith(" ")
            and not text.endswith(":") and ": " not in text and " #" not in text):
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _emit(value: Any, indent: int, out: list[str]) -> None:
    """Block-style YAML for `value` (a dict) at `indent` spaces, appended line by line."""
    pad = " " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            out.append(f"{pad}{key}:")
            _emit(item, indent + 2, out)
        elif isinstance(item, list) and item and all(isinstance(x, dict) for x in item):
            out.append(f"{pad}{key}:")
            for entry in item:
                lines: list[str] = []
                _emit(entry, indent + 2, lines)
                out.append(f"{pad}- {lines[0][indent + 2:]}")
                out.extend(lines[1:])
        elif isinstance(item, list):
            out.append(f"{pad}{key}: [{', '.join(_scalar(x) for x in item)}]")
        elif isinstance(item, str) and "\n" in item:
            out.append(f"{pad}{key}: |")
            out.extend(f"{pad}  {line}" for line in item.rstrip("\n").split("\n"))
        else:
            out.append(f"{pad}{key}: {_scalar(item)}")


def write_doc(root: Path, rel: str, data: dict[str, Any], schema: str) -> Path:
    """Write one policy document to root/rel as block YAML, with the editor's schema comment
    on top (schemas/ is taken to sit beside the repository, as in this project)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    up = "../" * rel.count("/")
    lines = [f"# yaml-language-server: $schema=../{up}schemas/{schema}.schema.json"]
    _emit(data, 0, lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "jitpol/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


# -- keys ------------------------------------------------------------------------------------

def fake_public_key(rng: random.Random, comment: str) -> str:
    """A well-formed ssh-ed25519 public key line from seeded bytes (nobody holds its private key)."""
    name = b"ssh-ed25519"
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + rng.randbytes(32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def approver_key(keydir: Path, person: str) -> Path:
    """The private key file of `person`, made with ssh-keygen once and reused afterwards."""
    keydir.mkdir(parents=True, exist_ok=True)
    path = keydir / f"{person}-ed25519"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{person}@bench.example",
                        "-f", str(path)], check=True)
    return path


# -- the big repository ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WorkflowDef:
    name: str
    required: int
    max_hours: float
    durations: tuple[str, ...]
    schedule: tuple[str, str] | None  # Berlin (start, end) on weekdays
    requester_teams: tuple[str, ...]
    pattern: str | None
    weight: int  # share of resources


@dataclass(slots=True)
class Summary:
    """What was generated; `expected` counts grants by the state the generator aimed for."""

    root: Path
    now: str
    grants: int
    people: int
    teams: int
    workflows: int
    resources: int
    approvers: int
    signed_grants: int = 0
    signatures: int = 0
    expected: Counter[str] = field(default_factory=Counter)
    pg_roles: tuple[str, ...] = ()  # group roles the resources name
    pg_logins: tuple[str, ...] = ()  # people's PostgreSQL login roles

    def as_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "now": self.now, "grants": self.grants, "people": self.people,
                "teams": self.teams, "workflows": self.workflows, "resources": self.resources,
                "approvers": self.approvers, "signed_grants": self.signed_grants,
                "signatures": self.signatures, "expected_states": dict(sorted(self.expected.items())),
                "pg_group_roles": len(self.pg_roles), "pg_login_roles": len(self.pg_logins)}


def _workflows() -> list[WorkflowDef]:
    everyone = tuple(TEAMS)
    return [
        WorkflowDef("self-service", 0, 8, ("30m", "1h", "2h", "4h", "8h"), None, everyone, None, 45),
        WorkflowDef("office-hours", 0, 24, ("2h", "4h", "8h", "1d"), ("08:00", "18:00"), everyone, None, 20),
        WorkflowDef("prod-change", 1, 4, ("30m", "1h", "2h", "4h"), None, everyone, r"^(INC|CHG)-[0-9]+", 22),
        WorkflowDef("prod-admin", 2, 4, ("1h", "2h", "4h"), ("07:00", "20:00"), PRIVILEGED_TEAMS,
                    r"^(INC|CHG)-[0-9]+", 8),
        WorkflowDef("break-glass", 1, 2, ("30m", "1h", "2h"), None, PRIVILEGED_TEAMS, r"^INC-[0-9]+", 5),
    ]


def _hours(text: str) -> float:
    return {"m": 1 / 60, "h": 1.0, "d": 24.0}[text[-1]] * float(text[:-1])


def _fmt_time(t: datetime, rng: random.Random) -> str:
    # people write both UTC and Berlin local times; both carry an offset
    if rng.random() < 0.3:
        return t.astimezone(BERLIN).isoformat()
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _people_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        base = f"{rng.choice(FIRST)}-{rng.choice(LAST)}"
        name = base
        n = 2
        while name in seen:
            name = f"{base}-{n}"
            n += 1
        seen.add(name)
        names.append(name)
    return names


def _resource_names(count: int) -> list[str]:
    names = [f"{svc}-{env}" for env in ENVS for svc in SERVICES]
    i = 2
    while len(names) < count:
        names.extend(f"{svc}-{env}-{i}" for env in ENVS for svc in SERVICES)
        i += 1
    return names[:count]


def _pg(name: str) -> str:
    return name.replace("-", "_")


def _window(rng: random.Random, now: datetime, wf: WorkflowDef, where: str) -> tuple[datetime, str]:
    """(start, duration) of a grant placed `where` ('current', 'future', 'past') relative to now."""
    duration = rng.choice(wf.durations)
    length = timedelta(hours=_hours(duration))
    if where == "current":
        # now falls somewhere inside the window, at least 5 minutes from either end
        into = timedelta(seconds=rng.uniform(300, max(301.0, length.total_seconds() - 300)))
        start = now - into
    else:
        days = rng.uniform(0.5, 65) if where == "future" else -rng.uniform(0.2, 300)
        start = now + timedelta(days=days)
        if wf.schedule is not None:
            # people with a scheduled workflow ask for working hours on working days
            local = start.astimezone(BERLIN)
            while local.weekday() >= 5:
                local += timedelta(days=1)
            local = local.replace(hour=rng.randint(8, 15), minute=rng.choice((0, 15, 30, 45)), second=0)
            start = local.astimezone(UTC)
        else:
            start = start.replace(minute=rng.choice((0, 10, 15, 20, 30, 40, 45, 50)), second=0, microsecond=0)
    return start.replace(microsecond=0), duration


def generate(root: Path, keydir: Path, *, grants: int = 10_000, people: int = 1_000, resources: int = 200,
             now: str = DEFAULT_NOW, seed: int = 7, approvers: int = 10) -> Summary:
    """Write a repository (see the module docstring). Returns what it wrote."""
    rng = random.Random(seed)
    now_t = datetime.fromisoformat(now).astimezone(UTC)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    workflows = _workflows()
    names = _people_names(rng, people)
    approver_names = names[:approvers]
    summary = Summary(root, now, grants, people, len(TEAMS) + 2, len(workflows), resources, approvers)

    write_doc(root, "jitpol.yaml", doc("Config", "bench-corp", {
        "admins": ["team:security"],
        "timezone": "UTC",
        "targets": {TARGET: {"type": "postgres", "dsn_env": DSN_ENV,
                             "description": "The main PostgreSQL cluster (benchmark)"}},
    }), "config")

    # people: approvers get real keys, everybody else a well-formed key nobody can sign with
    keyfiles = {a: approver_key(keydir, a) for a in approver_names}
    logins: list[str] = []
    for name in names:
        if name in keyfiles:
            key = Path(f"{keyfiles[name]}.pub").read_text().strip()
        else:
            key = fake_public_key(rng, f"{name}@laptop")
        login = _pg(name)
        logins.append(login)
        write_doc(root, f"people/{name}.yaml", doc("Person", name, {
            "email": f"{name}@bench.example", "keys": [key], "accounts": {"postgres": login},
        }), "person")
    summary.pg_logins = tuple(logins)

    # teams: everybody in one or two engineering teams; approvers lead; security administers
    members: dict[str, list[str]] = {t: [] for t in TEAMS}
    for name in names:
        for team in rng.sample(TEAMS, rng.choice((1, 1, 1, 2))):
            members[team].append(name)
    for team in TEAMS:
        if not members[team]:
            members[team].append(rng.choice(names))
        write_doc(root, f"teams/{team}.yaml",
                  doc("Team", team, {"description": f"The {team} engineering team", "members": members[team]}),
                  "team")
    write_doc(root, "teams/leads.yaml", doc("Team", "leads", {
        "description": "Approve production access", "members": approver_names}), "team")
    write_doc(root, "teams/security.yaml", doc("Team", "security", {
        "description": "Admins of this repository", "members": approver_names[:2]}), "team")

    for wf in workflows:
        spec: dict[str, Any] = {
            "description": f"{wf.name} access",
            "requesters": [f"team:{t}" for t in wf.requester_teams],
            "approvals": {"required": wf.required, **({"approvers": ["team:leads"]} if wf.required else {})},
            "mfa": "none",
            "maxDuration": f"{int(wf.max_hours)}h" if wf.max_hours < 24 else f"{int(wf.max_hours // 24)}d",
        }
        if wf.schedule is not None:
            spec["schedule"] = {"timezone": "Europe/Berlin", "windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": wf.schedule[0], "end": wf.schedule[1]}]}
        spec["checkout"] = "shared"
        spec["justification"] = ({"required": True, "pattern": wf.pattern} if wf.pattern
                                 else {"required": True})
        write_doc(root, f"workflows/{wf.name}.yaml", doc("Workflow", wf.name, spec), "workflow")

    # resources: each on the one PostgreSQL target, read and write roles backed by group roles
    res_names = _resource_names(resources)
    res_wf: dict[str, WorkflowDef] = {}
    group_roles: list[str] = []
    weights = [wf.weight for wf in workflows]
    for res in res_names:
        wf = rng.choices(workflows, weights)[0]
        res_wf[res] = wf
        read, write = f"{_pg(res)}_read", f"{_pg(res)}_write"
        group_roles += [read, write]
        write_doc(root, f"resources/{res}.yaml", doc("Resource", res, {
            "description": f"The {res} database", "target": TARGET, "workflow": wf.name,
            "model": "role-membership",
            "roles": {"read": {"description": "SELECT on the application tables", "grants": [read]},
                      "write": {"description": "Read plus INSERT/UPDATE/DELETE", "grants": [read, write]}},
        }), "resource")
    summary.pg_roles = tuple(group_roles)

    eligible = {wf.name: sorted({p for t in wf.requester_teams for p in members[t]}) for wf in workflows}
    to_sign: list[tuple[str, dict[str, Any], list[str]]] = []
    for i in range(grants):
        res = rng.choice(res_names)
        wf = res_wf[res]
        requester = rng.choice(eligible[wf.name])
        roll = rng.random()
        where = "current" if roll < 0.035 else "future" if roll < 0.155 else "past"
        start, duration = _window(rng, now_t, wf, where)
        window: dict[str, str] = {"start": _fmt_time(start, rng)}
        if rng.random() < 0.2:
            window["end"] = _fmt_time(start + timedelta(hours=_hours(duration)), rng)
        else:
            window["duration"] = duration
        ticket = f"{rng.choice(('INC', 'CHG'))}-{rng.randint(1000, 99999)}"
        if wf.name == "break-glass":
            ticket = f"INC-{rng.randint(1000, 99999)}"
        name = f"{requester[:24]}-{res[:24]}-{i:05d}"
        spec = {"requester": requester, "resource": res, "role": rng.choice(("read", "read", "read", "write")),
                "window": window, "justification": f"{ticket} {rng.choice(PHRASES)}"}
        revoked = rng.random() < 0.01
        if revoked:
            spec["revoke"] = True
        data = doc("Grant", name, spec)
        rel = f"grants/{start.strftime('%Y-%m')}/{name}.yaml"
        state = _expected_state(where, wf, revoked)
        signed = False
        if wf.required and where != "past" and not revoked:
            if where == "future" and rng.random() < 0.1:
                state = "pending"
            else:
                signers = rng.sample([a for a in approver_names if a != requester], wf.required)
                to_sign.append((rel, data, signers))
                signed = True
        summary.expected[state] += 1
        if not signed:
            write_doc(root, rel, data, "grant")  # signed ones are written once signed, below

    # sign in parallel: ssh-keygen runs as a child process, so threads overlap well
    def sign(item: tuple[str, dict[str, Any], list[str]]) -> int:
        rel, data, signers = item
        message = approval_message(grant_digest(data))
        data["spec"]["approvals"] = [
            {"by": who, "key": fingerprint(Path(f"{keyfiles[who]}.pub").read_text()),
             "signature": sshsig.sign(message, keyfiles[who])}
            for who in signers
        ]
        write_doc(root, rel, data, "grant")
        return len(signers)

    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(sign, to_sign))
    summary.signed_grants = len(to_sign)
    summary.signatures = sum(counts)
    return summary


def _expected_state(where: str, wf: WorkflowDef, revoked: bool) -> str:
    if revoked:
        return "revoked"
    return {"past": "expired", "future": "scheduled", "current": "active"}[where]


# -- the apply benchmark's repository --------------------------------------------------------

def generate_apply_repo(root: Path, n: int = 1_000, now: str = DEFAULT_NOW, *, target_type: str = "postgres",
                        dsn_env: str = DSN_ENV, role: str = APPLY_GROUP_ROLE, account: str = "bench_u{i:05d}",
                        name: str = "bench-apply") -> list[str]:
    """`n` pre-approved grants, one per person, all active at `now` (now-1h .. now+3h), each
    making the person's account (`account` formatted with i = 1..n) a member of `role` on one
    target of `target_type`. Returns the accounts."""
    now_t = datetime.fromisoformat(now).astimezone(UTC)
    root.mkdir(parents=True, exist_ok=True)
    write_doc(root, "jitpol.yaml", doc("Config", name, {
        "admins": ["team:security"], "timezone": "UTC",
        "targets": {TARGET: {"type": target_type, "dsn_env": dsn_env}},
    }), "config")
    people = [f"user-{i:05d}" for i in range(1, n + 1)]
    accounts = [account.format(i=i) for i in range(1, n + 1)]
    for person, login in zip(people, accounts, strict=True):
        write_doc(root, f"people/{person}.yaml", doc("Person", person, {
            "email": f"{person}@bench.example", "accounts": {target_type: login}}), "person")
    write_doc(root, "teams/eng.yaml", doc("Team", "eng", {"members": people}), "team")
    write_doc(root, "teams/security.yaml", doc("Team", "security", {"members": people[:1]}), "team")
    write_doc(root, "workflows/pre-approved.yaml", doc("Workflow", "pre-approved", {
        "requesters": ["team:eng"], "approvals": {"required": 0}, "maxDuration": "8h"}), "workflow")
    write_doc(root, "resources/app-db.yaml", doc("Resource", "app-db", {
        "target": TARGET, "workflow": "pre-approved", "model": "role-membership",
        "roles": {"member": {"grants": [role]}}}), "resource")
    start = (now_t - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for person in people:
        grant = f"{person}-app-db"
        write_doc(root, f"grants/{grant}.yaml", doc("Grant", grant, {
            "requester": person, "resource": "app-db", "role": "member",
            "window": {"start": start, "duration": "4h"}, "justification": "benchmark"}), "grant")
    return accounts


def _print_summary(summary: Summary) -> None:
    print(json.dumps(summary.as_dict(), indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out", type=Path, help="directory to create (must be empty); the repo goes to OUT/repo")
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=1_000)
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--approvers", type=int, default=10)
    parser.add_argument("--now", default=DEFAULT_NOW)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--apply-repo", type=int, metavar="N", help="write the apply benchmark's repo instead")
    args = parser.parse_args(argv)
    repo = args.out / "repo"
    if args.apply_repo:
        generate_apply_repo(repo, args.apply_repo, args.now)
        print(f"wrote {args.apply_repo} grants to {repo}")
        return 0
    summary = generate(repo, args.out / "keys", grants=args.grants, people=args.people,
                       resources=args.resources, now=args.now, seed=args.seed, approvers=args.approvers)
    _print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
