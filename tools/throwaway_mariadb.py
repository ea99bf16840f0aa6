"""A throwaway MariaDB server on 127.0.0.1 for tests (stdlib only).

    with ThrowawayMariadb(Path("/tmp/mdb")) as db:
        pymysql.connect(host="127.0.0.1", port=db.port, user="root", password=db.password)

    python tools/throwaway_mariadb.py start DIR   # prints KEY=VALUE lines (shell-quoted), writes DIR/env
    python tools/throwaway_mariadb.py stop DIR

Contract:
- start() runs mariadb-install-db and mariadbd (Debian `mariadb-server`) found on PATH or in
  /usr/sbin; MariadbNotFound when there are none.
- The server listens on 127.0.0.1 on a free port only, its unix socket in a private directory,
  with the event scheduler ON, no name resolution and durability off (the data is thrown away).
  `root@127.0.0.1` gets a random password; every other account the installer made (anonymous
  users, root at this host's name or ::1) is dropped, so that `x@%` logins from 127.0.0.1 are
  not shadowed. root@localhost keeps unix-socket access only.
- mariadbd refuses to run as root without --user, so as root it runs as the `mysql` OS user in a
  private directory under the system temp dir owned by it (pytest's base directories are 0700
  root); otherwise as the caller.
- stop() is idempotent and works from a fresh object too (it reads DIR/env), so a separate
  process can stop a server that another one started. It removes the server's files.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script (python tools/throwaway_mariadb.py): make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import throwaway_common as common

__all__ = ["MariadbNotFound", "ThrowawayMariadb", "ThrowawayMariadbError"]

RUN_AS = "mysql"  # the OS user Debian's mariadb-server package creates
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
_READY_TIMEOUT = 60.0


class ThrowawayMariadbError(RuntimeError):
    """The throwaway server could not be started or stopped."""


class MariadbNotFound(ThrowawayMariadbError):
    """No MariaDB server binaries (mariadb-install-db, mariadbd) on this machine."""


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if os.access(p, os.X_OK)), None)
        if found:
            return found
    return None


def _clean_env() -> dict[str, str]:
    # MYSQL_PWD, MYSQL_HOST, MYSQL_TCP_PORT... from the caller's shell must not steer the tools
    return {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL", "MARIADB"))}


class ThrowawayMariadb(common.Throwaway):
    """One disposable MariaDB server. `base_dir` holds `env` (connection settings, mode 0600);
    the data, socket and log live in a private directory (`env` names it as MARIADB_RUNDIR)
    that stop() removes."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir).absolute()
        self._port: int | None = None
        self._password: str | None = None
        self._run_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return common.require_started(self._port, ThrowawayMariadbError)

    @property
    def password(self) -> str:
        return common.require_started(self._password, ThrowawayMariadbError)

    @property
    def socket(self) -> Path:
        return common.require_started(self._run_dir, ThrowawayMariadbError) / "sock" / "mysqld.sock"

    def dsn(self, user: str = "root", password: str | None = None) -> str:
        """The URL jitpol's mysql target reads: `mysql://user:password@127.0.0.1:port/` (names
        and passwords must need no percent-encoding)."""
        return f"mysql://{user}:{self.password if password is None else password}@127.0.0.1:{self.port}/"

    @property
    def env_file(self) -> Path:
        return self.base_dir / "env"

    def env(self) -> dict[str, str]:
        run_dir = common.require_started(self._run_dir, ThrowawayMariadbError)
        return {
            "MARIADB_HOST": "127.0.0.1",
            "MARIADB_PORT": str(self.port),
            "MARIADB_PASSWORD": self.password,
            "MARIADB_SOCKET": str(self.socket),
            "MARIADB_RUNDIR": str(run_dir),
            "MARIADB_DSN": self.dsn(),
        }

    def start(self) -> None:
        """Install a data directory, start the server and wait until it accepts connections.
        Raises MariadbNotFound without binaries, ThrowawayMariadbError on any other failure (the
        files it made are removed again)."""
        if self._port is not None:
            raise ThrowawayMariadbError("already started")
        if self.env_file.exists():
            raise ThrowawayMariadbError(f"{self.base_dir} already holds a server; stop it first")
        install = _find(("mariadb-install-db", "mysql_install_db"))
        server = _find(("mariadbd", "mysqld"))
        client = _find(("mariadb", "mysql"))
        if not (install and server and client):
            raise MariadbNotFound(
                "MariaDB server binaries (mariadb-install-db, mariadbd, mariadb) not found on PATH or in /usr/sbin. "
                "On Debian: apt-get install mariadb-server")
        as_root = os.geteuid() == 0
        owner = None
        if as_root:
            try:
                owner = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise ThrowawayMariadbError(
                    f"running as root needs a {RUN_AS!r} OS user (mariadbd refuses root)") from None
        self.base_dir.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="throwaway-mariadb-"))
        self._run_dir = run_dir
        try:
            for sub in ("data", "sock", "tmp"):
                (run_dir / sub).mkdir(mode=0o700)
            if owner is not None:
                for path in (run_dir, run_dir / "data", run_dir / "sock", run_dir / "tmp"):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            # a private tmpdir: servers bootstrapped at once (xdist workers) must not share /tmp's
            # temporary tables
            common_args = [f"--tmpdir={run_dir / 'tmp'}", *(["--user=" + RUN_AS] if as_root else [])]
            self._run([install, "--no-defaults", f"--datadir={run_dir / 'data'}", *common_args,
                       "--auth-root-authentication-method=normal", "--skip-test-db"], run_dir, "mariadb-install-db")
            self._start_server(server, run_dir, common_args)
            self._secure(client)
        except BaseException:
            self._shutdown()
            self._remove_files()
            self._reset()
            raise
        common.write_env_file(self.env_file, self.env())

    def stop(self) -> None:
        """Stop the server and remove its files. Safe to call twice, and on an object that did not
        start it (settings are read from `env_file`)."""
        if self._run_dir is None and not self._load_env():
            return
        self._shutdown()
        self._remove_files()
        self._reset()

    # -- internals --------------------------------------------------------------------------

    def _run(self, argv: list[str], cwd: Path, what: str, stdin: str | None = None) -> None:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=_clean_env(),
                                timeout=120, input=stdin)
        if result.returncode != 0:
            raise ThrowawayMariadbError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")

    def _start_server(self, server: str, run_dir: Path, common_args: list[str]) -> None:
        log = run_dir / "server.log"
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = common.free_port()
            argv = [
                server, "--no-defaults", f"--datadir={run_dir / 'data'}", *common_args,
                f"--socket={run_dir / 'sock' / 'mysqld.sock'}", f"--port={port}", "--bind-address=127.0.0.1",
                f"--pid-file={run_dir / 'sock' / 'mysqld.pid'}", f"--log-error={log}",
                "--event-scheduler=ON", "--skip-name-resolve", "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=32M", "--innodb-doublewrite=0",
                "--max-connections=200", "--performance-schema=OFF",
            ]  # fmt: skip
            # stdout/stderr to a file: a pipe nobody reads would block the server once full
            with (run_dir / "stdout.log").open("ab") as out:
                self._proc = subprocess.Popen(argv, cwd=run_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                              env=_clean_env(), start_new_session=True)
            if self._wait_ready(port, log):
                self._port = port
                return
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self._shutdown()
            if attempt < _START_ATTEMPTS and "Address already in use" in tail:
                continue
            raise ThrowawayMariadbError(f"mariadbd did not start\n--- server.log ---\n{tail}")

    def _wait_ready(self, port: int, log: Path) -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                return False
            if log.exists() and "ready for connections" in log.read_text(errors="replace"):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def _secure(self, client: str) -> None:
        """A password for root@127.0.0.1; every other account the installer made goes."""
        self._password = secrets.token_urlsafe(24)
        # token_urlsafe: letters, digits, - and _ only, nothing to escape in a string literal
        sql = (
            "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', "
            "'127.0.0.1'));\n"
            "DELETE FROM mysql.proxies_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', "
            "'127.0.0.1'));\n"
            "FLUSH PRIVILEGES;\n"
        )
        sql += f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{self._password}';\n"
        # the password travels on stdin, never on a command line
        self._run([client, "--no-defaults", f"--socket={self.socket}", "-uroot"], self.socket.parent.parent,
                  "securing the accounts", stdin=sql)

    def _pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        try:
            return int((self.socket.parent / "mysqld.pid").read_text().strip())
        except (FileNotFoundError, ValueError, ThrowawayMariadbError):
            return None

    def _shutdown(self) -> None:
        pid = self._pid()
        if pid is not None and not common.process_gone(pid):
            if not common.stop_process(pid, (signal.SIGTERM, signal.SIGKILL), timeout=20, interval=0.05):
                raise ThrowawayMariadbError(f"mariadbd {pid} did not stop")
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None

    def _reset(self) -> None:
        self._port = self._password = self._run_dir = None

    def _load_env(self) -> bool:
        values = common.read_env_file(self.env_file)
        if values is None:
            return False
        self._port = int(values["MARIADB_PORT"])
        self._password = values["MARIADB_PASSWORD"]
        self._run_dir = Path(values["MARIADB_RUNDIR"])
        return True

    def _remove_files(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        self.env_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(
        argv,
        prog="throwaway_mariadb",
        description=(__doc__ or "").split("\n\n", 1)[0],
        error=ThrowawayMariadbError,
        make=lambda args: ThrowawayMariadb(args.dir),
    )


if __name__ == "__main__":
    sys.exit(main())
