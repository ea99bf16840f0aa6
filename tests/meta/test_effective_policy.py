"""Only the effective policy decides (SPEC section 2, docs/threat-model.md).

The proposed policy is `LoadResult.policy` (what the repository says). Apart from the places
listed here, no code may read it: everything else is handed `Prepared.effective` / `.decided`.
Each entry says why reading the proposed policy there gives, widens, redirects or reveals nothing.
An import-linter contract (.importlinter) keeps `jitpol.load` out of the deciding modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "jitpol"

ALLOWED: dict[tuple[str, str], str] = {
    ("evaluate/prepare.py", "_prepare"): "the one boundary: evaluates the proposed policy, to combine (most "
                                         "restrictive wins), and finds targets of an invalid one with nothing in force",
    ("trust/decide.py", "decide_policy"): "checks the proposed digest against the admins or the trust root",
    ("trust/decide.py", "root_approved"): "an untrusted ledger: the repository counts only if the trust root "
                                          "signed exactly its digest (check_policy_root)",
    ("record/lifecycle.py", "adopt_policy"): "records the approvals of a policy the check found approved",
    ("record/lifecycle.py", "_activations"): "the grant files themselves (requests), for their approvals",
    ("evaluate/prepare.py", "_restrictions_of"): "an invalid repository's valid documents: they can only end access",
    ("review.py", "_grant_paths"): "maps grant files to names for the PR report",
    ("review.py", "_report"): "the PR report: what merging would do once the admins approve (labelled so)",
    ("review.py", "_grant_reviews"): "the PR report: who may approve a grant only once the admins approve the "
                                     "policy change (labelled so; approvals counted under the effective policy)",
    ("cli/review.py", "_approve_policy"): "an admin signs the proposed digest: that is its purpose",
    ("cli/review.py", "sign_grant_file"): "an approver signs a grant file with their own key",
    ("cli/inspect.py", "status"): "status of an invalid repository: shown, never applied",
    ("report/__init__.py", "gather"): "the report names the repository when no policy is in force (display)",
}


def reads(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of every `<x>.loaded.policy` or `loaded.policy` read."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Attribute) and child.attr == "policy":
                inner = child.value
                if (isinstance(inner, ast.Attribute) and inner.attr == "loaded") or (
                        isinstance(inner, ast.Name) and inner.id == "loaded"):
                    found.append((func, child.lineno))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_only_the_listed_places_read_the_proposed_policy() -> None:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path.is_relative_to(PKG / "load"):
            continue
        rel = path.relative_to(PKG).as_posix()
        for func, line in reads(path):
            if (rel, func) not in ALLOWED:
                bad.append(f"jitpol/{rel}:{line}: {func} reads the proposed policy; use Prepared.effective")
    assert not bad, "\n".join(bad)


def test_the_scanner_sees_a_read() -> None:
    sample = PKG.parent / "tests" / "meta" / "test_effective_policy.py"
    assert reads(sample) == []  # this file only names it in strings
    probe = ast.parse("def f(prep):\n    return prep.loaded.policy.people\n")
    assert any(isinstance(n, ast.Attribute) and n.attr == "policy" for n in ast.walk(probe))


def test_every_allowed_place_still_reads_it() -> None:
    used = {(p.relative_to(PKG).as_posix(), func) for p in PKG.rglob("*.py") for func, _ in reads(p)}
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"no longer read there; remove from ALLOWED: {stale}"
