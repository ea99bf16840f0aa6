"""Appender.many: several events in one write, fsynced before it returns when durable, all or
nothing (what the executor uses to make a batch's intents durable before the batch)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jitpol.cachedb import DB_NAME
from jitpol.errors import LedgerBroken
from jitpol.ledger.chain import canonical_json, check_lines, seal
from jitpol.ledger.store import Ledger


def body(n: int, **extra: Any) -> dict[str, Any]:
    return {"time": "1998-11-30T10:00:00Z", "event": "action.started", "grant": f"g-{n}", **extra}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "repo" / "audit" / "ledger.jsonl"


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    """The ledger file's line count at each fsync of it (the real fsync still runs)."""
    seen: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        if path.exists() and os.path.samestat(os.fstat(fd), path.stat()):
            seen.append(path.read_bytes().count(b"\n"))

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_many_chains_the_events_like_one_at_a_time(path: Path) -> None:
    with Ledger(path).appender() as add:
        first = add(body(1))
        more = add.many([body(2), body(3, detail=["x"])])
        last = add(body(4))
    assert [e["seq"] for e in [first, *more, last]] == [1, 2, 3, 4]
    assert more[0]["prev"] == first["hash"] and last["prev"] == more[1]["hash"]
    assert path.read_text(encoding="utf-8") == "".join(canonical_json(e) + "\n" for e in [first, *more, last])
    assert Ledger(path).events() == [first, *more, last]


def test_durable_many_is_on_disk_before_it_returns(path: Path, fsynced: list[int]) -> None:
    with Ledger(path).appender() as add:
        add(body(1))
        assert fsynced == []  # one at a time: written at once, fsynced when the block ends
        add.many([body(2), body(3)], durable=True)
        assert fsynced == [3]
        add.many([body(4)])  # not durable: no fsync of its own
        assert fsynced == [3]
        assert add.many([], durable=True) == []  # nothing to write, nothing to sync
        assert fsynced == [3]
    assert fsynced == [3, 4]  # the block's end


def test_a_bad_body_among_many_writes_none_of_them(path: Path) -> None:
    with Ledger(path).appender() as add:
        add(body(1))
        with pytest.raises(ValueError):
            add.many([body(2), {"event": "action.started", "grant": None}, body(3)])  # the middle one: no time
        add(body(4))
    assert [(e["seq"], e["grant"]) for e in Ledger(path).events()] == [(1, "g-1"), (2, "g-4")]


def test_many_after_the_block_is_refused(path: Path) -> None:
    with Ledger(path).appender() as add:
        pass
    with pytest.raises(RuntimeError):
        add.many([body(1)])
    assert path.read_bytes() == b""


@pytest.fixture
def walked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many lines each chain check walks from now on."""
    import jitpol.ledger.store as store

    seen: list[int] = []
    real = check_lines

    def counting(lines: Any, **kwargs: Any) -> Any:
        seen.append(len(lines))
        return real(lines, **kwargs)

    monkeypatch.setattr(store, "check_lines", counting)
    return seen


def forget_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a new process would start: nothing verified in memory (the cache database stays)."""
    import jitpol.ledger.store as store

    monkeypatch.setattr(store, "_VERIFIED", store._Verified())


def test_bytes_verified_or_written_in_this_process_are_not_walked_again(path: Path, walked: list[int]) -> None:
    Ledger(path).append([body(1), body(2)])  # a new file: nothing to walk
    assert walked == []
    assert Ledger(path).verify() is None  # exactly what the appender wrote
    with Ledger(path).appender() as add:  # the same bytes again
        add.many([body(3)])
    assert walked == []
    assert len(Ledger(path).events()) == 3  # parsed: what was written was verified before
    assert walked == []


def test_a_later_run_walks_only_what_was_added_since(path: Path, walked: list[int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Ledger(path).append([body(1), body(2), body(3)])
    forget_this_process(monkeypatch)
    assert [e["grant"] for e in Ledger(path).readable()[0]] == ["g-1", "g-2", "g-3"]
    assert walked == []  # the file is what the last run left: nothing to check again
    forget_this_process(monkeypatch)
    with path.open("a", encoding="utf-8") as handle:  # another writer (an older jitpol, a merge)
        last = Ledger(path).events()[-1]
        handle.write(canonical_json(seal({**body(4)}, seq=4, prev=last["hash"])) + "\n")
    forget_this_process(monkeypatch)
    walked.clear()
    events, problem = Ledger(path).readable()
    assert problem is None and [e["seq"] for e in events] == [1, 2, 3, 4]
    assert walked == [1]  # only the line added since
    forget_this_process(monkeypatch)
    assert Ledger(path).verify() is None and walked[-1] == 4  # audit verify (a new process) walks it all


def test_a_change_to_what_was_verified_is_walked_in_full(path: Path, walked: list[int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    Ledger(path).append([body(1), body(2), body(3)])
    forget_this_process(monkeypatch)
    path.write_text(path.read_text(encoding="utf-8").replace('"g-2"', '"g-x"'), encoding="utf-8")
    events, problem = Ledger(path).readable()
    assert problem is not None and problem.line == 2 and "edited" in problem.message
    assert [e["seq"] for e in events] == [1]
    assert walked[0] == 3  # the recorded beginning no longer matches: every line checked
    with pytest.raises(LedgerBroken):
        Ledger(path).events()


def test_a_damaged_record_or_no_cache_means_a_full_walk(path: Path, walked: list[int], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    Ledger(path).append([body(1), body(2)])
    forget_this_process(monkeypatch)
    monkeypatch.setenv("JITPOL_CACHE", "off")
    import jitpol.ledger.store as store

    monkeypatch.setattr(store, "_REMEMBERED", store._Remembered())
    assert len(Ledger(path).events()) == 2 and walked == [2]
    monkeypatch.delenv("JITPOL_CACHE")
    monkeypatch.setattr(store, "_REMEMBERED", store._Remembered())
    with sqlite3.connect(Path(os.environ["JITPOL_CACHE_DIR"]) / DB_NAME) as conn:
        conn.execute("UPDATE ledgers SET value = ?", (b"\0" * 40,))
    walked.clear()
    assert len(Ledger(path).events()) == 2 and walked == [2]


def test_a_change_after_a_verification_is_still_found(path: Path) -> None:
    Ledger(path).append([body(1), body(2), body(3)])
    assert Ledger(path).verify() is None
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"g-2"', '"g-x"'), encoding="utf-8")
    problem = Ledger(path).verify()
    assert problem is not None and problem.line == 2
    with pytest.raises(LedgerBroken):
        with Ledger(path).appender():
            pass
    path.write_text(text, encoding="utf-8")  # the verified bytes again: intact
    assert Ledger(path).verify() is None


def test_a_record_that_vouches_for_what_the_file_does_not_hold_is_not_believed(
        path: Path, walked: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a record written under the cache's own key (whoever holds it can write one) cannot
    stop the ledger from being read: a beginning that is not the events it claims is checked."""
    import hashlib

    import jitpol.ledger.store as store

    Ledger(path).append([body(1), body(2)])
    data = path.read_bytes()
    path.write_bytes(data + b"\xff not utf-8\n")
    forget_this_process(monkeypatch)
    monkeypatch.setattr(store, "_REMEMBERED", store._Remembered())
    remembered = store._REMEMBERED
    full = path.read_bytes()
    ledger = Ledger(path)
    db = remembered._db(ledger.root)
    assert db is not None
    db.put("ledgers", remembered._key(path), (len(full), hashlib.sha256(full).digest(), 3, None))
    events, problem = Ledger(path).readable()
    assert problem is not None and problem.line == 3 and [e["seq"] for e in events] == [1, 2]
