#!/usr/bin/env bash
# Install the Debian packages jitpol's demo and tests need, if missing:
# PostgreSQL server binaries (throwaway test/demo clusters), ssh-keygen (approval signatures), git,
# OpenLDAP slapd + ldap-utils (LDAP connector tests), mariadb-server (MySQL/MariaDB connector
# tests), openssh-server + sudo (Linux host connector tests, run in a private mount namespace), openssl (test certificates), util-linux (unshare),
# procps (pkill), chromium + a font (the HTML report is tested in a real headless browser),
# faketime (the suite runs again with every clock a year ahead: no test depends on the date),
# Samba (a throwaway Active Directory domain controller for the LDAP connector's AD flavor).
set -euo pipefail
profile=${1:-test}   # demo: what `make demo` needs; test: everything the test suite starts;
                     # demo-targets: `make demo`'s and the servers of `make demo-targets` (MariaDB, Samba)
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v git >/dev/null 2>&1 || need+=(git)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
if [ "$profile" = test ]; then
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/bin/sudo ] || need+=(sudo)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v pkill >/dev/null 2>&1 || need+=(procps)
command -v chromium >/dev/null 2>&1 || need+=(chromium)        # the report's browser test
command -v faketime >/dev/null 2>&1 || need+=(faketime)        # make test-timeshift: a shifted clock
fc-list 2>/dev/null | grep -q . || need+=(fonts-dejavu-core)   # readable screenshots
fi
if [ "$profile" = test ] || [ "$profile" = demo-targets ]; then
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)   # throwaway MariaDB
{ [ -x /usr/sbin/samba ] && command -v samba-tool >/dev/null 2>&1 && [ -d /usr/share/samba/setup ]; } \
  || need+=(samba samba-ad-provision samba-ad-dc)            # a throwaway AD domain controller
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} - install them (e.g. sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d: never start the system's own daemons (slapd, sshd, postgresql, samba); tests run their own
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
