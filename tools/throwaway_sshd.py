"""A throwaway OpenSSH server on 127.0.0.1 whose user database is private (stdlib only).

    with ThrowawaySshd(Path("/tmp/sshd")) as sshd:
        ...  # ssh -p sshd.port -i sshd.client_key_path root@127.0.0.1

    python tools/throwaway_sshd.py start DIR   # prints KEY=VALUE lines (shell-quoted), writes DIR/env
    python tools/throwaway_sshd.py stop DIR

Contract:
- sshd runs inside its own mount namespace (`unshare --mount --propagation private`, in a new
  session) where /etc is an overlayfs whose upper layer is DIR/etc-upper, and /home, /var/log,
  /var/mail (and /var/spool/mail, /var/lib/sudo when they are real directories) are private
  directories under DIR, /root is an empty private directory (the host's dotfiles, a slow
  .bashrc for one, would otherwise run before every command) and /run is a tmpfs. useradd,
  usermod, userdel, gpasswd, visudo and /etc/sudoers.d writes made over SSH (or through run())
  change only those copies: the host's /etc/passwd, /etc/group, /etc/shadow and
  /etc/sudoers.d are never touched. Every mount uses `mount -n` so the host's
  /run/mount/utab is not written either.
- users and groups created in the namespace get ids from a random block of 5000 above 100000
  (login.defs in the overlay): uids are not namespaced, and `pkill -u` must not reach processes
  of another server's users or of the host's.
- root logs in with a fresh ed25519 key (client_key_path / client_key_text); its authorized
  key lives in DIR/keys, outside the namespaced /etc. Other users use ~/.ssh/authorized_keys.
- sshd runs without PAM, so key logins to accounts whose password field is `!` (useradd's
  default) are refused: key-only accounts need `*`. StrictModes is off (DIR usually lies under
  a 0700 or world-writable temp directory).
- Password logins are refused unless `password_auth=True` (`start --password-auth`): then
  sshd checks passwords against the namespaced /etc/shadow itself (no PAM), so a password set
  with chpasswd inside the namespace logs in, and root still logs in only with its key.
- stop() kills every process left in the namespace (sshd, sessions, anything they started),
  waits until they are gone (a zombie counts as gone: PID 1 here reaps orphans slowly) and
  removes DIR. It is idempotent and works from a fresh object (it reads DIR/state.json), so a
  separate process can stop a server another one started.
- Needs root, util-linux (unshare, nsenter), OpenSSH's sshd and ssh-keygen, and overlayfs.
  SshdNotFound when a binary is missing; ThrowawaySshdError on any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as a script (python tools/throwaway_sshd.py): make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import throwaway_common as common

__all__ = ["SshdNotFound", "ThrowawaySshd", "ThrowawaySshdError"]

# Users made in the namespace get uids from a random block of 5000 above 100000. uids are not
# namespaced: `pkill -u` in one throwaway server (or a test of one) would also hit processes of
# the same uid in another server running at the same time (pytest-xdist workers, two helpers'
# test runs) or on the host itself. Host users live below 60000 (login.defs' default UID_MAX).
_ID_BLOCK = 5000
_ID_BLOCKS = 2000
_START_ATTEMPTS = 3  # a free port can be taken by someone else before sshd binds it
_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0

# Runs inside the new mount namespace, as `bash -c SCRIPT ns BASE`. It ends by exec'ing sshd,
# so the namespace lives exactly as long as sshd and the sessions it forks.
_NAMESPACE_SCRIPT = r"""
set -euo pipefail
B=$1 ID_MIN=$2
mount -n -t tmpfs -o mode=755 tmpfs /run            # /run/sshd (privsep), /run/sudo timestamps
mkdir -p /run/sshd && chmod 755 /run/sshd
mount -n -t overlay overlay -o "lowerdir=/etc,upperdir=$B/etc-upper,workdir=$B/etc-work" /etc
# new users and groups get ids from a range of their own (see _ID_BLOCK)
# (system accounts, `useradd -r`, stay below 1000)
sed -i -E '/^[[:space:]]*(SYS_)?[UG]ID_(MIN|MAX)[[:space:]]/d' /etc/login.defs
ID_MAX=$((ID_MIN + 4999))
printf 'UID_MIN %s\nUID_MAX %s\nGID_MIN %s\nGID_MAX %s\n' "$ID_MIN" "$ID_MAX" "$ID_MIN" "$ID_MAX" >> /etc/login.defs
printf 'SYS_UID_MIN 100\nSYS_UID_MAX 999\nSYS_GID_MIN 100\nSYS_GID_MAX 999\n' >> /etc/login.defs
cp -a /home/. "$B/home/" 2>/dev/null || true
mount -n --bind "$B/home" /home
mount -n --bind "$B/roothome" /root                  # root's dotfiles (a slow .bashrc) stay outside
mount -n --bind "$B/varlog" /var/log                 # useradd/userdel write lastlog/faillog
mount -n --bind "$B/varmail" /var/mail               # mail spool (userdel -r removes it)
if [ -d /var/spool/mail ] && [ ! -L /var/spool/mail ]; then mount -n --bind "$B/varmail" /var/spool/mail; fi
if [ -d /var/lib/sudo ] && [ ! -L /var/lib/sudo ]; then mount -n --bind "$B/varlibsudo" /var/lib/sudo; fi
# Under libfaketime (scripts/test-timeshift.sh): every program run in the namespace sees the same
# shifted clock through /etc/ld.so.preload and /etc/faketimerc, setuid sudo included (the loader
# ignores LD_PRELOAD for it, not ld.so.preload). libfaketime gives each process a semaphore in
# /dev/shm named by its pid and hands it to its children; one that drops privileges (setpriv,
# sshd sessions) cannot open root's, and after `exec` cannot make its own under the same pid: it
# exits. It skips the semaphore where it cannot create one: a read-only /dev/shm here.
if [ -n "${JITPOL_NS_FAKETIME_LIB:-}" ]; then
  mount -n -t tmpfs -o ro,mode=1777 tmpfs /dev/shm
  printf '%s\n' "$JITPOL_NS_FAKETIME" > /etc/faketimerc
  printf '%s\n' "$JITPOL_NS_FAKETIME_LIB" > /etc/ld.so.preload
fi
exec /usr/sbin/sshd -D -f "$B/sshd_config" -E "$B/sshd.log"
"""

_SSHD_CONFIG = """\
ListenAddress 127.0.0.1:{port}
HostKey {base}/keys/ssh_host_ed25519_key
PidFile {base}/sshd.pid
# root's key lives outside the namespaced /etc; everybody else uses ~/.ssh/authorized_keys
AuthorizedKeysFile {base}/keys/authorized/%u .ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication {password_auth}
PermitEmptyPasswords no
KbdInteractiveAuthentication no
# no PAM: pam_loginuid/pam_systemd fail without systemd. Accounts with password '!' are refused.
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


class ThrowawaySshdError(RuntimeError):
    """The throwaway sshd could not be started or stopped."""


class SshdNotFound(ThrowawaySshdError):
    """A program the throwaway sshd needs is missing on this machine."""


def faketime_library() -> str | None:
    """The libfaketime this process runs under (LD_PRELOAD with FAKETIME set), as a file path
    ($LIB expanded), or None when the clock is not faked."""
    if not os.environ.get("FAKETIME"):
        return None
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for entry in os.environ.get("LD_PRELOAD", "").replace(":", " ").split():
        if "faketime" in entry:
            path = entry.replace("$LIB", f"lib/{multiarch}" if multiarch else "lib")  # Debian's $LIB
            if os.path.exists(path):
                return path
    return None


def namespace_env() -> dict[str, str]:
    """The environment for a program started into the namespace (unshare, nsenter). Under
    libfaketime the program itself runs unfaked on the host, and what it starts inside gets the
    clock from the namespace's /etc/ld.so.preload (see _NAMESPACE_SCRIPT): a semaphore made on
    the host would be missing inside."""
    env = dict(os.environ)
    lib = faketime_library()
    if lib is not None:
        env["JITPOL_NS_FAKETIME_LIB"] = lib
        env["JITPOL_NS_FAKETIME"] = env["FAKETIME"]
        for name in ("LD_PRELOAD", "FAKETIME", "FAKETIME_SHARED"):
            env.pop(name, None)
    return env


def _mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_namespace(ns: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _mount_namespace(int(entry.name)) == ns:
            pids.append(int(entry.name))
    return pids


def _banner_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


class ThrowawaySshd(common.Throwaway):
    """One disposable sshd in a private mount namespace; its files live under `base_dir`.

    `base_dir` holds state.json (pid, mount namespace, port), env (KEY=VALUE lines), keys/
    (host and client keys), sshd_config, sshd.log and the private copies the namespace mounts.
    """

    def __init__(self, base_dir: Path, *, password_auth: bool = False) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.password_auth = password_auth
        self._proc: subprocess.Popen[bytes] | None = None
        self._state: dict[str, object] | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(str(self._require_state()["port"]))

    @property
    def pid(self) -> int:
        """sshd's pid (also the process every namespaced command enters through)."""
        return int(str(self._require_state()["pid"]))

    @property
    def host_key_line(self) -> str:
        """The host's public key as `type base64` (what a pinned `host_key` setting holds)."""
        text = (self.base_dir / "keys" / "ssh_host_ed25519_key.pub").read_text()
        kind, blob = text.split()[:2]
        return f"{kind} {blob}"

    @property
    def client_key_path(self) -> Path:
        """root's private key (OpenSSH format, no passphrase)."""
        return self.base_dir / "keys" / "client_ed25519"

    @property
    def client_key_text(self) -> str:
        return self.client_key_path.read_text()

    def env(self) -> dict[str, str]:
        """The variables written to DIR/env."""
        return {
            "SSH_HOST": "127.0.0.1",
            "SSH_PORT": str(self.port),
            "SSHD_PID": str(self.pid),
            "SSH_HOST_KEY": self.host_key_line,
            "SSH_CLIENT_KEY": str(self.client_key_path),
        }

    def start(self) -> None:
        """Create keys and config, start sshd in a fresh mount namespace and wait until it
        answers with an SSH banner. Raises SshdNotFound / ThrowawaySshdError (and cleans up)."""
        if self._state is not None:
            raise ThrowawaySshdError(f"{self.base_dir}: already started")
        if os.geteuid() != 0:
            raise ThrowawaySshdError("the throwaway sshd needs root (mount namespaces, useradd)")
        for tool in ("unshare", "nsenter", "ssh-keygen", "mount"):
            if shutil.which(tool) is None:
                raise SshdNotFound(f"{tool} not found (Debian: apt-get install openssh-server util-linux)")
        if not os.access("/usr/sbin/sshd", os.X_OK):
            raise SshdNotFound("/usr/sbin/sshd not found (Debian: apt-get install openssh-server sudo)")
        self._prepare()
        last = "no attempt"
        for _ in range(_START_ATTEMPTS):
            port = common.free_port()
            config = _SSHD_CONFIG.format(port=port, base=self.base_dir,
                                         password_auth="yes" if self.password_auth else "no")
            (self.base_dir / "sshd_config").write_text(config)
            id_min = 100000 + _ID_BLOCK * secrets.randbelow(_ID_BLOCKS)
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--",
                 "bash", "-c", _NAMESPACE_SCRIPT, "ns", str(self.base_dir), str(id_min)],
                env=namespace_env(),
                stdin=subprocess.DEVNULL,
                stdout=(self.base_dir / "ns.out").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,  # setsid: no terminal signals, its own process group
            )
            deadline = time.monotonic() + _READY_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None and not _banner_ready(port):
                time.sleep(0.02)
            if proc.poll() is None and _banner_ready(port):
                ns = _mount_namespace(proc.pid)
                if ns is None or ns == _mount_namespace(os.getpid()):
                    proc.kill()
                    proc.wait()
                    raise ThrowawaySshdError("sshd did not get its own mount namespace")
                self._proc = proc
                self._state = {"pid": proc.pid, "ns": ns, "port": port}
                (self.base_dir / "state.json").write_text(json.dumps(self._state))
                self._write_env()
                return
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            last = self._log_tail()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        raise ThrowawaySshdError(f"sshd did not start after {_START_ATTEMPTS} attempts: {last}")

    def run(self, argv: Sequence[str], *, check: bool = True, input_text: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `argv` on the host but inside the server's mount namespace (nsenter), as root.
        Tests use it to prepare and inspect users, groups and files without going through SSH."""
        return subprocess.run(
            ["nsenter", "--target", str(self.pid), "--mount", "--", *argv], env=namespace_env(),
            input=input_text, capture_output=True, text=True, check=check, timeout=timeout,
        )

    def stop(self) -> None:
        """Kill every process in the namespace, wait for them, remove base_dir. Idempotent."""
        state = self._state
        if state is None:
            state_file = self.base_dir / "state.json"
            if state_file.exists():
                state = json.loads(state_file.read_text())
        if state is not None:
            ns = str(state["ns"])
            pid = int(str(state["pid"]))
            # sshd first (no new sessions), then whatever sessions and their children remain
            if _mount_namespace(pid) == ns:
                common.send_signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT
            while True:
                alive = [p for p in _pids_in_namespace(ns) if not common.process_gone(p)]
                if not alive:
                    break
                if time.monotonic() > deadline:
                    raise ThrowawaySshdError(f"processes {alive} in the sshd namespace did not stop")
                for p in alive:
                    common.send_signal(p, signal.SIGKILL)
                time.sleep(0.05)
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self._state = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- internals --------------------------------------------------------------------------

    def _require_state(self) -> dict[str, object]:
        if self._state is None:
            state_file = self.base_dir / "state.json"
            if not state_file.exists():
                raise ThrowawaySshdError(common.NOT_STARTED)
            self._state = json.loads(state_file.read_text())
        return self._state

    def _prepare(self) -> None:
        b = self.base_dir
        shutil.rmtree(b, ignore_errors=True)
        for sub in ("keys/authorized", "home", "roothome", "varlog", "varmail", "varlibsudo", "etc-upper", "etc-work"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        b.chmod(0o755)
        (b / "home").chmod(0o755)
        (b / "roothome").chmod(0o700)
        (b / "varmail").chmod(0o2775)
        for name, comment in (("ssh_host_ed25519_key", "jitpol-test-host"), ("client_ed25519", "jitpol-test-root")):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(b / "keys" / name)],
                check=True, capture_output=True,
            )
        shutil.copyfile(b / "keys" / "client_ed25519.pub", b / "keys" / "authorized" / "root")

    def _write_env(self) -> None:
        common.write_env_file(self.base_dir / "env", self.env())

    def _log_tail(self) -> str:
        texts = []
        for name in ("ns.out", "sshd.log"):
            path = self.base_dir / name
            if path.exists():
                texts.extend(path.read_text(errors="replace").splitlines()[-8:])
        return " | ".join(texts) or "no output"


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-auth", action="store_true", help="start: also accept password logins")


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(
        argv,
        prog="throwaway_sshd",
        description="A throwaway sshd in a private mount namespace.",
        error=ThrowawaySshdError,
        make=lambda args: ThrowawaySshd(args.dir, password_auth=args.password_auth),
        options=_options,
    )


if __name__ == "__main__":
    sys.exit(main())
