#!/usr/bin/env bats
# errors.bats - every errno a user can meet on a plain mount, as the tools
# print it. Limits (ENOSPC, EFBIG) are in options.bats, xattr errors in
# xattr.bats.

setup() {
  load helpers
  s3mem_mount
}

teardown() {
  s3mem_teardown
}

# A 200-byte directory name.
long_name() {
  printf "%0${2:-200}d" "$1"
}

@test "ENOENT: a missing file or directory" {
  fails_with "No such file or directory" cat "$MNT/missing"
  fails_with "No such file or directory" ls "$MNT/missing"
  fails_with "No such file or directory" touch "$MNT/no/such/dir/f"
  fails_with "No such file or directory" rm "$MNT/missing"
  fails_with "No such file or directory" mv "$MNT/missing" "$MNT/other"
}

@test "ENOTEMPTY: rmdir of a non-empty directory, rename over one" {
  mkdir -p "$MNT/a/b" "$MNT/c/d"
  fails_with "Directory not empty" rmdir "$MNT/a"
  fails_with "Directory not empty" mv -T "$MNT/a" "$MNT/c"
  [ -d "$MNT/a/b" ]
  [ -d "$MNT/c/d" ]
}

@test "EEXIST: mkdir of an existing name" {
  mkdir "$MNT/d"
  echo x >"$MNT/f"
  fails_with "File exists" mkdir "$MNT/d"
  fails_with "File exists" mkdir "$MNT/f"
  expect_equal x "$(cat "$MNT/f")"
}

@test "ENOTDIR and EISDIR: files used as directories and the other way round" {
  echo x >"$MNT/f"
  mkdir "$MNT/d"
  fails_with "Not a directory" touch "$MNT/f/g"
  fails_with "Not a directory" rmdir "$MNT/f"
  fails_with "Not a directory" ls "$MNT/f/"
  fails_with "Is a directory" rm "$MNT/d"
  fails_with "Is a directory" cat "$MNT/d"
  run bash -c "echo y > '$MNT/d'"
  [ "$status" -ne 0 ]
  [[ "$output" == *"Is a directory"* ]]
}

@test "EILSEQ: a name that is not valid UTF-8" {
  local bad
  bad=$(printf 'bad\xffname')
  fails_with "Invalid or incomplete multibyte or wide character" touch "$MNT/$bad"
  fails_with "Invalid or incomplete multibyte or wide character" mkdir "$MNT/$bad"
  echo x >"$MNT/good"
  fails_with "Invalid or incomplete multibyte or wide character" mv "$MNT/good" "$MNT/$bad"
  expect_equal x "$(cat "$MNT/good")"
  expect_equal good "$(ls "$MNT")"
}

@test "ENAMETOOLONG: a key over 1024 bytes, a name over 255 bytes" {
  # five 200-byte directories: the marker key "d1/.../d5/" is 1005 bytes
  local dir="$MNT" i
  for i in 1 2 3 4 5; do
    dir="$dir/$(long_name "$i")"
    succeeds mkdir "$dir"
  done
  # a sixth would make a 1206-byte key
  fails_with "File name too long" mkdir "$dir/$(long_name 6)"
  fails_with "File name too long" touch "$dir/$(long_name 7)"
  # 1005 + 19 = 1024 bytes is the longest key; 1025 is one too many
  succeeds touch "$dir/$(long_name 8 19)"
  fails_with "File name too long" touch "$dir/$(long_name 9 20)"
  expect_equal "$(long_name 8 19)" "$(ls "$dir")"
  # a single path segment over 255 bytes
  fails_with "File name too long" touch "$MNT/$(long_name 1 256)"
}

@test "symlinks, hard links, FIFOs and device nodes are refused" {
  echo x >"$MNT/f"
  run ln -s f "$MNT/link"
  [ "$status" -ne 0 ]
  [[ "$output" == *"Operation not permitted"* || "$output" == *"Operation not supported"* ]]
  run ln "$MNT/f" "$MNT/hard"
  [ "$status" -ne 0 ]
  [[ "$output" == *"Operation not permitted"* || "$output" == *"Operation not supported"* ]]
  run mkfifo "$MNT/fifo"
  [ "$status" -ne 0 ]
  [[ "$output" == *"Operation not permitted"* || "$output" == *"Operation not supported"* ]]
  if [ "$(id -u)" -eq 0 ]; then
    run mknod "$MNT/null" c 1 3
    [ "$status" -ne 0 ]
    [[ "$output" == *"Operation not permitted"* || "$output" == *"Operation not supported"* ]]
  fi
  expect_equal f "$(ls "$MNT")"
}

@test "EINVAL: moving a directory into itself" {
  mkdir -p "$MNT/a/b"
  run mv "$MNT/a" "$MNT/a/b/"
  [ "$status" -ne 0 ]
  [ -d "$MNT/a/b" ]
}

@test "a failed command leaves the mount usable" {
  fails_with "No such file or directory" cat "$MNT/missing"
  fails_with "Invalid or incomplete multibyte or wide character" touch "$MNT/$(printf '\xfe')"
  echo ok >"$MNT/f"
  expect_equal ok "$(cat "$MNT/f")"
}
