"""The access timeline report as a value: who held what when, what is live now, what comes next.

Pure: built from the loaded policy, the grants' statuses at `now` (None when the repository is
invalid) and the events of every ledger file. No I/O and no clock; `now` is given.

What the ledger says is the history: an interval of held access runs from a grant's
`grant.activated` to its `grant.revoked` in the same ledger file (a re-activation while open,
after an edit or an extension, only moves the recorded end). Intervals of one grant from several
files (shards, agents) are merged. What the statuses say is the present and the future: windows
of scheduled grants (intersected with their workflow's schedule), windows of pending grants, and
access that is due but not yet applied.

Every text in the result comes from YAML or the ledger and is attacker-controlled: it is kept as
plain text here and escaped by the renderer. Only numbers this module computes (positions in
percent) are ever placed in markup unescaped.

Bounded for large repositories: the timeline covers at most `days` before and after `now`
(narrowed to where something happens), lanes and table rows are capped at `limit` each, and the
counts of what was left out are part of the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from jitpol.model.documents import PolicySet
from jitpol.policy.evaluate import STATES, GrantStatus
from jitpol.policy.windows import live_intervals

BarKind = Literal["held", "open", "planned", "due", "scheduled", "pending"]
BAR_KINDS: tuple[tuple[BarKind, str], ...] = (
    ("held", "held (ledger: activated → revoked)"),
    ("open", "held now (ledger: not revoked yet)"),
    ("planned", "rest of the current live interval"),
    ("due", "live now, not applied yet"),
    ("scheduled", "scheduled (approved, upcoming)"),
    ("pending", "pending (requested window)"),
)

DEFAULT_DAYS = 30
DEFAULT_LIMIT = 1000
_MIN_SPAN = timedelta(hours=2)
# tick steps in seconds, smallest first: the first giving at most _MAX_TICKS ticks is used
_STEPS = (900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
_MAX_TICKS = 10
_LABEL_MIN = 3.5  # percent of the axis below which a bar carries no label


# -- inputs ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LedgerFile:
    """One ledger file's events, oldest first, as read (chain already verified)."""

    name: str
    events: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything the report is built from."""

    name: str  # the repository's name (Config metadata.name)
    now: datetime
    policy: PolicySet
    statuses: tuple[GrantStatus, ...] | None  # None: the repository is invalid
    ledgers: tuple[LedgerFile, ...] = ()
    policy_in_force: str | None = None  # digest of the adopted policy
    policy_note: str = ""  # e.g. a pending policy change awaiting admin approval
    problems: tuple[str, ...] = ()  # diagnostics of an invalid repository


# -- the model ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Interval:
    """A span when the ledger shows a grant's access in place."""

    grant: str
    requester: str
    resource: str
    role: str
    start: datetime
    end: datetime | None  # None: not revoked yet (held, as far as the ledger knows)
    until: datetime | None = None  # end of the live interval recorded at the latest activation
    reason: str = ""  # why it ended (the revocation's reason)


@dataclass(frozen=True, slots=True)
class Tick:
    left: float  # percent of the axis
    label: str


@dataclass(frozen=True, slots=True)
class Axis:
    start: datetime
    end: datetime
    ticks: tuple[Tick, ...]
    now: float | None  # where `now` is, in percent; None when outside

    def pos(self, t: datetime) -> float:
        """Where `t` is on the axis, in percent, clamped to [0, 100]."""
        span = (self.end - self.start).total_seconds()
        return round(min(100.0, max(0.0, (t - self.start).total_seconds() / span * 100)), 3)


@dataclass(frozen=True, slots=True)
class Bar:
    kind: BarKind
    grant: str
    label: str
    title: str  # the tooltip: everything known about this span
    start: datetime
    end: datetime
    left: float  # percent
    width: float  # percent


@dataclass(frozen=True, slots=True)
class Lane:
    """One resource or person: bars packed into rows, one grant's bars always in one row."""

    name: str
    note: str
    rows: tuple[tuple[Bar, ...], ...]


@dataclass(frozen=True, slots=True)
class Timeline:
    lanes: tuple[Lane, ...]
    total: int  # lanes with something in range, including those left out by the limit


@dataclass(frozen=True, slots=True)
class GrantRow:
    name: str
    state: str
    reason: str
    requester: str
    resource: str
    role: str
    start: datetime
    end: datetime
    justification: str = ""
    approvals: tuple[str, ...] = ()
    since: datetime | None = None  # first activation in the ledger
    until: datetime | None = None  # active: end of the current live interval
    next_start: datetime | None = None  # scheduled: when it is next live
    applied: bool = False  # the ledger shows its access in place


@dataclass(frozen=True, slots=True)
class Rows:
    """Table rows, capped; `total` counts them all, `later` those beyond the report's range."""

    rows: tuple[GrantRow, ...]
    total: int
    later: int = 0


@dataclass(frozen=True, slots=True)
class EventTable:
    """Ledger events of one kind as text cells, newest first."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total: int  # in range, including those left out by the limit
    mono: frozenset[int] = frozenset()  # columns shown in a fixed-width font
    earlier: int = 0  # events of this kind before the report's range
    optional: bool = False  # left out of the page when empty


@dataclass(frozen=True, slots=True)
class Report:
    repository: str
    generated_at: datetime
    valid: bool
    problems: tuple[str, ...]
    policy_in_force: str | None
    policy_adopted_at: datetime | None
    policy_note: str
    days: int
    counts: tuple[tuple[str, int], ...]  # grants by state (empty when invalid)
    ledger_files: tuple[str, ...]
    ledger_events: int
    active: Rows
    upcoming: Rows
    pending: Rows
    rejected: Rows
    axis: Axis
    by_resource: Timeline
    by_person: Timeline
    events: tuple[EventTable, ...]
    legend: tuple[tuple[BarKind, str], ...] = BAR_KINDS
    held_now: int = 0  # grants the ledger shows as held now
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- helpers -----------------------------------------------------------------------------------

def fmt(t: datetime | None) -> str:
    """A time as the report shows it: UTC, minutes."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if t is not None else ""


def _when(value: Any) -> datetime | None:
    """A ledger time, or None when absent or malformed (the report never fails on an odd event)."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_time(value)


@lru_cache(maxsize=1 << 16)
def _parse_time(text: str) -> datetime | None:
    # cached: the events of one run share their time, so a ledger holds few distinct times
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo is not None else None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- intervals from the ledger -----------------------------------------------------------------

def held_intervals(ledgers: Iterable[LedgerFile]) -> tuple[Interval, ...]:
    """Activation -> revocation pairs per grant and file, merged across files, ordered by
    (start, grant). A grant activated and not revoked gives an open interval (end None)."""
    pieces: dict[str, list[Interval]] = {}
    for ledger in ledgers:
        open_: dict[str, Interval] = {}
        for ev in ledger.events:
            kind = ev.get("event")
            name = ev.get("grant")
            t = _when(ev.get("time"))
            if not isinstance(name, str) or not name or t is None:
                continue
            if kind == "grant.activated":
                until = _when(ev.get("until"))
                cur = open_.get(name)
                if cur is None:
                    open_[name] = Interval(name, _text(ev.get("requester")), _text(ev.get("resource")),
                                           _text(ev.get("role")), t, None, until)
                else:  # re-activated while held (edited or extended): same interval, new end
                    open_[name] = Interval(cur.grant, cur.requester or _text(ev.get("requester")),
                                           cur.resource or _text(ev.get("resource")),
                                           cur.role or _text(ev.get("role")), cur.start, None, until)
            elif kind == "grant.revoked":
                cur = open_.pop(name, None)
                if cur is not None:
                    pieces.setdefault(name, []).append(
                        Interval(cur.grant, cur.requester, cur.resource, cur.role, cur.start, max(t, cur.start),
                                 cur.until, _text(ev.get("reason"))))
        for name, cur in open_.items():
            pieces.setdefault(name, []).append(cur)
    out: list[Interval] = []
    for parts in pieces.values():
        out.extend(_merge(parts))
    return tuple(sorted(out, key=lambda i: (i.start, i.grant)))


def _merge(parts: list[Interval]) -> list[Interval]:
    """Union of one grant's intervals (from several files); an open interval absorbs later ones."""
    parts.sort(key=lambda i: i.start)
    out: list[Interval] = []
    for p in parts:
        last = out[-1] if out else None
        if last is not None and (last.end is None or p.start <= last.end):
            end = None if last.end is None or p.end is None else max(last.end, p.end)
            until = max((u for u in (last.until, p.until) if u is not None), default=None)
            reason = p.reason if end is not None and p.end == end else last.reason
            out[-1] = Interval(last.grant, last.requester or p.requester, last.resource or p.resource,
                               last.role or p.role, last.start, end, until, reason if end is not None else "")
        else:
            out.append(p)
    return out


# -- the axis ------------------------------------------------------------------------------------

def make_axis(now: datetime, spans: Iterable[tuple[datetime, datetime]], days: int) -> Axis:
    """An axis over where `spans` and `now` lie, within `days` of `now`, padded a little."""
    lo_limit, hi_limit = now - timedelta(days=days), now + timedelta(days=days)
    lo = hi = now
    for a, b in spans:
        lo = min(lo, max(a, lo_limit))
        hi = max(hi, min(b, hi_limit))
    if hi - lo < _MIN_SPAN:
        grow = (_MIN_SPAN - (hi - lo)) / 2
        lo, hi = lo - grow, hi + grow
    pad = (hi - lo) * 0.03
    lo, hi = lo - pad, hi + pad
    span = (hi - lo).total_seconds()
    step = next((s for s in _STEPS if span / s <= _MAX_TICKS), _STEPS[-1])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + timedelta(seconds=-(-(lo - epoch).total_seconds() // step) * step)
    axis = Axis(lo, hi, (), None)
    ticks: list[Tick] = []
    t = first
    prev_day = None
    while t <= hi:
        if step >= 86400:
            label = t.strftime("%d %b")
        elif t.date() != prev_day:
            label = t.strftime("%d %b %H:%M")
        else:
            label = t.strftime("%H:%M")
        prev_day = t.date()
        ticks.append(Tick(axis.pos(t), label))
        t += timedelta(seconds=step)
    return Axis(lo, hi, tuple(ticks), axis.pos(now) if lo <= now <= hi else None)


# -- bars and lanes ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Span:
    kind: BarKind
    grant: str
    requester: str
    resource: str
    role: str
    start: datetime
    end: datetime
    title: str


def _why(policy: PolicySet, grant: str) -> str:
    g = policy.grants.get(grant)
    return f" · “{g.justification}”" if g is not None and g.justification else ""


def _spans(inp: Inputs, intervals: tuple[Interval, ...], lo: datetime, hi: datetime) -> list[_Span]:
    """Everything to draw that overlaps [lo, hi)."""
    now = inp.now
    spans: list[_Span] = []
    held_now = {iv.grant for iv in intervals if iv.end is None}
    for iv in intervals:
        if (iv.end is not None and iv.end <= lo) or iv.start >= hi:
            continue
        who = f"{iv.grant}{_why(inp.policy, iv.grant)}: {iv.requester} on {iv.resource} ({iv.role})"
        if iv.end is not None:
            title = f"{who}, held {fmt(iv.start)} to {fmt(iv.end)}" + (f"; ended: {iv.reason}" if iv.reason else "")
            spans.append(_Span("held", iv.grant, iv.requester, iv.resource, iv.role, iv.start, iv.end, title))
            continue
        planned = f", live until {fmt(iv.until)}" if iv.until is not None else ""
        overdue = "; revocation due (not applied yet)" if iv.until is not None and iv.until <= now else ""
        title = f"{who}, held since {fmt(iv.start)}{planned}{overdue}"
        spans.append(_Span("open", iv.grant, iv.requester, iv.resource, iv.role, iv.start, max(now, iv.start),
                           title))
        if iv.until is not None and iv.until > now:
            spans.append(_Span("planned", iv.grant, iv.requester, iv.resource, iv.role, now, iv.until,
                               f"{who}, live until {fmt(iv.until)}"))
    for st in inp.statuses or ():
        if st.state not in ("active", "scheduled", "pending") or st.end <= lo or st.start >= hi:
            continue
        who = f"{st.name}{_why(inp.policy, st.name)}: {st.requester} on {st.resource} ({st.role})"
        if st.state == "pending":
            spans.append(_Span("pending", st.name, st.requester, st.resource, st.role, st.start, st.end,
                               f"{who}, requested {fmt(st.start)} to {fmt(st.end)}; pending: {st.reason}"))
            continue
        for a, b in _live(inp.policy, st):
            if b <= now or b <= lo or a >= hi:
                continue
            if a <= now:
                if st.name in held_now:
                    continue  # drawn from the ledger (open + planned)
                spans.append(_Span("due", st.name, st.requester, st.resource, st.role, a, b,
                                   f"{who}, live {fmt(a)} to {fmt(b)}; not applied yet (the next apply adds it)"))
            else:
                spans.append(_Span("scheduled", st.name, st.requester, st.resource, st.role, a, b,
                                   f"{who}, scheduled {fmt(a)} to {fmt(b)}"))
    return spans


def _live(policy: PolicySet, st: GrantStatus) -> list[tuple[datetime, datetime]]:
    resource = policy.resources.get(st.resource)
    workflow = policy.workflows.get(resource.workflow) if resource is not None else None
    return live_intervals(st.start, st.end, workflow.schedule if workflow is not None else None)


def _lanes(spans: Sequence[_Span], axis: Axis, by: Literal["resource", "person"],
           notes: Mapping[str, str], limit: int) -> Timeline:
    grouped: dict[str, dict[str, list[_Span]]] = {}
    for s in spans:
        if s.end <= axis.start or s.start >= axis.end:
            continue
        lane = s.resource if by == "resource" else s.requester
        grouped.setdefault(lane, {}).setdefault(s.grant, []).append(s)
    names = sorted(grouped)
    lanes: list[Lane] = []
    gap = (axis.end - axis.start) * 0.004  # keeps bars with a minimum drawn width from touching
    for name in names[:limit]:
        units = sorted(grouped[name].values(), key=lambda u: (min(s.start for s in u), u[0].grant))
        rows: list[list[Bar]] = []
        ends: list[datetime] = []
        for unit in units:
            lo = min(s.start for s in unit)
            hi = max(s.end for s in unit)
            idx = next((i for i, e in enumerate(ends) if e + gap <= lo), None)
            if idx is None:
                rows.append([])
                ends.append(hi)
                idx = len(rows) - 1
            ends[idx] = max(ends[idx], hi)
            for s in sorted(unit, key=lambda s: s.start):
                left = axis.pos(s.start)
                width = round(axis.pos(s.end) - left, 3)
                # a label only where it can be read (about 35 px at 1280 px); the tooltip has it all
                label = "" if width < _LABEL_MIN else s.requester if by == "resource" else f"{s.resource} · {s.role}"
                rows[idx].append(Bar(s.kind, s.grant, label, s.title, s.start, s.end, left, width))
        lanes.append(Lane(name, notes.get(name, ""), tuple(tuple(r) for r in rows)))
    return Timeline(tuple(lanes), len(names))


# -- tables ------------------------------------------------------------------------------------

def _grant_rows(inp: Inputs, firsts: Mapping[str, datetime], open_now: set[str]) -> dict[str, list[GrantRow]]:
    out: dict[str, list[GrantRow]] = {s: [] for s in STATES}
    for st in inp.statuses or ():
        grant = inp.policy.grants.get(st.name)
        next_start = None
        if st.state == "scheduled":
            next_start = st.next_change or next((lo for lo, _ in _live(inp.policy, st) if lo > inp.now), st.start)
        out[st.state].append(GrantRow(
            st.name, st.state, st.reason, st.requester, st.resource, st.role, st.start, st.end,
            grant.justification if grant is not None else "", st.approvals, firsts.get(st.name), st.live_until,
            next_start, st.name in open_now,
        ))
    return out


def _capped(rows: list[GrantRow], limit: int, later: int = 0) -> Rows:
    return Rows(tuple(rows[:limit]), len(rows), later)


_EventCells = tuple[str, ...]


def _event_tables(inp: Inputs, range_start: datetime, limit: int) -> tuple[EventTable, ...]:
    """Drift corrections, failures, rotations, accounts, MFA checks and recorded rejections in
    range; every policy adoption."""
    kinds: dict[str, list[tuple[datetime, int, _EventCells]]] = {}
    earlier: dict[str, int] = {}
    order = 0  # ties in time keep ledger order (newest first after the reverse sort)
    for ledger in inp.ledgers:
        for ev in ledger.events:
            order += 1
            t = _when(ev.get("time"))
            kind = _text(ev.get("event"))
            if t is None:
                continue
            if t < range_start and kind != "policy.adopted":
                earlier[kind] = earlier.get(kind, 0) + 1
                continue
            cells = _cells(kind, ev)
            if cells is not None:
                kinds.setdefault(kind, []).append((t, order, (fmt(t), *cells)))
    tables: list[EventTable] = []
    for key, title, columns, mono, optional in _TABLES:
        found = sorted(kinds.get(key, []), key=lambda x: (x[0], x[1]), reverse=True)
        tables.append(EventTable(key, title, ("time", *columns), tuple(c for _, _, c in found[:limit]), len(found),
                                 frozenset(mono), earlier.get(key, 0), optional))
    return tuple(tables)


# (event, title, columns after "time", fixed-width columns (0 is the time), optional)
_TABLES: tuple[tuple[str, str, tuple[str, ...], tuple[int, ...], bool], ...] = (
    ("drift.corrected", "Drift corrected", ("op", "target", "principal", "privilege", "resource"), (3, 4), False),
    ("action.failed", "Failures", ("grant", "op", "target", "principal", "privilege", "error"), (4, 5), False),
    ("credential.rotated", "Credential rotations", ("target", "account", "holders", "fingerprint"), (2, 4), False),
    ("account.created", "Ephemeral accounts created", ("grant", "target", "account", "until", "fingerprint"),
     (3, 5), True),
    ("account.deleted", "Ephemeral accounts deleted", ("grant", "target", "account"), (3,), True),
    ("policy.adopted", "Policy adoptions", ("digest", "previous", "how", "approved by", "policy commit"),
     (1, 2, 5), False),
    ("grant.rejected", "Rejections recorded in the ledger", ("grant", "reason"), (), True),
    ("mfa.checked", "Second-factor checks", ("grant", "factor", "result"), (), True),
)


def _cells(kind: str, ev: Mapping[str, Any]) -> _EventCells | None:
    """The cells shown for one event. Only named fields are read: whatever else an event holds
    (it never holds secrets, but a forged one might) is not shown."""
    g = ev.get
    if kind == "drift.corrected":
        return (_text(g("op")), _text(g("target")), _text(g("principal")), _text(g("privilege")),
                _text(g("resource")))
    if kind == "action.failed":
        return (_text(g("grant")), _text(g("op")), _text(g("target")), _text(g("principal")),
                _text(g("privilege")), _text(g("error")))
    if kind == "credential.rotated":
        holders = g("holders")
        who = ", ".join(_text(h) for h in holders) if isinstance(holders, list) and holders else "nobody"
        return (_text(g("target")), _text(g("account")), who, _text(g("fingerprint")))
    if kind == "account.created":
        return (_text(g("grant")), _text(g("target")), _text(g("account")), fmt(_when(g("until"))),
                _text(g("fingerprint")))
    if kind == "account.deleted":
        return (_text(g("grant")), _text(g("target")), _text(g("account")))
    if kind == "grant.rejected":
        return (_text(g("grant")), _text(g("reason")))
    if kind == "mfa.checked":
        return (_text(g("grant")), _text(g("factor")), _text(g("result")))
    if kind == "policy.adopted":
        approvals = g("approvals")
        by = ", ".join(f"{_text(a.get('by'))} ({_text(a.get('key'))})" for a in approvals
                       if isinstance(a, Mapping)) if isinstance(approvals, list) else ""
        how = "bootstrap (first run)" if g("bootstrap") is True else "approved by admins"
        return (_text(g("digest")), _text(g("previous")), how, by, _text(g("policy_commit")))
    return None


# -- the report ----------------------------------------------------------------------------------

def build(inp: Inputs, days: int = DEFAULT_DAYS, limit: int = DEFAULT_LIMIT) -> Report:
    """The report at `inp.now`: the timeline covers at most `days` before and after now; every
    lane list and table holds at most `limit` entries (the totals say how many there were)."""
    if days < 1 or limit < 1:
        raise ValueError("days and limit must be at least 1")
    now = inp.now
    # the report as of `now`: later ledger events (a report --at an earlier time) are not yet known
    ledgers = tuple(LedgerFile(lf.name, [e for e in lf.events if (_when(e.get("time")) or now) <= now])
                    for lf in inp.ledgers)
    inp = replace(inp, ledgers=ledgers)
    intervals = held_intervals(inp.ledgers)
    open_now = {iv.grant for iv in intervals if iv.end is None}
    firsts: dict[str, datetime] = {}
    for iv in intervals:
        firsts.setdefault(iv.grant, iv.start)

    range_lo, range_hi = now - timedelta(days=days), now + timedelta(days=days)
    spans = [s for s in _spans(inp, intervals, range_lo, range_hi) if s.end > range_lo and s.start < range_hi]
    axis = make_axis(now, ((s.start, s.end) for s in spans), days)
    res_notes = {name: _text(r.settings.get("description")) for name, r in inp.policy.resources.items()}
    people_notes = {name: "disabled (kill switch)" for name, p in inp.policy.people.items() if p.disabled}
    by_resource = _lanes(spans, axis, "resource", res_notes, limit)
    by_person = _lanes(spans, axis, "person", people_notes, limit)

    rows = _grant_rows(inp, firsts, open_now)
    if inp.statuses is None:
        # invalid repository: nothing can be said about states, but the ledger says who holds what
        active = [GrantRow(iv.grant, "held", "the ledger shows this access in place", iv.requester, iv.resource,
                           iv.role, iv.start, iv.until or iv.start, since=firsts.get(iv.grant), until=iv.until,
                           applied=True)
                  for iv in intervals if iv.end is None]
    else:
        active = sorted(rows["active"], key=lambda r: (r.until or r.end, r.name))
    upcoming_all = sorted(rows["scheduled"], key=lambda r: (r.next_start or r.start, r.name))
    upcoming = [r for r in upcoming_all if (r.next_start or r.start) <= range_hi]
    pending = sorted(rows["pending"], key=lambda r: (r.start, r.name))
    rejected = sorted(rows["rejected"], key=lambda r: (r.start, r.name))

    adopted_at = None
    for ledger in inp.ledgers:
        for ev in ledger.events:
            if ev.get("event") == "policy.adopted" and ev.get("digest") == inp.policy_in_force:
                t = _when(ev.get("time"))
                if t is not None and (adopted_at is None or t > adopted_at):
                    adopted_at = t
    counts = tuple((s, len(rows[s])) for s in STATES) if inp.statuses is not None else ()
    notes: list[str] = []
    if by_resource.total > len(by_resource.lanes) or by_person.total > len(by_person.lanes):
        notes.append(f"timelines show at most {limit} lanes each; use --days to narrow the range")
    return Report(
        repository=inp.name, generated_at=now, valid=inp.statuses is not None, problems=inp.problems,
        policy_in_force=inp.policy_in_force, policy_adopted_at=adopted_at, policy_note=inp.policy_note, days=days,
        counts=counts, ledger_files=tuple(lf.name for lf in inp.ledgers),
        ledger_events=sum(len(lf.events) for lf in inp.ledgers),
        active=_capped(active, limit), upcoming=_capped(upcoming, limit, len(upcoming_all) - len(upcoming)),
        pending=_capped(pending, limit), rejected=_capped(rejected, limit),
        axis=axis, by_resource=by_resource, by_person=by_person,
        events=_event_tables(inp, range_lo, limit), held_now=len(open_now), notes=tuple(notes),
    )
