#!/usr/bin/env bats
# scripts.bats - mount-scripts/s3mem-mount and s3mem-umount, run with the
# daemon under test (S3MEM_BIN) so they build nothing.

setup() {
  load helpers
  s3mem_make_tmpdir
  SCRIPTS="$S3MEM_SOURCE_DIR/mount-scripts"
  # log and pid files of s3mem-mount go to $XDG_RUNTIME_DIR
  export XDG_RUNTIME_DIR="$T"
}

teardown() {
  s3mem_teardown
}

# 3>&- : the daemon s3mem-mount starts must not hold bats's fd 3.
mount_script() {
  run "$SCRIPTS/s3mem-mount" "$@" 3>&-
}

@test "s3mem-mount and s3mem-umount --help" {
  succeeds "$SCRIPTS/s3mem-mount" --help
  [[ "$output" == *"Usage: s3mem-mount MOUNTPOINT"* ]]
  succeeds "$SCRIPTS/s3mem-umount" --help
  [[ "$output" == *"Usage: s3mem-umount"* ]]
}

@test "s3mem-mount mounts, says how to use it, s3mem-umount unmounts" {
  mount_script "$MNT/sub/dir" -o max_memory=32M
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" == *"mounted at $MNT/sub/dir"* ]] || { echo "$output"; false; }
  [[ "$output" == *"getfattr -d"* && "$output" == *"s3mem-umount $MNT/sub/dir"* ]] || { echo "$output"; false; }
  is_mounted "$MNT/sub/dir"
  echo hi >"$MNT/sub/dir/f"
  expect_equal hi "$(cat "$MNT/sub/dir/f")"
  expect_equal $((32 * 1024 * 1024)) "$(df -B1 --output=size "$MNT/sub/dir" | tail -n 1 | tr -d ' ')" "df size"

  fails_with "already mounted" "$SCRIPTS/s3mem-mount" "$MNT/sub/dir"

  succeeds "$SCRIPTS/s3mem-umount" "$MNT/sub/dir"
  [[ "$output" == *"unmounted $MNT/sub/dir"* ]]
  if is_mounted "$MNT/sub/dir"; then echo "still mounted"; false; fi
  local log
  log=$(echo "$T"/s3mem-*.log)
  [ -f "$log" ]
  if grep -Eq "$S3MEM_SANITIZER_PATTERN" "$log"; then cat "$log"; false; fi
}

@test "s3mem-umount of a directory that is not mounted says so" {
  mkdir -p "$T/plain"
  fails_with "is not mounted" "$SCRIPTS/s3mem-umount" "$T/plain"
  [ "${#lines[@]}" -eq 1 ]
}

@test "s3mem-mount with a bad option fails and shows the reason" {
  mount_script "$MNT" -o no_such_option
  [ "$status" -ne 0 ]
  [[ "$output" == *"did not mount"* ]] || { echo "$output"; false; }
  if is_mounted "$MNT"; then echo "mounted anyway"; false; fi
}
