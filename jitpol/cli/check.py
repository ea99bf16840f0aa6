"""check: the pull-request check."""

from __future__ import annotations

from pathlib import Path

import click

from jitpol.cli.common import Exit, at_option, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.model.times import utc_text
from jitpol.review import ADMIN_FIRST, NOT_APPROVABLE, CheckReport, check
from jitpol.vcs.sshsig import FastVerifier


def _key_text(key: tuple[str, str, str, str]) -> str:
    target, model, principal, privilege = key
    return f"`{privilege}` to `{principal}` on `{target}` ({model})"


def markdown(r: CheckReport) -> str:
    icon = "✅" if r.approvable else "❌"
    where = f" (policy in `{r.layout}/`)" if r.layout else ""
    out = [f"### {icon} jitpol check against `{r.base}`{where}", ""]
    for section in (_md_blockers, _md_policy, _md_grants, _md_effects):
        out += section(r)
    return "\n".join(out)


def _md_blockers(r: CheckReport) -> list[str]:
    """Guarded paths, problems, warnings and validation errors."""
    out: list[str] = []
    if r.guarded:
        out += [f"**🚨 {NOT_APPROVABLE.capitalize()}: this change edits what only jitpol or the admins may "
                "change.**", ""]
        out += [f"- 🚨 `{g.path}` ({g.change}{'' if g.in_policy_root else ', from the git root'}): {g.why}"
                for g in r.guarded]
        out.append("")
    if r.problems:
        out += ["**This change cannot be approved as it is:**", ""]
        out += [f"- {p}" for p in r.problems]
        out.append("")
    explained = bool(r.policy_files) and r.policy_pending  # the policy section says it
    warnings = [w for w in r.warnings if not (explained and w.startswith(ADMIN_FIRST))]
    if warnings:
        out += [f"- ⚠️ {w}" for w in warnings]
        out.append("")
    if r.diagnostics:
        out += ["<details><summary>Validation errors</summary>", "", "```"]
        out += list(r.diagnostics)
        out += ["```", "</details>", ""]
    return out


def _md_policy(r: CheckReport) -> list[str]:
    """The policy files the change edits, and who must approve the policy change."""
    if not r.policy_files:
        return []
    out = ["#### Policy change", ""]
    out += [f"- `{p}`" for p in r.policy_files]
    if r.policy is not None:
        out += ["", r.policy.summary()]
        if not r.policy.approved:
            admins = ", ".join(str(a) for a in r.policy.admins)
            people = f" ({', '.join(r.admins)})" if r.admins else ""
            out.append("")
            out.append(f"{ADMIN_FIRST.capitalize()}: {r.policy.required} of the admins of "
                       f"the policy in force, {admins}{people}, must run `jitpol approve --policy` on this "
                       f"branch (policy digest `{r.policy.digest[:12]}`). Until then merging grants only "
                       "what both the policy in force and the proposed one allow.")
    out.append("")
    return out


def _md_grants(r: CheckReport) -> list[str]:
    """One table row per grant file the change touches."""
    if not r.grants:
        return []
    out = ["#### Grants", "", "| grant | change | requester | access | window | state | needs |",
           "|---|---|---|---|---|---|---|"]
    for g in r.grants:
        window = f"{utc_text(g.start)} → {utc_text(g.end)}" if g.start else ""
        needs = ", ".join(g.approvers) if g.approvers else ""
        if g.state == "pending" and needs:
            needs = f"approval by one of: {needs}"
        if g.approvers_after_policy:
            later = ", ".join(g.approvers_after_policy)
            needs = "; ".join(n for n in (needs, f"not sufficient until the admins approve the policy "
                                                 f"change: {later}") if n)
        elif g.state == "pending" and not g.approvers:
            needs = "nobody can approve it under the policy in force"
        state = f"**{g.state}**"
        if g.state_after_policy:
            state += f" ({g.state_after_policy} once the policy change is approved)"
        access = f"{g.resource}/{g.role}" if g.resource else ""
        out.append(f"| `{g.name}` | {g.change} | {g.requester} | {access} | {window} | {state} | "
                   f"{needs or g.reason} |")
    out.append("")
    return out


def _md_effects(r: CheckReport) -> list[str]:
    """What merging would grant and revoke now, and once the admins approve the policy change."""
    out: list[str] = []
    if r.adds or r.removes:
        out += [f"#### Merging now ({utc_text(r.at)}) would", ""]
        if r.policy_pending:
            out += ["Without further admin approval: only what the policy in force and this change both allow.", ""]
        out += [f"- grant {_key_text(k)}" for k in r.adds]
        out += [f"- revoke {_key_text(k)}" for k in r.removes]
        out.append("")
    elif not r.problems and not r.guarded:
        out += [f"Merging now ({utc_text(r.at)}) changes no live access.", ""]
    if r.policy_pending and (r.adds_after_policy, r.removes_after_policy) != (r.adds, r.removes):
        out += ["#### Once the admins approve the policy change, merging would", ""]
        out += [f"- grant {_key_text(k)}" for k in r.adds_after_policy]
        out += [f"- revoke {_key_text(k)}" for k in r.removes_after_policy]
        if not r.adds_after_policy and not r.removes_after_policy:
            out.append("- change no live access")
        out.append("")
    return out


def _keys(keys: tuple[tuple[str, str, str, str], ...]) -> list[dict[str, str]]:
    return [dict(zip(("target", "model", "principal", "privilege"), k, strict=True)) for k in keys]


def as_json(r: CheckReport) -> dict[str, object]:
    return {
        "base": r.base, "approvable": r.approvable, "problems": list(r.problems),
        "policy_root": r.layout, "warnings": list(r.warnings),
        "guarded": [{"path": g.path, "change": g.change, "why": g.why, "in_policy_root": g.in_policy_root}
                    for g in r.guarded],
        "diagnostics": list(r.diagnostics), "policy_files": list(r.policy_files),
        "policy": None if r.policy is None else {"digest": r.policy.digest, "approved": r.policy.approved,
                                                  "summary": r.policy.summary(),
                                                  "admins": [str(a) for a in r.policy.admins],
                                                  "admin_people": list(r.admins),
                                                  "required": r.policy.required},
        "grants": [{"name": g.name, "path": g.path, "change": g.change, "state": g.state, "reason": g.reason,
                    "approvers": list(g.approvers), "depends_on_policy": g.depends_on_policy,
                    "approvers_after_policy": list(g.approvers_after_policy),
                    "state_after_policy": g.state_after_policy or g.state} for g in r.grants],
        "grant": _keys(r.adds),
        "revoke": _keys(r.removes),
        "grant_after_policy": _keys(r.adds_after_policy if r.policy_pending else r.adds),
        "revoke_after_policy": _keys(r.removes_after_policy if r.policy_pending else r.removes),
    }


@click.command(name="check")
@repo_option
@click.option("--base", required=True, help="The branch or commit the pull request targets, e.g. origin/main.")
@at_option
@format_option("text", "markdown", "json")
@handle_errors
def check_cmd(repo: Path, base: str, at: str | None, fmt: str) -> None:
    """Pull-request check: validates the change, lists who must approve it (under the policy in
    force), and what merging it would grant and revoke now and once the admins approve a policy
    change. Exit 1 when it cannot be approved as it is, or edits audit/, .gitattributes, the trust
    root's inputs or adds a symbolic link leaving the policy root. --repo may be a directory of
    the git work tree (e.g. policies); --base is then read from that directory of REF."""
    report = check(repo, base, now_from(at), FastVerifier())
    if fmt == "json":
        emit_json(as_json(report))
    else:
        click.echo(markdown(report))
    if not report.approvable:
        raise Exit(1)
