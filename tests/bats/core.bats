#!/usr/bin/env bats
# core.bats - what a user does with files and directories on a fresh mount.
# core_single.bats runs this whole file again with the daemon single-threaded.

setup() {
  load helpers
  s3mem_mount
}

teardown() {
  s3mem_teardown
}

@test "echo > and >>, cat and ls" {
  echo hello >"$MNT/greeting.txt"
  expect_equal hello "$(cat "$MNT/greeting.txt")"
  echo world >>"$MNT/greeting.txt"
  expect_equal $'hello\nworld' "$(cat "$MNT/greeting.txt")"
  echo short >"$MNT/greeting.txt"
  expect_equal short "$(cat "$MNT/greeting.txt")" "contents after truncating write"
  : >"$MNT/empty"
  expect_equal "" "$(cat "$MNT/empty")"
  expect_equal $'empty\ngreeting.txt' "$(ls "$MNT")" "ls"
}

@test "an empty mount lists nothing and stats as a directory" {
  expect_equal "" "$(ls "$MNT")"
  [ -d "$MNT" ]
}

@test "cp -r of a tree in and back out is identical" {
  local src="$T/src"
  mkdir -p "$src/a/b/c" "$src/empty-dir" "$src/x"
  : >"$src/zero"
  random_file "$src/one" 1
  random_file "$src/a/page" 4096
  random_file "$src/a/page-minus" 4095
  random_file "$src/a/b/page-plus" 4097
  random_file "$src/a/b/c/chunk-plus" $((64 * 1024 + 1))
  random_file "$src/a/b/c/big" $((3 * 1024 * 1024 + 7))
  random_file "$src/x/128k" $((128 * 1024))
  echo text >"$src/x/text.txt"

  succeeds cp -r "$src" "$MNT/tree"
  succeeds diff -r "$src" "$MNT/tree"
  succeeds cp -r "$MNT/tree" "$T/out"
  succeeds diff -r "$src" "$T/out"
}

@test "mkdir -p, rmdir of a non-empty directory fails, of an empty one works" {
  succeeds mkdir -p "$MNT/a/b/c"
  [ -d "$MNT/a/b/c" ]
  fails_with "Directory not empty" rmdir "$MNT/a/b"
  [ -d "$MNT/a/b/c" ]
  succeeds rmdir "$MNT/a/b/c"
  [ ! -e "$MNT/a/b/c" ]
  expect_equal "" "$(ls "$MNT/a/b")"
  succeeds rmdir "$MNT/a/b"
  expect_equal "" "$(ls "$MNT/a")"
}

@test "mv renames files and directories, contents follow" {
  echo one >"$MNT/f"
  succeeds mv "$MNT/f" "$MNT/g"
  [ ! -e "$MNT/f" ]
  expect_equal one "$(cat "$MNT/g")"

  mkdir -p "$MNT/d/sub"
  echo two >"$MNT/d/sub/file"
  echo three >"$MNT/d/top"
  succeeds mv "$MNT/d" "$MNT/e"
  [ ! -e "$MNT/d" ]
  expect_equal two "$(cat "$MNT/e/sub/file")"
  expect_equal three "$(cat "$MNT/e/top")"

  # into another directory
  mkdir "$MNT/target"
  succeeds mv "$MNT/g" "$MNT/e" "$MNT/target/"
  expect_equal one "$(cat "$MNT/target/g")"
  expect_equal two "$(cat "$MNT/target/e/sub/file")"
  expect_equal target "$(ls "$MNT")"
}

@test "mv over an existing file replaces it; mv -n does not" {
  echo new >"$MNT/a"
  echo old >"$MNT/b"
  succeeds mv "$MNT/a" "$MNT/b"
  expect_equal new "$(cat "$MNT/b")"
  [ ! -e "$MNT/a" ]

  echo other >"$MNT/c"
  run mv -n "$MNT/c" "$MNT/b"
  expect_equal new "$(cat "$MNT/b")" "target of mv -n"
  expect_equal other "$(cat "$MNT/c")" "source of mv -n"
}

@test "rm -r removes a tree" {
  mkdir -p "$MNT/t/a/b"
  echo 1 >"$MNT/t/a/b/f"
  echo 2 >"$MNT/t/a/g"
  succeeds rm -r "$MNT/t"
  [ ! -e "$MNT/t" ]
  expect_equal "" "$(ls "$MNT")"
}

@test "rm of the last file of a directory keeps the directory (mkdir made a marker)" {
  mkdir "$MNT/d"
  echo x >"$MNT/d/f"
  rm "$MNT/d/f"
  [ -d "$MNT/d" ]
  expect_equal "" "$(ls "$MNT/d")"
}

@test "touch -d sets the modification time" {
  echo x >"$MNT/f"
  succeeds touch -d '2020-01-02 03:04:05' "$MNT/f"
  expect_equal "$(date -d '2020-01-02 03:04:05' +%s)" "$(stat -c %Y "$MNT/f")" mtime
  mkdir "$MNT/d"
  succeeds touch -d '2021-05-06 07:08:09' "$MNT/d"
  expect_equal "$(date -d '2021-05-06 07:08:09' +%s)" "$(stat -c %Y "$MNT/d")" "directory mtime"
}

@test "truncate -s grows with zeros and shrinks" {
  printf abc >"$MNT/f"
  succeeds truncate -s 10 "$MNT/f"
  expect_equal 10 "$(stat -c %s "$MNT/f")" size
  expect_equal "$(printf 'abc\0\0\0\0\0\0\0' | od -An -tx1)" "$(od -An -tx1 "$MNT/f")" contents
  succeeds truncate -s 2 "$MNT/f"
  expect_equal ab "$(cat "$MNT/f")"
  succeeds truncate -s 0 "$MNT/f"
  expect_equal 0 "$(stat -c %s "$MNT/f")"
}

@test "dd conv=notrunc writes in the middle of a file" {
  printf aaaaaaaaaa >"$MNT/f"
  printf XY | dd of="$MNT/f" bs=1 seek=4 conv=notrunc status=none
  expect_equal aaaaXYaaaa "$(cat "$MNT/f")"
  # a larger write spanning a 64 KiB boundary inside a bigger file
  random_file "$T/orig" $((256 * 1024))
  cp "$T/orig" "$MNT/big"
  cp "$T/orig" "$T/want"
  random_file "$T/patch" 10000
  local at
  for at in 1 $((64 * 1024 - 5000)); do
    dd if="$T/patch" of="$MNT/big" seek="$at" oflag=seek_bytes conv=notrunc status=none
    dd if="$T/patch" of="$T/want" seek="$at" oflag=seek_bytes conv=notrunc status=none
  done
  succeeds cmp "$T/want" "$MNT/big"
}

@test "sed -i edits a file in place" {
  printf 'one\ntwo\nthree\n' >"$MNT/f"
  succeeds sed -i 's/two/2/' "$MNT/f"
  expect_equal $'one\n2\nthree' "$(cat "$MNT/f")"
}

@test "a write far past the end leaves a hole that reads as zeros" {
  printf x | dd of="$MNT/sparse" bs=1 seek=$((2 * 1024 * 1024 * 1024)) conv=notrunc status=none
  expect_equal $((2 * 1024 * 1024 * 1024 + 1)) "$(stat -c %s "$MNT/sparse")" size
  expect_equal x "$(tail -c 1 "$MNT/sparse")"
  succeeds cmp <(dd if="$MNT/sparse" bs=1M skip=1000 count=1 status=none) <(head -c 1M /dev/zero)
}

@test "a 200 MiB file round-trips" {
  dd if=/dev/urandom of="$T/big" bs=1M count=200 status=none
  local want
  want=$(md5sum <"$T/big")
  succeeds cp "$T/big" "$MNT/big"
  expect_equal $((200 * 1024 * 1024)) "$(stat -c %s "$MNT/big")" size
  expect_equal "$want" "$(md5sum <"$MNT/big")" md5
  succeeds cp "$MNT/big" "$T/back"
  succeeds cmp "$T/big" "$T/back"
}

@test "a big file read back past the page cache comes from the store; rm gives its memory back" {
  dd if=/dev/urandom of="$T/big" bs=1M count=32 status=none
  # 1 MiB writes: each is answered before its bytes are copied
  succeeds dd if="$T/big" of="$MNT/big" bs=1M status=none
  expect_equal $((32 * 1024 * 1024)) "$(jq .memoryUsed "$MNT/.s3mem/stats")" memoryUsed
  succeeds dd if="$MNT/big" iflag=nocache count=0 status=none
  expect_equal 0 "$(fincore --noheadings --output PAGES "$MNT/big" | tr -d ' ')" "cached pages"
  succeeds cmp "$T/big" "$MNT/big"
  expect_equal 32768 "$(awk '/^RssShmem:/ {print $2}' "/proc/$S3MEM_PID/status")" "daemon's RssShmem (kB)"
  rm "$MNT/big"
  expect_equal 0 "$(jq .memoryUsed "$MNT/.s3mem/stats")" "memoryUsed after rm"
  expect_equal 0 "$(awk '/^RssShmem:/ {print $2}' "/proc/$S3MEM_PID/status")" "daemon's RssShmem after rm (kB)"
}

@test "names with spaces and non-ASCII letters work for files and directories" {
  mkdir "$MNT/dír with späce"
  echo hi >"$MNT/dír with späce/héllo wörld.txt"
  echo top >"$MNT/héllo wörld.txt"
  expect_equal "hi" "$(cat "$MNT/dír with späce/héllo wörld.txt")"
  expect_equal $'dír with späce\nhéllo wörld.txt' "$(LC_ALL=C ls "$MNT")" "ls"
  expect_equal "héllo wörld.txt" "$(ls "$MNT/dír with späce")"
  expect_equal "dír with späce/héllo wörld.txt" \
    "$(xattr_value "$MNT/dír with späce/héllo wörld.txt" user.s3mem.key)" key
  succeeds mv "$MNT/dír with späce" "$MNT/ñ 日本"
  expect_equal "hi" "$(cat "$MNT/ñ 日本/héllo wörld.txt")"
}

@test "new files and directories get the caller's uid/gid and mode less umask" {
  (umask 022 && echo x >"$MNT/f" && mkdir "$MNT/d")
  expect_equal "644 $(id -u) $(id -g)" "$(stat -c '%a %u %g' "$MNT/f")" "file mode uid gid"
  expect_equal "755 $(id -u) $(id -g)" "$(stat -c '%a %u %g' "$MNT/d")" "directory mode uid gid"
  (umask 077 && echo x >"$MNT/private")
  expect_equal 600 "$(stat -c %a "$MNT/private")" "mode with umask 077"
}

@test "chmod changes the mode" {
  echo x >"$MNT/f"
  succeeds chmod 600 "$MNT/f"
  expect_equal 600 "$(stat -c %a "$MNT/f")"
  mkdir "$MNT/d"
  succeeds chmod 700 "$MNT/d"
  expect_equal 700 "$(stat -c %a "$MNT/d")"
}

@test "ls -l shows type, mode and size" {
  (umask 022 && printf 12345 >"$MNT/f" && mkdir "$MNT/d")
  run ls -l "$MNT"
  [ "$status" -eq 0 ]
  [[ "$output" == *"-rw-r--r-- "*" 5 "*" f"* ]] || { echo "$output"; false; }
  [[ "$output" == *"drwxr-xr-x "*" d"* ]] || { echo "$output"; false; }
}

@test "find lists the tree" {
  mkdir -p "$MNT/a/b"
  touch "$MNT/a/b/c" "$MNT/a/d" "$MNT/e"
  # (.s3mem is the control directory, not part of the store)
  expect_equal $'.\n./a\n./a/b\n./a/b/c\n./a/d\n./e' \
    "$(cd "$MNT" && find . -path ./.s3mem -prune -o -print | LC_ALL=C sort)" find
  expect_equal $'./a/b/c\n./a/d\n./e' \
    "$(cd "$MNT" && find . -path ./.s3mem -prune -o -type f -print | LC_ALL=C sort)" "find -type f"
}

@test "every file and directory has its own inode number, kept across mv and while open" {
  mkdir -p "$MNT/a" "$MNT/b"
  local i numbers before
  for i in $(seq 1 100); do : >"$MNT/a/f$i"; : >"$MNT/b/f$i"; done
  expect_equal 1 "$(stat -c %i "$MNT")" "the root's inode number"
  numbers=$(find "$MNT/a" "$MNT/b" -printf '%i\n')
  expect_equal 202 "$(sort -u <<<"$numbers" | wc -l)" "distinct inode numbers"
  expect_equal 0 "$(grep -cx 1 <<<"$numbers")" "entries numbered like the root"
  before=$(stat -c %i "$MNT/a/f1")
  exec 8<"$MNT/a/f1"
  mv "$MNT/a/f1" "$MNT/b/moved"
  local moved_number
  moved_number=$(stat -c %i "$MNT/b/moved")
  rm "$MNT/b/moved"
  local open_number
  open_number=$(stat -L -c %i /proc/self/fd/8)
  exec 8<&-
  expect_equal "$before" "$moved_number" "inode number after mv"
  expect_equal "$before" "$open_number" "inode number of the open, removed file"
}

@test "a directory's link count is 2 plus its subdirectories, as rename and rmdir change them" {
  mkdir -p "$MNT/src/dir/deeper" "$MNT/dst"
  touch "$MNT/src/file" "$MNT/src/dir/file"
  # keys under a prefix without a marker make a subdirectory too
  (cd "$MNT" && mkdir -p loaded/x && echo data >loaded/x/y)
  # the root: src, dst, loaded and the control directory
  expect_equal 6 "$(stat -c %h "$MNT")" "root"
  expect_equal 3 "$(stat -c %h "$MNT/src")" "src"
  expect_equal 3 "$(stat -c %h "$MNT/src/dir")" "src/dir"
  expect_equal 2 "$(stat -c %h "$MNT/dst")" "dst"
  expect_equal 1 "$(stat -c %h "$MNT/src/file")" "a file"
  mv "$MNT/src/dir" "$MNT/dst/"
  expect_equal 2 "$(stat -c %h "$MNT/src")" "src after mv"
  expect_equal 3 "$(stat -c %h "$MNT/dst")" "dst after mv"
  rmdir "$MNT/dst/dir/deeper"
  expect_equal 2 "$(stat -c %h "$MNT/dst/dir")" "dst/dir after rmdir"
  # ls -l shows the same counts as stat
  expect_equal "3 dst" "$(ls -l "$MNT" | awk '$NF == "dst" {print $2, $NF}')" "ls -l"
  # find, which may use link counts to skip leaves, still sees everything
  expect_equal 9 "$(cd "$MNT" && find . -path ./.s3mem -prune -o -print | wc -l)" find
}

@test "du -sb counts the bytes written" {
  mkdir -p "$MNT/a/b"
  random_file "$MNT/a/one" 100000
  random_file "$MNT/a/b/two" 250000
  random_file "$MNT/three" 3
  local bytes=$((100000 + 250000 + 3)) got
  got=$(du -sb "$MNT" | cut -f1)
  # directories may count up to a block each
  if ((got < bytes || got > bytes + 3 * 4096)); then
    echo "du -sb says $got, wrote $bytes"
    false
  fi
}

@test "8 processes writing different files at once all land" {
  local i pids=()
  for i in 1 2 3 4 5 6 7 8; do
    random_file "$T/src$i" $((i * 300000))
  done
  mkdir "$MNT/par"
  for i in 1 2 3 4 5 6 7 8; do
    cp "$T/src$i" "$MNT/par/file$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
  for i in 1 2 3 4 5 6 7 8; do
    succeeds cmp "$T/src$i" "$MNT/par/file$i"
  done
}

@test "8 processes creating and appending in one directory at once" {
  local i pids=()
  mkdir "$MNT/d"
  for i in 1 2 3 4 5 6 7 8; do
    (
      for j in $(seq 40); do
        echo "$i-$j" >"$MNT/d/f$i-$j"
        echo "line $j" >>"$MNT/d/log$i"
      done
    ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
  expect_equal $((8 * 40 + 8)) "$(ls "$MNT/d" | wc -l)" "entries"
  for i in 1 2 3 4 5 6 7 8; do
    expect_equal "$(seq -f 'line %g' 40)" "$(cat "$MNT/d/log$i")" "log$i"
    expect_equal "$i-17" "$(cat "$MNT/d/f$i-17")"
  done
}

@test "a name unlinked while its directory is open for reading is gone, and can be created again" {
  mkdir "$MNT/d"
  echo x >"$MNT/d/f"
  # opendir lists d; f goes; then the listing is read (readdirplus)
  run perl -e '
    my $d = shift;
    opendir(my $dh, $d) or die "opendir: $!";
    unlink("$d/f") or die "unlink: $!";
    my @names = readdir($dh);
    print "stat succeeded after unlink\n" if -e "$d/f";
    open(my $fh, ">", "$d/f") or die "create after unlink: $!\n";
    print $fh "y\n";
    close($fh) or die "close: $!";
    print "ok\n";' "$MNT/d"
  expect_equal ok "$output" "perl"
  expect_equal y "$(cat "$MNT/d/f")"
}

@test "appends stay appends while a reader lists their directory" {
  mkdir "$MNT/d"
  # a listing read after the file grew must not hand the kernel its size
  # from when the directory was opened (appends would then overwrite)
  run perl -e '
    my $d = shift;
    sub append { open(my $fh, ">>", "$d/log") or die "open: $!"; print $fh "$_[0]\n"; close($fh) or die; }
    append(1);
    opendir(my $dh, $d) or die "opendir: $!";
    append(2);
    my @names = readdir($dh);
    append(3);
    print "ok\n";' "$MNT/d"
  expect_equal ok "$output" "perl"
  expect_equal $'1\n2\n3' "$(cat "$MNT/d/log")" "log"
}

@test "rm -r of a loaded tree whose directories have no markers removes it all" {
  printf '/%s\n' "$T/seed.json" >/dev/null
  cat >"$T/seed.json" <<'JSON'
{"timestamp":"2026-01-01T00:00:00.000Z","bucket":"b","objectCount":3,"objects":{
 "a/b/c.txt":{"body":"eA==","metadata":{},"contentType":"text/plain","etag":"9dd4e461268c8034f5c8564e155c67a6","lastModified":"2026-01-01T00:00:00.000Z","size":1},
 "a/b/d.txt":{"body":"eA==","metadata":{},"contentType":"text/plain","etag":"9dd4e461268c8034f5c8564e155c67a6","lastModified":"2026-01-01T00:00:00.000Z","size":1},
 "a/e.txt":{"body":"eA==","metadata":{},"contentType":"text/plain","etag":"9dd4e461268c8034f5c8564e155c67a6","lastModified":"2026-01-01T00:00:00.000Z","size":1}}}
JSON
  echo "$T/seed.json" >"$MNT/.s3mem/load"
  succeeds rm -r "$MNT/a"
  [ ! -e "$MNT/a" ]
  expect_equal "" "$(cat "$MNT/.s3mem/keys")" "keys left"
}
