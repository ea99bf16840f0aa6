"""A throwaway Samba Active Directory domain controller on a loopback address, for tests.

    with ThrowawaySamba(Path("/tmp/ad")) as ad:
        ldap3.Connection(ldap3.Server(ad.ldaps_url, tls=...), ad.bind_dn, ad.password, auto_bind=True)

    python tools/throwaway_samba.py start DIR   # prints KEY=VALUE lines (shell-quoted), writes DIR/env
    python tools/throwaway_samba.py stop DIR

Contract:
- start() provisions a new domain (`samba-tool domain provision --server-role=dc
  --dns-backend=NONE --use-rfc2307`, realm EXAMPLE.TEST, base DN dc=example,dc=test) into
  DIR/dc, with every file Samba writes (smb.conf, databases, pid file, sockets, log) below it,
  never the system's /etc/samba, /var/lib/samba or /run/samba. Provisioning takes about 4 s.
- Samba's LDAP server has no port setting: it listens on 389 (LDAP, StartTLS) and 636 (LDAPS) of
  the addresses in `interfaces`. So each server takes its own loopback address 127.0.0.N (N in
  2..254, one where both ports are free; Linux routes all of 127/8 to lo), and several can run
  at once (pytest-xdist workers, other sessions). That needs root, as Samba itself does.
- TLS: a fresh test CA and a server certificate for IP 127.0.0.N (the `cryptography` package),
  configured through `tls keyfile/certfile/cafile`; trust `ca_file` to verify the server.
  Only the ldap service runs (`server services = ldap`, process model single).
- Simple binds on plain LDAP are refused by Samba's default (`ldap server require strong auth`):
  bind over LDAPS or after StartTLS. The Administrator's password is random per server.
- SambaNotFound when samba or samba-tool is missing (Debian: apt-get install samba
  samba-ad-provision samba-ad-dc), the cryptography package is missing, or not running as root.
- stop() sends SIGTERM to the PID of `samba: root process` (checked by its command line, then its
  process group is killed if anything is left), is idempotent, works from a fresh object too (it
  reads DIR/env), and removes the server's files.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if not __package__:  # run as a script (python tools/throwaway_samba.py): make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import throwaway_common as common

__all__ = ["SambaNotFound", "ThrowawaySamba", "ThrowawaySambaError"]

REALM = "EXAMPLE.TEST"
DOMAIN = "EXAMPLE"
BASE_DN = "dc=example,dc=test"
USERS_DN = f"cn=users,{BASE_DN}"
ROOT_PROCESS = "samba: root process"
_READY_TIMEOUT = 30.0
_PROVISION_TIMEOUT = 120

# An anonymous LDAPv3 simple bind (message id 1), BER-encoded: proves the LDAP server answers.
_ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")


class ThrowawaySambaError(RuntimeError):
    """The throwaway domain controller could not be started or stopped."""


class SambaNotFound(ThrowawaySambaError):
    """samba, samba-tool or the cryptography package is missing, or this process is not root."""


def _find_program(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise SambaNotFound(f"{name} not found (on Debian: apt-get install samba samba-ad-provision samba-ad-dc)")
    return found


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_loopback() -> str:
    """A loopback address 127.0.0.N (N in 2..254) on which ports 389 and 636 were free a moment
    ago; the caller retries with another one when Samba cannot bind it."""
    candidates = list(range(2, 255))
    random.shuffle(candidates)
    for n in candidates:
        host = f"127.0.0.{n}"
        if _port_free(host, 389) and _port_free(host, 636):
            return host
    raise ThrowawaySambaError("no loopback address 127.0.0.N has ports 389 and 636 free")


def _answers(host: str, port: int) -> bool:
    """Does an LDAP server on host:port answer an anonymous bind with success?"""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(_ANONYMOUS_BIND)
            reply = s.recv(64)
    except OSError:
        return False
    marker = reply.find(b"\x61")  # BindResponse; resultCode 0 is success
    return marker != -1 and reply[marker + 2 : marker + 5] == b"\x0a\x01\x00"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def make_certificates(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for IP `host` signed by it, valid from a day ago (by
    this process's clock, which libfaketime may shift) for two days: (key, cert, ca) paths, the
    key mode 0600 as Samba demands."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ModuleNotFoundError:
        raise SambaNotFound("the cryptography package is not installed (pip install -e '.[dev]')") from None

    now = datetime.now(UTC)
    begin, end = now - timedelta(days=1), now + timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitpol throwaway Samba test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(begin).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(begin).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key_file, cert_file, ca_file = directory / "key.pem", directory / "cert.pem", directory / "ca.pem"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))  # fmt: skip
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file, ca_file


class ThrowawaySamba(common.Throwaway):
    """One disposable Samba AD DC whose files live under `base_dir` (`env`, mode 0600, and `dc/`
    with the provisioned domain, tls/, run/ and log/)."""

    base_dn = BASE_DN
    users_dn = USERS_DN
    realm = REALM

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir).absolute()
        self._host: str | None = None
        self._password: str | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return common.require_started(self._host, ThrowawaySambaError)

    @property
    def password(self) -> str:
        """The Administrator's password (random per server)."""
        return common.require_started(self._password, ThrowawaySambaError)

    @property
    def url(self) -> str:
        """Plain LDAP (port 389): StartTLS before binding."""
        return f"ldap://{self.host}:389"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:636"

    @property
    def bind_dn(self) -> str:
        return f"cn=administrator,{USERS_DN}"

    @property
    def ca_file(self) -> Path:
        return self.run_dir / "tls" / "ca.pem"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "dc"

    @property
    def env_file(self) -> Path:
        return self.base_dir / "env"

    @property
    def conf(self) -> Path:
        return self.run_dir / "etc" / "smb.conf"

    def version(self) -> str:
        """`samba --version`, e.g. "Version 4.17.12-Debian"."""
        out = subprocess.run([_find_program("samba"), "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    def env(self) -> dict[str, str]:
        return {
            "AD_URL": self.url,
            "AD_LDAPS_URL": self.ldaps_url,
            "AD_HOST": self.host,
            "AD_BIND_DN": self.bind_dn,
            "AD_PASSWORD": self.password,
            "AD_BASE_DN": self.base_dn,
            "AD_CA_FILE": str(self.ca_file),
            "AD_RUNDIR": str(self.run_dir),
        }

    def start(self) -> None:
        """Provision the domain, start samba and wait until LDAP answers. Raises SambaNotFound
        without Samba (or root), ThrowawaySambaError on any other failure (the files it made are
        removed again)."""
        if self._host is not None:
            raise ThrowawaySambaError("already started")
        if self.env_file.exists():
            raise ThrowawaySambaError(f"{self.base_dir} already holds a server; stop it first")
        samba = _find_program("samba")
        samba_tool = _find_program("samba-tool")
        if os.geteuid() != 0:
            raise SambaNotFound("a Samba domain controller must run as root (it binds ports 389 and 636)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.run_dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ThrowawaySambaError(f"{self.run_dir} exists: a server was left behind there") from None
        try:
            # complexity: AD wants three of upper, lower, digit, other
            self._password = secrets.token_urlsafe(18) + "aA1-"
            self._host = free_loopback()
            for sub in ("tls", "run", "log"):
                (self.run_dir / sub).mkdir(mode=0o700)
            key, cert, ca = make_certificates(self.run_dir / "tls", self.host)
            options = {
                "interfaces": f"{self.host}/8",  # an address inside lo's 127/8: Samba takes it as given
                "bind interfaces only": "yes",
                "server services": "ldap",
                "tls enabled": "yes",
                "tls keyfile": str(key),
                "tls certfile": str(cert),
                "tls cafile": str(ca),
                "pid directory": str(self.run_dir / "run"),
                "ncalrpc dir": str(self.run_dir / "run" / "ncalrpc"),
                "winbindd socket directory": str(self.run_dir / "run" / "winbindd"),
                "log file": str(self.run_dir / "log" / "samba.log"),
            }
            self._run([
                samba_tool, "domain", "provision", f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
                "--dns-backend=NONE", "--use-rfc2307", f"--adminpass={self.password}",
                f"--targetdir={self.run_dir}", *(f"--option={k}={v}" for k, v in options.items()),
            ], "samba-tool domain provision", secret=self.password)  # fmt: skip
            self._start_server(samba)
        except BaseException:
            self._shutdown()
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self._host = self._password = None
            raise
        common.write_env_file(self.env_file, self.env())

    def stop(self) -> None:
        """Stop samba and remove its files. Safe to call twice, and on an object that did not
        start the server (settings are read from `env_file`)."""
        if self._host is None and not self._load_env():
            return
        self._shutdown()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.env_file.unlink(missing_ok=True)
        self._host = self._password = None

    # -- internals --------------------------------------------------------------------------

    def _load_env(self) -> bool:
        values = common.read_env_file(self.env_file)
        if values is None:
            return False
        self._host = values["AD_HOST"]
        self._password = values["AD_PASSWORD"]
        return True

    def _run(self, argv: list[str], what: str, *, secret: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=_PROVISION_TIMEOUT,
                                cwd=self.run_dir)  # fmt: skip
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-2000:].replace(secret, "***")
            raise ThrowawaySambaError(f"{what} failed ({result.returncode}): {tail}")

    def _start_server(self, samba: str) -> None:
        log = self.run_dir / "log" / "samba.log"
        result = subprocess.run(
            [samba, "-s", str(self.conf), "-D", "-M", "single"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=60, cwd=self.run_dir,
        )  # fmt: skip
        if result.returncode != 0:
            raise ThrowawaySambaError(f"samba exited with {result.returncode}: {result.stderr.strip()[-2000:]}")
        deadline = time.monotonic() + _READY_TIMEOUT
        while not _answers(self.host, 389):
            pid = self._pid()
            if time.monotonic() > deadline or (pid is not None and common.process_gone(pid)):
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ThrowawaySambaError(f"samba did not answer on {self.host}:389\n--- samba.log ---\n{tail}")
            time.sleep(0.05)

    def _pid(self) -> int | None:
        try:
            pid = int((self.run_dir / "run" / "samba.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        # the pid file may outlive the process, and its number be reused by another one
        return pid if _cmdline(pid).startswith(ROOT_PROCESS) else None

    def _shutdown(self) -> None:
        pid = self._pid()
        if pid is None or common.process_gone(pid):
            return
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return
        stopped = common.stop_process(pid, (signal.SIGTERM, signal.SIGKILL), timeout=10, interval=0.02)
        if group == pid:  # samba -D makes its root process a session and group leader: its tasks follow
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not stopped:
            raise ThrowawaySambaError(f"samba {pid} did not stop")


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(
        argv,
        prog="throwaway_samba",
        description=(__doc__ or "").split("\n\n", 1)[0],
        error=ThrowawaySambaError,
        make=lambda args: ThrowawaySamba(args.dir),
    )


if __name__ == "__main__":
    sys.exit(main())
