"""The shared pacing helper (jitpol.connectors.pacing): token buckets, the in-flight cap,
throttles honoured with the wait the answer asks for, and the budget, on a fake clock (exact,
instant)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from jitpol.connectors.pacing import (
    FakePaceClock,
    Pacer,
    Rate,
    Throttled,
    TokenBucket,
    okta_reset,
    retry_after,
    run_batch,
)
from jitpol.errors import TargetUnavailable


class Headers(dict[str, str]):
    """Header lookups without regard to case, as the SDKs' header maps do."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        for k, v in self.items():
            if k.lower() == key.lower():
                return v
        return default


def test_bucket_spends_its_burst_then_spaces_calls_at_the_rate() -> None:
    clock = FakePaceClock()
    bucket = TokenBucket(Rate(per_second=10, burst=3), clock.monotonic)
    assert [bucket.reserve(60) for _ in range(5)] == [0.0, 0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    clock.sleep(0.2)  # the two reservations fall due; the bucket is empty again
    assert bucket.reserve(60) == pytest.approx(0.1)


def test_bucket_refuses_a_turn_beyond_max_wait_without_taking_it() -> None:
    clock = FakePaceClock()
    bucket = TokenBucket(Rate(per_second=1, burst=1), clock.monotonic)
    assert bucket.reserve(0) == 0.0
    assert bucket.reserve(0.5) is None  # due in 1 s
    assert bucket.reserve(1.0) == pytest.approx(1.0)  # the refused one took nothing


def test_hold_shuts_the_bucket_for_everyone_then_the_rate_resumes_from_empty() -> None:
    clock = FakePaceClock()
    bucket = TokenBucket(Rate(per_second=10, burst=100), clock.monotonic)
    bucket.hold(5.0)
    assert bucket.reserve(60) == pytest.approx(5.0)
    assert bucket.reserve(60) == pytest.approx(5.1)


def test_rate_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Rate(0)
    with pytest.raises(ValueError):
        Rate(1, burst=0.5)
    assert Rate.per_minute(600).per_second == pytest.approx(10)
    assert Rate(10, 200).scaled(3) == Rate(30, 200)


def _pacer(clock: FakePaceClock, *, per_second: float = 10, burst: float = 1, max_wait_s: float = 300,
           max_in_flight: int = 4) -> Pacer:
    return Pacer("target t", {"write": Rate(per_second, burst)}, max_in_flight=max_in_flight,
                 max_wait_s=max_wait_s, clock=clock, provider="the double")


def test_calls_wait_their_turn_exactly() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, per_second=4, burst=2)
    sent: list[float] = []
    for _ in range(4):
        pacer.call("write", lambda: sent.append(clock.now))
    assert [t - 1000.0 for t in sent] == pytest.approx([0, 0, 0.25, 0.5])
    assert pacer.stats.calls == 4 and pacer.stats.throttled == 0
    assert pacer.stats.waited_s == pytest.approx(0.5)


def test_a_throttle_is_waited_out_for_exactly_the_time_asked_then_sent_again() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, per_second=100, burst=100)
    answers: list[Callable[[], str]] = []

    def throttle(wait: float | None) -> Callable[[], str]:
        def fn() -> str:
            raise Throttled(wait, "429")
        return fn

    answers += [throttle(7.0), throttle(None), throttle(None), lambda: "done"]
    sent: list[float] = []

    def call() -> str:
        sent.append(clock.now)
        return answers[len(sent) - 1]()

    assert pacer.call("write", call, what="PUT x") == "done"
    # 7 s as asked; then no wait named: backoff 2 s (attempt 1), 4 s (attempt 2)
    assert [round(t - 1000.0, 6) for t in sent] == [0.0, 7.0, 9.0, 13.0]
    assert clock.slept == pytest.approx([7.0, 2.0, 4.0])
    assert pacer.stats.calls == 4 and pacer.stats.throttled == 3


def test_a_throttle_past_the_budget_fails_at_once_as_target_unavailable() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, max_wait_s=60)

    def fn() -> None:
        raise Throttled(61.0, "HTTP 429")

    with pytest.raises(TargetUnavailable, match=r"target t: PUT x: the double throttled it \(HTTP 429\) and asks "
                       r"to wait 61.0 s, past this run's budget \(max_wait_s 60 s.*next run applies it"):
        pacer.call("write", fn, what="PUT x")
    assert clock.slept == []  # no hang: it did not wait for what it could not get
    assert pacer.stats.refused == 1


def test_waits_add_up_against_one_budget() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, max_wait_s=10)
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        raise Throttled(4.0)

    with pytest.raises(TargetUnavailable, match=r"asks to wait 4\.0 s"):
        pacer.call("write", fn, what="PUT x")
    assert calls == 3 and clock.slept == pytest.approx([4.0, 4.0])  # 8 s waited, 2 s left < 4 s


def test_a_queue_longer_than_the_budget_refuses_the_call_unsent() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, per_second=1, max_wait_s=2.5)
    bucket = pacer.bucket("write")
    for _ in range(4):  # others queued ahead: the next turn is 4 s away
        bucket.reserve(60)
    sent: list[int] = []
    with pytest.raises(TargetUnavailable, match=r"waiting for its turn.*longer than max_wait_s"):
        pacer.call("write", lambda: sent.append(1), what="PUT x")
    assert sent == []


def test_scopes_have_their_own_buckets() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, per_second=1)
    for scope in ("projects/a", "projects/b", "projects/c"):
        pacer.call("write", lambda: None, scope=scope)
    assert clock.slept == []  # one token each, nobody waited
    pacer.call("write", lambda: None, scope="projects/a")
    assert clock.slept == pytest.approx([1.0])


def test_in_flight_cap_holds_across_threads() -> None:
    pacer = Pacer("target t", {"w": Rate(10_000, 10_000)}, max_in_flight=3)
    lock = threading.Lock()
    now = peak = 0
    release = threading.Event()

    def fn(_: int) -> int:
        nonlocal now, peak

        def inside() -> int:
            nonlocal now, peak
            with lock:
                now += 1
                peak = max(peak, now)
                if now == 3:
                    release.set()
            release.wait(5)
            with lock:
                now -= 1
            return 1

        return pacer.call("w", inside)

    assert run_batch(fn, list(range(12)), max_workers=8) == [1] * 12
    assert peak == 3


def test_acall_paces_coroutines_on_the_async_sleep() -> None:
    clock = FakePaceClock()
    pacer = _pacer(clock, per_second=2, burst=1, max_in_flight=2)
    sent: list[float] = []
    attempts = 0

    async def fn() -> None:
        nonlocal attempts
        attempts += 1
        sent.append(clock.now)
        if attempts == 2:
            raise Throttled(3.0)

    async def main() -> None:
        for _ in range(2):
            await pacer.acall("write", fn)

    asyncio.run(main())
    assert [t - 1000.0 for t in sent] == pytest.approx([0.0, 0.5, 3.5])


def test_run_batch_keeps_each_result_and_exception_in_order() -> None:
    def fn(i: int) -> int:
        if i % 3 == 1:
            raise ValueError(f"item {i}")
        return i * 10

    out = run_batch(fn, list(range(7)), max_workers=4)
    assert [o if isinstance(o, int) else str(o) for o in out] == [0, "item 1", 20, 30, "item 4", 50, 60]
    assert run_batch(fn, [], max_workers=4) == []


def test_retry_after_in_seconds_or_as_an_http_date_from_the_answers_date() -> None:
    assert retry_after(Headers({"Retry-After": "17"})) == 17.0
    assert retry_after(Headers({"retry-after": " 2.5 "})) == 2.5
    dated = Headers({"Retry-After": "Wed, 21 Oct 2099 07:28:30 GMT", "Date": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert retry_after(dated) == 30.0
    assert retry_after(Headers({"Retry-After": "Wed, 21 Oct 2099 07:28:30 GMT"})) is None  # no Date to count from
    assert retry_after(Headers({"Retry-After": "soon"})) is None
    assert retry_after(Headers({})) is None
    assert retry_after(Headers({"Retry-After": "-4"})) == 0.0


def test_okta_reset_counts_from_the_answers_date_plus_a_second() -> None:
    date = "Wed, 21 Oct 2099 07:28:00 GMT"
    epoch = 4096250880  # that Date as UTC epoch seconds
    assert okta_reset(Headers({"X-Rate-Limit-Reset": str(epoch + 42), "Date": date})) == 43.0
    assert okta_reset(Headers({"X-Rate-Limit-Reset": f"{epoch + 42},{epoch + 9}", "Date": date})) == 10.0
    assert okta_reset(Headers({"X-Rate-Limit-Reset": str(epoch - 5), "Date": date})) == 1.0
    assert okta_reset(Headers({"X-Rate-Limit-Reset": str(epoch)})) is None
    assert okta_reset(Headers({"Date": date})) is None
    assert okta_reset(Headers({"X-Rate-Limit-Reset": "x", "Date": date})) is None
