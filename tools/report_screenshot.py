"""Regenerate docs/img/report.png: the example policies/ reconciled against a throwaway
PostgreSQL at the demo's points in time, `jitpol report` rendered, and the page photographed in
headless Chromium at 1280 px wide.

    .venv/bin/python tools/report_screenshot.py [--out docs/img/report.png] [--html OUT.html]

Also the browser driver the end-to-end test uses (`Chromium`, `visit`): Chromium speaks the
DevTools protocol over a pipe (`--remote-debugging-pipe`: NUL-separated JSON on fds 3 and 4),
so no port, no websocket library and nothing on the network. `visit` records every request the
page attempts, every console message and uncaught exception, and takes the screenshot.

Needs Debian's `chromium` (apt-get install chromium); JITPOL_CHROMIUM names another binary.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Flags that work as root in a container: no sandbox, no GPU, and nothing that phones home.
# The host resolver rule makes every name lookup fail, so a page could not reach a server even
# if it tried (the visit still records the attempt).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    """The Chromium binary: $JITPOL_CHROMIUM, else chromium / chromium-browser on PATH."""
    named = os.environ.get("JITPOL_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless Chromium process driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, executable: str, profile: Path, args: Sequence[str] = ()) -> None:
        self.executable = executable
        self.profile = profile
        self.args = tuple(args)
        self.events: list[dict[str, Any]] = []  # protocol events received so far, in order
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_browser = -1
        self._from_browser = -1
        self._buffer = b""
        self._next_id = 0
        self._stderr = tempfile.TemporaryFile()

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.profile.mkdir(parents=True, exist_ok=True)
        cmd_read, cmd_write = os.pipe()  # we write commands; Chromium reads them on fd 3
        out_read, out_write = os.pipe()  # Chromium writes replies and events on fd 4

        def child_fds() -> None:
            # dup first: one of the pipe ends may already be fd 3 or 4
            a, b = os.dup(cmd_read), os.dup(out_write)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)  # dup2 onto itself (a == 3) leaves the flag as os.dup set it
            os.set_inheritable(4, True)

        self._proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", *self.args, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            # close_fds=False: fds 3 and 4 made by child_fds must survive; Python makes its own fds
            # non-inheritable, so nothing else leaks into the browser
            close_fds=False, preexec_fn=child_fds,
        )
        os.close(cmd_read)
        os.close(out_write)
        self._to_browser, self._from_browser = cmd_write, out_read

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                self.call("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._proc = None

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        """Send one command and wait for its reply; events arriving meanwhile go to self.events."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        """The first event `method` (of `session`) not yet consumed, waiting for it if needed."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if (ev.get("method") == method and not ev.get("_consumed")
                        and (session is None or ev.get("sessionId") == session)):
                    ev["_consumed"] = True
                    return ev
            seen = len(self.events)
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited: {self.stderr()[-2000:]}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message


@dataclass
class Visit:
    """What happened while a page loaded."""

    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, the page first
    console: list[str] = field(default_factory=list)  # console messages: "level: text"
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, browser log errors
    screenshot: bytes = b""
    pdf: bytes = b""
    values: dict[str, Any] = field(default_factory=dict)  # results of the expressions asked for
    height: int = 0

    @property
    def foreign_requests(self) -> list[str]:
        """Requests other than the page itself (data: URLs never leave the page)."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


def visit(browser: Chromium, url: str, *, width: int = 1280, height: int = 900, full_page: bool = True,
          pdf: bool = False, evaluate: dict[str, str] | None = None, settle: float = 0.3) -> Visit:
    """Load `url` in a new tab at `width` CSS pixels and record what it does."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    start = len(browser.events)
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    browser.call("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired", session)
    time.sleep(settle)  # late console messages or requests (there should be none) get a chance to show
    out = Visit(url)
    for name, expr in (evaluate or {}).items():
        res = browser.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
        out.values[name] = res.get("result", {}).get("value")
    metrics = browser.call("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    out.height = int(size["height"])
    if full_page:
        shot = browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": out.height, "scale": 1}}, session=session, timeout=60)
    else:
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
    out.screenshot = base64.b64decode(shot["data"])
    if pdf:
        printed = browser.call("Page.printToPDF", {"landscape": True, "printBackground": True}, session=session,
                               timeout=60)
        out.pdf = base64.b64decode(printed["data"])
    for ev in browser.events[start:]:
        if ev.get("sessionId") != session:
            continue
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            out.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            out.console.append(f"{params.get('type')}: {text}")
            if params.get("type") in ("error", "assert"):
                out.errors.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            out.errors.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            out.console.append(f"{entry.get('level')}: {entry.get('text')}")
            if entry.get("level") == "error":
                out.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
    browser.call("Target.closeTarget", {"targetId": target})
    return out


@contextmanager
def chromium(executable: str | None = None) -> Iterator[Chromium]:
    """A started browser with a fresh, empty profile that is removed afterwards."""
    exe = executable or find_chromium()
    if exe is None:
        raise BrowserError("chromium not found: apt-get install chromium (or set JITPOL_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="jitpol-chromium-") as profile, Chromium(exe, Path(profile)) as b:
        yield b


# -- the docs picture ----------------------------------------------------------------------------

REPORT_AT = "2026-12-01T09:50:00Z"  # after the first apply: something in every table


def build_example(work: Path) -> Path:
    """The example policies/ reconciled on a throwaway PostgreSQL at the demo's times up to REPORT_AT
    (tools/demo.py); returns the repository (work/repo)."""
    sys.path.insert(0, str(ROOT))
    import psycopg
    from click.testing import CliRunner

    from jitpol.cli.main import cli
    from tools.demo import SETUP_SQL, TIMES
    from tools.throwaway_pg import ThrowawayPostgres

    repo = work / "repo"
    shutil.copytree(ROOT / "policies", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=docs", "-c", "user.email=docs@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example policies"], check=True)
    with ThrowawayPostgres(work / "pg") as pg:
        with psycopg.connect(pg.superuser_dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
        env = {"PG_PROD_DSN": pg.superuser_dsn}
        for at, _story in TIMES:
            if at > REPORT_AT:
                break
            res = CliRunner(env=env).invoke(cli, ["apply", "--at", at, "--repo", str(repo)], catch_exceptions=False)
            if res.exit_code not in (0, 1):
                raise SystemExit(f"apply --at {at} failed:\n{res.output}")
    return repo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report.png")
    parser.add_argument("--html", type=Path, help="also keep the rendered report here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from datetime import datetime

    from jitpol.report import report_html

    with tempfile.TemporaryDirectory(prefix="jitpol-report-shot-") as tmp:
        work = Path(tmp)
        repo = build_example(work)
        page = work / "report.html"
        page.write_text(report_html(repo, datetime.fromisoformat(REPORT_AT)), encoding="utf-8")
        if args.html:
            shutil.copyfile(page, args.html)
        with chromium() as browser:
            seen = visit(browser, page.as_uri())
        if seen.errors or seen.foreign_requests:
            raise SystemExit(f"the page misbehaved: errors={seen.errors} requests={seen.foreign_requests}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(seen.screenshot)
    print(f"wrote {args.out} (1280 x {seen.height} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
