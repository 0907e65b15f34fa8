#!/usr/bin/env bats
# persist.bats - -o persist=PATH and autopersist (DESIGN.md sections 6 and 7):
# load at mount, save at unmount and on SIGTERM, a bad file stops the
# mount, autopersist saves in the background, and a SIGKILLed daemon never
# leaves a half-written file.

setup() {
  load helpers
  load control_helpers
  s3mem_make_tmpdir
  STORE="$T/store.json"
  WRITER_PID=
}

teardown() {
  stop_writer
  s3mem_teardown
}

# mount_persist [more options]: mounts with persist=$STORE.
mount_persist() {
  ctl_mount -o "persist=$STORE" "$@"
}

# saved_body KEY: the body of KEY in $STORE (fails when absent).
saved_body() {
  jq -e -r --arg k "$1" '.objects[$k].body' "$STORE" 2>/dev/null | base64 -d
}

# store_has KEY BODY: $STORE holds KEY with that body (for wait_until).
store_has() {
  [[ -f "$STORE" && "$(saved_body "$1" 2>/dev/null)" == "$2" ]]
}

@test "persist=PATH: no file yet mounts empty; saved at unmount, loaded at the next mount" {
  mount_persist
  [ ! -e "$STORE" ]
  expect_equal "" "$(ls "$MNT")"
  mkdir -p "$MNT/docs"
  echo "kept across mounts" >"$MNT/docs/a.txt"
  setfattr -n user.color -v blue "$MNT/docs/a.txt"
  chmod 640 "$MNT/docs/a.txt"
  printf '\000\001binary' >"$MNT/bin"
  local before
  before=$(tree_state "$MNT")
  s3mem_unmount

  [ -f "$STORE" ]
  succeeds jq -e '.objects["docs/a.txt"].metadata.color == "blue"' "$STORE"
  expect_equal "kept across mounts" "$(saved_body docs/a.txt)"
  expect_equal 644 "$(stat -c %a "$STORE")" "mode of a new save file"
  expect_equal store.json "$(ls "$T" | grep -F store.json)" "no temp file beside the save file"

  mount_persist
  expect_same_tree "$before" "$(tree_state "$MNT")"
  expect_equal "kept across mounts" "$(cat "$MNT/docs/a.txt")"
  expect_equal blue "$(xattr_value "$MNT/docs/a.txt" user.color)"
  expect_equal 640 "$(stat -c %a "$MNT/docs/a.txt")"
  [[ "$(cat "$LOG")" == *"loaded 3 objects from '$STORE'"* ]] || { cat "$LOG"; false; }

  # changes of the second mount are saved too, deletions included
  rm "$MNT/bin"
  echo second >"$MNT/second.txt"
  s3mem_unmount
  expect_equal second "$(saved_body second.txt)"
  succeeds jq -e '.objects | has("bin") | not' "$STORE"
}

@test "persist: a file saved with the save command (or s3db.js) is loaded at mount" {
  cp "$FIXTURES/shop.snapshot.json" "$STORE"
  mount_persist
  expect_equal "$(sorted_keys_of "$FIXTURES/shop.snapshot.json")" "$(cat "$(ctl_path keys)")" keys
  expect_equal "plain text body" "$(cat "$MNT/assets/readme.txt")"
  # save with no path writes the persist file
  echo new >"$MNT/new.txt"
  ctl save
  expect_equal "saved 12 objects to '$STORE'" "$(status_message)"
  expect_equal new "$(saved_body new.txt)"
}

@test "persist: SIGTERM saves and unmounts; the daemon exits 0" {
  mount_persist
  echo "saved on SIGTERM" >"$MNT/term.txt"
  setfattr -n user.why -v sigterm "$MNT/term.txt"
  s3mem_stop_daemon TERM
  if is_mounted "$MNT"; then echo "still mounted after SIGTERM"; false; fi
  expect_equal "saved on SIGTERM" "$(saved_body term.txt)"
  succeeds jq -e '.objects["term.txt"].metadata.why == "sigterm"' "$STORE"
  [[ "$(cat "$LOG")" == *"unmounted $MNT"* ]] || { cat "$LOG"; false; }
  if grep -Eq "$S3MEM_SANITIZER_PATTERN" "$LOG"; then cat "$LOG"; false; fi

  mount_persist
  expect_equal "saved on SIGTERM" "$(cat "$MNT/term.txt")"
  # SIGTERM is the clean way to stop a daemon (systemd, docker stop): once
  # it saved and unmounted, it must not report failure
  expect_equal 0 "$DAEMON_STATUS" "exit status after SIGTERM"
}

# expect_mount_refused FILE WHAT: persist=FILE stops the daemon with exit 1,
# one line naming the reason, nothing mounted, FILE untouched.
expect_mount_refused() {
  local file=$1 what=$2 copy="$T/refused.copy"
  cp "$file" "$copy"
  run timeout 20 "$S3MEM_BIN" -f -o "persist=$file" "$MNT"
  if ((status != 1)) || ((${#lines[@]} != 1)) || [[ "$output" != *"$what"* ]]; then
    echo "expected exit 1 and one line with '$what' for persist=$file"
    echo "status: $status"
    echo "output: $output"
    return 1
  fi
  if is_mounted "$MNT"; then
    echo "mounted despite a bad persist file"
    fusermount3 -u "$MNT"
    return 1
  fi
  cmp "$file" "$copy" || { echo "the bad persist file was changed"; return 1; }
}

@test "a bad persist file stops the mount: exit 1, one line, nothing mounted" {
  echo "this is not JSON" >"$STORE"
  expect_mount_refused "$STORE" "not valid JSON"
  [[ "$output" == *"$STORE"* ]] || { echo "$output"; false; }

  head -c 300 "$FIXTURES/shop.snapshot.json" >"$STORE"
  expect_mount_refused "$STORE" "not valid JSON"

  jq '.objects["assets/readme.txt"].etag = "00000000000000000000000000000000"' \
    "$FIXTURES/shop.snapshot.json" >"$STORE"
  expect_mount_refused "$STORE" "assets/readme.txt"

  echo '{"objects": []}' >"$STORE"
  expect_mount_refused "$STORE" "$STORE"
  no_s3mem_left
}

@test "autopersist=100: a write reaches the file without unmounting" {
  mount_persist -o autopersist=100
  echo "first" >"$MNT/auto.txt"
  wait_until 10 store_has auto.txt first
  echo "second" >"$MNT/auto.txt"
  echo "other" >"$MNT/other.txt"
  wait_until 10 store_has auto.txt second
  wait_until 10 store_has other.txt other
  rm "$MNT/other.txt"
  wait_until 10 bash -c "jq -e '.objects | has(\"other.txt\") | not' '$STORE' >/dev/null"
  succeeds jq -e .objects "$STORE"
  is_mounted "$MNT"
  s3mem_unmount
  expect_equal second "$(saved_body auto.txt)"
}

@test "autopersist without persist= is refused" {
  run timeout 20 "$S3MEM_BIN" -f -o autopersist "$MNT"
  expect_equal 1 "$status" "exit status"
  [[ "$output" == *"autopersist needs persist=PATH"* ]] || { echo "$output"; false; }
  no_s3mem_left
}

# ---- SIGKILL while saving -------------------------------------------------------

# writer: writes files of varying size into $MNT/w/ until $T/stop exists,
# counting successful writes in $T/count. Writes to a dead mount fail
# and go on; $MNT/w exists only in the mount, so nothing is written to
# the directory under it.
writer() {
  local n=0 size
  while [[ ! -e "$T/stop" ]]; do
    size=$(((n * 7919) % 200000))
    if head -c "$size" /dev/urandom >"$MNT/w/f$((n % 40))" 2>/dev/null; then
      n=$((n + 1))
      echo "$n" >"$T/count.tmp" && mv -f "$T/count.tmp" "$T/count"
    fi
  done
}

start_writer() {
  rm -f "$T/stop"
  echo 0 >"$T/count"
  writer 3>&- &
  WRITER_PID=$!
}

stop_writer() {
  [[ -n "${WRITER_PID:-}" ]] || return 0
  touch "$T/stop"
  if ! timeout 20 tail --pid="$WRITER_PID" -f /dev/null; then
    kill "$WRITER_PID" 2>/dev/null || true
  fi
  wait "$WRITER_PID" 2>/dev/null || true
  WRITER_PID=
}

# writes_done: successful writes so far.
writes_done() {
  cat "$T/count" 2>/dev/null || echo 0
}

# writes_beyond N: more than N writes have succeeded.
writes_beyond() {
  (($(writes_done) > $1))
}

# store_replaced INODE: $STORE is now another file (autopersist renamed a
# new save over it).
store_replaced() {
  [[ -f "$STORE" && "$(stat -c %i "$STORE")" != "$1" ]]
}

@test "SIGKILL at varied moments under autopersist=50: the file on disk always parses" {
  mount_persist -o autopersist=50
  mkdir -p "$MNT/w"
  start_writer
  wait_until 10 test -f "$STORE"
  local round base inode keys
  for round in $(seq 1 20); do
    base=$(writes_done)
    case $((round % 4)) in
      0) wait_until 10 writes_beyond "$base" ;;                        # right after a write
      1) wait_until 10 writes_beyond $((base + round)) ;;              # after some writes
      2) inode=$(stat -c %i "$STORE")                                  # right after a save
         wait_until 10 store_replaced "$inode" ;;
      3) inode=$(stat -c %i "$STORE")                                  # during the next one
         wait_until 10 store_replaced "$inode"
         wait_until 10 writes_beyond "$base" ;;
    esac
    s3mem_kill_daemon
    if ! jq -e .objects "$STORE" >/dev/null; then
      echo "round $round: $STORE does not parse after SIGKILL"
      head -c 300 "$STORE"
      false
    fi
    keys=$(jq '.objects | length' "$STORE")
    # the file also loads: the next mount reads all of it (a bad file would
    # stop the mount)
    mount_persist -o autopersist=50
    expect_equal "loaded $keys objects from '$STORE'" \
      "$(grep -o "loaded [0-9]* objects from '$STORE'" "$LOG" | tail -n 1)" "round $round: objects loaded"
    mkdir -p "$MNT/w"
  done
  stop_writer
  s3mem_unmount
  succeeds jq -e '.objects | length > 0' "$STORE"
  # a kill during a save leaves its temp file (never the file itself)
  local interrupted
  interrupted=$(find "$T" -maxdepth 1 -name 'store.json.tmp-*' | wc -l)
  echo "# $interrupted of 20 kills interrupted a save in progress" >&3
  no_s3mem_left
}

@test "no s3mem mount or daemon of this file is left behind" {
  nothing_left_behind
}
