"""Ledger files on disk: verified reads, appends that refuse a broken chain, torn writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jitpol.errors import LedgerBroken, LockHeld
from jitpol.ledger import chain, store
from jitpol.ledger.chain import canonical_json
from jitpol.ledger.store import Ledger, ledger_files


def body(n: int, **extra: Any) -> dict[str, Any]:
    return {"time": "1998-11-30T10:00:00Z", "event": "grant.activated", "grant": f"g-{n}", **extra}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "repo" / "audit" / "ledger.jsonl"


def test_missing_file_is_an_empty_intact_ledger(path: Path) -> None:
    ledger = Ledger(path)
    assert ledger.verify() is None
    assert ledger.events() == []
    assert not path.exists()  # reading creates nothing


def test_append_creates_directories_and_writes_canonical_lines(path: Path) -> None:
    written = Ledger(path).append([body(1), body(2, approvals=[{"by": "bob"}])])
    assert [e["seq"] for e in written] == [1, 2]
    assert written[0]["prev"] is None and written[1]["prev"] == written[0]["hash"]
    text = path.read_text(encoding="utf-8")
    assert text == "".join(canonical_json(e) + "\n" for e in written)
    assert Ledger(path).events() == written


def test_append_continues_the_chain(path: Path) -> None:
    Ledger(path).append([body(1), body(2)])
    more = Ledger(path).append([body(3)])
    assert more[0]["seq"] == 3
    events = Ledger(path).events()
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[2]["prev"] == events[1]["hash"]


def test_append_nothing_creates_an_empty_intact_file(path: Path) -> None:
    assert Ledger(path).append([]) == []
    assert path.read_bytes() == b""
    assert Ledger(path).verify() is None


def test_broken_ledger_refuses_appends_and_stays_untouched(path: Path) -> None:
    Ledger(path).append([body(n) for n in range(1, 6)])
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"g-3"', '"g-x"')
    path.write_text("".join(lines))
    before = path.read_bytes()

    problem = Ledger(path).verify()
    assert problem is not None and (problem.line, problem.seq) == (3, 3)
    with pytest.raises(LedgerBroken) as broken:
        Ledger(path).append([body(6)])
    assert str(broken.value) == f"{path}:3: hash does not match its content — the entry was edited"
    with pytest.raises(LedgerBroken):
        with Ledger(path).appender():
            pytest.fail("the appender must not open on a broken ledger")
    with pytest.raises(LedgerBroken, match=r":3: "):
        Ledger(path).events()
    assert path.read_bytes() == before


def test_torn_last_line_is_broken(path: Path) -> None:
    Ledger(path).append([body(1), body(2)])
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last write was cut off mid-line
    problem = Ledger(path).verify()
    assert problem is not None and problem.line == 2
    assert "not valid JSON" in problem.message and "cut off" in problem.message
    with pytest.raises(LedgerBroken):
        Ledger(path).append([body(3)])


def test_missing_final_newline_alone_is_broken(path: Path) -> None:
    Ledger(path).append([body(1), body(2)])
    path.write_bytes(path.read_bytes()[:-1])
    problem = Ledger(path).verify()
    assert problem is not None and (problem.line, problem.seq) == (2, 2)
    assert "does not end with a newline" in problem.message
    with pytest.raises(LedgerBroken):
        Ledger(path).append([body(3)])


def test_trailing_blank_line_is_broken(path: Path) -> None:
    Ledger(path).append([body(1)])
    with path.open("a") as f:
        f.write("\n")
    problem = Ledger(path).verify()
    assert problem is not None and problem.line == 2 and "blank" in problem.message


def test_invalid_utf8_is_reported_at_its_line(path: Path) -> None:
    Ledger(path).append([body(1), body(2), body(3)])
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"g-2"', b'"g-\xff"')
    path.write_bytes(b"\n".join(lines))
    problem = Ledger(path).verify()
    assert problem is not None and problem.line == 2 and "UTF-8" in problem.message


def test_line_separator_characters_inside_values_survive(path: Path) -> None:
    # Canonical JSON leaves U+2028/U+0085 unescaped; str.splitlines() would split there.
    odd = "INC-1\u2028second\x85third\x1cfourth"
    Ledger(path).append([body(1, justification=odd), body(2)])
    assert Ledger(path).verify() is None
    assert Ledger(path).events()[0]["justification"] == odd


def test_appender_writes_each_event_as_it_happens(path: Path) -> None:
    with Ledger(path).appender() as add:
        first = add(body(1))
        # Another reader sees the event at once, before the block ends.
        assert Ledger(path).events() == [first]
        second = add(body(2))
        assert [e["seq"] for e in Ledger(path).events()] == [1, 2]
    assert second["prev"] == first["hash"]


def test_appender_keeps_events_when_the_run_fails(path: Path) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), Ledger(path).appender() as add:
        add(body(1))
        add(body(2))
        raise Boom
    assert [e["grant"] for e in Ledger(path).events()] == ["g-1", "g-2"]


def test_appender_refuses_use_after_the_block(path: Path) -> None:
    with Ledger(path).appender() as add:
        pass
    with pytest.raises(RuntimeError):
        add(body(1))
    assert path.read_bytes() == b""


def test_a_bad_body_is_refused_without_damaging_the_file(path: Path) -> None:
    with Ledger(path).appender() as add:
        add(body(1))
        with pytest.raises(ValueError):
            add({"event": "grant.activated", "grant": None})  # no time
        with pytest.raises(TypeError):
            add(body(2, blob=object()))
        add(body(3))
    assert [(e["seq"], e["grant"]) for e in Ledger(path).events()] == [(1, "g-1"), (2, "g-3")]


def test_second_appender_on_the_same_file_is_refused(path: Path) -> None:
    with Ledger(path).appender() as add:
        add(body(1))
        with pytest.raises(LockHeld, match="appending"):
            with Ledger(path).appender():
                pass
    Ledger(path).append([body(2)])  # free again afterwards


def test_appending_many_events_does_not_reread_the_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Ledger(path).append([body(n) for n in range(1, 2001)])
    checked: list[int] = []
    real = chain.check_lines

    def counted(lines: Any, *args: Any, **kwargs: Any) -> Any:
        lines = list(lines)
        checked.append(len(lines))
        return real(lines, *args, **kwargs)

    monkeypatch.setattr(store, "check_lines", counted)
    with Ledger(path).appender() as add:
        opened = sum(checked)
        for n in range(2001, 5001):
            add(body(n))
        assert sum(checked) == opened  # re-verifying per event would check ~10 million lines
    events = Ledger(path).events()
    assert len(events) == 5000 and events[-1]["seq"] == 5000


def test_many_without_parsed_events_writes_the_same_lines(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    bodies = [body(n, approvals=("bob",)) for n in range(1, 4)]
    with Ledger(a).appender() as add:
        assert add.many(bodies, parsed=False) == []
    with Ledger(b).appender() as add:
        events = add.many(bodies)
    assert a.read_bytes() == b.read_bytes()
    assert Ledger(a).events() == events


def test_events_returns_what_is_on_disk(path: Path) -> None:
    written = Ledger(path).append([body(1, approvals=("bob",))])
    assert written[0]["approvals"] == ["bob"]
    assert json.loads(path.read_text()) == written[0]


def test_ledger_files(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    assert ledger_files(audit) == []
    audit.mkdir()
    for name in ("b.jsonl", "a.jsonl", "notes.txt"):
        (audit / name).write_text("")
    (audit / "dir.jsonl").mkdir()
    assert ledger_files(audit) == [audit / "a.jsonl", audit / "b.jsonl"]


def test_a_failed_write_leaves_no_partial_line(path: Path) -> None:
    """A write cut short (disk full, file size limit) is rolled back so the chain still verifies."""
    import subprocess
    import sys

    import jitpol

    Ledger(path).append([body(1)])
    script = """
import resource, signal, sys
from pathlib import Path
from jitpol.ledger.store import Ledger
path = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
limit = path.stat().st_size + 50
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    Ledger(path).append([{"time": "1998-11-30T10:00:00Z", "event": "e", "grant": None, "pad": "x" * 500}])
except OSError as exc:
    print("failed", exc.errno)
"""
    env = {"PYTHONPATH": str(Path(jitpol.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("failed"), result.stdout + result.stderr
    assert Ledger(path).verify() is None
    assert [e["seq"] for e in Ledger(path).append([body(2)])] == [2]


def test_a_line_being_written_by_another_process_is_not_a_torn_write(tmp_path: Path) -> None:
    import fcntl
    import subprocess
    import sys

    from jitpol.errors import LedgerBroken
    from jitpol.ledger.store import Ledger

    path = tmp_path / "ledger.jsonl"
    Ledger(path).append([{"time": "1998-12-01T10:00:00Z", "event": "x", "grant": None}])
    with open(path, "ab") as f:
        f.write(b'{"partial":')
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'ab'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(30)"), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert [e["event"] for e in Ledger(path).events()] == ["x"]  # the writer's line is still coming
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(LedgerBroken):  # nobody is writing: a torn last line is a broken ledger
        Ledger(path).events()
    assert fcntl  # imported for clarity of what the helper process does
