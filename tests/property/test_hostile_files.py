"""Property: no input file stops a revocation or crashes jitpol (SPEC section 6, issue 12).

One hostile file — a document of any kind (Config, Person, Team, Workflow, Resource, Grant,
PolicyApproval) whose fields hold random values (extreme and malformed times, huge and odd
durations and numbers, unicode, wrong types, missing and extra keys), or raw text that is not a
document at all — is added to an otherwise valid repository in which an approved grant has just
ended. Then `validate`, `status`, `plan` and `apply` run through the CLI as a user would:

- none of them fails with an internal error (an exception that is not a JitpolError): exit
  status 0 or 1, never "internal error", never an uncaught exception; and
- the revocation that is due happens: the fake target no longer has the member.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jitpol.cli.main import cli
from jitpol.load.repository import CONFIG_FILE, LAYOUT
from tests.helpers.repo import RepoBuilder, doc

START = "1998-12-01T10:00:00Z"
ACTIVE_AT = "1998-12-01T10:30:00Z"  # the approved grant is live: the first run gives alice app_read
AT = "1998-12-01T13:00:00Z"  # its 2h window has ended: the revocation is due
KINDS = ("Config", "Person", "Team", "Workflow", "Resource", "Grant", "PolicyApproval")
DIR_OF = {kind: directory for directory, kind in LAYOUT.items()}


# ------------------------------------------------------------------------------- the repository


class Base:
    """A repository, built once, where alice holds app_read through an approved grant that has
    ended by AT. Each example restores the working copy from the pristine one (the fake target's
    state file path is absolute, so the working copy always lives at the same place)."""

    def __init__(self, tmp: Path) -> None:
        self.work = tmp / "work"
        self.pristine = tmp / "pristine"
        self.rb = RepoBuilder(self.work / "repo", tmp / "keys").standard()
        # every day, all day, in the zone furthest ahead of UTC: grants that pass the workflow's
        # rules (even 100 years long) reach the schedule code and the approval timeout
        self.rb.workflow("prod", maxDuration="36500d",
                         approvals={"required": 1, "approvers": ["team:leads"], "timeout": "36500d"},
                         schedule={"timezone": "Pacific/Kiritimati",
                                   "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                                "start": "00:00", "end": "24:00"}]})
        self.rb.grant("alice-read", "alice", START, "2h", approvers=("lead",))
        res = invoke(self.rb.root, "apply", "--at", ACTIVE_AT, "--no-commit")
        assert res.exit_code == 0, res.output
        assert self.rb.members("app_read") == ["alice"]
        self.pubkey = (Path(str(self.rb.key("lead")) + ".pub")).read_text().strip()  # lead's: a duplicate
        self.own_key = (Path(str(self.rb.key("zed")) + ".pub")).read_text().strip()
        self.state_file = str(self.work / "fake-db.json")
        shutil.copytree(self.work, self.pristine)

    def fresh(self) -> RepoBuilder:
        shutil.rmtree(self.work)
        shutil.copytree(self.pristine, self.work)
        return self.rb


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    yield Base(tmp_path_factory.mktemp("hostile"))


def invoke(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(root)], catch_exceptions=False)


# ------------------------------------------------------------------------------------ the values

NAMES = ["alice", "bob", "lead", "admin", "eng", "leads", "admins", "prod", "db-prod", "db", "read", "write",
         "alice-read", "h", "x" * 63, "x" * 64, "-bad", "Bad", "a_b", "a.b", "\uff41lice", "alice\n", ""]
REFS = ["team:eng", "team:leads", "team:admins", "person:alice", "person:lead", "team:nobody", "person:",
        "team:eng ", "group:eng", "TEAM:eng", "person:alice\n"]
STRINGS = [
    "", " ", "\t", "\n", "no", "yes", "on", "off", "y", "NO", "~", "null", "Null", "true", "True", "1:30", "08:00",
    "24:00", "24:01", "1998-01-01", "<<", "=", "*alias", "&anchor", "!!python/object/apply:os.system", "!tag",
    "%YAML 1.1", "---", "...", "? x", "- x", "[", "{", "}", "'", '"', "\\", "\u202e\u2066evil", "\x00", "\x7f",
    "\ufeff", "\u2028", "\ud7ff", "\U0001f600", "e\u0301", "ǅ", "İ", "ß", "a" * 2001, "a" * 70_000,
    "../../etc/passwd", "/etc/shadow", "${HOME}", "$(id)", "`id`", "%s%n", "{{ 7*7 }}", "{% raw %}",
    "'; DROP ROLE app_read; --", "cn=x)(uid=*", "cn=admin,dc=example,dc=org", "uid=alice,ou=people,dc=x",
    "ALL", "ALL=(ALL) NOPASSWD: ALL", "root", "postgres", "pg_read_server_files", "alice@%", "alice@'%'",
    "0x" + "f" * 5000, "9" * 5000, "9" * 65, "1e999", "-.inf", ".nan", "0o777", "0b1", "1_000", "+1", "-0",
    "(a+)+$", "(" * 500 + ")" * 500, "x{4294967295}", "[", "(?P<a>x)(?P<a>y)", "^(INC|CHG)-[0-9]+",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "ssh-ed25519 !!!!", "sk-ssh-ed25519@openssh.com AAAA",
    "SHA256:" + "A" * 43, "SHA256:" + "/" * 43, "-----BEGIN SSH SIGNATURE-----", "-----BEGIN SSH SIGNATURE-----\n",
    "0" * 64, "f" * 64, "F" * 64, "alice@example.com", "ALICE@EXAMPLE.COM", "@", "a@b", "https://", "http://[::1",
    "ldap://127.0.0.1:0", "ldaps://x", "Europe/Berlin", "UTC", "Mars/Olympus", "../zoneinfo", "Etc/GMT+12",
    "Pacific/Kiritimati", "posixrules", "localtime", "EST5EDT", "PG_PROD_DSN", "HOME", "PATH", "_", "A" * 129,
]
TIMES = [
    "9999-12-30T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59", "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:01", "9000-12-31T23:59:59Z",
    "9001-01-01T00:00:00Z", "1998-12-01T10:00:00Z", "1998-12-01T11:00:00+01:00", "1998-12-01T10:00:00",
    "1998-12-01T10:00:00.123456789Z", "1998-12-01T10:00:00.1234567891Z", "1998-02-30T10:00:00Z",
    "1998-12-31T23:59:60Z", "1998-12-01T24:00:00Z", "1998-12-01T10:00:00+24:00", "1998-12-01T10:00:00z",
    "1998-12-01t10:00:00Z", "1998-12-01 10:00:00Z", "1998-12-01T10:00:00+0100", "19981201T100000Z",
    "2090-01-01T00:00:00Z", "+1998-12-01T10:00:00Z", "1998-W49-2T10:00:00Z",
]
DURATIONS = [
    "2h", "4h", "90m", "1h30m", "7d", "45s", "0s", "0d", "00h", "36500d", "36501d", "999999d", "999999d23h59m59s",
    "1000000d", "9999999d", "99999999999999999999d", "1m1h", "1h1h", "4H", "1.5h", "-1h", "P1D", "PT1H", "1d 2h",
    "4h\n", "\uff14h", "\u0664h", "1y", "1w",
]


def formatted_time() -> st.SearchStrategy[str]:
    """Times shaped like RFC 3339 with any year, some of them impossible."""
    year = st.sampled_from([0, 1, 2, 1969, 1970, 1998, 2090, 9000, 9001, 9998, 9999]) | st.integers(0, 9999)
    offset = st.sampled_from(["Z", "+00:00", "+05:00", "-05:00", "+23:59", "-23:59", "+14:00", "-12:00", "+24:00",
                              "-00:00", "", "+05", "+0500"])
    return st.builds(lambda y, mo, d, h, mi, s, frac, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
                     f"{frac}{off}", year, st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
                     st.integers(0, 60), st.integers(0, 61), st.sampled_from(["", ".5", ".000000001"]), offset)


def formatted_duration() -> st.SearchStrategy[str]:
    part = st.tuples(st.integers(0, 10**7), st.sampled_from("dhms"))
    return st.lists(part, min_size=1, max_size=4).map(lambda parts: "".join(f"{n}{u}" for n, u in parts))


numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2, 10, 11, 100, 101, 2**31, 2**53 + 1, 2**63, -(2**63), 10**64 - 1, 10**64,
                     10**65, -(10**300)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers,
    st.sampled_from(NAMES), st.sampled_from(REFS), st.sampled_from(STRINGS), st.sampled_from(TIMES),
    st.sampled_from(DURATIONS), formatted_time(), formatted_duration(),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "Cf"]), max_size=20),
)
keys = st.one_of(st.sampled_from(["type", "name", "spec", "kind", "apiVersion", "metadata", "start", "end",
                                  "duration", "window", "x-extra", "", " ", "<<", "1", "true", "\uff53pec"]),
                 st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)


# --------------------------------------------------------------------------------- the documents


GOOD_TIMES = ["1998-12-01T12:30:00Z", "1998-12-01T11:00:00+01:00", "1998-11-30T22:00:00Z", "2090-01-01T00:00:00Z",
              "1970-01-01T00:00:00Z", "1970-01-01T00:00:00-14:00", "9000-12-31T20:00:00Z", "9000-12-31T23:59:59Z",
              "9000-12-31T23:59:59+14:00"]
GOOD_DURATIONS = ["1h", "2h", "4h", "36500d"]


def rarely() -> st.SearchStrategy[bool]:
    return st.sampled_from([False, False, False, False, True])


def templates(b: Base, draw: Any) -> dict[str, dict[str, Any]]:
    """A valid (or nearly valid) document of every kind, with times drawn around the edges."""
    good = not draw(rarely())
    start = draw(st.sampled_from(GOOD_TIMES) if good else st.sampled_from(TIMES) | formatted_time())
    end_or_duration = draw(st.one_of(
        st.builds(lambda d: {"duration": d}, st.sampled_from(GOOD_DURATIONS) if good else
                  st.sampled_from(DURATIONS) | formatted_duration()),
        st.builds(lambda t: {"end": t}, st.sampled_from(GOOD_TIMES) if good else
                  st.sampled_from(TIMES) | formatted_time()),
    ))
    targets: dict[str, Any] = {"db": {"type": "fake", "state_file": b.state_file}}
    targets.update(draw(st.dictionaries(st.sampled_from(["pg", "ldap", "web", "aws", "gcp", "okta", "azure"]),
                                        st.sampled_from(list(OTHER_TARGETS.values())), max_size=2)))
    return {
        "Config": doc("Config", "test", {"admins": ["team:admins"], "timezone": "UTC", "targets": targets,
                                         "policyApprovals": {"required": 1}}),
        "Person": doc("Person", "zed", {"email": "zed@example.com",
                                        "keys": [draw(st.sampled_from([b.own_key, b.pubkey]))],
                                        "accounts": {"fake": "zed"}, "disabled": False}),
        "Team": doc("Team", "more", {"members": ["alice", "bob"], "description": "x"}),
        "Workflow": doc("Workflow", "wf2", {
            "requesters": ["team:eng"], "approvals": {"required": 1, "approvers": ["team:leads"], "timeout": "1d"},
            "mfa": "none", "maxDuration": "36500d", "checkout": "exclusive",
            "schedule": {"timezone": "Pacific/Kiritimati",
                         "windows": [{"days": ["mon", "sun"], "start": "22:00", "end": "24:00"}]},
            "justification": {"required": True, "pattern": "^INC-"},
            "breakglass": {"allowed": True, "deadline": "1h", "maxUses": 1, "per": "36500d", "cooldown": "4h"}}),
        "Resource": doc("Resource", "db-more", {"target": "db", "workflow": "prod", "model": "role-membership",
                                                "roles": {"read": {"grants": ["app_read"]}}, "exclusive": True}),
        "Grant": doc("Grant", "alice-more", {
            "requester": "alice", "resource": "db-prod", "role": "read", "window": {"start": start, **end_or_duration},
            "justification": "INC-1", "revoke": False, "breakglass": False,
            "approvals": [{"by": "lead", "key": "SHA256:" + "A" * 43,
                           "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----"}]}),
        "PolicyApproval": doc("PolicyApproval", "adopt", {
            "digest": "0" * 64, "by": "admin", "key": "SHA256:" + "A" * 43,
            "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA"}),
    }


OTHER_TARGETS: dict[str, dict[str, Any]] = {
    "postgres": {"type": "postgres", "dsn_env": "JITPOL_HOSTILE_UNSET_DSN"},
    "ldap": {"type": "ldap", "url": "ldap://127.0.0.1:9", "bind_dn": "cn=admin,dc=example,dc=org",
             "password_env": "JITPOL_HOSTILE_UNSET_PW", "base_dn": "dc=example,dc=org"},
    "ssh": {"type": "ssh", "host": "127.0.0.1", "port": 9, "user": "root", "key_env": "JITPOL_HOSTILE_UNSET_KEY",
            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"},
    "aws": {"type": "aws", "region": "eu-central-1", "endpoint_url": "http://127.0.0.1:9"},
    "okta": {"type": "okta", "org_url": "http://127.0.0.1:9", "token_env": "JITPOL_HOSTILE_UNSET_TOKEN"},
}


def paths_in(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths_in(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths_in(v, (*prefix, i))


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def mutate(data: dict[str, Any], draw: Any) -> object:
    """Replace, delete or add values anywhere in the document, a few times (the document itself may
    become any value)."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3, 4]))):  # about a third unchanged
        path = draw(st.sampled_from(list(paths_in(data))))
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if not path:
            if op == "replace" and draw(rarely()):
                return draw(values)
            continue
        parent, last = at(data, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = draw(values)
        elif op == "delete":
            del parent[last]
        else:
            target = at(data, path)
            if isinstance(target, dict):
                target[draw(keys)] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
            else:
                parent[last] = [target, draw(values)]
    return data


RAW = [
    b"", b"\xef\xbb\xbf", b"\xff\xfe\x00", b"\x80abc", b"- 1\n", b"{", b"a: b: c", b"\t- x",
    b"apiVersion: jitpol/v1\nkind: Grant\nkind: Grant\n", b"a: &x 1\nb: *x\n", b"<<: {a: 1}\n",
    b"a: !!python/object/apply:os.system [id]\n", b"%YAML 1.1\n---\na: 1\n", b"a: 1\n---\nb: 2\n",
    b"a: 0x" + b"f" * 5000 + b"\n", b"a: " + b"9" * 5000 + b"\n", b"a: " + b"9" * 5000 + b":00\n",
    b"a: " + b"[" * 200 + b"]" * 200 + b"\n", b"x: " + b"y" * 70_000 + b"\n",
    b"kind: Grant\nspec: {window: {start: 9999-12-31T23:00:00-05:00}}\n",
    "apiVersion: jitpol/v1\nkind: Grant\nmetadata: {name: \u202eevil}\n".encode(),
]


@st.composite
def hostile_files(draw: Any, b: Base) -> tuple[str, str, bytes]:
    """(kind, path inside the repository, content) of one hostile file."""
    kind = draw(st.sampled_from(KINDS))
    if draw(rarely()) and draw(rarely()):
        kind = "raw"
        content = draw(st.sampled_from(RAW) | st.binary(max_size=200))
    else:
        data = mutate(templates(b, draw)[kind], draw)
        if draw(st.booleans()):
            content = json.dumps(data, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
                                 ).encode("utf-8", "surrogatepass")
        else:
            import yaml

            try:
                content = yaml.safe_dump(data, allow_unicode=draw(st.booleans())).encode("utf-8", "surrogatepass")
            except yaml.YAMLError:
                content = json.dumps(data).encode()
    if kind == "Config" and not draw(rarely()):
        return kind, CONFIG_FILE, content
    directory = DIR_OF.get(kind, "grants")
    if draw(rarely()):  # in a directory that holds another kind
        directory = draw(st.sampled_from(sorted(DIR_OF.values())))
    sub = draw(st.sampled_from(["", "deep/er/"])) if directory == "grants" else ""
    name = draw(st.sampled_from(["hostile", "alice", "h-1", "ǅ", "x" * 100]))
    suffix = draw(st.sampled_from([".yaml", ".yaml", ".yml"]))
    return kind, f"{directory}/{sub}{name}{suffix}", content


# ---------------------------------------------------------------------------------- the property


def no_internal_error(res: Result) -> None:
    assert res.exit_code in (0, 1), res.output
    assert "internal error" not in res.output, res.output
    assert "Traceback" not in res.output, res.output


@settings(max_examples=150, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_a_hostile_file_neither_crashes_nor_stops_revocation(base: Base, data: st.DataObject) -> None:
    rb = base.fresh()
    kind, where, content = data.draw(hostile_files(base), label="file")
    path = rb.root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)

    validate = invoke(rb.root, "validate")
    no_internal_error(validate)
    event(f"{kind}: {'valid' if validate.exit_code == 0 else 'invalid'}")
    no_internal_error(invoke(rb.root, "status", "--at", AT, "--format", "json"))
    no_internal_error(invoke(rb.root, "plan", "--at", AT, "--format", "json"))
    apply = invoke(rb.root, "apply", "--at", AT, "--no-commit")
    no_internal_error(apply)
    if validate.exit_code == 1:
        assert apply.exit_code == 1, apply.output  # an invalid repository is reported by apply too
    assert rb.members("app_read") == [], (where, apply.output)


def test_the_reported_files(base: Base) -> None:
    """The issue's files, each on its own: refused with file:line:col, and the revocation done."""
    for window in ({"start": "9999-12-30T00:00:00Z", "duration": "36500d"},
                   {"start": "0001-01-01T00:00:00+05:00", "duration": "2h"},
                   {"start": "9999-12-31T20:00:00Z", "end": "9999-12-31T23:00:00-05:00"},
                   {"start": "2090-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}):
        rb = base.fresh()
        grant = doc("Grant", "evil", {"requester": "alice", "resource": "db-prod", "role": "read", "window": window})
        (rb.root / "grants" / "evil.yaml").write_text(json.dumps(grant, indent=1))
        res = invoke(rb.root, "validate")
        assert res.exit_code == 1 and "grants/evil.yaml:" in res.output and "spec.window." in res.output, res.output
        res = invoke(rb.root, "apply", "--at", AT, "--no-commit")
        no_internal_error(res)
        assert rb.members("app_read") == [], res.output
