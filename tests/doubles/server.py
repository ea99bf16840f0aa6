"""The HTTP server life cycle the local doubles (and the AWS shim) share.

    server = LocalServer(Handler)           # bound to 127.0.0.1, the kernel picks the port
    server.start()                          # serves from a daemon thread
    requests.get(server.url)
    server.stop()                           # stops serving, closes the socket, joins the thread

Contract: the port is bound in the constructor, so `port` and `url` are valid before start()
and no other process can take the port in between. stop() is safe to call twice and before
start(). With `tls` (an ssl.SSLContext holding the certificate) the listening socket speaks
HTTPS and `url` says https.
"""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["LocalServer", "QuietHandler", "Served", "closed_port"]

_JOIN_TIMEOUT = 5.0


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound by the kernel's choice, then closed
    (what a test of an unreachable target connects to)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler base for doubles: HTTP/1.1 (keep-alive, as the SDKs expect), no Nagle
    delay, no access log on stderr (each double keeps its own request log)."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle's algorithm and the client's delayed
    # ACK every answer would stall ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) serving `handler` from a daemon thread."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None, name: str | None = None
    ) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True  # a hanging client must not keep the test process alive
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "http" if tls is None else "https"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._closed = False

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which must be running
            self.server.shutdown()
            self._thread.join(timeout=_JOIN_TIMEOUT)
        self.server.server_close()


class Served:
    """Mixin for a double that makes a fresh LocalServer on every start (through _serve()) and
    stops it on stop(); `url` is "" until started. stop() is safe to call twice."""

    url = ""
    _server: LocalServer | None = None

    def _serve(self, handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None) -> str:
        server = LocalServer(handler, tls=tls)
        server.start()
        self._server, self.url = server, server.url
        return self.url

    def start(self) -> str:
        raise NotImplementedError  # each double serves its own handler through _serve()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Self:
        """`with Double(...) as double:` starts it, and stops it however the block ends."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
