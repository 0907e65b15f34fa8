#!/usr/bin/env bats
# options.bats - the daemon's command line (DESIGN.md section 7): --help,
# --version, bad options, and what each -o option changes for a user.
# Each test mounts with its own options.

setup() {
  load helpers
  s3mem_make_tmpdir
}

teardown() {
  s3mem_teardown
}

# expect_refused ARGS...: the daemon must refuse ARGS with exit code 1 and
# a one-line reason, and mount nothing.
expect_refused() {
  run timeout 10 "$S3MEM_BIN" -f "$@"
  if [ "$status" -ne 1 ] || [ "${#lines[@]}" -ne 1 ]; then
    echo "expected exit 1 and one line from: s3mem -f $*"
    echo "status: $status"
    echo "output: $output"
    return 1
  fi
  if is_mounted "$MNT"; then
    echo "mounted despite: s3mem -f $*"
    return 1
  fi
}

# df_field FIELD: one df -B1 --output field (size, used, iused) of the mount.
df_field() {
  df -B1 --output="$1" "$MNT" | tail -n 1 | tr -d ' '
}

@test "--help lists the options" {
  run "$S3MEM_BIN" --help
  [ "$status" -eq 0 ]
  local option
  for option in bucket key_prefix control_dir persist autopersist enforce_limits \
    metadata_limit max_object_size max_memory verbose ready_file; do
    [[ "$output" == *"$option"* ]] || { echo "--help does not mention $option:"; echo "$output"; false; }
  done
}

@test "--version prints the version" {
  local version
  version=$(sed -n 's/^project(s3mem VERSION \([0-9.]*\).*/\1/p' "$S3MEM_SOURCE_DIR/CMakeLists.txt")
  [ -n "$version" ]
  run "$S3MEM_BIN" --version
  [ "$status" -eq 0 ]
  [[ "$output" == *"$version"* ]] || { echo "want $version in: $output"; false; }
}

@test "bad options stop the daemon with exit 1 and a one-line reason" {
  expect_refused -o no_such_option "$MNT"
  expect_refused -o max_memory=lots "$MNT"
  expect_refused -o max_object_size=12Q "$MNT"
  expect_refused -o metadata_limit=abc "$MNT"
  expect_refused -o "persist=$T" "$MNT"
  echo 'not json' >"$T/garbage.json"
  expect_refused -o "persist=$T/garbage.json" "$MNT"
  # saving it would go through the mount itself
  expect_refused -o "persist=$MNT/state.json" "$MNT"
  [[ "$output" == *"is inside the mountpoint"* ]] || { echo "$output"; false; }
}

@test "a missing mountpoint is refused with exit 1 and one line" {
  run timeout 10 "$S3MEM_BIN" -f
  [ "$status" -eq 1 ] || { echo "status $status: $output"; false; }
  [ "${#lines[@]}" -eq 1 ] || { echo "$output"; false; }
}

@test "without -f the daemon returns once the mount is live" {
  run timeout 10 "$S3MEM_BIN" "$MNT"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  is_mounted "$MNT"
  echo hi >"$MNT/f"
  expect_equal hi "$(cat "$MNT/f")"
  fusermount3 -u "$MNT"
  if is_mounted "$MNT"; then echo "still mounted after fusermount3 -u"; false; fi
}

@test "df shows max_memory as the size and the bytes held as used" {
  s3mem_mount -o max_memory=64M
  expect_equal 67108864 "$(df_field size)" "df size"
  expect_equal 255 "$(stat -f -c %l "$MNT")" "name length"
  local used_before used_after used_removed files_before
  used_before=$(df_field used)
  files_before=$(df_field iused)
  random_file "$MNT/four-mib" $((4 * 1024 * 1024))
  echo small >"$MNT/small"
  used_after=$(df_field used)
  ((used_after >= used_before + 4 * 1024 * 1024)) \
    || { echo "used $used_before -> $used_after after writing 4 MiB"; false; }
  expect_equal $((files_before + 2)) "$(df_field iused)" "df IUsed (object count)"
  rm "$MNT/four-mib"
  used_removed=$(df_field used)
  ((used_removed < used_after - 3 * 1024 * 1024)) \
    || { echo "used $used_after -> $used_removed after removing 4 MiB"; false; }
}

@test "writing beyond max_memory fails with ENOSPC, and space comes back" {
  s3mem_mount -o max_memory=8M
  random_file "$T/big" $((16 * 1024 * 1024))
  fails_with "No space left on device" cp "$T/big" "$MNT/big"
  rm -f "$MNT/big"
  random_file "$T/small" $((1024 * 1024))
  succeeds cp "$T/small" "$MNT/small"
  succeeds cmp "$T/small" "$MNT/small"
}

@test "enforce_limits,max_object_size=1M: a 2 MiB body fails with EFBIG" {
  s3mem_mount -o enforce_limits,max_object_size=1M
  random_file "$T/two" $((2 * 1024 * 1024))
  random_file "$T/one" $((1024 * 1024))
  fails_with "File too large" cp "$T/two" "$MNT/two"
  fails_with "File too large" dd if="$T/two" of="$MNT/two-dd" bs=64k status=none
  succeeds cp "$T/one" "$MNT/one"
  succeeds cmp "$T/one" "$MNT/one"
  fails_with "File too large" truncate -s 2M "$MNT/one"
  expect_equal $((1024 * 1024)) "$(stat -c %s "$MNT/one")" "size after refused truncate"
}

@test "enforce_limits,metadata_limit=100: large metadata fails with ENOSPC" {
  s3mem_mount -o enforce_limits,metadata_limit=100
  echo x >"$MNT/f"
  succeeds setfattr -n user.small -v "$(printf '%020d' 0)" "$MNT/f"
  fails_with "No space left on device" setfattr -n user.big -v "$(printf '%0200d' 0)" "$MNT/f"
  fails_with "No such attribute" getfattr -n user.big "$MNT/f"
  expect_equal "$(printf '%020d' 0)" "$(xattr_value "$MNT/f" user.small)"
}

@test "without enforce_limits, metadata may exceed the default 2048 bytes" {
  s3mem_mount
  echo x >"$MNT/f"
  succeeds setfattr -n user.big -v "$(printf '%03000d' 0)" "$MNT/f"
  expect_equal "$(printf '%03000d' 0)" "$(xattr_value "$MNT/f" user.big)"
}

@test "key_prefix=pre/: paths map to keys under the prefix" {
  s3mem_mount -o key_prefix=pre/
  echo a >"$MNT/a.txt"
  mkdir "$MNT/d"
  echo b >"$MNT/d/b.txt"
  expect_equal pre/a.txt "$(xattr_value "$MNT/a.txt" user.s3mem.key)" key
  expect_equal pre/d/b.txt "$(xattr_value "$MNT/d/b.txt" user.s3mem.key)" "nested key"
  expect_equal $'a.txt\nd' "$(ls "$MNT")" ls
}

@test "key_prefix=pre/ shows only the keys under pre/ (store seeded with persist)" {
  s3mem_mount -o "persist=$T/store.json"
  mkdir -p "$MNT/pre" "$MNT/other"
  echo a >"$MNT/pre/a.txt"
  echo b >"$MNT/other/b.txt"
  echo c >"$MNT/top.txt"
  s3mem_unmount
  [ -s "$T/store.json" ]
  s3mem_mount -o "persist=$T/store.json,key_prefix=pre/"
  expect_equal a.txt "$(ls "$MNT")" ls
  expect_equal a "$(cat "$MNT/a.txt")"
  expect_equal pre/a.txt "$(xattr_value "$MNT/a.txt" user.s3mem.key)" key
}

@test "verbose logs one line per operation" {
  s3mem_mount -o verbose
  echo x >"$MNT/verbose-probe.txt"
  cat "$MNT/verbose-probe.txt" >/dev/null
  grep -q verbose-probe.txt "$LOG" || { echo "log does not name the key:"; cat "$LOG"; false; }
}

@test "bucket= is reported in .s3mem/stats" {
  s3mem_mount -o bucket=my-bucket
  [ -e "$MNT/.s3mem/stats" ] || skip "no control plane yet"
  expect_equal my-bucket "$(jq -r .bucket "$MNT/.s3mem/stats")" bucket
}

@test "allow_other,default_permissions: files belong to the user who made them" {
  [ "$(id -u)" -eq 0 ] || skip "needs root to act as another user"
  chmod 755 "$T"
  s3mem_mount -o allow_other,default_permissions
  mkdir "$MNT/shared"
  chmod 777 "$MNT/shared"
  succeeds setpriv --reuid=65534 --regid=65534 --clear-groups \
    sh -c "umask 022 && echo mine >'$MNT/shared/f' && mkdir '$MNT/shared/d'"
  expect_equal "644 65534 65534" "$(stat -c '%a %u %g' "$MNT/shared/f")" "file mode uid gid"
  expect_equal "755 65534 65534" "$(stat -c '%a %u %g' "$MNT/shared/d")" "directory mode uid gid"
  chmod 600 "$MNT/shared/f"
  chown 0:0 "$MNT/shared/f"
  fails_with "Permission denied" setpriv --reuid=65534 --regid=65534 --clear-groups cat "$MNT/shared/f"
}

# loop_roundtrip: files, a listing and a restore work on the current mount.
loop_roundtrip() {
  mkdir -p "$MNT/d"
  local -a writers=()
  for i in 1 2 3 4 5 6 7 8; do
    echo "line $i" >"$MNT/d/f$i" &
    writers+=($!)
  done
  wait "${writers[@]}"
  expect_equal 8 "$(ls "$MNT/d" | wc -l)" "files listed"
  expect_equal "line 5" "$(cat "$MNT/d/f5")"
  echo base >"$MNT/.s3mem/snapshot"
  echo changed >"$MNT/d/f5"
  echo base >"$MNT/.s3mem/restore"
  expect_equal "line 5" "$(cat "$MNT/d/f5")" "f5 after restore"
}

@test "libfuse_loop: libfuse's request loop serves files and control commands" {
  s3mem_mount -o libfuse_loop
  loop_roundtrip
}

@test "max_threads=1: files, listings and a restore during lookups still work" {
  s3mem_mount -o max_threads=1
  loop_roundtrip
  # a reader holds the directory busy while the restore drops its entries
  (for i in $(seq 200); do stat "$MNT/d/f$((i % 8 + 1))" >/dev/null; done) &
  local reader=$!
  echo base >"$MNT/.s3mem/restore"
  wait "$reader"
  expect_equal "line 1" "$(cat "$MNT/d/f1")"
}

@test "SIGTERM stops the daemon with exit 0 while requests are in flight" {
  s3mem_mount
  (while :; do ls "$MNT" >/dev/null 2>&1 || break; done) &
  local lister=$!
  echo x >"$MNT/f"
  kill -TERM "$S3MEM_PID"
  local status=0
  wait "$S3MEM_PID" || status=$?
  kill "$lister" 2>/dev/null || true
  wait "$lister" 2>/dev/null || true
  expect_equal 0 "$status" "daemon exit status"
  S3MEM_PID=
}

@test "on one CPU the daemon keeps two request workers after serving requests" {
  command -v taskset >/dev/null || skip "no taskset"
  taskset -p -c 0 $$ >/dev/null   # the daemon inherits this affinity
  s3mem_mount
  loop_roundtrip
  # main thread, cache notifier, and the two workers
  local threads
  threads=$(ls "/proc/$S3MEM_PID/task" | wc -l)
  ((threads >= 4)) || { echo "daemon has $threads threads, want at least 4"; false; }
}

# trimmed: the log holds the trimmer's line for S3MEM_TRIM_MS=200
trimmed() {
  grep -q ' s3mem: heap: idle for 200 ms; gave free memory back to the system (' "$LOG"
}

@test "once it has been idle for S3MEM_TRIM_MS after changes, the daemon gives its free heap memory back and says so; a bad value is named" {
  load control_helpers
  export S3MEM_TRIM_MS=200 S3MEM_TRIM_MIN_MB=0
  s3mem_mount
  unset S3MEM_TRIM_MS S3MEM_TRIM_MIN_MB
  mkdir "$MNT/d"
  for i in $(seq 200); do echo "file $i" >"$MNT/d/f$i"; done
  rm -rf "$MNT/d"
  wait_until 10 trimmed
  # the files are gone and the bucket still works
  [ -z "$(ls "$MNT")" ]
  echo after >"$MNT/g"
  [ "$(cat "$MNT/g")" = after ]
  s3mem_unmount

  export S3MEM_TRIM_MS=soon
  s3mem_mount
  unset S3MEM_TRIM_MS
  grep -q " s3mem: S3MEM_TRIM_MS='soon' is not a number: using 2000$" "$LOG"
}

# tunables PID: the GLIBC_TUNABLES the process started with, or nothing.
tunables() {
  tr '\0' '\n' <"/proc/$1/environ" | sed -n 's/^GLIBC_TUNABLES=//p'
}

@test "the daemon runs itself again once with its heap on huge pages in one arena, same pid and name; a tunable of the user's stays; S3MEM_HUGE_PAGES=0 skips it" {
  [ -r /sys/kernel/mm/transparent_hugepage/enabled ] || skip "no transparent huge pages"
  grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled && skip "huge pages are off"
  [ -z "${GLIBC_TUNABLES:-}" ] || skip "GLIBC_TUNABLES is set by the caller"
  s3mem_mount
  echo hello >"$MNT/f"
  [ "$(cat "$MNT/f")" = hello ]
  [ "$(cat "/proc/$S3MEM_PID/comm")" = s3mem ]
  [[ $(tunables "$S3MEM_PID") == glibc.malloc.hugetlb=1* ]]
  # glibc cuts /proc/PID/environ's copy at the first tunable; the log has all
  grep -qx '.* s3mem: malloc: GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.top_pad=33554432:glibc.malloc.arena_max=1' "$LOG"
  s3mem_unmount

  export GLIBC_TUNABLES=glibc.malloc.arena_max=4
  s3mem_mount
  unset GLIBC_TUNABLES
  echo again >"$MNT/f"
  [ "$(cat "$MNT/f")" = again ]
  grep -qx '.* s3mem: malloc: GLIBC_TUNABLES=glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1:glibc.malloc.top_pad=33554432' "$LOG"
  s3mem_unmount

  export S3MEM_HUGE_PAGES=0
  s3mem_mount
  unset S3MEM_HUGE_PAGES
  echo again >"$MNT/g"
  [ "$(cat "$MNT/g")" = again ]
  [ -z "$(tunables "$S3MEM_PID")" ]
}
