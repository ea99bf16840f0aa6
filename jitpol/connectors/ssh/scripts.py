"""The few constant `sh -c` scripts LinuxHost runs: names reach them only as quoted positional
parameters, never inside the script text."""

from __future__ import annotations

# -- constant scripts: names reach them only as quoted positional parameters -------------------

# wait until every process of user $1 is gone (a zombie counts as gone), at most ~10 s
_WAIT_GONE = (
    'i=0; while ps -o stat= -u "$1" 2>/dev/null | grep -qv "^Z"; do '
    'i=$((i+1)); if [ "$i" -ge 200 ]; then echo "processes of $1 are still running" >&2; exit 1; fi; '
    "sleep 0.05; done"
)
# authorized_keys of each user "$@", read AS that user (a symlink there cannot make root read
# another file), each preceded by a record separator line naming the user
_READ_KEYS = (
    'for u do printf "\\036%s\\n" "$u"; h=$(getent passwd -- "$u" | cut -d: -f6) || continue; '
    '[ -n "$h" ] || continue; setpriv --reuid="$u" --regid="$(id -g -- "$u")" --clear-groups -- '
    'cat -- "$h/.ssh/authorized_keys" 2>/dev/null | tr -d "\\036"; done'
)
# replace ~$1/.ssh/authorized_keys with stdin atomically, writing AS user $1 (a symlink the user
# planted cannot make root write anywhere)
_WRITE_KEYS = (
    'set -eu; h=$(getent passwd -- "$1" | cut -d: -f6); '
    'if [ -z "$h" ] || [ ! -d "$h" ]; then echo "no home directory for $1" >&2; exit 3; fi; '
    'exec setpriv --reuid="$1" --regid="$(id -g -- "$1")" --clear-groups -- sh -c '
    "'umask 077 && mkdir -p -- \"$1/.ssh\" && cat > \"$1/.ssh/authorized_keys.jitpol-new\" && "
    "mv -f -- \"$1/.ssh/authorized_keys.jitpol-new\" \"$1/.ssh/authorized_keys\"' jitpol-keys \"$h\""
)
# every file sudo reads: /etc/sudoers and the files of /etc/sudoers.d whose name sudo does not
# skip (jitpol-* included: a file at such a name may not be jitpol's), each preceded by a record
# separator line
_READ_SUDOERS = (
    'for f in /etc/sudoers /etc/sudoers.d/*; do [ -f "$f" ] || continue; case "${f##*/}" in '
    '*.*|*~) continue;; esac; printf "\\036%s\\n" "$f"; tr -d "\\036" < "$f"; done'
)
# every jitpol drop-in with its text, each preceded by a record separator line naming it
_READ_RULES = (
    'for f in /etc/sudoers.d/jitpol-*; do [ -f "$f" ] || continue; '
    'printf "\\036%s\\n" "${f##*/}"; tr -d "\\036" < "$f"; done'
)
