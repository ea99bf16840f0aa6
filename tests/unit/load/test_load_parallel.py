"""Reading a repository with worker processes gives exactly what one process gives: the same
diagnostics (path, line, column, message), documents and model. The parallel run happens in a
fresh interpreter, where nothing else runs threads (a process with other threads is never forked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jitpol.load import repository
from jitpol.load.repository import load_repository
from tests.helpers.repo import RepoBuilder, doc, write_yaml

ROOT = Path(__file__).resolve().parents[3]

PARALLEL = """
import json, sys
from pathlib import Path
from jitpol.load import repository
root = Path(sys.argv[1])
files = list(repository._Loader(root).files())
result = repository.load_repository(root, cache=False)
print(json.dumps({"workers": repository._workers(len(files)),
                  "diagnostics": [str(d) for d in result.diagnostics],
                  "documents": result.policy_documents, "files": result.files,
                  "grants": sorted(repr(g) for g in result.policy.grants.values()),
                  "people": sorted(repr(p) for p in result.policy.people.values())}))
"""


def in_workers(root: Path, workers: int) -> dict[str, object]:
    env = {"JITPOL_LOAD_WORKERS": str(workers), "JITPOL_CACHE": "off", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PARALLEL, str(root)], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=True, timeout=120)
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def in_process(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("JITPOL_LOAD_WORKERS", "1")
    result = load_repository(root, cache=False)
    return {"diagnostics": [str(d) for d in result.diagnostics],
            "documents": json.loads(json.dumps(result.policy_documents)), "files": result.files,
            "grants": sorted(repr(g) for g in result.policy.grants.values()),
            "people": sorted(repr(p) for p in result.policy.people.values())}


@pytest.fixture(scope="module")
def broken_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kind of problem, many times over, so that each worker sees some: YAML and schema
    errors, a file of the wrong kind, duplicate names across files, problems found while building
    values (a window out of range) and cross-references (unknown requester, resource, role)
    whose line and column the parent has to find again."""
    base = tmp_path_factory.mktemp("parallel")
    rb = RepoBuilder(base / "repo", base / "keys").standard()
    for i in range(60):
        month = f"grants/2000-{i % 12 + 1:02d}"
        which = i % 8
        if which == 0:
            rb.grant(f"ok-{i}", "alice", "2000-01-01T10:00:00Z")
        elif which == 1:
            rb.grant(f"who-{i}", "nobody", "2000-01-01T10:00:00Z", resource="db-prod")
        elif which == 2:
            rb.grant(f"role-{i}", "bob", "2000-01-01T10:00:00Z", role="admin")
        elif which == 3:
            rb.grant(f"res-{i}", "bob", "2000-01-01T10:00:00Z", resource="nowhere")
        elif which == 4:
            (rb.root / month).mkdir(parents=True, exist_ok=True)
            (rb.root / month / f"yaml-{i}.yaml").write_text("apiVersion: jitpol/v1\nkind: Grant\nkind: x\n")
        elif which == 5:
            write_yaml(rb.root / month / f"schema-{i}.yaml",
                       doc("Grant", f"schema-{i}", {"requester": "alice", "colour": "blue"}))
        elif which == 6:
            write_yaml(rb.root / month / f"kind-{i}.yaml", doc("Team", f"kind-{i}", {"members": ["alice"]}))
        else:
            write_yaml(rb.root / month / f"far-{i}.yaml", doc("Grant", f"far-{i}", {
                "requester": "alice", "resource": "db-prod", "role": "read", "justification": "x",
                "window": {"start": "9999-12-31T20:00:00Z", "duration": "30d"}}))
    # the same grant name in two files: the later one is refused, naming the first
    for n in range(4):
        write_yaml(rb.root / "grants" / f"zz-dup-{n}.yaml", json.loads((rb.root / "grants" / "ok-0.yaml").read_text()))
    return rb.root


def test_workers_give_the_same_diagnostics_and_model(broken_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = in_process(broken_repo, monkeypatch)
    parallel = in_workers(broken_repo, 2)
    assert parallel.pop("workers") == 2  # the parallel path really ran
    diagnostics = serial["diagnostics"]
    assert isinstance(diagnostics, list) and len(diagnostics) > 50
    # each kind of problem is there, with a real line and column
    for needle in ("does not exist", "has no role", "is not a person", "duplicate key", "unknown field",
                   "holds kind Team", "is already defined in", "outside the times jitpol accepts"):
        assert any(needle in d for d in diagnostics), needle
    assert not any(":1:1: " in d and "is already defined" in d for d in diagnostics)
    assert parallel == serial


def test_valid_repository_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    for i in range(40):
        rb.grant(f"g-{i}", "alice" if i % 2 else "bob", "2000-01-01T10:00:00Z", approvers=("lead",) if i < 2 else ())
    serial = in_process(rb.root, monkeypatch)
    parallel = in_workers(rb.root, 2)
    assert parallel.pop("workers") == 2
    assert serial["diagnostics"] == []
    assert parallel == serial


def test_a_warm_cache_gives_the_same_result(broken_repo: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Grants rebuilt from cached fields and marks decoded from cached entries (for the problems
    the cross-references find) are what reading the files gives."""
    cold = in_process(broken_repo, monkeypatch)
    monkeypatch.setenv("JITPOL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("JITPOL_CACHE", raising=False)
    monkeypatch.delenv("JITPOL_CACHE_KEY", raising=False)
    for _ in range(2):  # the first run fills the cache, the second is served from it
        result = load_repository(broken_repo)
        warm = {"diagnostics": [str(d) for d in result.diagnostics],
                "documents": json.loads(json.dumps(result.policy_documents)), "files": result.files,
                "grants": sorted(repr(g) for g in result.policy.grants.values()),
                "people": sorted(repr(p) for p in result.policy.people.values())}
        assert warm == cold
    # and the same from worker processes filling and then reading the cache
    env_cache = str(tmp_path / "cache2")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", PARALLEL.replace("cache=False", "cache=True"), str(broken_repo)],
                              capture_output=True, text=True, cwd=ROOT, check=True, timeout=120,
                              env={"JITPOL_LOAD_WORKERS": "2", "JITPOL_CACHE_DIR": env_cache, "PATH": "/usr/bin:/bin"})
        parallel = json.loads(done.stdout)
        assert parallel.pop("workers") == 2
        assert parallel == cold


def test_files_are_listed_as_sorted_glob_lists_them(tmp_path: Path) -> None:
    """The os.scandir listing keeps the order and choice of `sorted(Path.glob(...))`: hidden files
    and directories, names that sort differently as strings and as path parts (a/b before a-c),
    directories named *.yaml, links to files (listed, refused when read) and to directories
    (not descended into, and not listed)."""
    root = tmp_path / "repo"
    for d in ("grants/a/b", "grants/a-c", "grants/.hid", "grants/x.yaml", "grants/Z", "people"):
        (root / d).mkdir(parents=True)
    for f in ("grants/a/b/1.yaml", "grants/a-c/2.yaml", "grants/.hid/3.yml", "grants/.yaml", "grants/a.yaml",
              "grants/A.yaml", "grants/Z/q.YAML", "grants/b.yml", "grants/x.yaml/in.yaml", "people/p.yaml",
              "people/q.txt", "jitpol.yaml"):
        (root / f).write_text("x: 1\n")
    (root / "grants" / "link").symlink_to(root / "grants" / "a", target_is_directory=True)
    (root / "grants" / "ldir.yaml").symlink_to(root / "grants" / "a", target_is_directory=True)
    (root / "grants" / "l.yaml").symlink_to(root / "grants" / "a" / "b" / "1.yaml")
    expected = [(str(root / "jitpol.yaml"), "Config", "jitpol.yaml")]
    for directory, kind in repository.LAYOUT.items():
        base = root / directory
        if base.is_dir():
            for path in sorted(base.glob("**/*" if kind == "Grant" else "*")):
                if path.suffix in (".yaml", ".yml") and not path.is_dir():
                    expected.append((str(path), kind, path.relative_to(root).as_posix()))
    assert list(repository._Loader(root).files()) == expected
    grants = [rel for _, kind, rel in expected if kind == "Grant"]
    assert grants[:3] == ["grants/.hid/3.yml", "grants/A.yaml", "grants/a/b/1.yaml"]
