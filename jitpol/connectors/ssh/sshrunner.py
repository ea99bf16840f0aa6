"""SshRunner: the commands over one pinned SSH connection (paramiko, imported lazily), and the
host key policy that refuses every key but the pinned one."""

from __future__ import annotations

import io
import shlex
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from jitpol.connectors.ssh.runner import _COMMAND_TIMEOUT, _first_line, _short
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.sshkey import fingerprint, split_key

if TYPE_CHECKING:
    import paramiko


class SshRunner:
    """Runs commands over one SSH connection (paramiko), opened on first use and reused.

    The command string sent is the argument list joined with shlex.quote, prefixed with
    `sudo -n --` when the login user is not root. The host key is pinned; the private key is
    read from `env[key_env]` at connect time only and never kept or shown."""

    def __init__(self, target: str, *, host: str, port: int, user: str, key_env: str, host_key: str,
                 timeout: float, env: Mapping[str, str]) -> None:
        self.name = target
        self._host = host
        self._port = port
        self._user = user
        self._key_env = key_env
        self._host_key = " ".join(host_key.split()[:2])
        self._timeout = timeout
        self._env = env  # read at connect time only: the key is never kept on this object
        self._client: paramiko.SSHClient | None = None

    @property
    def user(self) -> str:
        return self._user

    def shown(self, argv: Sequence[str]) -> str:
        prefix = [] if self._user == "root" else ["sudo", "-n", "--"]
        return " ".join(shlex.quote(arg) for arg in (*prefix, *argv))

    def run(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        import paramiko

        command = self.shown(argv)
        client = self._connection()
        try:
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("connection closed")
            chan = transport.open_session(timeout=self._timeout)
            try:
                chan.settimeout(_COMMAND_TIMEOUT)
                chan.exec_command(command)
                if stdin is not None:
                    chan.sendall(stdin.encode())
                chan.shutdown_write()
                out, err = bytearray(), bytearray()
                while True:
                    if chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                    data = chan.recv(65536)
                    if not data:
                        break
                    out += data
                while data := chan.recv_stderr(65536):
                    err += data
                if not chan.status_event.wait(_COMMAND_TIMEOUT):
                    raise TimeoutError
                status = chan.exit_status
            finally:
                chan.close()
        except TimeoutError:  # socket.timeout is TimeoutError since 3.10
            self.close()
            raise TargetUnavailable(f"target {self.name}: timed out running {_short(argv)}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TargetUnavailable(f"target {self.name}: connection lost running {_short(argv)}: "
                                    f"{type(exc).__name__}") from None
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connection(self) -> paramiko.SSHClient:
        client = self._client
        if client is not None:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                return client
            self.close()
        import paramiko

        pkey = self._private_key()
        pinned = self._pinned_key()
        entry = self._host if self._port == 22 else f"[{self._host}]:{self._port}"
        client = paramiko.SSHClient()
        client.get_host_keys().add(entry, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_refuse_unknown_policy())
        try:
            client.connect(
                self._host, port=self._port, username=self._user, pkey=pkey,
                allow_agent=False, look_for_keys=False, timeout=self._timeout,
                banner_timeout=self._timeout, auth_timeout=self._timeout, channel_timeout=self._timeout,
            )
            transport = client.get_transport()
            if transport is None:
                raise paramiko.SSHException("no transport after connect")
            presented = transport.get_remote_server_key()
            if presented.asbytes() != pinned.asbytes():  # belt and braces over paramiko's check
                raise paramiko.BadHostKeyException(entry, presented, pinned)
        except paramiko.BadHostKeyException as exc:
            client.close()
            self._host_key_refused(exc.key)
        except _UnknownHostKey as exc:
            client.close()
            self._host_key_refused(exc.key)
        except paramiko.AuthenticationException:
            client.close()
            raise PermanentTargetError(
                f"target {self.name}: {self._host}:{self._port} refused the key in {self._key_env} for user "
                f"{self._user!r}"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise TargetUnavailable(
                f"target {self.name}: cannot reach {self._host}:{self._port} over SSH: "
                f"{_first_line(str(exc)) or type(exc).__name__}"
            ) from None
        # every command is a small request/response: without this, Nagle's algorithm and delayed
        # ACKs add ~40 ms to each channel open
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        self._client = client
        return client

    def _host_key_refused(self, presented: paramiko.PKey) -> NoReturn:
        got = "SHA256:" + _b64(presented.asbytes())
        raise PermanentTargetError(
            f"target {self.name}: host key of {self._host}:{self._port} is {presented.get_name()} {got}, "
            f"but host_key pins {fingerprint(self._host_key)}; refusing to connect"
        )

    def _pinned_key(self) -> paramiko.PKey:
        import paramiko

        kind, blob = split_key(self._host_key)
        try:
            return paramiko.PKey.from_type_string(kind, blob)
        except (paramiko.SSHException, ValueError, TypeError):
            raise PermanentTargetError(f"target {self.name}: setting host_key is not a usable {kind} key") from None

    def _private_key(self) -> paramiko.PKey:
        import paramiko

        text = self._env.get(self._key_env)
        if not text:
            raise PermanentTargetError(
                f"target {self.name}: environment variable {self._key_env} (key_env) is not set"
            )
        key_classes: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
        for cls in key_classes:
            try:
                return cls.from_private_key(io.StringIO(text))
            except paramiko.PasswordRequiredException:
                raise PermanentTargetError(
                    f"target {self.name}: the key in {self._key_env} is encrypted; jitpol needs it without a passphrase"
                ) from None
            except (paramiko.SSHException, ValueError, TypeError, IndexError):
                continue
        raise PermanentTargetError(
            f"target {self.name}: {self._key_env} does not hold an ed25519, ecdsa or rsa private key"
        )


class _UnknownHostKey(Exception):
    """Raised by the host key policy; turned into PermanentTargetError in _connection."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


_POLICY: Any = None


def _refuse_unknown_policy() -> paramiko.MissingHostKeyPolicy:
    """A policy refusing every host key not already in the client's HostKeys (only the pinned
    key is). Built lazily: the class derives from paramiko's."""
    global _POLICY  # one class, made on first use
    if _POLICY is None:
        import paramiko

        class RefuseUnknown(paramiko.MissingHostKeyPolicy):
            def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
                raise _UnknownHostKey(key)

        _POLICY = RefuseUnknown
    policy: paramiko.MissingHostKeyPolicy = _POLICY()
    return policy


def _b64(blob: bytes) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
