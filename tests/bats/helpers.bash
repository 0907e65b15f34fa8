# shellcheck shell=bash disable=SC2154  # status, output: set by bats run
# helpers.bash - mount a fresh s3mem per test, and check what it left behind.
#
# Each test gets a private temp dir $T (mktemp -d) holding the mountpoint $MNT,
# the daemon's log $LOG and a FIFO the daemon writes "ready" to once the mount
# is live (-o ready_file), so nothing sleeps. Teardown unmounts, waits for our
# own daemon (and only it), and fails the test when the log holds a sanitizer
# report or the daemon died badly.
#
# Environment: S3MEM_BIN (the daemon, set by ctest), S3MEM_SOURCE_DIR (the
# repository), S3MEM_EXTRA_OPTS (words appended to every daemon command line,
# e.g. "-s" to run a suite single-threaded).
#
# Usage in a .bats file:
#   setup()    { load helpers; s3mem_mount; }          # or s3mem_mount -o OPTS
#   teardown() { s3mem_teardown; }

: "${S3MEM_BIN:?S3MEM_BIN must name the s3mem binary (ctest sets it)}"
: "${S3MEM_SOURCE_DIR:=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}"

# Sanitizer reports that fail a test when found in the daemon's log.
S3MEM_SANITIZER_PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ThreadSanitizer'

# is_mounted DIR: true when something is mounted on DIR, even a FUSE mount
# whose daemon died (which stat, and so mountpoint(1), cannot see).
is_mounted() {
  findmnt -rn --mountpoint "$1" >/dev/null 2>&1
}

# Creates $T, $MNT and $LOG once per test.
s3mem_make_tmpdir() {
  [[ -n "${T:-}" ]] && return 0
  T=$(mktemp -d "${TMPDIR:-/tmp}/s3mem-bats.XXXXXX")
  MNT="$T/mnt"
  LOG="$T/log"
  mkdir "$MNT"
  : >"$LOG"
}

# s3mem_mount [daemon options...]: starts the daemon in the foreground (in the
# background of this shell) on $MNT and returns once the mount is live.
# Sets S3MEM_PID. Fails, printing the log, when the mount does not come up.
s3mem_mount() {
  s3mem_make_tmpdir
  local -a extra=()
  read -r -a extra <<<"${S3MEM_EXTRA_OPTS:-}"
  rm -f "$T/ready"
  mkfifo "$T/ready"
  # 3>&- : bats waits for fd 3 to close, so the daemon must not hold it.
  "$S3MEM_BIN" -f -o "ready_file=$T/ready" "$@" "${extra[@]}" "$MNT" \
    </dev/null >>"$LOG" 2>&1 3>&- &
  S3MEM_PID=$!
  local ready
  ready=$(timeout 10 cat "$T/ready") || true
  if [[ "$ready" != ready ]] || ! is_mounted "$MNT"; then
    echo "s3mem did not become ready (pid $S3MEM_PID): $S3MEM_BIN -f $* ${extra[*]} $MNT"
    echo "--- daemon log ---"
    cat "$LOG"
    return 1
  fi
}

# s3mem_unmount: unmounts $MNT, waits for our daemon to exit and reaps it.
# Fails (after cleaning up) when the unmount failed, the daemon had to be
# killed or exited non-zero, or its log holds a sanitizer report.
s3mem_unmount() {
  local failed=0 exit_status=0
  cd / || true
  if [[ -n "${MNT:-}" ]] && is_mounted "$MNT"; then
    if ! fusermount3 -u "$MNT" 2>>"$T/umount.err"; then
      echo "fusermount3 -u $MNT failed: $(cat "$T/umount.err")"
      failed=1
      fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    fi
  fi
  if [[ -n "${S3MEM_PID:-}" ]]; then
    if ! timeout 20 tail --pid="$S3MEM_PID" -f /dev/null; then
      echo "s3mem (pid $S3MEM_PID) did not exit after unmount: killing it"
      failed=1
      kill -TERM "$S3MEM_PID" 2>/dev/null || true
      timeout 5 tail --pid="$S3MEM_PID" -f /dev/null || kill -KILL "$S3MEM_PID" 2>/dev/null || true
    fi
    wait "$S3MEM_PID" || exit_status=$?
    if ((exit_status != 0)); then
      echo "s3mem (pid $S3MEM_PID) exited with status $exit_status"
      failed=1
    fi
    S3MEM_PID=
  fi
  if grep -Eq "$S3MEM_SANITIZER_PATTERN" "$LOG" 2>/dev/null; then
    echo "sanitizer report in the daemon's log"
    failed=1
  fi
  if ((failed)); then
    echo "--- daemon log ($LOG) ---"
    cat "$LOG" 2>/dev/null
    return 1
  fi
}

# mounts_under DIR: the mountpoints below DIR, deepest first.
mounts_under() {
  findmnt -rn -o TARGET | grep -F "$1/" | sort -r
}

# teardown body: unmount, also whatever a test mounted elsewhere under $T
# (s3mem-mount), then remove $T when nothing is mounted in it any more.
s3mem_teardown() {
  local rc=0 target
  [[ -n "${T:-}" ]] || return 0
  s3mem_unmount || rc=$?
  while read -r target; do
    [[ -n "$target" ]] || continue
    echo "left mounted by the test: $target"
    fusermount3 -u "$target" 2>/dev/null || fusermount3 -uz "$target" 2>/dev/null || true
    rc=1
  done < <(mounts_under "$T")
  if [[ -z "$(mounts_under "$T")" ]] && ! is_mounted "$MNT"; then
    rm -rf "$T"
  fi
  return "$rc"
}

# fails_with TEXT COMMAND...: COMMAND must fail and print TEXT (an errno
# message as coreutils and attr print it). Sets $status and $output.
fails_with() {
  local text=$1
  shift
  run "$@"
  if ((status == 0)) || [[ "$output" != *"$text"* ]]; then
    echo "expected '$*' to fail with '$text'"
    echo "status: $status"
    echo "output: $output"
    return 1
  fi
}

# succeeds COMMAND...: COMMAND must exit 0; prints its output when it does not.
succeeds() {
  run "$@"
  if ((status != 0)); then
    echo "expected '$*' to succeed"
    echo "status: $status"
    echo "output: $output"
    return 1
  fi
}

# expect_equal WANT GOT [WHAT]: prints both on mismatch.
expect_equal() {
  if [[ "$1" != "$2" ]]; then
    echo "${3:-value} differs"
    echo "want: $1"
    echo "got:  $2"
    return 1
  fi
}

# xattr_value FILE NAME: prints the value of one extended attribute.
xattr_value() {
  getfattr --only-values --absolute-names -n "$2" "$1"
}

# random_file PATH SIZE: writes SIZE random bytes to PATH.
random_file() {
  head -c "$2" /dev/urandom >"$1"
}
