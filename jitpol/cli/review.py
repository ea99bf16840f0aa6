"""request and approve: writing grant files and signed approvals."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import yaml

from jitpol.cli.common import Exit, handle_errors, now_from, parse_time, repo_option
from jitpol.errors import InvalidInput
from jitpol.load.repository import NAME_PATTERN, load_repository
from jitpol.load.yamlstrict import load_yaml_file
from jitpol.model.canonical import approval_message, grant_digest, policy_message
from jitpol.model.duration import parse_duration
from jitpol.model.sshkey import fingerprint
from jitpol.model.times import utc_text
from jitpol.policy.people import resolve
from jitpol.vcs import sshsig
from jitpol.vcs.git import Repo

HEADER = "# yaml-language-server: $schema=../schemas/grant.schema.json\n"


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (signatures) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_document(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=1000)


def find_grant_file(repo: Path, grant: str) -> Path:
    path = Path(grant)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", grant):
        raise InvalidInput(f"{grant!r} is neither a grant file nor a grant name")
    for candidate in sorted((repo / "grants").glob("**/*.y*ml")):
        try:
            doc = load_yaml_file(candidate)
        except InvalidInput:
            continue
        if isinstance(doc.data, dict) and (doc.data.get("metadata") or {}).get("name") == grant:
            return candidate
    raise InvalidInput(f"no grant named {grant!r} under {repo / 'grants'}")


def _leading_comments(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            lines.append(line)
        else:
            break
    return "".join(lines)


def _approve_policy(repo: Path, person: str, key_file: Path) -> None:
    loaded = load_repository(repo)
    if not loaded.ok:
        for d in loaded.diagnostics:
            click.echo(str(d), err=True)
        raise InvalidInput("the repository is invalid; fix it before approving its policy")
    digest = loaded.policy_digest
    policy = loaded.policy
    who = policy.people.get(person)
    if who is None:
        raise InvalidInput(f"no person named {person!r} in people/")
    public = sshsig.public_key(key_file)
    fp = fingerprint(public)
    if fp not in {fingerprint(k) for k in who.keys}:
        raise InvalidInput(f"key {fp} is not one of {person}'s keys in people/{person}.yaml")
    if policy.config is not None and person not in resolve(policy.config.admins, policy):
        click.secho(f"warning: {person} is not an admin in this policy; only admins of the policy in force count",
                    fg="yellow", err=True)
    signature = sshsig.sign(policy_message(digest), key_file, interactive=True)
    name = f"policy-{digest[:12]}-{person}"[:63]
    data = {"apiVersion": "jitpol/v1", "kind": "PolicyApproval", "metadata": {"name": name},
            "spec": {"digest": digest, "by": person, "key": fp, "signature": signature.strip() + "\n"}}
    path = repo / "approvals" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# yaml-language-server: $schema=../schemas/policyapproval.schema.json\n"
                    + dump_document(data), encoding="utf-8")
    click.echo(f"approved policy {digest[:12]} as {person} with {fp}: wrote {path.relative_to(repo)}")


@click.command()
@click.argument("grant", required=False)
@repo_option
@click.option("--as", "person", required=True, help="The approving person (people/NAME.yaml).")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private SSH key file to sign with (one of the person's keys).")
@click.option("--policy", "policy", is_flag=True,
              help="Approve the current policy (every file outside grants/, approvals/ and audit/) as an admin.")
@handle_errors
def approve(grant: str | None, repo: Path, person: str, key_file: Path, policy: bool) -> None:
    """Append a signed approval to GRANT (a file path or a grant name), or with --policy sign the
    digest of the current policy into approvals/."""
    if policy:
        if grant:
            raise InvalidInput("give either GRANT or --policy, not both")
        _approve_policy(repo, person, key_file)
        return
    if not grant:
        raise InvalidInput("name the GRANT to approve (a file or a grant name), or pass --policy")
    path = find_grant_file(repo, grant)
    data = load_yaml_file(path, display_path=str(path)).data
    if isinstance(data, dict) and (data.get("spec") or {}).get("requester") == person:
        click.secho("note: you are the requester; your signature proves presence (mfa: security-key) but never "
                    "counts as an approval", fg="yellow", err=True)
    digest, fp = sign_grant_file(repo, path, person, key_file)
    click.echo(f"approved {data['metadata']['name']} as {person} with {fp} (digest {digest[:16]}…)")


def sign_grant_file(repo: Path, path: Path, person: str, key_file: Path) -> tuple[str, str]:
    """Append (or replace) `person`'s signature over the grant's digest in its file."""
    text = path.read_text(encoding="utf-8")
    data: dict[str, Any] = load_yaml_file(path, display_path=str(path)).data
    if data.get("kind") != "Grant":
        raise InvalidInput(f"{path}: not a Grant document")
    loaded = load_repository(repo)
    who = loaded.policy.people.get(person)
    if who is None:
        raise InvalidInput(f"no person named {person!r} in people/")
    public = sshsig.public_key(key_file)
    fp = fingerprint(public)
    if fp not in {fingerprint(k) for k in who.keys}:
        raise InvalidInput(f"key {fp} is not one of {person}'s keys in people/{person}.yaml")
    digest = grant_digest(data)
    signature = sshsig.sign(approval_message(digest), key_file, interactive=True)
    approvals = [a for a in data["spec"].get("approvals", []) if a.get("by") != person]
    approvals.append({"by": person, "key": fp, "signature": signature.strip() + "\n"})
    data["spec"]["approvals"] = approvals
    path.write_text(_leading_comments(text) + dump_document(data), encoding="utf-8")
    return digest, fp


def check_grant_name(name: str, what: str) -> None:
    """Refuse anything but a grant name as the schema defines metadata.name (it becomes a file
    name under grants/: no '/', no '..', no leading dot, no absolute path)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"{what}: {name!r} is not a valid grant name; use 1 to 63 lowercase letters, digits "
                           f"and '-', starting with a letter or digit (e.g. alice-prod-db-inc-4711)")


def new_grant_path(repo: Path, name: str) -> Path:
    """grants/NAME.yaml, checked to lie inside the repository's grants/ directory once every link
    is resolved, and not to exist yet (not even as a dangling link). Raises InvalidInput."""
    root = repo.resolve()
    grants = repo / "grants"
    if grants.is_symlink():
        raise InvalidInput(f"{grants} is a symbolic link; jitpol never writes through a link out of the repository")
    path = grants / f"{name}.yaml"
    if path.is_symlink() or path.exists():
        raise InvalidInput(f"{path} already exists; choose another --name")
    if not path.resolve().is_relative_to(root / "grants"):
        raise InvalidInput(f"{path} would be written outside {root / 'grants'}; refusing")
    return path


def _create(path: Path, text: str) -> None:
    """Write a new file; never through a symbolic link and never over an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; choose another --name") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _person_from_git(repo: Path) -> str:
    git = Repo.find(repo)
    email = git.config_value("user.email") if git is not None else None
    if email:
        people = load_repository(repo).policy.people.values()
        match = [p.name for p in people if p.email.lower() == email.lower()]
        if len(match) == 1:
            return match[0]
    raise InvalidInput(f"cannot tell who you are from git's user.email ({email or 'unset'}); pass --as PERSON")


@click.command()
@repo_option
@click.option("--resource", required=True)
@click.option("--role", required=True)
@click.option("--for", "duration", required=True, help="How long, e.g. 2h or 1h30m.")
@click.option("--start", default=None, help="ISO 8601 start with offset (default: now).")
@click.option("--reason", default="", help="Justification, e.g. 'INC-4711 slow queries'.")
@click.option("--as", "requester", default=None,
              help="The requesting person (default: the person whose email is git's user.email).")
@click.option("--name", default=None, help="Grant name (default: REQUESTER-RESOURCE-YYYYMMDDHHMM).")
@click.option("--branch/--no-branch", default=True, show_default=True,
              help="Create and switch to branch access/NAME for the pull request.")
@click.option("--sign", "sign_key", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="KEYFILE",
              help="Sign the request with your key (a security key when the workflow says mfa: security-key).")
@handle_errors
def request(repo: Path, resource: str, role: str, duration: str, start: str | None, reason: str,
            requester: str | None, name: str | None, branch: bool, sign_key: Path | None) -> None:
    """Write a new grant file (validated) on a new branch, ready for a pull request."""
    requester = requester or _person_from_git(repo)
    begin = parse_time(start) if start else now_from(None).replace(second=0, microsecond=0)
    try:
        parse_duration(duration)
    except ValueError as exc:
        raise InvalidInput(f"--for: {exc}") from None
    if name is not None:
        check_grant_name(name, "--name")
    else:
        name = f"{requester}-{resource}-{begin.strftime('%Y%m%d%H%M')}"[:63].rstrip("-")
        check_grant_name(name, "the grant name made from --as and --resource (pass --name)")
    data: dict[str, Any] = {
        "apiVersion": "jitpol/v1", "kind": "Grant", "metadata": {"name": name},
        "spec": {"requester": requester, "resource": resource, "role": role,
                 "window": {"start": utc_text(begin), "duration": duration}, "justification": reason},
    }
    path = new_grant_path(repo, name)
    git = Repo.find(repo) if branch else None
    if git is not None:
        git.create_branch(f"access/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path = new_grant_path(repo, name)  # again: nothing may have turned grants/ into a link meanwhile
    _create(path, HEADER + dump_document(data))
    loaded = load_repository(repo)
    mine = [d for d in loaded.diagnostics if d.path.endswith(f"{name}.yaml")]
    if mine:
        path.unlink()
        for d in mine:
            click.echo(str(d), err=True)
        raise Exit(1)
    if sign_key is not None:
        sign_grant_file(repo, path, requester, sign_key)
    click.echo(f"wrote {path.relative_to(repo) if path.is_relative_to(repo) else path}"
               + (" (signed)" if sign_key else ""))
    if git is not None:
        click.echo(f"on branch access/{name}: commit, push and open a pull request")
