"""check: the pull-request check."""

from __future__ import annotations

from pathlib import Path

import click

from jitpol.cli.common import Exit, at_option, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.execute.review import CheckReport, check
from jitpol.model.times import utc_text
from jitpol.vcs.sshsig import FastVerifier


def _key_text(key: tuple[str, str, str, str]) -> str:
    target, model, principal, privilege = key
    return f"`{privilege}` to `{principal}` on `{target}` ({model})"


def markdown(r: CheckReport) -> str:
    icon = "✅" if r.approvable else "❌"
    out = [f"### {icon} jitpol check against `{r.base}`", ""]
    if r.problems:
        out += ["**This change cannot be approved as it is:**", ""]
        out += [f"- {p}" for p in r.problems]
        out.append("")
    if r.diagnostics:
        out += ["<details><summary>Validation errors</summary>", "", "```"]
        out += list(r.diagnostics)
        out += ["```", "</details>", ""]
    if r.policy_files:
        out += ["#### Policy change", ""]
        out += [f"- `{p}`" for p in r.policy_files]
        if r.policy is not None:
            out += ["", r.policy.summary()]
            if not r.policy.approved:
                out.append(f"Admins must run `jitpol approve --policy` on this branch "
                           f"(policy digest `{r.policy.digest[:12]}`).")
        out.append("")
    if r.grants:
        out += ["#### Grants", "", "| grant | change | requester | access | window | state | needs |",
                "|---|---|---|---|---|---|---|"]
        for g in r.grants:
            window = f"{utc_text(g.start)} → {utc_text(g.end)}" if g.start else ""
            needs = ", ".join(g.approvers) if g.approvers else ""
            if g.state == "pending" and needs:
                needs = f"approval by one of: {needs}"
            access = f"{g.resource}/{g.role}" if g.resource else ""
            out.append(f"| `{g.name}` | {g.change} | {g.requester} | {access} | {window} | **{g.state}** | "
                       f"{needs or g.reason} |")
        out.append("")
    if r.adds or r.removes:
        out += [f"#### Merging now ({utc_text(r.at)}) would", ""]
        out += [f"- grant {_key_text(k)}" for k in r.adds]
        out += [f"- revoke {_key_text(k)}" for k in r.removes]
        out.append("")
    elif not r.problems:
        out += [f"Merging now ({utc_text(r.at)}) changes no live access.", ""]
    return "\n".join(out)


def as_json(r: CheckReport) -> dict[str, object]:
    return {
        "base": r.base, "approvable": r.approvable, "problems": list(r.problems),
        "diagnostics": list(r.diagnostics), "policy_files": list(r.policy_files),
        "policy": None if r.policy is None else {"digest": r.policy.digest, "approved": r.policy.approved,
                                                  "summary": r.policy.summary()},
        "grants": [{"name": g.name, "path": g.path, "change": g.change, "state": g.state, "reason": g.reason,
                    "approvers": list(g.approvers), "depends_on_policy": g.depends_on_policy} for g in r.grants],
        "grant": [dict(zip(("target", "model", "principal", "privilege"), k, strict=True)) for k in r.adds],
        "revoke": [dict(zip(("target", "model", "principal", "privilege"), k, strict=True)) for k in r.removes],
    }


@click.command(name="check")
@repo_option
@click.option("--base", required=True, help="The branch or commit the pull request targets, e.g. origin/main.")
@at_option
@format_option("text", "markdown", "json")
@handle_errors
def check_cmd(repo: Path, base: str, at: str | None, fmt: str) -> None:
    """Pull-request check: validates the change, lists who must approve it, and what merging it
    would grant and revoke. Exit 1 when it cannot be approved as it is."""
    report = check(repo, base, now_from(at), FastVerifier())
    if fmt == "json":
        emit_json(as_json(report))
    else:
        click.echo(markdown(report))
    if not report.approvable:
        raise Exit(1)
