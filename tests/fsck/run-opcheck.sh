#!/usr/bin/env bash
# run-opcheck.sh - mounts a fresh s3mem in a private temp dir, runs opcheck on
# it, unmounts, and fails when the daemon's log holds a sanitizer report.
#
# Usage: run-opcheck.sh [BUILD_DIR] [-- ] OPCHECK_ARGS...
#   e.g. run-opcheck.sh /tmp/build --seed 1 --ops 50000 --snapshot-every 500
#
# The daemon: $S3MEM_BIN, else BUILD_DIR/s3mem (BUILD_DIR is the first
# argument when it is a directory). opcheck: $OPCHECK_BIN, else built with cc
# from opcheck.c beside this script into $OPCHECK_BUILD_DIR (default: BUILD_DIR,
# else the temp dir) when missing or older than its source. Extra daemon
# options: $S3MEM_OPTS (words, e.g. "-s"). Exit status: opcheck's; 1 also when
# the mount fails, the unmount fails or the log holds a sanitizer report.
# shellcheck disable=SC2317  # cleanup() and finish() run from the EXIT trap
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=
if [[ $# -gt 0 && -d "$1" ]]; then
  build_dir=$(cd "$1" && pwd)
  shift
fi
[[ "${1:-}" == "--" ]] && shift

s3mem_bin=${S3MEM_BIN:-${build_dir:+$build_dir/s3mem}}
if [[ -z "$s3mem_bin" || ! -x "$s3mem_bin" ]]; then
  echo "run-opcheck: no s3mem binary: set S3MEM_BIN or pass the build directory" >&2
  exit 2
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/s3mem-opcheck.XXXXXX")
MNT="$T/mnt"
LOG="$T/daemon.log"
mkdir "$MNT"
daemon_pid=
sanitizer_pattern='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ThreadSanitizer'

is_mounted() {
  findmnt -rn --mountpoint "$1" >/dev/null 2>&1
}

# Unmounts, reaps our own daemon (by its PID only), checks its log; removes
# $T when nothing is left mounted. Sets cleanup_failed.
cleanup_failed=0
cleanup() {
  cd / || true
  if is_mounted "$MNT"; then
    if ! fusermount3 -u "$MNT" 2>>"$T/umount.err"; then
      echo "run-opcheck: fusermount3 -u $MNT failed: $(cat "$T/umount.err")" >&2
      cleanup_failed=1
      fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    fi
  fi
  if [[ -n "$daemon_pid" ]]; then
    if ! timeout 30 tail --pid="$daemon_pid" -f /dev/null; then
      echo "run-opcheck: s3mem (pid $daemon_pid) did not exit after unmount: killing it" >&2
      cleanup_failed=1
      kill -TERM "$daemon_pid" 2>/dev/null || true
      timeout 5 tail --pid="$daemon_pid" -f /dev/null || kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    local daemon_status=0
    wait "$daemon_pid" || daemon_status=$?
    daemon_pid=
    if ((daemon_status != 0)); then
      echo "run-opcheck: s3mem exited with status $daemon_status" >&2
      cleanup_failed=1
    fi
  fi
  if grep -Eq "$sanitizer_pattern" "$LOG" 2>/dev/null; then
    echo "run-opcheck: sanitizer report in the daemon's log:" >&2
    cleanup_failed=1
  fi
  if ((cleanup_failed)); then
    echo "--- daemon log ($LOG, last 100 lines) ---" >&2
    tail -n 100 "$LOG" >&2
  fi
  if ! is_mounted "$MNT"; then
    if ((cleanup_failed)); then
      mv "$LOG" "${TMPDIR:-/tmp}/s3mem-opcheck-daemon.$$.log" 2>/dev/null &&
        echo "run-opcheck: daemon log kept in ${TMPDIR:-/tmp}/s3mem-opcheck-daemon.$$.log" >&2
    fi
    rm -rf "$T"
  fi
}
finish() {
  local status=$?
  trap - EXIT INT TERM
  cleanup
  if ((cleanup_failed && status == 0)); then
    status=1
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# opcheck: given, or built when missing or out of date.
opcheck_bin=${OPCHECK_BIN:-}
if [[ -z "$opcheck_bin" ]]; then
  opcheck_bin="${OPCHECK_BUILD_DIR:-${build_dir:-$T}}/opcheck"
  if [[ ! -x "$opcheck_bin" || "$here/opcheck.c" -nt "$opcheck_bin" ]]; then
    ${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Werror -Wstrict-prototypes \
      -Wmissing-prototypes -Wwrite-strings -Wshadow -D_FILE_OFFSET_BITS=64 \
      -I"$here/../../include" -o "$opcheck_bin" "$here/opcheck.c" "$here/../../src/util/md5.c" \
      || { echo "run-opcheck: cannot build opcheck" >&2; exit 2; }
  fi
fi

extra_opts=()
read -r -a extra_opts <<<"${S3MEM_OPTS:-}"
mkfifo "$T/ready"
"$s3mem_bin" -f -o "ready_file=$T/ready" "${extra_opts[@]}" "$MNT" </dev/null >>"$LOG" 2>&1 &
daemon_pid=$!
ready=$(timeout 10 cat "$T/ready") || true
if [[ "$ready" != ready ]] || ! is_mounted "$MNT"; then
  echo "run-opcheck: s3mem did not become ready: $s3mem_bin -f ${extra_opts[*]} $MNT" >&2
  cleanup_failed=1
  exit 1
fi

start=$EPOCHREALTIME
"$opcheck_bin" "$MNT" "$@"
status=$?
echo "run-opcheck: opcheck exited $status after $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
exit "$status"
