# shellcheck shell=bash disable=SC2154,SC2034  # status, output: set by bats run; variables used by the .bats files
# control_helpers.bash - helpers for the tests of the .s3mem/ control plane
# (control.bats, persist.bats). Load after helpers.bash:
#   load helpers; load control_helpers
#
# $CTL is the control directory's name (default .s3mem; a test that mounts
# with -o control_dir=NAME sets it). Commands are written as a user writes
# them: printf 'CMD\n' > $MNT/$CTL/FILE.

FIXTURES="$S3MEM_SOURCE_DIR/tests/fixtures/s3db-12.4.0"
CTL=.s3mem

# ctl_path FILE: the path of a control file of the mount.
ctl_path() {
  echo "$MNT/$CTL/$1"
}

# status_json / status_message: the last command's status, and its message.
status_json() {
  cat "$(ctl_path status)"
}
status_message() {
  jq -r .message "$(ctl_path status)"
}

# ctl FILE WORDS...: runs a command that must succeed (the write returns no
# error and status says ok). Prints the status on failure.
ctl() {
  local file=$1
  shift
  if ! printf '%s\n' "$*" 2>"$T/ctl.err" >"$(ctl_path "$file")"; then
    echo "command '$*' written to $CTL/$file failed: $(cat "$T/ctl.err")"
    echo "status: $(status_json)"
    return 1
  fi
  if [[ "$(jq -r .ok "$(ctl_path status)")" != true ]]; then
    echo "command '$*' written to $CTL/$file: status is not ok: $(status_json)"
    return 1
  fi
}

# ctl_fails ERRTEXT MESSAGE FILE WORDS...: the command must fail: the writer
# sees ERRTEXT (e.g. "Invalid argument") as the shell prints it ("write
# error: ..."), status says ok=false, and its message holds MESSAGE.
ctl_fails() {
  local errtext=$1 message=$2 file=$3
  shift 3
  run bash -c 'printf "%s\n" "$2" >"$1"' _ "$(ctl_path "$file")" "$*"
  if ((status == 0)) || [[ "$output" != *"write error: $errtext"* ]]; then
    echo "expected '$*' written to $CTL/$file to fail with '$errtext'"
    echo "status: $status"
    echo "output: $output"
    return 1
  fi
  local json
  json=$(status_json)
  if [[ "$(jq -r .ok <<<"$json")" != false || "$(jq -r .command <<<"$json")" != "$file" ]]; then
    echo "status does not report the failed $file: $json"
    return 1
  fi
  if [[ "$(jq -r .message <<<"$json")" != *"$message"* ]]; then
    echo "status message of '$*' lacks '$message'"
    echo "status: $json"
    return 1
  fi
}

# store_fingerprint: everything about the store's contents as text: the
# keys, and every object with body, metadata, etag, date and mode (from a
# save to a file outside the mount). Equal fingerprints = equal stores.
# Overwrites the status: read it before.
store_fingerprint() {
  local file="$T/fingerprint.json"
  cat "$(ctl_path keys)"
  ctl save "$file" >&2 || return 1
  jq -S '.objects' "$file"
  rm -f "$file"
}

# tree_state DIR: what a user sees of a tree: ls -R, then for every file
# and directory below DIR (except the control directory) its kind and
# getfattr -d, and for files md5, size, mode and mtime. Paths are
# relative, so two trees compare equal.
tree_state() {
  (
    cd "$1" || exit 1
    ls -R .
    find . -mindepth 1 -path "./$CTL" -prune -o -print0 | LC_ALL=C sort -z |
      while IFS= read -r -d '' path; do
        if [[ -f "$path" ]]; then
          echo "file $path $(md5sum <"$path" | cut -d' ' -f1) $(stat -c '%s %a %Y' "$path")"
        else
          echo "dir $path"
        fi
        getfattr -d "$path" 2>&1
      done
  )
}

# expect_same_tree WANT GOT: compares two tree_state outputs with a diff.
expect_same_tree() {
  if [[ "$1" != "$2" ]]; then
    echo "trees differ (- want, + got):"
    diff <(echo "$1") <(echo "$2") || true
    return 1
  fi
}

# build_fixture_tree DIR: a small tree with text, binary, empty files, an
# empty directory (marker), names with spaces and user metadata.
build_fixture_tree() {
  local d=$1
  mkdir -p "$d/proj/src/lib" "$d/proj/empty" "$d/docs/with space"
  cat >"$d/proj/README.md" <<'EOF'
# Project

Some text, with "quotes" and ünïcödé.
EOF
  cat >"$d/proj/src/main.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello"); return 0; }
EOF
  printf 'lib\n' >"$d/proj/src/lib/util.h"
  printf '\000\001\002\377binary\n' >"$d/proj/logo.bin"
  : >"$d/proj/empty-file"
  printf 'a note\n' >"$d/docs/with space/note one.txt"
  head -c 70000 /dev/zero | tr '\0' 'z' >"$d/docs/big.txt"
  setfattr -n user.author -v alice "$d/proj/README.md"
  setfattr -n user.s3mem.content-type -v text/markdown "$d/proj/README.md"
  setfattr -n user.lang -v c "$d/proj/src/main.c"
  setfattr -n user.kind -v placeholder "$d/proj/empty"
  setfattr -n user.s3mem.content-encoding -v identity "$d/proj/logo.bin"
}

# sorted_keys_of SAVEFILE: the keys of a save file, sorted as the store
# sorts them (bytes).
sorted_keys_of() {
  jq -r '.objects | keys[]' "$1" | LC_ALL=C sort
}

# body_of SAVEFILE KEY: the decoded body of one object of a save file.
body_of() {
  jq -r --arg k "$2" '.objects[$k].body' "$1" | base64 -d
}

# wait_until SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds
# or SECONDS pass (then fails). A poll for a condition, not a sleep.
wait_until() {
  local limit=$1 deadline
  shift
  deadline=$(($(date +%s%N) + limit * 1000000000))
  until "$@"; do
    if (($(date +%s%N) > deadline)); then
      echo "timed out after ${limit}s waiting for: $*"
      return 1
    fi
    sleep 0.05
  done
}

# s3mem_kill_daemon: SIGKILLs our daemon, reaps it, and lazily unmounts
# the dead mount, so that s3mem_mount can mount again and s3mem_teardown
# finds nothing to complain about.
s3mem_kill_daemon() {
  [[ -n "${S3MEM_PID:-}" ]] || return 0
  kill -KILL "$S3MEM_PID" 2>/dev/null || true
  wait "$S3MEM_PID" 2>/dev/null || true
  S3MEM_PID=
  if is_mounted "$MNT"; then
    fusermount3 -uz "$MNT"
  fi
}

# s3mem_stop_daemon SIGNAL: sends SIGNAL to our daemon and waits for it;
# sets DAEMON_STATUS to its exit status.
s3mem_stop_daemon() {
  DAEMON_STATUS=0
  kill "-$1" "$S3MEM_PID"
  timeout 20 tail --pid="$S3MEM_PID" -f /dev/null || {
    echo "s3mem (pid $S3MEM_PID) did not exit after SIG$1"
    return 1
  }
  wait "$S3MEM_PID" || DAEMON_STATUS=$?
  S3MEM_PID=
}

# no_s3mem_left: fails when one of our mounts under $T is still there.
no_s3mem_left() {
  if [[ -n "$(mounts_under "$T")" ]] || is_mounted "$MNT"; then
    echo "still mounted:"
    mount | grep -F "$T" || true
    return 1
  fi
}

# ctl_mount [daemon options...]: s3mem_mount, recording the daemon's pid
# and temp dir so the file's last test can check nothing is left behind.
ctl_mount() {
  s3mem_mount "$@" || return 1
  echo "$S3MEM_PID" >>"$BATS_FILE_TMPDIR/pids"
  echo "$T" >>"$BATS_FILE_TMPDIR/tmpdirs"
}

# nothing_left_behind: fails when a daemon started by ctl_mount still runs
# or one of their temp dirs is still mounted.
nothing_left_behind() {
  local pid dir rc=0
  touch "$BATS_FILE_TMPDIR/pids" "$BATS_FILE_TMPDIR/tmpdirs"
  while read -r pid; do
    [[ -n "$pid" ]] || continue
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == s3mem* ]]; then
      echo "s3mem (pid $pid) is still running"
      rc=1
    fi
  done <"$BATS_FILE_TMPDIR/pids"
  while read -r dir; do
    [[ -n "$dir" ]] || continue
    if mount | grep -F "$dir" | grep -q s3mem; then
      echo "still mounted: $(mount | grep -F "$dir")"
      rc=1
    fi
  done <"$BATS_FILE_TMPDIR/tmpdirs"
  return "$rc"
}
