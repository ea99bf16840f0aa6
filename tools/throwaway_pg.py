"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and the demo (stdlib only).

    with ThrowawayPostgres(Path("/tmp/pg")) as pg:
        psycopg.connect(pg.superuser_dsn)

    python tools/throwaway_pg.py start DIR   # prints KEY=VALUE lines (shell-quoted), writes DIR/env
    python tools/throwaway_pg.py stop DIR

Contract:
- start() runs initdb and pg_ctl from the highest PostgreSQL found (`pg_config --bindir`,
  /usr/lib/postgresql/*/bin, then PATH); PostgresNotFound when there is none.
- The server listens on 127.0.0.1 on a free port only, with scram-sha-256 on TCP, a random
  superuser password and its unix socket in a private (0700) directory. Durability is off
  (fsync, synchronous_commit, full_page_writes): the data is thrown away anyway.
- initdb and postgres refuse to run as root, so as root both run as the `postgres` OS user
  (`runuser -u postgres --`) in a directory owned by it; otherwise they run as the caller.
- stop() is idempotent and works from a fresh object too (it reads DIR/env), so a separate
  process can stop a cluster that another one started. It removes the cluster's files.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a script (python tools/throwaway_pg.py): make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import throwaway_common as common

__all__ = ["PostgresNotFound", "ThrowawayPostgres", "ThrowawayPostgresError", "find_bindir"]

RUN_AS = "postgres"  # the OS user Debian's postgresql packages create
# sockaddr_un.sun_path is 108 bytes on Linux (104 on BSDs); the server appends "/.s.PGSQL.NNNNN"
_MAX_SOCKET_DIR = 100 - len("/.s.PGSQL.65535")
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


class ThrowawayPostgresError(RuntimeError):
    """The throwaway cluster could not be started or stopped."""


class PostgresNotFound(ThrowawayPostgresError):
    """No PostgreSQL server binaries (initdb, pg_ctl) on this machine."""


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); "9.6" -> (9, 6); numeric, so 10 sorts above 9
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_bindir() -> Path:
    """The directory holding initdb/pg_ctl/postgres of the highest installed version.

    Raises PostgresNotFound when there is none.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    # pg_config may come from a client-only package; Debian keeps each server version apart
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: looked at `pg_config --bindir`, "
        "/usr/lib/postgresql/*/bin and PATH. On Debian: apt-get install postgresql"
    )


def _clean_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... from the caller's shell must not steer initdb or the postmaster
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _reachable(path: Path) -> bool:
    """Can the postgres OS user write in `path`? Every ancestor must let it through, and
    pytest's /tmp/pytest-of-root, for one, is 0700 root."""
    probe = subprocess.run(
        ["runuser", "-u", RUN_AS, "--", "test", "-w", str(path), "-a", "-x", str(path)],
        capture_output=True,
        check=False,
        env=_clean_env(),
    )
    return probe.returncode == 0


class ThrowawayPostgres(common.Throwaway):
    """One disposable PostgreSQL cluster whose files live under `base_dir`.

    `base_dir` holds `env` (the connection settings, mode 0600) and `cluster/` (data/, sock/,
    server.log). When the `postgres` OS user cannot reach `base_dir`, or its path is too long
    for a unix socket, the cluster goes to a private directory under the system temp dir
    instead. `env` names it as PGRUNDIR; stop() removes it and `env`, nothing else.
    """

    def __init__(self, base_dir: Path, *, bindir: Path | None = None) -> None:
        self.base_dir = Path(base_dir).absolute()
        self._bindir = bindir
        self._port: int | None = None
        self._password: str | None = None
        self._run_dir: Path | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return common.require_started(self._port, ThrowawayPostgresError)

    @property
    def password(self) -> str:
        return common.require_started(self._password, ThrowawayPostgresError)

    @property
    def superuser_dsn(self) -> str:
        """libpq DSN for the `postgres` superuser over TCP with its password."""
        return self.dsn()

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        """libpq DSN over TCP; by default the superuser's. Names must need no quoting."""
        pw = self.password if password is None else password
        return f"host=127.0.0.1 port={self.port} user={user} password={pw} dbname={dbname}"

    @property
    def env_file(self) -> Path:
        return self.base_dir / "env"

    def env(self) -> dict[str, str]:
        """The variables written to `env_file` (libpq's PG* names plus PGDATA/PGSOCK/PGRUNDIR)."""
        run_dir = self._require_run_dir()
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
            "PGPASSWORD": self.password,
            "PGDATABASE": "postgres",
            "PGDATA": str(run_dir / "data"),
            "PGSOCK": str(run_dir / "sock"),
            "PGRUNDIR": str(run_dir),
            "PG_SUPERUSER_DSN": self.superuser_dsn,
        }

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections.

        Raises PostgresNotFound without binaries, ThrowawayPostgresError on any other failure
        (the files it made are removed again).
        """
        if self._port is not None:
            raise ThrowawayPostgresError("already started")
        if self.env_file.exists():
            raise ThrowawayPostgresError(f"{self.base_dir} already holds a cluster; stop it first")
        bindir = self._bindir or find_bindir()
        as_root = os.geteuid() == 0
        if as_root:
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                raise ThrowawayPostgresError(
                    f"running as root needs a {RUN_AS!r} OS user (initdb refuses root)"
                ) from None
        self.base_dir.mkdir(parents=True, exist_ok=True)
        run_dir = self._make_run_dir(as_root)
        self._run_dir = run_dir
        try:
            self._initdb(bindir, run_dir, as_root)
            self._start_server(bindir, run_dir, as_root)
        except BaseException:
            # pg_ctl may have timed out on a postmaster that does run: stop it too
            self._shutdown(run_dir / "data")
            self._remove_files()
            self._reset()
            raise
        common.write_env_file(self.env_file, self.env())

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its files. Safe to call twice, and on an
        object that did not start the cluster (settings are read from `env_file`)."""
        if self._run_dir is None and not self._load_env():
            return
        self._shutdown(self._require_run_dir() / "data")
        self._remove_files()
        self._reset()

    # -- internals --------------------------------------------------------------------------

    def _reset(self) -> None:
        self._port = self._password = self._run_dir = None

    def _require_run_dir(self) -> Path:
        return common.require_started(self._run_dir, ThrowawayPostgresError)

    def _load_env(self) -> bool:
        values = common.read_env_file(self.env_file)
        if values is None:
            return False
        self._port = int(values["PGPORT"])
        self._password = values["PGPASSWORD"]
        self._run_dir = Path(values["PGRUNDIR"])
        return True

    def _make_run_dir(self, as_root: bool) -> Path:
        """A new private directory for data/, sock/ and server.log, owned by whoever runs the
        server. base_dir itself is never chowned: it may be the caller's own directory."""
        owner = pwd.getpwnam(RUN_AS) if as_root else None
        run_dir = self.base_dir / "cluster"
        try:
            run_dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ThrowawayPostgresError(f"{run_dir} exists: a cluster was left behind there") from None
        if owner:
            os.chown(run_dir, owner.pw_uid, owner.pw_gid)
        if len(str(run_dir / "sock")) > _MAX_SOCKET_DIR or (owner and not _reachable(run_dir)):
            run_dir.rmdir()
            run_dir = Path(tempfile.mkdtemp(prefix="throwaway-pg-"))
        sock = run_dir / "sock"
        sock.mkdir(mode=0o700)
        if owner:
            for path in (run_dir, sock):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        return run_dir

    def _run(self, argv: list[str], as_root: bool, cwd: Path, what: str) -> None:
        if as_root:
            argv = ["runuser", "-u", RUN_AS, "--", *argv]
        # cwd: the postgres user may not be allowed into the caller's working directory
        result = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, check=False, env=_clean_env(), timeout=120
        )
        if result.returncode != 0:
            raise ThrowawayPostgresError(f"{what} failed ({result.returncode}): {result.stderr.strip()}")

    def _initdb(self, bindir: Path, run_dir: Path, as_root: bool) -> None:
        self._password = secrets.token_urlsafe(24)
        pwfile = run_dir / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._password)
        if as_root:
            user = pwd.getpwnam(RUN_AS)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            # -N (no sync) halves initdb time; trust only on the private socket directory
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D", str(run_dir / "data"),
                    "-U", "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E", "UTF8",
                    "--locale=C",
                    "-N",
                ],
                as_root, run_dir, "initdb",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(run_dir / "sock"),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "scram-sha-256",
        }
        conf = "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())
        with (run_dir / "data" / "postgresql.conf").open("a") as f:
            f.write("\n# throwaway_pg\n" + conf)

    def _start_server(self, bindir: Path, run_dir: Path, as_root: bool) -> None:
        log = run_dir / "server.log"
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = common.free_port()
            try:
                self._run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D", str(run_dir / "data"),
                        "-l", str(log),
                        "-o", f"-p {port}",
                        "-w", "-t", "60",
                        "start",
                    ],
                    as_root, run_dir, "pg_ctl start",
                )  # fmt: skip
            except ThrowawayPostgresError as exc:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                if attempt < _START_ATTEMPTS and "could not bind" in tail:
                    continue
                raise ThrowawayPostgresError(f"{exc}\n--- server.log ---\n{tail}") from None
            self._port = port
            return

    def _postmaster_pid(self, data: Path) -> int | None:
        try:
            return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def _shutdown(self, data: Path) -> None:
        pid = self._postmaster_pid(data)
        if pid is None or common.process_gone(pid):
            return
        bindir = self._bindir or find_bindir()
        try:
            self._run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
                os.geteuid() == 0, data.parent, "pg_ctl stop",
            )  # fmt: skip
        except ThrowawayPostgresError:
            pass  # fall through to signals: a stop must not leave a server behind
        if common.wait_gone(pid, 10, 0.05):
            return
        # signals in the order of pg_ctl's modes: fast, immediate, then kill
        if common.stop_process(pid, (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL), timeout=10, interval=0.05):
            return
        raise ThrowawayPostgresError(f"postmaster {pid} did not stop")

    def _remove_files(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        self.env_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(
        argv,
        prog="throwaway_pg",
        description=(__doc__ or "").split("\n\n", 1)[0],
        error=ThrowawayPostgresError,
        make=lambda args: ThrowawayPostgres(args.dir),
    )


if __name__ == "__main__":
    sys.exit(main())
