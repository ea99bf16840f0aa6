"""Appender.many: several events in one write, fsynced before it returns when durable, all or
nothing (what the executor uses to make a batch's intents durable before the batch)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jitpol.errors import LedgerBroken
from jitpol.ledger.chain import canonical_json, check_lines
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


def test_bytes_verified_or_written_in_this_process_are_not_walked_again(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jitpol.ledger.store as store

    walked: list[int] = []
    real = check_lines

    def counting(lines: Any) -> Any:
        walked.append(len(lines))
        return real(lines)

    monkeypatch.setattr(store, "check_lines", counting)
    Ledger(path).append([body(1), body(2)])  # a new file: nothing to walk
    assert walked == []
    assert Ledger(path).verify() is None  # exactly what the appender wrote
    with Ledger(path).appender() as add:  # the same bytes again
        add.many([body(3)])
    assert walked == []
    assert len(Ledger(path).events()) == 3  # events() always parses every line
    assert walked == [3]


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
