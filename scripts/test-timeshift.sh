#!/usr/bin/env bash
# Run pytest with every clock shifted by libfaketime: the test processes, the servers they start
# (PostgreSQL, slapd, moto, the doubles) and, through /etc/ld.so.preload inside its namespace,
# everything the throwaway sshd runs (setuid sudo included). Proves that no test depends on the
# date. Usage: scripts/test-timeshift.sh SHIFT COMMAND...   (SHIFT: +365d, -1d, ...)
set -euo pipefail
shift_spec=$1; shift
[[ "$shift_spec" =~ ^[+-][0-9]+d$ ]] || { echo "test-timeshift: SHIFT must look like +365d or -1d, not '$shift_spec'" >&2; exit 2; }
lib=/usr/lib/$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/faketime/libfaketime.so.1
[ -e "$lib" ] || { echo "test-timeshift: $lib not found (apt-get install faketime)" >&2; exit 1; }

# The monotonic clocks are shifted too: with them real, libfaketime turns Python's time.sleep
# (an absolute CLOCK_MONOTONIC deadline) into EINVAL. libfaketime gives each process a semaphore
# in /dev/shm named by its pid; one that execs without exiting leaves its pair behind: remove
# those of processes that are gone.
cleanup() {
  local f pid
  for f in /dev/shm/faketime_shm_* /dev/shm/sem.faketime_sem_*; do
    [ -e "$f" ] || continue
    pid=${f##*_}
    kill -0 "$pid" 2>/dev/null || rm -f -- "$f"
  done
}
trap cleanup EXIT

echo "== every clock shifted by $shift_spec (libfaketime): $*" >&2
JITPOL_REAL_EPOCH=$(date +%s) JITPOL_TIMESHIFT=$shift_spec \
  FAKETIME=$shift_spec LD_PRELOAD=$lib \
  "$@"
