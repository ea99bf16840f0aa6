"""A throwaway AWS API server (moto in server mode) on 127.0.0.1 for tests and demos.

    with ThrowawayMoto() as aws:
        boto3.client("iam", endpoint_url=aws.endpoint_url, region_name="us-east-1", ...)

    python tools/throwaway_moto.py            # serves until Ctrl-C, prints AWS_ENDPOINT_URL=...

Contract:
- start() runs moto's ThreadedMotoServer in this process, bound to 127.0.0.1 on a port the kernel
  picks, and returns once the server answers HTTP. MotoNotFound when `moto[server]` is not installed.
- The SDK talks real HTTP to it (`endpoint_url`); moto implements IAM, IAM Identity Center
  (sso-admin, with one ready instance), identitystore and Secrets Manager among others.
- Every account/region starts empty except moto's defaults; reset() wipes all state
  (POST /moto-api/reset), so a long-lived server can be shared by many tests.
- stop() is idempotent.
"""

from __future__ import annotations

import logging
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python tools/throwaway_moto.py): make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import throwaway_common as common
from tools.throwaway_common import free_port  # public here too

__all__ = ["MotoNotFound", "ThrowawayMoto", "ThrowawayMotoError", "free_port"]

_READY_TIMEOUT_S = 10.0


class ThrowawayMotoError(RuntimeError):
    """The throwaway moto server could not be started."""


class MotoNotFound(ThrowawayMotoError):
    """moto (with its server extra) is not installed."""


class ThrowawayMoto(common.Throwaway):
    """moto's ThreadedMotoServer, started on a free loopback port (see the module docstring)."""

    def __init__(self) -> None:
        self._server: Any = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        return common.require_started(self._port, ThrowawayMotoError, "the moto server is not running")

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # moto missing, or installed without the `server` extra (flask)
            raise MotoNotFound(f"moto server mode is not available ({exc}); pip install 'moto[server]'") from None
        # Port 0: the kernel picks a free port while binding, so there is no race for it. (A port
        # that is taken would kill moto's server thread before it signals ready, and start() would
        # wait forever.)
        # werkzeug logs every request at INFO on stderr: a test run would drown in them
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        port = int(server.get_host_and_port()[1])
        if not self._wait_ready(port):
            server.stop()
            raise ThrowawayMotoError(f"moto did not answer on port {port} within {_READY_TIMEOUT_S:.0f} s")
        self._server, self._port = server, port

    def reset(self) -> None:
        """Forget every resource in every account and region."""
        url = f"{self.endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, method="POST", data=b"")  # noqa: S310 (our own http://127.0.0.1)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the same)
            response.read()

    def stop(self) -> None:
        server, self._server, self._port = self._server, None, None
        if server is not None:
            server.stop()

    @staticmethod
    def _wait_ready(port: int) -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        url = f"http://127.0.0.1:{port}/moto-api/data.json"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    response.read()
                    return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        return False


def main() -> None:
    with ThrowawayMoto() as aws:
        print(f"AWS_ENDPOINT_URL={aws.endpoint_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
