#!/usr/bin/env bats
# faults.bats - saves that hit a full disk, persist files that went bad
# between mounts, and control-command paths that point somewhere unusual:
# each fails cleanly, says why, and loses nothing.

setup() {
  load helpers
  load control_helpers
}

teardown() {
  if [[ -n "${SMALL:-}" ]] && is_mounted "$SMALL"; then
    umount "$SMALL" || umount -l "$SMALL"
  fi
  s3mem_teardown
}

# mount_small_tmpfs SIZE: a tiny tmpfs at $SMALL (root only).
mount_small_tmpfs() {
  [[ $(id -u) -eq 0 ]] || skip "needs root to mount a small tmpfs"
  SMALL="$T/small"
  mkdir -p "$SMALL"
  mount -t tmpfs -o "size=$1" tmpfs "$SMALL"
}

@test "a save onto a full disk fails with ENOSPC, keeps the old file and the store" {
  s3mem_mount
  mount_small_tmpfs 256k
  echo small >"$MNT/a.txt"
  ctl save "$SMALL/store.json"
  cp "$SMALL/store.json" "$T/before.json"
  random_file "$MNT/big.bin" $((1024 * 1024))
  local keys_before
  keys_before=$(cat "$(ctl_path keys)")

  ctl_fails "No space left on device" "no space left" save "$SMALL/store.json"

  cmp "$T/before.json" "$SMALL/store.json"
  # no temp file left behind on the full disk
  expect_equal "store.json" "$(ls -A "$SMALL")" "files on the small disk"
  expect_equal "$keys_before" "$(cat "$(ctl_path keys)")" "keys after the failed save"
  expect_equal small "$(cat "$MNT/a.txt")"
}

@test "an export onto a full disk fails and removes what it wrote" {
  s3mem_mount
  mount_small_tmpfs 64k
  ctl load "$FIXTURES/shop.snapshot.json"
  for i in $(seq 1 40); do
    random_file "$T/body" 4096
    cp "$T/body" "$MNT/resource=users/data/id=big$i"
  done
  run bash -c "echo '$SMALL/backup compress=false' > '$(ctl_path export)'"
  ((status != 0))
  [[ "$(status_message)" == *"no space left"* ]]
  [[ ! -e "$SMALL/backup/s3db.json" ]]
}

@test "a persist file that became a directory stops the mount with a reason" {
  s3mem_make_tmpdir
  mkdir "$T/state.json"
  run timeout 20 "$S3MEM_BIN" -f -o "persist=$T/state.json" "$MNT"
  ((status == 1))
  [[ "$output" == *"cannot load persist file"* ]]
  ! is_mounted "$MNT"
}

@test "a persist file cut short between mounts stops the mount, naming it" {
  s3mem_make_tmpdir
  s3mem_mount -o "persist=$T/state.json"
  echo hello >"$MNT/a.txt"
  s3mem_unmount
  head -c 100 "$T/state.json" >"$T/cut.json"
  mv "$T/cut.json" "$T/state.json"
  run timeout 20 "$S3MEM_BIN" -f -o "persist=$T/state.json" "$MNT"
  ((status == 1))
  [[ "$output" == *"$T/state.json"* ]]
  [[ "$output" == *"not valid JSON"* ]]
  ! is_mounted "$MNT"
}

@test "export into a path that is an existing file fails with ENOTDIR and a message" {
  s3mem_mount
  ctl load "$FIXTURES/shop.snapshot.json"
  echo not-a-dir >"$T/file"
  ctl_fails "Not a directory" "$T/file" export "$T/file"
  expect_equal not-a-dir "$(cat "$T/file")"
}

@test "save over a symbolic link replaces the link, never the file it points to" {
  s3mem_mount
  echo data >"$MNT/a.txt"
  echo precious >"$T/target"
  ln -s "$T/target" "$T/link.json"
  ctl save "$T/link.json"
  expect_equal precious "$(cat "$T/target")"
  [[ ! -L "$T/link.json" ]]
  jq -e '.objects["a.txt"]' "$T/link.json" >/dev/null
}

@test "paths with .. are resolved by the system, like any absolute path" {
  s3mem_mount
  echo data >"$MNT/a.txt"
  mkdir -p "$T/x"
  ctl save "$T/x/../saved.json"
  jq -e '.objects["a.txt"]' "$T/saved.json" >/dev/null
}

@test "load of a directory or a FIFO is refused without hanging" {
  s3mem_mount
  echo data >"$MNT/a.txt"
  ctl_fails "Is a directory" "$T" load "$T"
  expect_equal data "$(cat "$MNT/a.txt")"
}

@test "SIGTERM during an import lets it finish before the final save: all records" {
  s3mem_make_tmpdir
  local store="$T/state.json" backup="$T/backup" n=20000
  mkdir "$backup"
  printf '{"version":"1.0","resources":{"users":{"stats":{"recordCount":%d}}}}' "$n" \
    >"$backup/s3db.json"
  seq 1 "$n" | jq -c '{id: ("u" + tostring), name: ("user " + tostring)}' \
    >"$backup/users.jsonl"
  s3mem_mount -o "persist=$store"
  bash -c "echo '$backup' > '$MNT/.s3mem/import'" 2>/dev/null &
  local writer=$!
  # SIGTERM once the import has stored its first records (it stores them
  # one by one into the live store)
  wait_until 20 bash -c "[[ \$(jq .objectCount '$MNT/.s3mem/stats') -gt 0 ]]"
  kill -TERM "$S3MEM_PID"
  wait "$writer" || true
  timeout 30 tail --pid="$S3MEM_PID" -f /dev/null
  wait "$S3MEM_PID" || true
  S3MEM_PID=
  ! is_mounted "$MNT"
  local count
  count=$(jq '[.objects | keys[] | select(startswith("resource=users/data/id="))] | length' "$store")
  expect_equal "$n" "$count" "records in the file saved at SIGTERM"
}
