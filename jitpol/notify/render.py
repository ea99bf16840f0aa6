"""Notification text from Jinja2 templates, in a sandbox, with every value escaped for its channel.

Templates: `jitpol/notify/templates/<kind>.j2`, one per message kind. A team overrides one by
committing a file of the same name to `notifications/` in the policy repository. Those files come
from pull requests, so they are treated as untrusted:

- rendered by `jinja2.sandbox.ImmutableSandboxedEnvironment` (the SandboxedEnvironment that also
  refuses to mutate lists and dicts): `{{ ''.__class__ }}` and friends raise SecurityError, which
  becomes a TemplateProblem naming the file and line; undefined names are errors too
  (StrictUndefined), so a typo does not silently send an empty message;
- read only as regular files directly in `notifications/` (no symbolic links, which could point a
  template at `/proc/self/environ` and post the process's secrets; at most 64 KiB; UTF-8);
- the context holds only strings, numbers and lists of strings, plus pure helper functions.

Escaping is not left to template authors: every `{{ ... }}` value passes through the format's
escaper (jinja `finalize`), so a justification cannot inject `<!channel>`, links or `@team`
mentions. Slack mrkdwn escapes `&`, `<`, `>` as Slack documents; GitHub markdown escapes HTML,
markdown punctuation and `@`; plain text drops control characters. Newlines and control/bidi
characters in values become spaces or are dropped so a value cannot fake extra lines. Only
fragments the renderer builds itself (mentions, `bold`, `code`) are emitted as they are; a
filter applied after them turns them back into plain, escaped text.
"""

from __future__ import annotations

import html
import os
import re
import stat
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from jitpol.errors import InvalidInput
from jitpol.model.documents import Person
from jitpol.model.times import utc_text
from jitpol.notify.messages import Message

Format = Literal["slack", "github", "text"]
FORMATS: tuple[Format, ...] = ("slack", "github", "text")
OVERRIDE_DIR = "notifications"
BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_OUTPUT_CHARS = 3000  # Slack's limit for one section block's text
SLACK_MAX_BLOCKS = 50

_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\.j2")
# C0/C1 controls (newline and tab are handled separately), line/paragraph separators, bidi controls
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"[\r\n\t]+")
_GITHUB_PUNCT = re.compile(r"([\\`*_{}\[\]()#!|~])")
_SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_GITHUB_LOGIN = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}")


class TemplateProblem(InvalidInput):
    """A notification template cannot be read, parsed or rendered. The message names the file
    (`notifications/<kind>.j2` for an override) and, where known, the line."""


class _Raw(str):
    """Text the renderer built and escaped itself; emitted without escaping again."""

    __slots__ = ()


def clean(value: object) -> str:
    """One line of plain text: newlines and tabs become spaces; controls and bidi marks are dropped."""
    text = "" if value is None else str(value)
    return _INVISIBLE.sub("", _SPACES.sub(" ", text))


def escape_slack(value: object) -> str:
    """Slack's rule for text in messages: `&`, `<`, `>` as entities (`<` starts `<!channel>` and links)."""
    return clean(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_github(value: object) -> str:
    """GitHub markdown: no HTML, no links, no emphasis, no mentions from a value."""
    text = html.escape(clean(value), quote=False)
    text = _GITHUB_PUNCT.sub(r"\\\1", text)
    # a zero-width space after "@" keeps `@org/team` from notifying anyone (what Renovate does)
    return text.replace("@", "@&#8203;")


_ESCAPE: dict[Format, Callable[[object], str]] = {"slack": escape_slack, "github": escape_github, "text": clean}


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    template: str  # where it came from: "notifications/pending.j2" or "builtin:pending.j2"


class _Loader(jinja2.BaseLoader):
    """Templates by name: the repository's `notifications/NAME` if present, else the built-in."""

    def __init__(self, override_dir: Path | None) -> None:
        self._override = override_dir

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if not _TEMPLATE_NAME.fullmatch(template):
            raise jinja2.TemplateNotFound(template)
        if self._override is not None:
            found = _read_override(self._override, template)
            if found is not None:
                return found, f"{OVERRIDE_DIR}/{template}", lambda: True
        path = BUILTIN_DIR / template
        try:
            return path.read_text(encoding="utf-8"), f"builtin:{template}", lambda: True
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None


def _read_override(directory: Path, name: str) -> str | None:
    where = f"{OVERRIDE_DIR}/{name}"
    try:
        # O_NOFOLLOW: the check and the read are one step, so the file cannot be swapped for a link
        fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if (directory / name).is_symlink():
            raise TemplateProblem(f"{where}: is a symbolic link; templates must be regular files") from None
        raise TemplateProblem(f"{where}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TemplateProblem(f"{where}: is not a regular file")
        data = handle.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        raise TemplateProblem(f"{where}: larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateProblem(f"{where}: not UTF-8 (byte {exc.start})") from None


def override_dir(repo_root: Path) -> Path | None:
    """The repository's `notifications/` directory, if it is a real directory inside the repository.
    Raises TemplateProblem when it is a symbolic link (it could lead anywhere on the runner)."""
    directory = repo_root / OVERRIDE_DIR
    if directory.is_symlink():
        raise TemplateProblem(f"{OVERRIDE_DIR}/: is a symbolic link; it must be a directory in the repository")
    return directory if directory.is_dir() else None


class Renderer:
    """Renders messages for one run. `people` give mentions; `timezone` is how times are shown.
    The constructor reads nothing; templates are read and compiled on first use."""

    def __init__(self, repo_root: Path | None, people: Mapping[str, Person], timezone: str = "UTC") -> None:
        self._override = override_dir(repo_root) if repo_root is not None else None
        self._people = people
        try:
            self._zone: ZoneInfo | None = ZoneInfo(timezone) if timezone and timezone != "UTC" else None
        except (ZoneInfoNotFoundError, ValueError):
            self._zone = None
        self._envs: dict[Format, ImmutableSandboxedEnvironment] = {}

    def render(self, message: Message, fmt: Format) -> Rendered:
        """The message's text in `fmt`, at most MAX_OUTPUT_CHARS long. Raises TemplateProblem."""
        env = self._env(fmt)
        name = f"{message.kind}.j2"
        try:
            template = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or name
            raise TemplateProblem(f"{where}:{exc.lineno}: {exc.message}") from None
        except jinja2.TemplateNotFound:
            raise TemplateProblem(f"no template {name} (built-in or in {OVERRIDE_DIR}/)") from None
        where = template.filename or name
        chunks: list[str] = []
        size = 0
        try:
            # streamed, so a template that loops to produce megabytes is cut off early
            for chunk in template.generate(self._context(message, fmt)):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS * 4:
                    break
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"{where}{_line(exc.__traceback__, where)}: {_describe(exc)}") from None
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            # plain Python errors raised by expressions in the template ({{ 1 / 0 }}, {{ "a" + 1 }})
            raise TemplateProblem(f"{where}{_line(exc.__traceback__, where)}: {type(exc).__name__}: {exc}") from None
        return Rendered(_tidy("".join(chunks)), where)

    # -- context --------------------------------------------------------------------------------

    def _env(self, fmt: Format) -> ImmutableSandboxedEnvironment:
        env = self._envs.get(fmt)
        if env is not None:
            return env
        escape = _ESCAPE[fmt]

        def finalize(value: object) -> str:
            return value if type(value) is _Raw else escape(value)

        env = ImmutableSandboxedEnvironment(
            loader=_Loader(self._override), undefined=jinja2.StrictUndefined, autoescape=False,
            finalize=finalize, trim_blocks=True, lstrip_blocks=True, auto_reload=False,
        )
        env.filters["bold"] = lambda v: _Raw(_bold(fmt, finalize(v)))
        env.filters["code"] = lambda v: _Raw(_code(fmt, v))
        env.filters["mention"] = lambda v: self._mention(str(v), fmt)
        self._envs[fmt] = env
        return env

    def _context(self, m: Message, fmt: Format) -> dict[str, Any]:
        mention = self._mention
        missing = max(0, m.required - len(m.approvals))
        return {
            "format": fmt, "kind": m.kind, "grant": m.grant, "requester": m.requester,
            "resource": m.resource, "role": m.role, "justification": m.justification, "reason": m.reason,
            "start": self._when(m.start), "end": self._when(m.end), "until": self._when(m.until),
            "start_iso": utc_text(m.start), "end_iso": utc_text(m.end), "until_iso": utc_text(m.until),
            "window": self._window(m.start, m.end),
            "to": list(m.to), "approvers": list(m.approvers), "approvals": list(m.approvals),
            "required": m.required, "missing": missing, "via": m.via, "path": m.path or "",
            "breakglass": m.breakglass,
            "mentions": _Raw(", ".join(mention(n, fmt) for n in m.to)),
            "requester_mention": mention(m.requester, fmt) if m.requester else _Raw(""),
            "approve_command": f"jitpol approve {m.grant} --as YOU --key YOUR_KEY",
        }

    def _mention(self, name: str, fmt: Format) -> _Raw:
        """A notifying mention where the person names an account on that channel, else the name."""
        person = self._people.get(name)
        accounts = person.accounts if person is not None else {}
        if fmt == "slack":
            slack = accounts.get("slack")
            if isinstance(slack, str) and _SLACK_ID.fullmatch(slack):
                return _Raw(f"<@{slack}>")
        elif fmt == "github":
            login = accounts.get("github")
            if isinstance(login, str) and _GITHUB_LOGIN.fullmatch(login):
                return _Raw(f"@{login}")
        return _Raw(_ESCAPE[fmt](name))

    def _local(self, t: datetime) -> datetime:
        return t.astimezone(self._zone or UTC)

    def _when(self, t: datetime | None) -> str:
        if t is None:
            return ""
        local = self._local(t)
        return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "UTC")

    def _window(self, start: datetime | None, end: datetime | None) -> str:
        if start is None or end is None:
            return self._when(start or end)
        a, b = self._local(start), self._local(end)
        if a.date() == b.date() and a.tzname() == b.tzname():
            return f"{a:%Y-%m-%d %H:%M}\N{EN DASH}{b:%H:%M} {a.tzname() or 'UTC'}"
        return f"{self._when(start)} \N{EN DASH} {self._when(end)}"


def slack_payload(text: str) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: `text` (the notification fallback) and one mrkdwn
    section block per paragraph (each at most 3000 characters, at most 50 blocks)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(p, MAX_OUTPUT_CHARS)}}
              for p in paragraphs[:SLACK_MAX_BLOCKS]]
    return {"text": _cut(text, MAX_OUTPUT_CHARS), "blocks": blocks}


def _bold(fmt: Format, escaped: str) -> str:
    if not escaped:
        return ""
    return {"slack": f"*{escaped}*", "github": f"**{escaped}**", "text": escaped}[fmt]


def _code(fmt: Format, value: object) -> str:
    text = clean(value).replace("`", "'")
    if not text:
        return ""
    if fmt == "slack":  # Slack parses <...> even inside code
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # GitHub shows code spans literally: no mention, link or HTML happens inside one
    return f"`{text}`"


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return _cut(out, MAX_OUTPUT_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(tb: types.TracebackType | None, filename: str) -> str:
    """`:N` for the template line that raised (jinja maps template frames back to their file)."""
    line: int | None = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f":{line}" if line is not None else ""


def _describe(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the sandbox: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"{exc.message} (see docs/notifications.md for the variables a template gets)"
    return exc.message or type(exc).__name__
