"""Pacing cloud calls to a provider's documented limits, written once for every cloud connector.

    limits = {"write": Rate(per_second=10, burst=200)}          # the provider's documented limits
    pacer = Pacer("target prod", limits, max_in_flight=10, max_wait_s=300)
    pacer.call("write", lambda: send(...), what="PUT roleAssignments/...")

- A token bucket per (kind, scope) (`Rate`: refilled continuously at `per_second`, holding at
  most `burst`): a call takes one token and waits its turn when there is none. Reservations are
  made under a lock in arrival order, so threads get their turns fairly and the rate holds
  across them.
- A cap on calls in flight (`max_in_flight`, a semaphore held while the call runs).
- Throttles: the call signals one by raising `Throttled(wait)` (the provider's 429 with the wait
  it asks for: `retry_after` reads `Retry-After` in seconds or as an HTTP date, `okta_reset`
  reads Okta's `X-Rate-Limit-Reset`; both count from the answer's own `Date` header, so the host's
  clock neither matters nor is read). The bucket then stays shut for every caller until that
  time, and the call is sent again. Without a wait in the answer, backoff doubles from 1 s.
- The budget: one call waits at most `max_wait_s` in all (its turn in the bucket plus every
  throttle). A throttle or a queue that would keep it longer fails it at once (no hang) as
  TargetUnavailable saying so: the run goes on, and the next run applies the action.

Every clock is injectable (`PaceClock`: monotonic, sleep, async sleep), so tests are exact and
instant. `run_batch` applies a function to many items on a thread pool and keeps each item's own
result or exception, in order. Imports no SDK and no connector.
"""

from __future__ import annotations

import asyncio
import email.utils
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

from jitpol.errors import TargetUnavailable

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item

DEFAULT_MAX_WAIT_S = 300.0  # what one call may wait for the provider's limits, unless the target says
MAX_WAIT_LIMIT_S = 3600.0  # the most a target may configure
BACKOFF_FIRST_S = 1.0  # a throttle that names no wait: 1 s, 2 s, 4 s ... (capped)
BACKOFF_CAP_S = 30.0


class Throttled(Exception):
    """Raised by a paced call for the provider's "too many requests": `wait` is the seconds it
    asks to wait before trying again (None: it did not say)."""

    def __init__(self, wait: float | None, detail: str = "") -> None:
        super().__init__(detail or "throttled")
        self.wait = wait
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Rate:
    """A documented rate limit as a token bucket: `per_second` refill, at most `burst` tokens."""

    per_second: float
    burst: float = 1.0

    def __post_init__(self) -> None:
        if not self.per_second > 0 or not self.burst >= 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, not {self.per_second}/{self.burst}")

    @classmethod
    def per_minute(cls, n: float, burst: float = 1.0) -> Rate:
        return cls(n / 60.0, burst)

    def scaled(self, factor: float) -> Rate:
        """The same limit `factor` times as fast (a benchmark against doubles scaled alike)."""
        return Rate(self.per_second * factor, self.burst)


@dataclass
class PaceClock:
    """Where pacing reads time and waits: the process's monotonic clock and real sleeps unless
    a test gives its own."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass
class FakePaceClock(PaceClock):
    """A clock that only moves when something sleeps on it: exact and instant (tests). Every
    sleep is recorded in `slept`."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.monotonic = self._monotonic
        self.sleep = self._sleep
        self.asleep = self._asleep

    def _monotonic(self) -> float:
        with self._lock:
            return self.now

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)

    async def _asleep(self, seconds: float) -> None:
        self._sleep(seconds)
        await asyncio.sleep(0)


class TokenBucket:
    """Thread-safe token bucket with reservations: `reserve` takes a token now and says how long
    to wait until it is due (the level may go below zero: later callers queue behind)."""

    def __init__(self, rate: Rate, monotonic: Callable[[], float]) -> None:
        self.rate = rate
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._tokens = rate.burst
        self._at = monotonic()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.rate.burst, self._tokens + (now - self._at) * self.rate.per_second)
        self._at = now

    def reserve(self, max_wait: float) -> float | None:
        """Seconds until this caller's token is due (taken now), or None without taking one when
        that is more than `max_wait`."""
        with self._lock:
            now = self._monotonic()
            self._refill(now)
            wait = max(0.0, (1.0 - self._tokens) / self.rate.per_second)
            if wait > max_wait:
                return None
            self._tokens -= 1.0
            return wait

    def hold(self, seconds: float) -> None:
        """No token for anybody for `seconds` from now, then the rate again from an empty bucket
        (the provider said to wait: a burst right after would only be throttled again)."""
        with self._lock:
            now = self._monotonic()
            self._refill(now)
            self._tokens = min(self._tokens, 1.0 - seconds * self.rate.per_second)


@dataclass
class PaceStats:
    """What a pacer did, for tests and benchmarks."""

    calls: int = 0  # calls sent (a throttled call sent again counts again)
    throttled: int = 0  # answers that were throttles
    waited_s: float = 0.0  # seconds slept waiting for turns and throttles
    refused: int = 0  # calls failed because the wait would pass max_wait_s


class Pacer:
    """Paces one target's calls (see the module docstring). Thread-safe; `acall` is the same
    for coroutines (one event loop at a time)."""

    def __init__(
        self,
        target: str,
        rates: Mapping[str, Rate],
        *,
        max_in_flight: int,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        clock: PaceClock | None = None,
        provider: str = "the provider",
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.target = target  # "target NAME", to start messages
        self.rates = dict(rates)
        self.max_in_flight = max_in_flight
        self.max_wait_s = max_wait_s
        self.clock = clock or PaceClock()
        self.provider = provider
        self.stats = PaceStats()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._aslots: asyncio.Semaphore | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    def bucket(self, kind: str, scope: str = "") -> TokenBucket:
        with self._lock:
            found = self._buckets.get((kind, scope))
            if found is None:
                found = self._buckets[(kind, scope)] = TokenBucket(self.rates[kind], self.clock.monotonic)
            return found

    # -- one call ------------------------------------------------------------------------------

    def call(self, kind: str, fn: Callable[[], T], *, scope: str = "", what: str = "") -> T:
        """`fn()` when its turn comes, sent again after each throttle, within max_wait_s."""
        started = self.clock.monotonic()
        attempt = 0
        while True:
            wait = self._turn(kind, scope, started, what)
            if wait > 0:
                self._slept(wait)
                self.clock.sleep(wait)
            with self._slots:
                self._count()
                try:
                    return fn()
                except Throttled as exc:
                    self._throttled(kind, scope, exc, attempt, started, what)
            attempt += 1

    def take(self, kind: str, *, scope: str = "", what: str = "") -> None:
        """Wait for a turn in `kind`'s bucket, for a request another layer sends and retries (an
        SDK's event hook); no in-flight slot, no throttle handling. TargetUnavailable past
        max_wait_s."""
        wait = self._turn(kind, scope, self.clock.monotonic(), what)
        if wait > 0:
            self._slept(wait)
            self.clock.sleep(wait)
        self._count()

    def throttle(
        self, kind: str, *, wait: float | None, attempt: int, started: float, what: str, scope: str = "",
        detail: str = "",
    ) -> None:
        """A throttle met by a request another layer sends again (an SDK's retry hook): shut
        `kind`'s bucket for `wait` (None: backoff by `attempt`, from 0) so that the next turn
        comes after it, or TargetUnavailable when that would pass max_wait_s counted from
        `started` (the clock's monotonic time the call began)."""
        self._throttled(kind, scope, Throttled(wait, detail), attempt, started, what)

    async def acall(self, kind: str, fn: Callable[[], Awaitable[T]], *, scope: str = "", what: str = "") -> T:
        """`call` for a coroutine function; waits with the clock's async sleep."""
        started = self.clock.monotonic()
        attempt = 0
        slots = self._async_slots()
        while True:
            wait = self._turn(kind, scope, started, what)
            if wait > 0:
                self._slept(wait)
                await self.clock.asleep(wait)
            async with slots:
                self._count()
                try:
                    return await fn()
                except Throttled as exc:
                    self._throttled(kind, scope, exc, attempt, started, what)
            attempt += 1

    # -- internals -----------------------------------------------------------------------------

    def _async_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._aslots is None or self._aloop is not loop:  # a semaphore belongs to one loop
                self._aslots, self._aloop = asyncio.Semaphore(self.max_in_flight), loop
            return self._aslots

    def _remaining(self, started: float) -> float:
        return started + self.max_wait_s - self.clock.monotonic()

    def _turn(self, kind: str, scope: str, started: float, what: str) -> float:
        wait = self.bucket(kind, scope).reserve(max(0.0, self._remaining(started)))
        if wait is None:
            self._refuse(
                f"{self.target}: {what or kind}: waiting for its turn under {self.provider}'s rate limit would take "
                f"longer than max_wait_s ({self.max_wait_s:g} s); not sent, the next run applies it"
            )
        return wait

    def _throttled(self, kind: str, scope: str, exc: Throttled, attempt: int, started: float, what: str) -> None:
        with self._lock:
            self.stats.throttled += 1
        wait = exc.wait if exc.wait is not None else min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2**attempt)
        wait = max(0.0, wait)
        remaining = self._remaining(started)
        if wait > remaining:
            detail = f" ({exc.detail})" if exc.detail else ""
            self._refuse(
                f"{self.target}: {what or kind}: {self.provider} throttled it{detail} and asks to wait {wait:.1f} s, "
                f"past this run's budget (max_wait_s {self.max_wait_s:g} s, {max(0.0, remaining):.1f} s left); "
                "the next run applies it"
            )
        self.bucket(kind, scope).hold(wait)

    def _refuse(self, message: str) -> NoReturn:
        with self._lock:
            self.stats.refused += 1
        raise TargetUnavailable(message)

    def _count(self) -> None:
        with self._lock:
            self.stats.calls += 1

    def _slept(self, seconds: float) -> None:
        with self._lock:
            self.stats.waited_s += seconds


@dataclass(frozen=True)
class Pacing:
    """A connector's keyword-only hook for tests and benchmarks: other rates than the documented
    ones (a double scaled alike), its own clock, another in-flight cap. Empty: the defaults."""

    rates: Mapping[str, Rate] | None = None
    clock: PaceClock | None = None
    max_in_flight: int | None = None

    def pacer(
        self, target: str, rates: Mapping[str, Rate], *, max_in_flight: int, max_wait_s: float, provider: str
    ) -> Pacer:
        return Pacer(
            target,
            {**rates, **(self.rates or {})},
            max_in_flight=self.max_in_flight or max_in_flight,
            max_wait_s=max_wait_s,
            clock=self.clock,
            provider=provider,
        )


def max_wait_setting(target: str, settings: Mapping[str, object]) -> float:
    """The target's `max_wait_s` setting (seconds one call may wait for the provider's limits),
    DEFAULT_MAX_WAIT_S when absent. Raises PermanentTargetError for anything but a number in
    [0, MAX_WAIT_LIMIT_S]."""
    from jitpol.errors import PermanentTargetError

    value = settings.get("max_wait_s", DEFAULT_MAX_WAIT_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_WAIT_LIMIT_S:
        raise PermanentTargetError(
            f"target {target}: setting max_wait_s must be a number of seconds from 0 to {MAX_WAIT_LIMIT_S:g}"
        )
    return float(value)


# -- the wait a throttled answer asks for ---------------------------------------------------------


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a `Retry-After` header: a number of seconds, or an HTTP date counted
    from the answer's `Date` header. None when absent or unreadable. `headers` must look names
    up without regard to case (as the SDKs' header maps do)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    at, now = _http_date(value), _http_date(headers.get("Date"))
    if at is None or now is None:
        return None
    return max(0.0, at - now)


def okta_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from Okta's `X-Rate-Limit-Reset` (UTC epoch seconds when the limit
    resets; the earliest when there are several, comma-joined), counted from the answer's `Date`
    header plus one second, as Okta's SDKs do (Date has whole seconds). None when absent."""
    value, now = headers.get("X-Rate-Limit-Reset"), _http_date(headers.get("Date"))
    if value is None or now is None:
        return None
    try:
        reset = min(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        return None
    return max(0.0, reset - now) + 1.0


# -- many at once ---------------------------------------------------------------------------------


def run_batch(fn: Callable[[I], T], items: Sequence[I], *, max_workers: int) -> list[T | Exception]:
    """fn(item) for every item, at most `max_workers` at a time, each item's own result or
    the Exception it raised, in the items' order (one failure never hides another's result)."""

    def one(item: I) -> T | Exception:
        try:
            return fn(item)
        except Exception as exc:  # noqa: BLE001 - the item's own result, reported as such
            return exc

    if max_workers <= 1 or len(items) <= 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items)), thread_name_prefix="jitpol-batch") as pool:
        return list(pool.map(one, items))
