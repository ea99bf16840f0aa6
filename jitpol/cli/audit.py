"""audit verify."""

from __future__ import annotations

import os
from pathlib import Path

import click

from jitpol.cli.common import Exit, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.errors import InvalidInput
from jitpol.ledger.store import Ledger, ledger_files
from jitpol.model.sshkey import checked_key, fingerprint
from jitpol.model.times import utc_text
from jitpol.trust.ledger import KEY_ENV, LedgerAuth, authenticate, ledger_public_key, sign_checkpoint
from jitpol.trust.pinned import ROOT_ENV, pinned_root
from jitpol.vcs.sshsig import FastVerifier


@click.group()
def audit() -> None:
    """The hash-chained ledger under audit/."""


def _public_key(value: str | None) -> str | None:
    """--ledger-key: a public key line, or a file holding one (e.g. reconciler.pub); else the
    environment's pin ($JITPOL_TRUST_ROOT's ledgerKey, $JITPOL_LEDGER_PUBKEY)."""
    if value is None:
        env = dict(os.environ)
        trust = pinned_root(Path("."), env) if env.get(ROOT_ENV) else None
        return ledger_public_key(trust, env)
    text = value.strip()
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        text = Path(value).read_text(encoding="utf-8").strip()
    try:
        return checked_key(text.splitlines()[0] if text else text)
    except ValueError as exc:
        raise InvalidInput(f"--ledger-key: not an SSH public key ({exc})") from None


@audit.command()
@repo_option
@click.option("--ledger-key", "ledger_key", default=None, metavar="KEY",
              help="The reconciler's ledger public key (a key line or a .pub file): also check that every "
                   "ledger file extends what the reconciler signed. Default: the pinned one, if any.")
@format_option("text", "json")
@handle_errors
def verify(repo: Path, ledger_key: str | None, fmt: str) -> None:
    """Check the hash chain of every ledger file and, given the reconciler's ledger key, its signed
    checkpoints (offline). Exit 1 naming the first bad entry."""
    public = _public_key(ledger_key)
    env = dict(os.environ)
    pinned = pinned_root(repo, env) if env.get(ROOT_ENV) else None
    auth = authenticate(repo, public, FastVerifier(), {}, pinned.agent_keys if pinned else None) \
        if public is not None else None
    files = ledger_files(repo / "audit")
    report: list[dict[str, object]] = []
    for path in files:
        problem = Ledger(path).verify()
        rel = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)
        count = len(Ledger(path).readable()[0])  # never through a link
        report.append({"file": rel, "entries": count, "intact": problem is None,
                       "line": problem.line if problem else None, "problem": problem.message if problem else None})
        if fmt == "json":
            continue
        if problem is None:
            click.echo(f"ok: {rel}: {count} entries, chain intact")
        else:
            click.secho(f"BROKEN: {rel}:{problem.line}: {problem.message}", fg="red", err=True)
    problems = list(auth.problems) if auth is not None else []
    if fmt == "json":
        emit_json({"intact": all(r["intact"] for r in report) and not problems, "files": report,
                   "authenticated": None if auth is None else not problems, "problems": problems})
    else:
        if not files and not problems:
            click.echo("ok: no ledger yet (audit/ is empty)")
        for text in problems:
            click.secho(f"NOT AUTHENTIC: {text}", fg="red", err=True)
        if auth is None:
            click.echo("note: signatures not checked (no --ledger-key, nothing pinned)")
        elif not problems:
            click.echo(f"ok: every ledger file extends what the reconciler signed ({len(auth.checkpoints)} "
                       f"checkpoint(s), key {fingerprint(auth.public_key or '')})")
    if not all(r["intact"] for r in report) or problems:
        raise Exit(1)


@audit.command()
@repo_option
@handle_errors
def sign(repo: Path) -> None:
    """Sign checkpoints of the ledger as it is now with $JITPOL_LEDGER_KEY: the operator's explicit
    trust, after enabling ledger signing on an existing ledger or restoring audit/ from history."""
    env = dict(os.environ)
    if not env.get(KEY_ENV, "").strip():
        raise InvalidInput(f"${KEY_ENV} is not set: it must hold the reconciler's private ledger key")
    files = ledger_files(repo / "audit")
    for path in files:
        problem = Ledger(path).verify()
        if problem is not None:
            raise InvalidInput(f"{path}:{problem.line}: {problem.message}; repair the chain before signing it")
    trust = pinned_root(repo, env) if env.get(ROOT_ENV) else None
    public = ledger_public_key(trust, env)
    now = utc_text(now_from(None))
    agents = LedgerAuth(public, (), {}, trust.agent_keys if trust is not None else {})
    for path in files:
        cp = sign_checkpoint(repo, path, env, now, agents.key_for(path.name))
        if cp is not None:
            click.echo(f"signed audit/{path.name}: {cp.lines} line(s), checkpoint {cp.seq}")
