"""jitpol.vcs.githubapi: the one GitHub REST client, against a tiny local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.vcs.githubapi import GitHubApi, error_detail, rate_limited

TOKEN = "ghp_unit_token_value"
ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        status, headers, body = ANSWERS.get(self.path, (404, {}, b'{"message": "Not Found"}'))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[GitHubApi]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ANSWERS.clear()
    try:
        yield GitHubApi(f"http://127.0.0.1:{server.server_address[1]}", "org/repo", TOKEN, timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_every_page_is_read_and_a_link_to_another_host_is_refused(api: GitHubApi) -> None:
    base = f"http://{api.host}"
    ANSWERS["/repos/org/repo/items?per_page=100"] = (
        200, {"Link": f'<{base}/repositories/7/items?page=2>; rel="next"'}, b'[{"n": 1}]')
    ANSWERS["/repositories/7/items?page=2"] = (200, {}, b'[{"n": 2}]')
    assert api.pages("/items", "items") == [{"n": 1}, {"n": 2}]
    ANSWERS["/repos/org/repo/away?per_page=100"] = (
        200, {"Link": '<http://elsewhere.example/x>; rel="next"'}, b"[]")
    with pytest.raises(PermanentTargetError, match="another host"):
        api.pages("/away", "away")


def test_statuses_map_to_temporary_and_permanent_errors(api: GitHubApi) -> None:
    assert api.get("/gone", "gone", absent=(404,)) is None
    with pytest.raises(PermanentTargetError, match=r"HTTP 404 Not Found .*wrong spec\.git\.repository"):
        api.get("/gone", "gone")
    ANSWERS["/repos/org/repo/limited"] = (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}, b"{}")
    with pytest.raises(TargetUnavailable, match="rate limited; the limit resets at 1970-01-01T00:00:00Z"):
        api.get("/limited", "limited")
    ANSWERS["/repos/org/repo/busy"] = (502, {}, b"<html>proxy</html>")
    with pytest.raises(TargetUnavailable, match=r"HTTP 502$"):
        api.get("/busy", "busy")
    ANSWERS["/repos/org/repo/moved"] = (301, {"Location": f"http://x/?t={TOKEN}"}, b"")
    with pytest.raises(PermanentTargetError, match="does not follow redirects") as caught:
        api.get("/moved", "moved")
    assert TOKEN not in str(caught.value)


def test_a_post_succeeds_on_2xx_whatever_the_body(api: GitHubApi) -> None:
    ANSWERS["/repos/org/repo/issues/1/comments"] = (201, {}, b"not json")
    assert api.post("/issues/1/comments", {"body": "hi"}, "comment").status == 201
    ANSWERS["/repos/org/repo/text"] = (200, {}, b"not json")
    with pytest.raises(PermanentTargetError, match="not JSON"):
        api.get("/text", "text")


def test_configuration_is_checked_before_any_request() -> None:
    with pytest.raises(PermanentTargetError, match="plain http"):
        GitHubApi("http://github.example", "org/repo", TOKEN)
    with pytest.raises(PermanentTargetError, match="OWNER/NAME"):
        GitHubApi("https://api.github.com", "org/..", TOKEN)
    with pytest.raises(PermanentTargetError, match="credentials"):
        GitHubApi("https://me:pw@api.github.com", "org/repo", TOKEN)


def test_error_details_are_scrubbed_before_they_are_cut_and_printable() -> None:
    raw = json.dumps({"message": "\x1b[31mx" + TOKEN}).encode()
    assert error_detail(raw, lambda text: text.replace(TOKEN, "***"), 9) == "[31mx***"
    assert error_detail(b"<html>proxy</html>", lambda text: text, 50) == ""
    assert error_detail(b"no_service", lambda text: text, 50, plain=True) == "no_service"
    assert rate_limited(429, {}) and rate_limited(403, {"retry-after": "5"}) and not rate_limited(403, {})
