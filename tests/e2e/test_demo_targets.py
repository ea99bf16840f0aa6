"""`make demo-targets` end to end: tools/demo_targets.py against a throwaway MariaDB and a throwaway
Samba AD DC. The demo itself fails (exit 1) when a jitpol step exits non-zero, when the servers
hold anything but what the grants say at each point in time, or when the ledger does not verify;
this test runs it in its own directory and checks that it got to the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import require_module, require_service

ROOT = Path(__file__).resolve().parents[2]


def found(name: str) -> bool:
    return bool(shutil.which(name) or os.access(f"/usr/sbin/{name}", os.X_OK))


def clean_env() -> dict[str, str]:
    """The demo sets its targets' variables itself: none may come from the caller."""
    return {k: v for k, v in os.environ.items() if k not in ("APP_DB_DSN", "AD_JITPOL_PASSWORD", "SSL_CERT_FILE")}


@pytest.mark.slow
def test_demo_targets_runs_to_the_end(tmp_path: Path) -> None:
    require_module("pymysql")
    require_module("ldap3")
    require_service(found("mariadbd"), "MariaDB", "mariadbd not found (apt-get install mariadb-server)")
    samba = os.geteuid() == 0 and found("samba") and found("samba-tool")
    require_service(samba, "a Samba AD DC", "needs root, samba and samba-tool (apt-get install samba samba-ad-dc)")
    env = clean_env()
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "demo_targets.py"), "--dir", str(tmp_path / "demo")],
                            capture_output=True, text=True, env=env, timeout=300, check=False)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert "docs/targets/entra.md" in out
    assert out.count("Apply complete: ") == 3 and out.count(" applied, 0 failed, ") == 3, out[-4000:]
    assert "dave's checked-out password logs in as reporting: yes" in out
    assert "native end: event jitpol_checkout_" in out
    assert "cn=alice,cn=users,dc=example,dc=test" in out.split("now + 35 min")[0].split("now + 0 min")[1]
    assert "No changes. Targets match the active grants." in out
    assert "chain intact" in out
    assert (tmp_path / "demo" / "repo" / "audit" / "ledger.jsonl").is_file()


@pytest.mark.slow
def test_demo_targets_without_ad_runs_the_mariadb_part(tmp_path: Path) -> None:
    # the path `make demo-targets` takes when not root (Samba needs root)
    require_module("pymysql")
    require_service(found("mariadbd"), "MariaDB", "mariadbd not found (apt-get install mariadb-server)")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "demo_targets.py"), "--dir", str(tmp_path / "demo"),
                             "--without-ad"], capture_output=True, text=True, env=clean_env(), timeout=300,
                            check=False)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert "only the MariaDB part runs" in out and "Samba" not in out and "corp-ad" not in out
    assert out.count(" applied, 0 failed, ") == 3 and "chain intact" in out, out[-4000:]
