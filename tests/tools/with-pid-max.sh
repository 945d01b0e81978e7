#!/usr/bin/env bash
# Runs a command with /proc/sys/kernel/pid_max reading N, as on a machine configured so
# (systemd sets 4194304 on most 64-bit distributions), without touching this machine's
# setting: a file bind-mounted over it in a private mount namespace. Needs root (or a user
# namespace that may mount). The kernel still hands out PIDs by its real pid_max; what this
# tests is that no test assumes the value.
#   tests/tools/with-pid-max.sh 4194304 cargo test --test it
set -euo pipefail
n=$1
shift
fake=$(mktemp)
trap 'rm -f "$fake"' EXIT
echo "$n" >"$fake"
unshare --mount --propagation private -- sh -c '
    mount --bind "$0" /proc/sys/kernel/pid_max &&
    [ "$(cat /proc/sys/kernel/pid_max)" = "$1" ] || { echo "cannot simulate pid_max" >&2; exit 1; }
    shift
    exec "$@"' "$fake" "$n" "$@"
