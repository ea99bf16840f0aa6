"""Lifecycle notifications: tell requesters and approvers what changed, each message once.

    messages  PURE: which notifications the facts call for, and which a channel has not had yet
    render    Jinja2 (sandboxed) templates, built in or overridden from the repository's notifications/
    channels  a Slack-compatible webhook; comments on the grant's GitHub pull request

A run: prepare (as every command does) -> `collect` the due messages -> `deliver` each one not yet
sent on each channel -> record every delivered one as a `notification.sent` ledger event
({grant, kind, key, channel, to}, time = the evaluation time). A failed delivery is not recorded,
so the next run tries it again; a delivered one is recorded at once, so a run that dies half-way
does not send it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from jitpol.errors import TargetError
from jitpol.evaluate.prepare import Prepared
from jitpol.ledger.store import Ledger, ledger_files
from jitpol.notify.channels import Channel
from jitpol.notify.messages import Message, Sent, due, unsent
from jitpol.notify.render import Format, Renderer, TemplateProblem
from jitpol.scope import AUDIT_DIR

Outcome = Literal["sent", "failed", "skipped", "preview"]
PREVIEW = "preview"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one message on one channel. `detail`: where it went, or why not."""

    message: Message
    channel: str
    text: str
    outcome: Outcome
    detail: str = ""


class Preview:
    """The channel of `--dry-run` without a channel: plain text, every message no channel had."""

    name = PREVIEW
    fmt: Format = "text"

    def deliver(self, message: Message, text: str) -> str | None:
        raise AssertionError("a preview delivers nothing")


def ledger_events(root: Path) -> list[dict[str, Any]]:
    """The events of every ledger file under audit/ (main, shards, agents), each file in order.
    Raises LedgerBroken if any file's chain does not verify."""
    out: list[dict[str, Any]] = []
    for path in ledger_files(root / AUDIT_DIR):
        out.extend(Ledger(path).events())
    return out


def collect(prep: Prepared, events: Sequence[dict[str, Any]], *, expiring_within: timedelta,
            max_age: timedelta) -> list[Message]:
    """The messages due at `prep.now`. On an invalid repository only ledger facts (activations and
    ends) are due: its evaluation is not trusted."""
    statuses = prep.evaluation.statuses if prep.evaluation is not None else None
    return due(statuses, prep.decided, events, prep.now, expiring_within=expiring_within, max_age=max_age)


def deliver(
    messages: Iterable[Message],
    sent: frozenset[Sent],
    channels: Sequence[Channel],
    renderer: Renderer,
    record: Callable[[Message, str], None] | None,
) -> list[Delivery]:
    """Render and send every message a channel has not had. `record(message, channel)` is called
    right after each successful delivery; `record=None` is a dry run (render only, outcome
    "preview"). Template and delivery problems are per message (outcome "failed"); whatever
    `record` raises (the ledger refuses) stops the run."""
    messages = list(messages)
    out: list[Delivery] = []
    for channel in channels:
        if channel.name == PREVIEW:
            anywhere = {s.key for s in sent}
            todo = [m for m in messages if m.key not in anywhere]
        else:
            todo = unsent(messages, sent, channel.name)
        for message in todo:
            try:
                text = renderer.render(message, channel.fmt).text
            except TemplateProblem as exc:
                out.append(Delivery(message, channel.name, "", "failed", str(exc)))
                continue
            if record is None:
                out.append(Delivery(message, channel.name, text, "preview"))
                continue
            try:
                where = channel.deliver(message, text)
            except TargetError as exc:
                out.append(Delivery(message, channel.name, text, "failed", str(exc)))
                continue
            if where is None:
                out.append(Delivery(message, channel.name, text, "skipped", _skip_reason(message, channel)))
                continue
            record(message, channel.name)
            out.append(Delivery(message, channel.name, text, "sent", where))
    return out


def _skip_reason(message: Message, channel: Channel) -> str:
    if channel.name == "github":
        if not message.path:
            return "the grant file is no longer in the repository"
        return f"no pull request on the git host brought {message.path}"
    return "nowhere to send it"


__all__ = ["Delivery", "Message", "Preview", "Renderer", "collect", "deliver", "ledger_events"]
