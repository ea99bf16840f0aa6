"""A throwaway OpenLDAP server on 127.0.0.1 for tests and the demo (stdlib only).

    with ThrowawaySlapd(Path("/tmp/ldap")) as ldap:
        ldap3.Connection(ldap.url, ldap.bind_dn, ldap.password, auto_bind=True)

    python tools/throwaway_slapd.py start DIR [--tls]   # prints KEY=VALUE lines (shell-quoted), writes DIR/env
    python tools/throwaway_slapd.py stop DIR

Contract:
- start() writes its own slapd.conf (never the system's /etc/ldap/slapd.d or /var/lib/ldap),
  loads the base entries with slapadd into its own mdb directory and starts `slapd -f` on a free
  port of 127.0.0.1 only; SlapdNotFound when slapd/slapadd or the schemas are missing (Debian:
  `apt-get install slapd ldap-utils`).
- The directory: suffix dc=example,dc=org with ou=people, ou=groups and ou=policies; rootdn
  cn=admin,dc=example,dc=org with a random password; schemas core, cosine, inetorgperson, nis.
- Overlays: memberof (groupOfNames/member -> memberOf), refint (deleting an entry removes it from
  `member`; a group that would become empty gets PLACEHOLDER_DN instead, the same placeholder the
  jitpol ldap connector uses) and ppolicy with a default policy (cn=default,ou=policies,...), so
  the server refuses binds after an entry's `pwdEndTime` (OpenLDAP 2.5 enforces pwdEndTime only
  when a password policy applies to the entry).
- With tls=True (needs the openssl command) it also serves StartTLS on `url` and LDAPS on
  `ldaps_url`, with a fresh self-signed certificate for IP 127.0.0.1 in `ca_file` (trust that
  file, e.g. through SSL_CERT_FILE, to verify the server).
- stop() is idempotent and works from a fresh object too (it reads DIR/env), so a separate
  process can stop a server that another one started. It removes the server's files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a script (python tools/throwaway_slapd.py): make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import throwaway_common as common
from tools.throwaway_common import process_gone  # public here too (tests import it from this module)

__all__ = ["PLACEHOLDER_DN", "SlapdNotFound", "ThrowawaySlapd", "ThrowawaySlapdError", "process_gone"]

BASE_DN = "dc=example,dc=org"
ADMIN_RDN = "cn=admin"
POLICY_DN = f"cn=default,ou=policies,{BASE_DN}"
# Must equal jitpol.connectors.ldap.PLACEHOLDER_DN (this file imports nothing of jitpol; a test
# compares the two).
PLACEHOLDER_DN = "cn=jitpol-empty-group-placeholder"

_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/openldap", "/usr/lib64/openldap", "/usr/libexec/openldap")
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema")
_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
_MODULES = ("back_mdb", "memberof", "refint", "ppolicy")
_START_ATTEMPTS = 3  # a free port can be taken by someone else before slapd binds it
_READY_TIMEOUT = 15.0

# An anonymous LDAPv3 simple bind (message id 1), BER-encoded: the cheapest request that proves
# slapd answers (a TCP connect alone can succeed before the backends are open).
_ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")


class ThrowawaySlapdError(RuntimeError):
    """The throwaway server could not be started or stopped."""


class SlapdNotFound(ThrowawaySlapdError):
    """slapd, slapadd, its modules or its schemas are not installed on this machine."""


def _find_program(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise SlapdNotFound(f"{name} not found (on Debian: apt-get install slapd ldap-utils)")
    return found


def _find_dir(candidates: tuple[str, ...], probe: str, what: str) -> Path:
    for candidate in candidates:
        if (Path(candidate) / probe).exists():
            return Path(candidate)
    raise SlapdNotFound(f"OpenLDAP {what} not found in {', '.join(candidates)} (apt-get install slapd)")


def _ssha(password: str) -> str:
    """RFC 2307 {SSHA}: slapd verifies it, and no slappasswd process is needed."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the scheme slapd checks
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _answers(port: int) -> bool:
    """Does an LDAP server on 127.0.0.1:port answer an anonymous bind with success?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(_ANONYMOUS_BIND)
            reply = s.recv(64)
    except OSError:
        return False
    # BindResponse: 30 LL 02 01 01 61 LL 0a 01 <resultCode>; resultCode 0 is success
    marker = reply.find(b"\x61")
    return marker != -1 and reply[marker + 2 : marker + 5] == b"\x0a\x01\x00"


class ThrowawaySlapd(common.Throwaway):
    """One disposable slapd whose files live under `base_dir` (`env`, mode 0600, and `slapd/`
    with slapd.conf, base.ldif, db/, slapd.pid, slapd.err)."""

    base_dn = BASE_DN

    def __init__(self, base_dir: Path, *, tls: bool = False) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.tls = tls
        self._port: int | None = None
        self._tls_port: int | None = None
        self._password: str | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return common.require_started(self._port, ThrowawaySlapdError)

    @property
    def password(self) -> str:
        """The rootdn's password (random per server)."""
        return common.require_started(self._password, ThrowawaySlapdError)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        tls_port = common.require_started(
            self._tls_port, ThrowawaySlapdError, "the server is not started with tls=True"
        )
        return f"ldaps://127.0.0.1:{tls_port}"

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate (tls=True), which is its own CA."""
        return self.run_dir / "cert.pem"

    @property
    def bind_dn(self) -> str:
        return f"{ADMIN_RDN},{BASE_DN}"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "slapd"

    @property
    def env_file(self) -> Path:
        return self.base_dir / "env"

    def env(self) -> dict[str, str]:
        """The variables written to `env_file`."""
        env = {
            "LDAP_URL": self.url,
            "LDAP_BIND_DN": self.bind_dn,
            "LDAP_PASSWORD": self.password,
            "LDAP_BASE_DN": self.base_dn,
            "LDAP_PORT": str(self.port),
            "LDAP_RUNDIR": str(self.run_dir),
        }
        if self._tls_port is not None:
            env["LDAPS_URL"] = self.ldaps_url
            env["LDAPS_PORT"] = str(self._tls_port)
            env["LDAP_CA_FILE"] = str(self.ca_file)
        return env

    def start(self) -> None:
        """Write the config, slapadd the base, start slapd and wait until it answers.

        Raises SlapdNotFound without OpenLDAP, ThrowawaySlapdError on any other failure (the
        files it made are removed again)."""
        if self._port is not None:
            raise ThrowawaySlapdError("already started")
        if self.env_file.exists():
            raise ThrowawaySlapdError(f"{self.base_dir} already holds a server; stop it first")
        slapd = _find_program("slapd")
        slapadd = _find_program("slapadd")
        openssl = _find_program("openssl") if self.tls else ""
        module_dir = _find_dir(_MODULE_DIRS, "memberof.la", "modules")
        schema_dir = _find_dir(_SCHEMA_DIRS, "inetorgperson.schema", "schemas")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.run_dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ThrowawaySlapdError(f"{self.run_dir} exists: a server was left behind there") from None
        try:
            self._password = secrets.token_urlsafe(24)
            if self.tls:
                self._make_certificate(openssl)
            self._write_config(module_dir, schema_dir)
            self._run([slapadd, "-f", str(self.conf), "-b", BASE_DN, "-l", str(self.run_dir / "base.ldif"), "-q"],
                      "slapadd")  # fmt: skip
            self._start_server(slapd)
        except BaseException:
            self._shutdown()
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self._port = self._tls_port = self._password = None
            raise
        common.write_env_file(self.env_file, self.env())

    def stop(self) -> None:
        """Stop slapd (SIGTERM, SIGKILL after 10 s) and remove its files. Safe to call twice, and
        on an object that did not start the server (settings are read from `env_file`)."""
        if self._port is None and not self._load_env():
            return
        self._shutdown()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.env_file.unlink(missing_ok=True)
        self._port = self._tls_port = self._password = None

    # -- internals --------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.run_dir / "slapd.conf"

    def _load_env(self) -> bool:
        values = common.read_env_file(self.env_file)
        if values is None:
            return False
        self._port = int(values["LDAP_PORT"])
        self._tls_port = int(values["LDAPS_PORT"]) if "LDAPS_PORT" in values else None
        self._password = values["LDAP_PASSWORD"]
        return True

    def _make_certificate(self, openssl: str) -> None:
        self._run(
            [
                openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", str(self.run_dir / "key.pem"), "-out", str(self.ca_file),
                "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            "openssl req",
        )  # fmt: skip

    def _write_config(self, module_dir: Path, schema_dir: Path) -> None:
        run = self.run_dir
        (run / "db").mkdir(mode=0o700)
        modules = [m for m in _MODULES if (module_dir / f"{m}.la").exists() or (module_dir / f"{m}.so").exists()]
        missing = sorted(set(_MODULES) - set(modules) - {"back_mdb"})  # back_mdb may be built in
        if missing:
            raise SlapdNotFound(f"OpenLDAP modules missing in {module_dir}: {', '.join(missing)}")
        lines = [
            *(f"include {schema_dir / (name + '.schema')}" for name in _SCHEMAS),
            f'pidfile "{run / "slapd.pid"}"',
            f'argsfile "{run / "slapd.args"}"',
            f'modulepath "{module_dir}"',
            *(f"moduleload {m}" for m in modules),
            "loglevel none",
            *(
                [f'TLSCertificateFile "{self.ca_file}"', f'TLSCertificateKeyFile "{run / "key.pem"}"']
                if self.tls
                else []
            ),
            "database mdb",
            "maxsize 104857600",
            f'suffix "{BASE_DN}"',
            f'rootdn "{self.bind_dn}"',
            f"rootpw {_ssha(self.password)}",
            f'directory "{run / "db"}"',
            "dbnosync",  # thrown away anyway; syncing costs time on every write
            "index objectClass eq",
            "index uid,cn,member,memberUid eq",
            "index description eq,sub",
            "overlay memberof",
            "memberof-group-oc groupOfNames",
            "memberof-member-ad member",
            "memberof-memberof-ad memberOf",
            "memberof-refint TRUE",
            "overlay refint",
            "refint_attributes member",
            # a groupOfNames must keep one member: when refint would delete the last one, it
            # writes this instead (the connector hides it and removes it again on the next add)
            f'refint_nothing "{PLACEHOLDER_DN}"',
            "overlay ppolicy",
            f'ppolicy_default "{POLICY_DN}"',
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.conf.chmod(0o600)  # it holds the rootpw hash
        (run / "base.ldif").write_text(_BASE_LDIF)

    def _run(self, argv: list[str], what: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, cwd=self.run_dir)
        if result.returncode != 0:
            raise ThrowawaySlapdError(f"{what} failed ({result.returncode}): {result.stderr.strip()}")

    def _start_server(self, slapd: str) -> None:
        err_file = self.run_dir / "slapd.err"
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = common.free_port()
            tls_port = common.free_port() if self.tls else None
            urls = f"ldap://127.0.0.1:{port}/" + (f" ldaps://127.0.0.1:{tls_port}/" if tls_port else "")
            with err_file.open("w") as err:
                # slapd forks and the parent exits once the child has opened its listeners
                result = subprocess.run(
                    [slapd, "-f", str(self.conf), "-h", urls, "-s", "0"],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    check=False, timeout=60, cwd=self.run_dir,
                )  # fmt: skip
            tail = err_file.read_text(errors="replace")[-2000:]
            if result.returncode != 0:
                if attempt < _START_ATTEMPTS and "bind" in tail and "98" in tail:  # EADDRINUSE
                    continue
                raise ThrowawaySlapdError(f"slapd exited with {result.returncode}\n--- slapd.err ---\n{tail}")
            self._port, self._tls_port = port, tls_port
            deadline = time.monotonic() + _READY_TIMEOUT
            while not _answers(port):
                pid = self._pid()
                if time.monotonic() > deadline or (pid is not None and process_gone(pid)):
                    raise ThrowawaySlapdError(f"slapd did not answer on port {port}\n--- slapd.err ---\n{tail}")
                time.sleep(0.02)
            return

    def _pid(self) -> int | None:
        try:
            return int((self.run_dir / "slapd.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _shutdown(self) -> None:
        pid = self._pid()
        if pid is None or process_gone(pid):
            return
        if common.stop_process(pid, (signal.SIGTERM, signal.SIGKILL), timeout=10, interval=0.01):
            return
        raise ThrowawaySlapdError(f"slapd {pid} did not stop")


_BASE_LDIF = f"""\
dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: ou=policies,{BASE_DN}
objectClass: organizationalUnit
ou: policies

dn: {POLICY_DN}
objectClass: organizationalRole
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
"""


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls", action="store_true", help="also serve StartTLS and LDAPS (self-signed)")


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(
        argv,
        prog="throwaway_slapd",
        description=(__doc__ or "").split("\n\n", 1)[0],
        error=ThrowawaySlapdError,
        make=lambda args: ThrowawaySlapd(args.dir, tls=args.tls),
        options=_options,
    )


if __name__ == "__main__":
    sys.exit(main())
