"""`make demo-targets`: reconcile the example repository examples/targets/ against a throwaway
MariaDB (target type mysql) and a throwaway Samba Active Directory domain controller (target type
ldap, flavor active-directory) at a few points in time: a role granted and made the default, an
AD group membership, a shared-account checkout rotated at its start and end (with the lock the
server itself enforces at the end), revocation, and the ledger verified. After every run it
prints what the servers hold (mysql.roles_mapping, the checkout's event, the group's members).

Like tools/demo.py: the admin (carol, with a throwaway key) signs the policy and approves the
grants, the trust root and the ledger key are pinned in the environment. Works on a copy in
.demo-targets/repo. The servers check ends against their own clocks, so the example's grant
windows are moved to start around now (the times shown with --at move with them).

Samba needs root: without it only the MariaDB part runs (the AD resource and grant are left out).
Entra ID needs a tenant: see docs/targets/entra.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.throwaway_mariadb import ThrowawayMariadb  # noqa: E402

EXAMPLE = ROOT / "examples" / "targets"
DEMO = ROOT / ".demo-targets"  # --dir moves it (the test runs the demo in its own directory)
JITPOL = [sys.executable, "-m", "jitpol.cli"]
REFERENCE = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # "now" in the example's grant windows
BASE_DN = "dc=example,dc=test"
GROUP = f"cn=db-admins,cn=users,{BASE_DN}"
AD_USERS = ("alice", "bob", "owner")
AD_GRANTS = ("alice-ad-db-admins",)
AD_RESOURCES = ("ad-db-admins",)
# (minutes after now, what happens, then: app_read and app_write members, db-admins members, does
# dave's checked-out password log in); the demo fails when the servers hold anything else
TIMES = [
    (0, "alice's read grant and her AD grant start, dave checks out the shared reporting account"),
    (35, "alice's AD grant and dave's checkout ended: she leaves db-admins, the reporting password is "
         "rotated again; bob's write grant starts"),
    (95, "every window has ended: all granted access is gone, standing access is left alone"),
]
EXPECTED = [
    ({"app_read": {"alice@%", "legacy@%"}, "app_write": set()}, {"alice", "owner"}, True),
    ({"app_read": {"alice@%", "bob@%", "legacy@%"}, "app_write": {"bob@%"}}, {"owner"}, False),
    ({"app_read": {"legacy@%"}, "app_write": set()}, {"owner"}, False),
]
SETUP_SQL = [
    "CREATE ROLE app_read", "CREATE ROLE app_write",
    "CREATE USER 'alice'@'%'", "CREATE USER 'bob'@'%'", "CREATE USER 'legacy'@'%'",
    "CREATE USER 'reporting'@'%' IDENTIFIED BY 'Standing-reporting-password-1'",
    "GRANT app_read TO 'legacy'@'%'",  # standing access jitpol does not manage: left alone
]  # fmt: skip


class DemoError(SystemExit):
    pass


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def jitpol(*args: str, env: dict[str, str], check: bool = True, capture: bool = False) -> str:
    """Run jitpol in the demo repository; with check, a non-zero exit ends the demo (exit 1)."""
    print(f"$ jitpol {' '.join(args)}", flush=True)
    result = subprocess.run([*JITPOL, *args], env=env, cwd=DEMO / "repo", check=False, text=True,
                            stdout=subprocess.PIPE if capture else None)  # fmt: skip
    if check and result.returncode != 0:
        raise DemoError(f"demo-targets: `jitpol {' '.join(args)}` exited {result.returncode}")
    return result.stdout or ""


def shift_windows(repo: Path, delta: timedelta) -> None:
    """Move every grant's window start by `delta` (the servers compare ends with their clocks)."""
    for grant in (repo / "grants").rglob("*.yaml"):
        text = grant.read_text()
        moved = re.sub(r"(start: ')([0-9T:-]+Z)(')",
                       lambda m: m[1] + stamp(datetime.fromisoformat(m[2]) + delta) + m[3], text)  # fmt: skip
        grant.write_text(moved)


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_key(person: Path, public_key: str) -> None:
    person.write_text("".join(line + (f'    - "{public_key}"\n' if line.lstrip().startswith('- "ssh-') else "")
                              for line in person.read_text().splitlines(keepends=True)))  # fmt: skip


def drop_ad(repo: Path) -> None:
    for name in AD_RESOURCES:
        (repo / "resources" / f"{name}.yaml").unlink()
    for name in AD_GRANTS:
        next((repo / "grants").rglob(f"{name}.yaml")).unlink()
    config = repo / "jitpol.yaml"
    config.write_text(config.read_text().split("    corp-ad:\n")[0])
    for person in (repo / "people").glob("*.yaml"):
        text = "".join(line for line in person.read_text().splitlines(keepends=True)
                       if not line.lstrip().startswith("ldap:"))  # fmt: skip
        person.write_text(text.replace("  accounts:\n", "  accounts: {}\n") if text.endswith("  accounts:\n") else text)


def mariadb_state(dsn: dict[str, Any], checkout_password: str | None) -> tuple[dict[str, set[str]], bool]:
    """Print and return the members of app_read and app_write, and whether the checked-out
    password logs in as reporting."""
    import pymysql

    roles: dict[str, set[str]] = {"app_read": set(), "app_write": set()}

    conn = pymysql.connect(**dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT Role, GROUP_CONCAT(CONCAT(User, '@', Host) ORDER BY User SEPARATOR ', ') "
                        "FROM mysql.roles_mapping WHERE Role IN ('app_read', 'app_write') AND User <> 'root' "
                        "GROUP BY Role ORDER BY Role")  # fmt: skip
            print("MariaDB mysql.roles_mapping:")
            for role, members in cur.fetchall():
                print(f"  {role:<10} {members}")
                roles[role] = set(members.split(", "))
            cur.execute("SELECT User, default_role FROM (SELECT User, JSON_VALUE(Priv, '$.default_role') AS "
                        "default_role FROM mysql.global_priv WHERE User IN ('alice', 'bob')) d ORDER BY User")
            print("  default roles: " + ", ".join(f"{u}={r or '-'}" for u, r in cur.fetchall()))
            cur.execute("SELECT EVENT_NAME, EXECUTE_AT, STATUS FROM information_schema.EVENTS "
                        "WHERE EVENT_SCHEMA = 'jitpol' ORDER BY EVENT_NAME")  # fmt: skip
            for name, at, status in cur.fetchall():
                print(f"  native end: event {name} locks 'reporting'@'%' at {at} UTC ({status}), "
                      "even if no run comes")
            cur.execute("SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = 'reporting'")
            row = cur.fetchone()
            print(f"  reporting@% locked: {'yes' if row and row[0] == 'true' else 'no'}")
    finally:
        conn.close()
    logs_in = False
    if checkout_password is not None:
        try:
            pymysql.connect(host=dsn["host"], port=dsn["port"], user="reporting", password=checkout_password).close()
            logs_in = True
            print("  dave's checked-out password logs in as reporting: yes")
        except pymysql.err.OperationalError as exc:
            print(f"  dave's checked-out password logs in as reporting: no ({exc.args[1]})")
    return roles, logs_in


def ad_connection(ad: Any) -> Any:
    import ldap3

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(ad.ca_file))
    return ldap3.Connection(ldap3.Server(ad.ldaps_url, tls=tls, get_info=ldap3.NONE), ad.bind_dn, ad.password,
                            auto_bind=True, raise_exceptions=True)  # fmt: skip


def ad_setup(ad: Any) -> None:
    import secrets

    conn = ad_connection(ad)
    try:
        users = []
        for name in AD_USERS:
            dn = f"cn={name},cn=users,{BASE_DN}"
            password = f'"Demo-{secrets.token_urlsafe(12)}-1"'.encode("utf-16-le")
            conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                     {"sAMAccountName": name, "unicodePwd": password, "userAccountControl": "512"})  # fmt: skip
            users.append(dn)
        conn.add(GROUP, ["top", "group"], {"sAMAccountName": "db-admins", "member": [users[-1]]})
    finally:
        conn.unbind()


def ad_state(ad: Any) -> set[str]:
    """Print and return the cn of each member of db-admins."""
    import ldap3

    conn = ad_connection(ad)
    try:
        conn.search(GROUP, "(objectClass=group)", search_scope=ldap3.BASE, attributes=["member"])
        members = sorted(str(v).lower() for v in conn.entries[0].member.values) if conn.entries else []
    finally:
        conn.unbind()
    print(f"Samba AD ({ad.ldaps_url}) {GROUP} member:")
    for member in members or ["(none)"]:
        print(f"  {member}")
    return {m.split(",")[0].removeprefix("cn=") for m in members}


def expect(at: str, what: str, want: object, got: object) -> None:
    if want != got:
        raise DemoError(f"demo-targets: at {at} {what} should be {want!r}, the server holds {got!r}")


def main(argv: list[str] | None = None) -> None:
    global DEMO
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEMO, help=f"work directory (removed first; default {DEMO})")
    parser.add_argument("--without-ad", action="store_true", help="the MariaDB part only (as when not root)")
    args = parser.parse_args(argv)
    DEMO = args.dir.absolute()
    if not EXAMPLE.is_dir():
        raise DemoError(f"demo-targets: {EXAMPLE} is missing")
    with_ad = os.geteuid() == 0 and not args.without_ad
    shutil.rmtree(DEMO, ignore_errors=True)
    repo = DEMO / "repo"
    shutil.copytree(EXAMPLE, repo)
    shutil.copytree(ROOT / "schemas", DEMO / "schemas")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    shift_windows(repo, now - REFERENCE)
    if not with_ad:
        print("demo-targets: " + ("--without-ad" if args.without_ad else "not running as root, and a Samba AD "
              "domain controller needs root") + ": only the MariaDB part runs (the AD resource and grant are "
              "left out).")  # fmt: skip
        drop_ad(repo)
    git = ["git", "-C", str(repo), "-c", "user.name=demo", "-c", "user.email=demo@localhost"]
    keys = DEMO / "keys"
    keys.mkdir()
    for name in ("carol", "dave", "jitpol-ledger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys / name)],
                       check=True)  # fmt: skip
    carol = (keys / "carol.pub").read_text().strip()
    add_key(repo / "people" / "carol.yaml", carol)
    add_key(repo / "people" / "dave.yaml", (keys / "dave.pub").read_text().strip())
    trust_root = json.dumps({"version": 1, "threshold": 1, "keys": [carol],
                             "ledgerKey": (keys / "jitpol-ledger.pub").read_text().strip()})  # fmt: skip
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example policy repository"], check=True)

    banner("Entra ID needs a tenant and does not run here: see docs/targets/entra.md")
    banner("starting a throwaway MariaDB" + (" and a throwaway Samba AD domain controller" if with_ad else ""))
    with ThrowawayMariadb(DEMO / "mariadb") as db:
        import pymysql

        dsn: dict[str, Any] = {"host": "127.0.0.1", "port": db.port, "user": "root", "password": db.password}
        conn = pymysql.connect(**dsn, autocommit=True)
        with conn.cursor() as cur:
            for statement in SETUP_SQL:
                cur.execute(statement)
        conn.close()
        print(f"MariaDB on 127.0.0.1:{db.port}: roles app_read, app_write; accounts alice, bob, reporting; "
              "standing: legacy in app_read")  # fmt: skip
        env = {**os.environ, "APP_DB_DSN": db.dsn(), "PYTHONPATH": str(ROOT), "JITPOL_TRUST_ROOT": trust_root,
               "JITPOL_LEDGER_KEY": (keys / "jitpol-ledger").read_text()}  # fmt: skip
        if with_ad:
            from tools.throwaway_samba import ThrowawaySamba

            with ThrowawaySamba(DEMO / "samba") as ad:
                ad_setup(ad)
                print(f"Samba AD DC (realm EXAMPLE.TEST) on {ad.ldaps_url}: users alice, bob, owner; "
                      "group db-admins with owner, a standing member")  # fmt: skip
                config = repo / "jitpol.yaml"
                config.write_text(config.read_text().replace("ldaps://dc1.example.test:636", ad.ldaps_url))
                subprocess.run([*git, "commit", "-q", "-am", "the DC's address"], check=True)
                env |= {"AD_JITPOL_PASSWORD": ad.password, "SSL_CERT_FILE": str(ad.ca_file)}
                reconcile(env, git, keys, now, dsn, ad)
        else:
            reconcile(env, git, keys, now, dsn, None)


def reconcile(env: dict[str, str], git: list[str], keys: Path, now: datetime, dsn: dict[str, Any], ad: Any) -> None:
    banner("validate the example repository")
    jitpol("validate", env=env)
    banner("carol signs the policy (the trust root names her key) and approves alice's and bob's grants")
    jitpol("approve", "--policy", "--as", "carol", "--key", str(keys / "carol"), env=env)
    for grant in ("alice-app-db-read", "bob-app-db-write", *(AD_GRANTS if ad is not None else ())):
        jitpol("approve", grant, "--as", "carol", "--key", str(keys / "carol"), env=env)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "carol approves the policy and the grants"], check=True)
    password: str | None = None
    for (minutes, story), (roles, group, logs_in) in zip(TIMES, EXPECTED, strict=True):
        at = stamp(now + timedelta(minutes=minutes))
        banner(f"at {at} (now + {minutes} min): {story}")
        jitpol("status", "--at", at, env=env)
        jitpol("apply", "--at", at, env=env)
        out = jitpol("credentials", "dave-reporting", "--key", str(keys / "dave"), "--format", "json",
                     env=env, check=False, capture=True)  # fmt: skip
        if out.strip():
            secret = json.loads(out)
            if secret.get("password") != password:
                print(f"  dave's checkout: {secret['username']}, a new password ({len(secret['password'])} chars)")
            password = secret.get("password")
        else:
            print("  dave's checkout: nothing to show (his window has ended)")
        held, logged_in = mariadb_state(dsn, password)
        expect(at, "the members of app_read and app_write", roles, held)
        expect(at, "'dave's checked-out password logs in'", logs_in, logged_in)
        if ad is not None:
            expect(at, "the members of db-admins", group, ad_state(ad))

    banner("run again at the last time: nothing left to do")
    jitpol("plan", "--at", stamp(now + timedelta(minutes=TIMES[-1][0])), "--detailed-exitcode", env=env)
    banner("the ledger: hash-chained, and signed by the reconciler (audit/checkpoints/)")
    jitpol("audit", "verify", env=env)
    subprocess.run([*git, "log", "--oneline"], check=True)
    print(f"\nThe demo repository with its ledger stays in {DEMO / 'repo'} for you to look at.")


if __name__ == "__main__":
    main()
