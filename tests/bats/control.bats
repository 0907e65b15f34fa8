#!/usr/bin/env bats
# control.bats - the .s3mem/ control plane (DESIGN.md sections 5 and 6) as a
# user drives it: echo COMMAND > .s3mem/FILE, cat .s3mem/status, and what
# the mount shows afterwards; the s3db.js 12.4.0 fixtures; and the
# mount-scripts/s3mem-ctl wrapper. Each test mounts with its own options.
# control_single.bats runs this file again with the daemon single-threaded.

bats_require_minimum_version 1.5.0  # run --separate-stderr

setup() {
  load helpers
  load control_helpers
  s3mem_make_tmpdir
}

teardown() {
  s3mem_teardown
}

SHOP_KEYS_COUNT=11

# ---- stats and the control directory -----------------------------------------

@test "stats is JSON: counts, sizes, bucket, prefix, shadowed count, snapshots" {
  ctl_mount -o bucket=shop
  printf 'hello\n' >"$MNT/a.txt"
  mkdir -p "$MNT/dir/sub"
  head -c 1000 /dev/zero >"$MNT/dir/sub/k.bin"
  : >"$MNT/empty"

  succeeds jq -e . "$(ctl_path stats)"
  local stats
  stats=$(cat "$(ctl_path stats)")
  # a.txt, empty, dir/sub/k.bin and the markers dir/ and dir/sub/ of mkdir -p
  expect_equal $'a.txt\ndir/\ndir/sub/\ndir/sub/k.bin\nempty' "$(cat "$(ctl_path keys)")" keys
  expect_equal 5 "$(jq .objectCount <<<"$stats")" objectCount
  expect_equal 1006 "$(jq .totalSize <<<"$stats")" totalSize
  expect_equal "1006 Bytes" "$(jq -r .totalSizeFormatted <<<"$stats")" totalSizeFormatted
  expect_equal shop "$(jq -r .bucket <<<"$stats")" bucket
  expect_equal "" "$(jq -r .keyPrefix <<<"$stats")" keyPrefix
  expect_equal 0 "$(jq .shadowedCount <<<"$stats")" shadowedCount
  expect_equal "[]" "$(jq -c .snapshots <<<"$stats")" snapshots
  succeeds jq -e '(.memoryUsed | type == "number") and (.operations.puts | type == "number")' <<<"$stats"

  head -c 2048 /dev/zero >"$MNT/two-k"
  ctl snapshot first
  mkdir "$MNT/.s3mem/snapshots/second"
  stats=$(cat "$(ctl_path stats)")
  expect_equal 6 "$(jq .objectCount <<<"$stats")" "objectCount after a write"
  expect_equal 3054 "$(jq .totalSize <<<"$stats")" "totalSize after a write"
  expect_equal "2.98 KB" "$(jq -r .totalSizeFormatted <<<"$stats")" totalSizeFormatted
  expect_equal '["first","second"]' "$(jq -c .snapshots <<<"$stats")" snapshots
  rm "$MNT/a.txt"
  expect_equal 5 "$(jq .objectCount "$(ctl_path stats)")" "objectCount after rm"
}

@test "stats and keys with key_prefix: keys are full keys, keyPrefix is shown" {
  ctl_mount -o key_prefix=tenant/a/
  printf 'x' >"$MNT/one"
  expect_equal "tenant/a/" "$(jq -r .keyPrefix "$(ctl_path stats)")" keyPrefix
  expect_equal 1 "$(jq .objectCount "$(ctl_path stats)")" objectCount
  expect_equal "tenant/a/one" "$(cat "$(ctl_path keys)")" keys
}

@test "the control directory lists its files and is not in the store" {
  ctl_mount
  expect_equal $'clear\nexport\nimport\nkeys\nload\nrestore\nsave\nshadowed\nsnapshot\nsnapshots\nstats\nstatus' \
    "$(ls "$MNT/.s3mem")" "ls .s3mem"
  expect_equal "" "$(cat "$(ctl_path keys)")" "keys of an empty store"
  expect_equal 0 "$(jq .objectCount "$(ctl_path stats)")"
  expect_equal "no command yet" "$(status_message)"
  fails_with "File exists" mkdir "$MNT/.s3mem"
  fails_with "Operation not permitted" bash -c "echo x >'$MNT/.s3mem/nosuchfile'"
}

@test "-o control_dir=ctl renames it, and .s3mem is then an ordinary name" {
  ctl_mount -o control_dir=ctl
  CTL=ctl
  [ -d "$MNT/ctl" ]
  [ ! -e "$MNT/.s3mem" ]
  succeeds jq -e .objectCount "$MNT/ctl/stats"
  succeeds mkdir "$MNT/.s3mem"
  echo note >"$MNT/.s3mem/n.txt"
  expect_equal note "$(cat "$MNT/.s3mem/n.txt")"
  expect_equal $'.s3mem/\n.s3mem/n.txt' "$(cat "$MNT/ctl/keys")" keys
  expect_equal $'.s3mem\nctl' "$(ls -A "$MNT")" "ls -A"
  ctl snapshot s
  expect_equal n.txt "$(ls "$MNT/ctl/snapshots/s/.s3mem")"
  rm -r "$MNT/.s3mem"
  ctl restore s
  expect_equal note "$(cat "$MNT/.s3mem/n.txt")"
}

@test "reading control files many times in a row keeps the daemon healthy" {
  ctl_mount
  echo x >"$MNT/f"
  ctl_fails "No such file or directory" "no snapshot named 'nosuch'" restore nosuch
  local i
  for i in $(seq 1 1500); do
    cat "$(ctl_path status)" "$(ctl_path keys)" >/dev/null || { echo "read $i failed"; false; }
  done
  expect_equal f "$(cat "$(ctl_path keys)")"
  if grep -Eq "$S3MEM_SANITIZER_PATTERN" "$LOG"; then
    echo "sanitizer report in the daemon's log:"
    grep -E -A30 "$S3MEM_SANITIZER_PATTERN" "$LOG" | head -40
    false
  fi
}

# ---- snapshots ---------------------------------------------------------------

@test "snapshot, change files and metadata, restore: everything is as it was" {
  ctl_mount
  build_fixture_tree "$MNT"
  local before
  before=$(tree_state "$MNT")
  ctl snapshot s1
  expect_equal "snapshot 's1' taken: 13 objects" "$(status_message)"
  expect_equal s1 "$(cat "$(ctl_path snapshot)")"

  echo "overwritten" >"$MNT/proj/README.md"
  printf 'appended\n' >>"$MNT/docs/big.txt"
  rm "$MNT/proj/src/main.c"
  rm -r "$MNT/docs/with space"
  echo new >"$MNT/proj/new.txt"
  mkdir "$MNT/newdir"
  setfattr -n user.author -v bob "$MNT/proj/README.md"
  setfattr -x user.kind "$MNT/proj/empty"
  setfattr -n user.added -v yes "$MNT/proj/logo.bin"
  chmod 600 "$MNT/proj/src/lib/util.h"
  touch -d 2001-02-03T04:05:06Z "$MNT/proj/empty-file"
  local changed
  changed=$(tree_state "$MNT")
  [[ "$changed" != "$before" ]]

  ctl restore s1
  expect_equal "restored snapshot 's1': 13 objects" "$(status_message)"
  expect_same_tree "$before" "$(tree_state "$MNT")"
  [ ! -e "$MNT/newdir" ]
  [ ! -e "$MNT/proj/new.txt" ]
  [ -d "$MNT/docs/with space" ]
  expect_equal alice "$(xattr_value "$MNT/proj/README.md" user.author)"
  # the snapshot is still there, and can be restored again
  echo again >"$MNT/proj/README.md"
  ctl restore s1
  expect_same_tree "$before" "$(tree_state "$MNT")"
}

@test "snapshots/NAME/ shows the snapshot: ls, cat, getfattr, as it was taken" {
  ctl_mount
  build_fixture_tree "$MNT"
  local before
  before=$(tree_state "$MNT")
  ctl snapshot view
  echo changed >"$MNT/proj/README.md"
  setfattr -n user.author -v bob "$MNT/proj/README.md"
  rm -r "$MNT/proj/src"

  local view="$MNT/.s3mem/snapshots/view"
  expect_equal view "$(ls "$MNT/.s3mem/snapshots")"
  expect_same_tree "$before" "$(tree_state "$view")"
  expect_equal $'docs\nproj' "$(ls "$view")"
  expect_equal 'lib' "$(cat "$view/proj/src/lib/util.h")"
  expect_equal alice "$(xattr_value "$view/proj/README.md" user.author)"
  run getfattr --absolute-names -d "$view/proj/README.md"
  [[ "$output" == *'user.author="alice"'* && "$output" == *'user.s3mem.content-type="text/markdown"'* ]] \
    || { echo "$output"; false; }
  # the live mount shows the changes
  expect_equal changed "$(cat "$MNT/proj/README.md")"
  [ ! -e "$MNT/proj/src" ]
}

@test "snapshots/NAME/ is read-only: write, touch, mkdir, rm, mv, setfattr fail" {
  ctl_mount
  build_fixture_tree "$MNT"
  ctl snapshot ro
  local before view="$MNT/.s3mem/snapshots/ro"
  before=$(store_fingerprint)

  fails_with "Read-only file system" bash -c "echo x >'$view/proj/README.md'"
  fails_with "Read-only file system" bash -c "echo x >>'$view/proj/README.md'"
  fails_with "Read-only file system" touch "$view/proj/new-file"
  fails_with "Read-only file system" mkdir "$view/proj/new-dir"
  fails_with "Read-only file system" rm "$view/proj/README.md"
  fails_with "Read-only file system" rmdir "$view/proj/empty"
  fails_with "Read-only file system" mv "$view/proj/README.md" "$view/proj/moved.md"
  fails_with "Read-only file system" truncate -s 0 "$view/proj/logo.bin"
  fails_with "Read-only file system" setfattr -n user.x -v 1 "$view/proj/README.md"
  fails_with "Read-only file system" chmod 600 "$view/proj/README.md"

  expect_same_tree "$before" "$(store_fingerprint)"
  expect_equal alice "$(xattr_value "$view/proj/README.md" user.author)"
  [ ! -e "$view/proj/new-file" ]
}

@test "rmdir snapshots/NAME drops it; mkdir snapshots/NAME takes one" {
  ctl_mount
  echo one >"$MNT/f"
  ctl snapshot a
  succeeds mkdir "$MNT/.s3mem/snapshots/b"
  expect_equal $'a\nb' "$(cat "$(ctl_path snapshot)")" "snapshot list"
  expect_equal "snapshot 'b' taken: 1 objects" "$(status_message)"
  expect_equal one "$(cat "$MNT/.s3mem/snapshots/b/f")"

  succeeds rmdir "$MNT/.s3mem/snapshots/a"
  expect_equal b "$(cat "$(ctl_path snapshot)")" "snapshot list after rmdir"
  expect_equal b "$(ls "$MNT/.s3mem/snapshots")"
  [ ! -e "$MNT/.s3mem/snapshots/a" ]
  expect_equal '["b"]' "$(jq -c .snapshots "$(ctl_path stats)")"
  ctl_fails "No such file or directory" "no snapshot named 'a'" restore a
  fails_with "No such file or directory" rmdir "$MNT/.s3mem/snapshots/a"

  # the name is free again, for a new snapshot of the current state
  echo two >"$MNT/f"
  ctl snapshot a
  expect_equal two "$(cat "$MNT/.s3mem/snapshots/a/f")"
  succeeds rmdir "$MNT/.s3mem/snapshots/a"
  succeeds rmdir "$MNT/.s3mem/snapshots/b"
  expect_equal "" "$(cat "$(ctl_path snapshot)")"
  expect_equal two "$(cat "$MNT/f")"
}

@test "snapshot names: an existing or bad name is refused" {
  ctl_mount
  echo x >"$MNT/f"
  ctl snapshot s
  ctl_fails "File exists" "snapshot 's' exists" snapshot s
  fails_with "File exists" mkdir "$MNT/.s3mem/snapshots/s"
  ctl_fails "Invalid argument" "bad snapshot name" snapshot ..
  ctl_fails "Invalid argument" "missing snapshot name" snapshot
  expect_equal s "$(cat "$(ctl_path snapshot)")"
}

# ---- no stale views after restore, load, import clear, clear --------------------

# prime_caches DIR FILE: makes the kernel hold DIR and FILE (page cache,
# attributes, directory entries, xattrs) as they are now.
prime_caches() {
  local entry
  stat "$1" >/dev/null
  cat "$2" >/dev/null
  ls -la "$1" >/dev/null
  stat "$2" >/dev/null
  getfattr --absolute-names -d "$2" >/dev/null
  for entry in "$1"/*; do stat "$entry" >/dev/null; done
  getfattr --absolute-names -d "$2" >/dev/null
}

# state_b: the state a command brings back: d/f = "B" with user.v=B, d/onlyB.
state_b() {
  mkdir -p "$MNT/d"
  printf 'B\n' >"$MNT/d/f"
  setfattr -n user.v -v B "$MNT/d/f"
  echo b >"$MNT/d/onlyB"
}

# state_a: what the kernel caches before the command: a longer d/f with
# user.v=A, d/onlyA instead of d/onlyB, d with mode 700.
state_a() {
  chmod 700 "$MNT/d"
  printf 'the old, longer contents of state A\n' >"$MNT/d/f"
  setfattr -n user.v -v A "$MNT/d/f"
  rm "$MNT/d/onlyB"
  echo a >"$MNT/d/onlyA"
  expect_equal 'the old, longer contents of state A' "$(cat "$MNT/d/f")"
}

# expect_view DIR FILE CONTENT SIZE LISTING XNAME XVALUE GONE: new processes
# see the new state of DIR/FILE, and DIR/GONE is gone.
expect_view() {
  local dir=$1 file=$2 content=$3 size=$4 listing=$5 xname=$6 xvalue=$7 gone=$8
  expect_equal "$content" "$(cat "$dir/$file")" "cat $file"
  expect_equal "$size" "$(stat -c %s "$dir/$file")" "stat -c %s $file"
  expect_equal "$listing" "$(ls "$dir")" "ls"
  expect_equal "$xvalue" "$(xattr_value "$dir/$file" "$xname")" "getfattr $xname"
  fails_with "No such file or directory" stat "$dir/$gone"
  fails_with "No such file or directory" cat "$dir/$gone"
  run ls -la "$dir"
  [[ "$output" != *"$gone"* ]] || { echo "ls -la still lists $gone: $output"; false; }
}

stale_restore() {
  ctl_mount "$@"
  state_b
  ctl snapshot b
  state_a
  prime_caches "$MNT/d" "$MNT/d/f"
  ctl restore b
  expect_view "$MNT/d" f B 2 $'f\nonlyB' user.v B onlyA
  expect_equal 755 "$(stat -c %a "$MNT/d")" "the directory's mode"
}

stale_load() {
  ctl_mount "$@"
  state_b
  ctl save "$T/b.json"
  state_a
  prime_caches "$MNT/d" "$MNT/d/f"
  ctl load "$T/b.json"
  expect_view "$MNT/d" f B 2 $'f\nonlyB' user.v B onlyA
  expect_equal 755 "$(stat -c %a "$MNT/d")" "the directory's mode"
}

stale_import_clear() {
  ctl_mount "$@"
  local dir="$MNT/resource=users/data"
  mkdir -p "$dir"
  printf 'the old, longer contents of state A\n' >"$dir/id=u1"
  setfattr -n user.2 -v old@example.com "$dir/id=u1"
  echo a >"$dir/id=onlyA"
  prime_caches "$dir" "$dir/id=u1"
  ctl import "$FIXTURES/shop-backup-plain" clear
  # records have empty bodies and their fields as metadata
  expect_view "$dir" id=u1 "" 0 $'id=admin\nid=u1\nid=u2' user.2 zoe@test.com id=onlyA
}

stale_clear() {
  ctl_mount "$@"
  state_b
  state_a
  prime_caches "$MNT/d" "$MNT/d/f"
  ctl clear
  expect_equal "cleared 3 objects" "$(status_message)"
  fails_with "No such file or directory" cat "$MNT/d/f"
  fails_with "No such file or directory" stat -c %s "$MNT/d/f"
  fails_with "No such file or directory" getfattr -n user.v "$MNT/d/f"
  fails_with "No such file or directory" ls "$MNT/d"
  expect_equal "" "$(ls "$MNT")" "ls of the cleared mount"
  expect_equal "" "$(cat "$(ctl_path keys)")"
}

@test "no stale view after restore" {
  stale_restore
}

@test "no stale view after load" {
  stale_load
}

@test "no stale view after import clear" {
  stale_import_clear
}

@test "no stale view after clear" {
  stale_clear
}

# With -o timeout=30 the kernel keeps entries and attributes for 30 s: the
# daemon must invalidate them itself.
@test "a directory whose own attributes changed shows them after restore and load (-o timeout=30)" {
  ctl_mount -o timeout=30
  mkdir -p "$MNT/d/e"
  echo x >"$MNT/d/e/f"
  ctl snapshot s
  ctl save "$T/s.json"
  chmod 700 "$MNT/d"
  stat "$MNT/d" "$MNT/d/e/f" >/dev/null
  ctl restore s
  expect_equal 755 "$(stat -c %a "$MNT/d")" "mode after restore"
  expect_equal x "$(cat "$MNT/d/e/f")"
  chmod 700 "$MNT/d"
  stat "$MNT/d" >/dev/null
  ctl load "$T/s.json"
  expect_equal 755 "$(stat -c %a "$MNT/d")" "mode after load"
}

# held_open_restore COUNT: d/f is held open (its pages cached) while a
# restore changes it and COUNT other files; a new open must read the
# restored bytes. Above S3MEM_CHANGED_KEYS_MAX changed keys (65,536 unless
# the environment lowers it) the notifier drops the root's entries instead
# of each key's: open files must be dropped too.
held_open_restore() {
  ctl_mount -o timeout=30
  mkdir -p "$MNT/d" "$MNT/many"
  printf 'restored\n' >"$MNT/d/f"
  (cd "$MNT/many" && for ((i = 0; i < $1; i++)); do printf b >"f$i"; done)
  ctl snapshot s
  # the same size: the kernel would drop pages of a file whose size changed
  printf 'newbytes\n' >"$MNT/d/f"
  (cd "$MNT/many" && for ((i = 0; i < $1; i++)); do printf a >"f$i"; done)
  exec 5<"$MNT/d/f"
  expect_equal newbytes "$(cat "$MNT/d/f")"
  ctl restore s
  expect_equal restored "$(cat "$MNT/d/f")" "a new open of d/f"
  expect_equal 9 "$(stat -c %s "$MNT/d/f")" "size of d/f"
  exec 5<&-
}

# Without a note for a name (kernels before 6.16, more changed keys than
# the daemon lists: only directories are dropped), the kernel's old entry
# leads to the replaced object, which no handle holds: it answers ESTALE,
# and the kernel looks the name up again.
@test "top-level files cached before a restore the daemon cannot list, without cache epochs, read the restored bytes (ESTALE)" {
  export S3MEM_CHANGED_KEYS_MAX=8 S3MEM_CACHE_EPOCH=0
  ctl_mount -o timeout=30
  printf 'old\n' >"$MNT/top"
  for i in $(seq 10); do printf a >"$MNT/f$i"; done
  ctl snapshot s
  printf 'new\n' >"$MNT/top"
  for i in $(seq 10); do printf b >"$MNT/f$i"; done
  expect_equal new "$(cat "$MNT/top")"
  expect_equal b "$(cat "$MNT/f3")"
  setfattr -n user.k -v 1 "$MNT/f4"
  ctl restore s
  expect_equal old "$(cat "$MNT/top")" "top after the restore"
  expect_equal a "$(cat "$MNT/f3")" "f3 after the restore"
  fails_with "No such attribute" getfattr -n user.k "$MNT/f4"
  printf 'again\n' >"$MNT/top"
  expect_equal again "$(cat "$MNT/top")"
}

# expect_new_inode PATH OLD WHAT: PATH's inode number is no longer OLD.
expect_new_inode() {
  if [[ "$(stat -c %i "$1")" == "$2" ]]; then
    echo "$3 kept its inode"
    return 1
  fi
}

# A restore, load or import leaves a file it does not change as it was,
# inode and all; a file it changes comes back as a new object, so with a
# new inode (as a file replaced by mv: what the kernel cached of the old
# one goes with it).
@test "a restore, load or import that leaves a file unchanged keeps its inode; a changed file gets a new one" {
  ctl_mount -o timeout=30
  echo same >"$MNT/same"
  echo old >"$MNT/changed"
  local same changed
  same=$(stat -c %i "$MNT/same")
  changed=$(stat -c %i "$MNT/changed")
  ctl snapshot s
  echo new >"$MNT/changed"
  expect_equal "$changed" "$(stat -c %i "$MNT/changed")" "inode after a write"
  ctl restore s
  expect_equal "$same" "$(stat -c %i "$MNT/same")" "inode of the unchanged file"
  expect_new_inode "$MNT/changed" "$changed" "the restored file"
  expect_equal old "$(cat "$MNT/changed")"
  mv "$MNT/same" "$MNT/moved"
  expect_equal "$same" "$(stat -c %i "$MNT/moved")" "inode after mv"
  # a load or an import with clear that leaves a file as it was keeps it too
  changed=$(stat -c %i "$MNT/changed")
  ctl save "$T/s.json"
  echo other >"$MNT/changed"
  ctl load "$T/s.json"
  expect_equal "$same" "$(stat -c %i "$MNT/moved")" "inode of the unchanged file after load"
  expect_new_inode "$MNT/changed" "$changed" "the loaded file"
  expect_equal old "$(cat "$MNT/changed")"
  mkdir "$MNT/resource=users" "$MNT/resource=users/data"
  echo '{"name":"a"}' >"$MNT/resource=users/data/id=u1"
  ctl export "$T/bk"
  ctl import "$T/bk" clear  # the record as s3db.js would store it
  local record
  record=$(stat -c %i "$MNT/resource=users/data/id=u1")
  ctl import "$T/bk" clear
  expect_equal "$record" "$(stat -c %i "$MNT/resource=users/data/id=u1")" "inode of an unchanged record after import clear"
}

@test "a file held open across a restore: a new open reads the restored bytes (-o timeout=30)" {
  held_open_restore 3
}

@test "a file held open across a restore of 5,000 keys, more than the daemon lists (S3MEM_CHANGED_KEYS_MAX=4096)" {
  export S3MEM_CHANGED_KEYS_MAX=4096
  held_open_restore 5000
}

@test "a file held open across a restore of 5,000 keys (-o timeout=30)" {
  held_open_restore 5000
}

@test "a file held open across a restore of 1,000 keys, more than the daemon lists, without cache epochs (S3MEM_CACHE_EPOCH=0)" {
  export S3MEM_CHANGED_KEYS_MAX=800 S3MEM_CACHE_EPOCH=0
  held_open_restore 1000
}

# cat_each DIR PREFIX COUNT: cats DIR/PREFIX0 .. PREFIX(COUNT-1) by name
# (no listing, which would give the kernel fresh entries).
cat_each() {
  (cd "$1" && for ((i = 0; i < $3; i++)); do echo "$2$i"; done | xargs -r cat)
}

# many_cached_restore COUNT KEPT: COUNT one-byte files, each read through
# the kernel (its page kept: keep_cache) before a restore brings back other
# bytes of the same size, beside KEPT files the restore leaves as they were;
# plus a file the restore brings back and one it removes. When most of what
# the kernel knows changed, the daemon drops all its names in one step (a
# cache epoch) and gives each changed file a new inode; otherwise it drops
# each changed key's caches.
many_cached_restore() {
  ctl_mount -o timeout=30
  mkdir -p "$MNT/many" "$MNT/kept"
  (cd "$MNT/many" && for ((i = 0; i < $1; i++)); do printf b >"f$i"; done)
  (cd "$MNT/kept" && for ((i = 0; i < $2; i++)); do printf k >"k$i"; done)
  echo back >"$MNT/removed-then-restored"
  ctl snapshot s
  (cd "$MNT/many" && for ((i = 0; i < $1; i++)); do printf a >"f$i"; done)
  rm "$MNT/removed-then-restored"
  echo new >"$MNT/added"
  expect_equal "$1" "$(cat_each "$MNT/many" f "$1" | tr -d b | wc -c)" "bytes other than b before the restore"
  expect_equal "$2" "$(cat_each "$MNT/kept" k "$2" | tr -d -c k | wc -c)" "unchanged files before"
  stat "$MNT/added" "$MNT/many" "$MNT/kept" >/dev/null
  fails_with "No such file or directory" stat "$MNT/removed-then-restored"
  ctl restore s
  expect_equal 0 "$(cat_each "$MNT/many" f "$1" | tr -d b | wc -c)" "bytes other than b after the restore"
  expect_equal "$1" "$(cat_each "$MNT/many" f "$1" | wc -c)" "bytes after the restore"
  expect_equal "$2" "$(cat_each "$MNT/kept" k "$2" | tr -d -c k | wc -c)" "unchanged files after"
  fails_with "No such file or directory" stat "$MNT/added"
  expect_equal back "$(cat "$MNT/removed-then-restored")"
}

@test "a restore of 800 changed cached files beside 200 unchanged ones (-o timeout=30)" {
  many_cached_restore 800 200
}

@test "a restore of 800 changed cached files, without cache epochs (S3MEM_CACHE_EPOCH=0, as before Linux 6.16)" {
  export S3MEM_CACHE_EPOCH=0
  many_cached_restore 800 200
}

# 522 changed keys (enough for an epoch) but fewer than half of the 1,625
# files and directories the kernel knows: each key's caches are dropped
@test "a restore of 520 changed cached files beside 1,100 unchanged ones (-o timeout=30)" {
  many_cached_restore 520 1100
}

# ---- save and load ----------------------------------------------------------------

@test "save then load gives back keys, contents, metadata, modes and dates" {
  ctl_mount
  build_fixture_tree "$T/src"
  build_fixture_tree "$MNT"
  chmod 600 "$MNT/proj/logo.bin"
  touch -d 2020-01-02T03:04:05Z "$MNT/proj/src/main.c"
  local before keys
  before=$(tree_state "$MNT")
  keys=$(cat "$(ctl_path keys)")

  ctl save "$T/s.json"
  expect_equal "saved 13 objects to '$T/s.json'" "$(status_message)"
  succeeds jq -e '(.timestamp | type == "string") and .bucket == "s3mem" and .objectCount == 13 and (.objects | length == 13)' "$T/s.json"
  expect_equal "$keys" "$(sorted_keys_of "$T/s.json")" "keys in the save file"
  expect_equal "$(md5sum <"$T/src/proj/logo.bin" | cut -d' ' -f1)" \
    "$(jq -r '.objects["proj/logo.bin"].etag' "$T/s.json")" "etag in the save file"
  # no temp file is left beside it
  expect_equal s.json "$(cd "$T" && ls -A | grep -F s.json)"

  ctl clear
  expect_equal "" "$(ls "$MNT")"
  ctl load "$T/s.json"
  expect_equal "loaded 13 objects from '$T/s.json'" "$(status_message)"
  expect_equal "$keys" "$(cat "$(ctl_path keys)")" keys
  expect_same_tree "$before" "$(tree_state "$MNT")"
  local f
  while IFS= read -r -d '' f; do
    succeeds cmp "$T/src/$f" "$MNT/$f"
  done < <(cd "$T/src" && find . -type f -print0)
  expect_equal alice "$(xattr_value "$MNT/proj/README.md" user.author)"
  expect_equal text/markdown "$(xattr_value "$MNT/proj/README.md" user.s3mem.content-type)"
  expect_equal 600 "$(stat -c %a "$MNT/proj/logo.bin")"
  expect_equal "$(date -d 2020-01-02T03:04:05Z +%s)" "$(stat -c %Y "$MNT/proj/src/main.c")"

  # a second save of the loaded store is the same file but for its timestamp
  ctl save "$T/s2.json"
  expect_equal "$(jq -S 'del(.timestamp)' "$T/s.json")" "$(jq -S 'del(.timestamp)' "$T/s2.json")" "second save"
}

@test "load of the file just saved changes nothing; what changed since comes back" {
  ctl_mount
  build_fixture_tree "$MNT"
  ctl save "$T/s.json"
  local times
  times=$(cd "$MNT" && find . -path ./.s3mem -prune -o -print0 | sort -z | xargs -0 stat -c '%n %y %z')
  ctl load "$T/s.json"
  # identical objects are left as they were: nanoseconds and ctime included
  expect_equal "$times" \
    "$(cd "$MNT" && find . -path ./.s3mem -prune -o -print0 | sort -z | xargs -0 stat -c '%n %y %z')" \
    "times after reloading the same file"

  echo changed >"$MNT/proj/README.md"
  ctl load "$T/s.json"
  expect_equal "$(jq -r '.objects["proj/README.md"].body' "$T/s.json" | base64 -d)" \
    "$(cat "$MNT/proj/README.md")" "README.md is back"
  # its mtime is the file's (milliseconds), the others still untouched
  expect_equal "$(jq -r '.objects["proj/README.md"].lastModified' "$T/s.json")" \
    "$(date -u -d "$(stat -c %y "$MNT/proj/README.md")" +%Y-%m-%dT%H:%M:%S.%3NZ)" "README.md mtime"
  expect_equal "$(grep -v README.md <<<"$times")" \
    "$(cd "$MNT" && find . -path ./.s3mem -prune -o -print0 | sort -z | xargs -0 stat -c '%n %y %z' | grep -v README.md)" \
    "times of the others"
}

@test "load shop.snapshot.json (s3db.js 12.4.0): exactly its 11 keys and bodies" {
  ctl_mount
  echo "to be replaced" >"$MNT/old.txt"
  local snap="$FIXTURES/shop.snapshot.json"
  ctl load "$snap"
  expect_equal "loaded $SHOP_KEYS_COUNT objects from '$snap'" "$(status_message)"
  expect_equal "$(sorted_keys_of "$snap")" "$(cat "$(ctl_path keys)")" keys
  expect_equal "$SHOP_KEYS_COUNT" "$(wc -l <"$(ctl_path keys)")"
  expect_equal "$SHOP_KEYS_COUNT" "$(jq .objectCount "$(ctl_path stats)")"
  [ ! -e "$MNT/old.txt" ]
  local key
  while IFS= read -r key; do
    [[ "$key" == */ ]] && continue
    body_of "$snap" "$key" >"$T/want"
    succeeds cmp "$T/want" "$MNT/$key"
    expect_equal "$(jq -r --arg k "$key" '.objects[$k].etag' "$snap" | tr -d '"')" \
      "$(xattr_value "$MNT/$key" user.s3mem.etag)" "etag of $key"
  done < <(sorted_keys_of "$snap")
  [ -d "$MNT/empty-dir" ]
  expect_equal 'plain text body' "$(cat "$MNT/assets/readme.txt")"
  expect_equal x "$(cat "$MNT/spaces and ünïcode/file name.txt")"
  expect_equal en "$(xattr_value "$MNT/assets/readme.txt" user.lang)"
  expect_equal text/plain "$(xattr_value "$MNT/assets/readme.txt" user.s3mem.content-type)"
  expect_equal image/x-test "$(xattr_value "$MNT/assets/logo.bin" user.s3mem.content-type)"
  # s3db.js's encoded metadata values are kept as written
  expect_equal "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9" \
    "$(xattr_value "$MNT/resource=users/data/id=u1" user.1)"
  expect_equal $'id=admin\nid=u1\nid=u2' "$(ls "$MNT/resource=users/data")"
  expect_equal "" "$(cat "$(ctl_path shadowed)")"
}

@test "load edge.snapshot.json: unshowable keys are in shadowed, kept and saved" {
  ctl_mount
  local snap="$FIXTURES/edge.snapshot.json" long
  long=$(jq -r '.objects | keys[] | select(startswith("long/"))' "$snap")
  [ "${#long}" -gt 260 ]
  ctl load "$snap"
  expect_equal "$(sorted_keys_of "$snap")" "$(cat "$(ctl_path keys)")" keys
  expect_equal 7 "$(wc -l <"$(ctl_path keys)")"
  expect_equal "$(printf '%s\n' a dot/./z "$long" trailing/ up/../w x//y | LC_ALL=C sort)" \
    "$(cat "$(ctl_path shadowed)")" shadowed
  expect_equal 6 "$(jq .shadowedCount "$(ctl_path stats)")" shadowedCount
  expect_equal 7 "$(jq .objectCount "$(ctl_path stats)")" objectCount
  # what can be shown is shown: a/ is a directory, a/b a file in it
  [ -d "$MNT/a" ]
  expect_equal "$(body_of "$snap" a/b)" "$(cat "$MNT/a/b")"

  ctl save "$T/edge-again.json"
  expect_equal "$(jq -c '.objects | keys' "$snap")" "$(jq -c '.objects | keys' "$T/edge-again.json")" "saved keys"
  expect_equal "$(jq -S '.objects | map_values({body, metadata, size})' "$snap")" \
    "$(jq -S '.objects | map_values({body, metadata, size})' "$T/edge-again.json")" "saved bodies and metadata"
}

# ---- backups ----------------------------------------------------------------------

# expect_users_imported: the three users of the fixtures, as records.
expect_users_imported() {
  local users="$MNT/resource=users/data"
  expect_equal $'id=admin\nid=u1\nid=u2' "$(ls "$users")" "ls resource=users/data"
  run getfattr --absolute-names -d "$users/id=u1"
  [ "$status" -eq 0 ]
  [[ "$output" == *'user.2="zoe@test.com"'* && "$output" == *'user._v="v1"'* &&
    "$output" == *'user.3="user"'* ]] || { echo "$output"; false; }
  # stored as s3db.js's putObject stores a non-ASCII value
  expect_equal "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9" "$(xattr_value "$users/id=u1" user.1)"
  expect_equal 'Bob "quoted" \ back' "$(xattr_value "$users/id=u2" user.1)"
  expect_equal admin "$(xattr_value "$users/id=admin" user.3)"
  expect_equal "" "$(cat "$users/id=admin")"
  expect_equal 0 "$(stat -c %s "$users/id=admin")"
  # the id is the key, not metadata
  fails_with "No such attribute" getfattr -n user.id "$users/id=u1"
}

@test "import shop-backup-plain puts records at resource=NAME/data/id=ID" {
  ctl_mount
  ctl import "$FIXTURES/shop-backup-plain"
  expect_equal 5 "$(jq .counts.records "$(ctl_path status)")"
  expect_equal 0 "$(jq .counts.errorCount "$(ctl_path status)")"
  expect_equal $'resource=posts\nresource=users' "$(ls "$MNT")"
  expect_users_imported
  expect_equal $'id=p1\nid=p2' "$(ls "$MNT/resource=posts/data")"
  expect_equal "First Post" "$(xattr_value "$MNT/resource=posts/data/id=p1" user.2)"
  expect_equal true "$(xattr_value "$MNT/resource=posts/data/id=p2" user._overflow)"
  expect_equal "$(printf '%s\n' resource=posts/data/id=p1 resource=posts/data/id=p2 \
    resource=users/data/id=admin resource=users/data/id=u1 resource=users/data/id=u2)" \
    "$(cat "$(ctl_path keys)")" keys
}

@test "import shop-backup-gz (.jsonl.gz) gives the same records" {
  ctl_mount
  ctl import "$FIXTURES/shop-backup-gz"
  expect_equal 5 "$(jq .counts.records "$(ctl_path status)")"
  expect_users_imported
  expect_equal $'id=p1\nid=p2' "$(ls "$MNT/resource=posts/data")"
  ctl save "$T/gz.json"
  ctl clear
  ctl import "$FIXTURES/shop-backup-plain"
  ctl save "$T/plain.json"
  expect_equal "$(jq -S '.objects | map_values(del(.lastModified))' "$T/plain.json")" \
    "$(jq -S '.objects | map_values(del(.lastModified))' "$T/gz.json")" "gz and plain imports"
}

@test "import shop-backup-users-only, with and without resources=, and clear" {
  ctl_mount
  echo keep >"$MNT/keep.txt"
  ctl import "$FIXTURES/shop-backup-users-only"
  expect_equal 3 "$(jq .counts.records "$(ctl_path status)")"
  expect_equal $'keep.txt\nresource=users' "$(ls "$MNT")"
  expect_users_imported
  expect_equal keep "$(cat "$MNT/keep.txt")"

  ctl import "$FIXTURES/shop-backup-plain" resources=posts
  expect_equal $'keep.txt\nresource=posts\nresource=users' "$(ls "$MNT")"
  expect_equal 2 "$(jq .counts.records "$(ctl_path status)")"

  ctl import "$FIXTURES/shop-backup-plain" clear resources=users
  expect_equal resource=users "$(ls "$MNT")"
  expect_users_imported
}

@test "export of the loaded shop store (compress=false) equals s3db.js's backup" {
  ctl_mount
  ctl load "$FIXTURES/shop.snapshot.json"
  ctl export "$T/out" compress=false
  # s3db.js's own export leaves out the six other keys of that store too
  expect_equal "exported 5 records of 2 resources to '$T/out'; 6 objects outside resource=<name>/ are not in it (a backup holds s3db.js resources; save keeps every object)" \
    "$(status_message)"
  expect_equal $'posts.jsonl\ns3db.json\nusers.jsonl' "$(ls "$T/out")"
  local name
  for name in users posts; do
    expect_equal "$(jq -cS . "$FIXTURES/shop-backup-plain/$name.jsonl" | sort)" \
      "$(jq -cS . "$T/out/$name.jsonl" | sort)" "records of $name"
  done
  expect_equal "$(jq -c keys "$FIXTURES/shop-backup-plain/s3db.json")" "$(jq -c keys "$T/out/s3db.json")" "s3db.json keys"
  succeeds jq -e '.version == "1.0" and .compressed == false and .totalRecords == 5 and
    (.resources | keys) == ["posts", "users"] and .resources.users.stats.recordCount == 3' "$T/out/s3db.json"
  expect_equal "$(stat -c %s "$T/out/users.jsonl")" "$(jq .resources.users.stats.fileSize "$T/out/s3db.json")" fileSize
}

@test "export compress=true writes .jsonl.gz that zcat reads; resources= picks files" {
  ctl_mount
  ctl load "$FIXTURES/shop.snapshot.json"
  ctl export "$T/gz" compress=true
  expect_equal $'posts.jsonl.gz\ns3db.json\nusers.jsonl.gz' "$(ls "$T/gz")"
  local name
  for name in users posts; do
    succeeds gzip -t "$T/gz/$name.jsonl.gz"
    expect_equal "$(zcat "$FIXTURES/shop-backup-gz/$name.jsonl.gz" | jq -cS . | sort)" \
      "$(zcat "$T/gz/$name.jsonl.gz" | jq -cS . | sort)" "records of $name"
  done
  succeeds jq -e '.compressed == true' "$T/gz/s3db.json"

  ctl export "$T/default"
  expect_equal $'posts.jsonl.gz\ns3db.json\nusers.jsonl.gz' "$(ls "$T/default")" "export compresses by default"

  ctl export "$T/users" compress=false resources=users
  expect_equal $'s3db.json\nusers.jsonl' "$(ls "$T/users")"
  expect_equal "$(jq -cS . "$FIXTURES/shop-backup-users-only/users.jsonl" | sort)" \
    "$(jq -cS . "$T/users/users.jsonl" | sort)"
}

@test "export says which objects a backup cannot hold; import clear says what it replaced" {
  ctl_mount
  ctl import "$FIXTURES/shop-backup-plain"
  mkdir -p "$MNT/fixtures/users"
  echo '{"name": "Alice"}' >"$MNT/fixtures/users/alice.json"
  echo plain >"$MNT/notes.txt"
  ctl export "$T/bk" compress=false
  # the two files and the two directory markers mkdir -p made
  expect_equal "exported 5 records of 2 resources to '$T/bk'; 4 objects outside resource=<name>/ are not in it (a backup holds s3db.js resources; save keeps every object)" \
    "$(status_message)"
  expect_equal '{"records":5,"resources":2,"outside":4}' "$(jq -c .counts "$MNT/.s3mem/status")"
  ctl import "$T/bk" clear
  expect_equal "imported 5 records from '$T/bk' (0 merged, 0 bad lines); clear: 9 objects before, 5 now" \
    "$(status_message)"
  expect_equal $'resource=posts\nresource=users' "$(ls "$MNT")" "only the resources are left"
}

@test "export then import into an empty store gives the same records" {
  ctl_mount
  ctl import "$FIXTURES/shop-backup-plain"
  ctl save "$T/first.json"
  ctl export "$T/round" compress=false
  ctl clear
  ctl import "$T/round" clear
  ctl save "$T/second.json"
  expect_equal "$(jq -S '.objects | map_values(del(.lastModified))' "$T/first.json")" \
    "$(jq -S '.objects | map_values(del(.lastModified))' "$T/second.json")" "round trip"
}

@test "import clear leaves an object the backup holds unchanged as it was, times included" {
  ctl_mount -o timeout=30
  ctl import "$FIXTURES/shop-backup-plain"
  ctl export "$T/bk" compress=false
  local kept="$MNT/resource=users/data/id=admin" changed="$MNT/resource=users/data/id=u1"
  touch -d 2020-01-02T03:04:05Z "$kept" "$changed"
  # both read once: the kernel caches their attributes and pages
  cat "$kept" "$changed" >/dev/null
  getfattr -d "$kept" "$changed" >/dev/null
  sed -i 's/"zoe@test.com"/"zoe@example.org"/' "$T/bk/users.jsonl"
  ctl import "$T/bk" clear
  expect_equal "2020-01-02 03:04:05" "$(date -u -d @"$(stat -c %Y "$kept")" '+%F %T')" "kept mtime"
  expect_equal "admin@test.com" "$(xattr_value "$kept" user.2)" "kept metadata"
  expect_equal "zoe@example.org" "$(xattr_value "$changed" user.2)" "changed metadata"
  # the changed record is a new object: the import's time
  expect_equal "$(date -u +%Y)" "$(date -u -d @"$(stat -c %Y "$changed")" +%Y)" "changed mtime year"
}

# ---- bad input: an errno, a message, and the store as it was -------------------------

# populate: the shop fixture and one file of our own; sets BEFORE.
populate() {
  ctl_mount
  ctl load "$FIXTURES/shop.snapshot.json"
  echo "my notes" >"$MNT/notes.txt"
  BEFORE=$(store_fingerprint)
}

# expect_unchanged: the store is exactly as populate left it.
expect_unchanged() {
  expect_same_tree "$BEFORE" "$(store_fingerprint)"
  expect_equal "my notes" "$(cat "$MNT/notes.txt")" "notes.txt"
  expect_equal "plain text body" "$(cat "$MNT/assets/readme.txt")" "assets/readme.txt"
  expect_equal $((SHOP_KEYS_COUNT + 1)) "$(wc -l <"$(ctl_path keys)")" "number of keys"
}

@test "a relative path is refused: must be absolute" {
  populate
  ctl_fails "Invalid argument" "must be absolute" load shop.snapshot.json
  expect_unchanged
  ctl_fails "Invalid argument" "must be absolute" save out.json
  ctl_fails "Invalid argument" "must be absolute" export backup
  ctl_fails "Invalid argument" "must be absolute" import "tests/fixtures/s3db-12.4.0/shop-backup-plain" clear
  ctl_fails "Invalid argument" "must be absolute" load ./x.json
  expect_unchanged
}

@test "a path inside the mount is refused: the daemon would wait on its own requests" {
  # with -s (control_single.bats) each of these used to hang the daemon
  populate
  ln -s "$MNT" "$T/into-mount"
  ctl_fails "Invalid argument" "is inside this mount" save "$MNT/state.json"
  ctl_fails "Invalid argument" "is inside this mount" export "$MNT/backup"
  ctl_fails "Invalid argument" "is inside this mount" load "$MNT/notes.txt"
  ctl_fails "Invalid argument" "is inside this mount" import "$MNT/assets" clear
  ctl_fails "Invalid argument" "is inside this mount" save "$T/into-mount/state.json"
  ctl_fails "Invalid argument" "is inside this mount" export "$T/../$(basename "$T")/$(basename "$MNT")/backup"
  expect_unchanged
  [ ! -e "$MNT/backup" ]
  # s3mem-ctl run from inside the mount makes ./bk absolute there too
  run bash -c 'cd "$1" && "$2" "$1" export ./bk' _ "$MNT" "$S3MEM_CTL"
  [ "$status" -eq 1 ]
  [[ $output == *"is inside this mount"* ]]
  # a path beside the mount is fine
  ctl save "$T/into-mount-not.json"
  expect_equal true "$(jq .ok "$(ctl_path status)")"
}

@test "a missing file or directory is refused, naming it" {
  populate
  ctl_fails "No such file or directory" "'$T/missing.json'" load "$T/missing.json"
  expect_unchanged
  ctl_fails "No such file or directory" "'$T/missing-dir'" import "$T/missing-dir"
  expect_unchanged
  ctl_fails "No such file or directory" "'$T/missing-dir'" import "$T/missing-dir" clear
  expect_unchanged
  ctl_fails "No such file or directory" "'$T/no-parent/backup'" export "$T/no-parent/backup"
  [ ! -e "$T/no-parent" ]
  expect_unchanged
  # a backup directory without s3db.json
  mkdir "$T/empty-backup"
  ctl_fails "No such file or directory" "s3db.json" import "$T/empty-backup" clear
  expect_unchanged
}

@test "load of a file that is not JSON is refused" {
  populate
  echo "this is not JSON" >"$T/not.json"
  ctl_fails "Invalid argument" "cannot load '$T/not.json': not valid JSON" load "$T/not.json"
  expect_unchanged
  echo '{"objects": 42}' >"$T/wrong-type.json"
  ctl_fails "Invalid argument" "'$T/wrong-type.json'" load "$T/wrong-type.json"
  expect_unchanged
  : >"$T/empty.json"
  ctl_fails "Invalid argument" "'$T/empty.json'" load "$T/empty.json"
  expect_unchanged
}

@test "load of truncated JSON (head -c of a real save) is refused" {
  populate
  ctl save "$T/good.json"
  local size cut
  size=$(stat -c %s "$T/good.json")
  for cut in 1 200 $((size / 2)) $((size - 2)); do
    head -c "$cut" "$T/good.json" >"$T/truncated.json"
    ctl_fails "Invalid argument" "cannot load '$T/truncated.json': not valid JSON" load "$T/truncated.json"
    expect_unchanged
  done
}

@test "load of a file whose etag does not match its body is refused, naming the key" {
  populate
  local key=assets/readme.txt
  jq --arg k "$key" '.objects[$k].body = ("tampered!\n" | @base64) | .objects[$k].size = 10 |
    .objects[$k].contentLength = 10' "$FIXTURES/shop.snapshot.json" >"$T/bad-etag.json"
  ctl_fails "Invalid argument" "'$key': etag" load "$T/bad-etag.json"
  expect_unchanged
  jq --arg k "$key" '.objects[$k].body = "***not base64***"' "$FIXTURES/shop.snapshot.json" >"$T/bad-base64.json"
  ctl_fails "Invalid argument" "$key" load "$T/bad-base64.json"
  expect_unchanged
}

@test "import of a truncated .jsonl.gz is refused, with or without clear" {
  populate
  cp -r "$FIXTURES/shop-backup-gz" "$T/bad-gz"
  head -c "$(($(stat -c %s "$T/bad-gz/users.jsonl.gz") / 2))" "$FIXTURES/shop-backup-gz/users.jsonl.gz" \
    >"$T/bad-gz/users.jsonl.gz"
  ctl_fails "Invalid argument" "users.jsonl.gz' is truncated or corrupt" import "$T/bad-gz"
  expect_unchanged
  ctl_fails "Invalid argument" "users.jsonl.gz' is truncated or corrupt" import "$T/bad-gz" clear
  expect_unchanged
}

@test "import: a record line that is not a JSON object is reported by number" {
  ctl_mount
  echo "my notes" >"$MNT/notes.txt"
  cp -r "$FIXTURES/shop-backup-plain" "$T/bad-lines"
  # users.jsonl: admin, [1,2,3], u1, junk, u2
  sed -i -e '2i [1,2,3]' -e '2a this is not json' "$T/bad-lines/users.jsonl"
  expect_equal 5 "$(grep -c . "$T/bad-lines/users.jsonl")"
  expect_equal 'this is not json' "$(sed -n 4p "$T/bad-lines/users.jsonl")"
  local before
  before=$(store_fingerprint)

  # with clear: all or nothing, refused, store unchanged
  ctl_fails "Invalid argument" "users.jsonl line 2" import "$T/bad-lines" clear
  expect_same_tree "$before" "$(store_fingerprint)"
  expect_equal notes.txt "$(ls "$MNT")"

  # without clear: the good lines go in, the bad ones are in status
  ctl import "$T/bad-lines"
  local st
  st=$(status_json)
  expect_equal "imported 5 records from '$T/bad-lines' (0 merged, 2 bad lines)" "$(jq -r .message <<<"$st")"
  expect_equal 2 "$(jq .counts.errorCount <<<"$st")" errorCount
  expect_equal '[2,4]' "$(jq -c '[.counts.errors[].line]' <<<"$st")" "bad line numbers"
  expect_equal '["users.jsonl","users.jsonl"]' "$(jq -c '[.counts.errors[].file]' <<<"$st")"
  succeeds jq -e '.counts.errors[0].message | test("JSON object")' <<<"$st"
  expect_users_imported
  expect_equal $'id=p1\nid=p2' "$(ls "$MNT/resource=posts/data")"
  expect_equal "my notes" "$(cat "$MNT/notes.txt")"
}

@test "restore of an unknown snapshot is refused" {
  populate
  ctl_fails "No such file or directory" "no snapshot named 'nosuch'" restore nosuch
  expect_unchanged
}

@test "a resources= filter that matches nothing is refused, listing what exists" {
  populate
  ctl_fails "No such file or directory" "no resource matches 'nope'" import "$FIXTURES/shop-backup-plain" resources=nope
  [[ "$(status_message)" == *users* && "$(status_message)" == *posts* ]] || { status_json; false; }
  expect_unchanged
  ctl_fails "No such file or directory" "no resource matches 'nope'" import "$FIXTURES/shop-backup-plain" clear resources=nope
  expect_unchanged
  ctl_fails "No such file or directory" "no resource matches 'nope'" export "$T/ex" resources=nope
  [[ ! -e "$T/ex" || -z "$(ls -A "$T/ex")" ]] || { ls -la "$T/ex"; false; }
  expect_unchanged
}

@test "unknown options are refused" {
  populate
  ctl_fails "Invalid argument" "unknown option 'bogus'" import "$FIXTURES/shop-backup-plain" bogus
  ctl_fails "Invalid argument" "unknown option 'compress=maybe'" export "$T/ex" compress=maybe
  [ ! -e "$T/ex" ]
  expect_unchanged
}

@test "save into a missing directory or a read-only place fails and writes nothing" {
  populate
  ctl_fails "No such file or directory" "cannot save '$T/nodir/x.json'" save "$T/nodir/x.json"
  [ ! -e "$T/nodir" ]
  expect_unchanged
  if [[ $(id -u) -eq 0 ]]; then
    # root may write anywhere on disk, but not into /proc
    ctl_fails "" "cannot save '/proc/s3mem-test.json'" save /proc/s3mem-test.json
    [ ! -e /proc/s3mem-test.json ]
  else
    mkdir "$T/ro"
    chmod 555 "$T/ro"
    ctl_fails "Permission denied" "cannot save '$T/ro/x.json'" save "$T/ro/x.json"
    expect_equal "" "$(ls -A "$T/ro")"
  fi
  expect_unchanged
  # a failed save leaves an existing file alone
  ctl save "$T/kept.json"
  cp "$T/kept.json" "$T/kept.copy"
  echo changed >"$MNT/notes.txt"
  ctl_fails "Is a directory" "" save "$T"
  succeeds cmp "$T/kept.json" "$T/kept.copy"
}

# ---- who may write control files ------------------------------------------------------

@test "with allow_other, only the mounting user and root may write control files" {
  [[ $(id -u) -eq 0 ]] || skip "needs root (mounts with allow_other and runs as nobody)"
  ctl_mount -o allow_other
  chmod 755 "$T"
  echo data >"$MNT/f"
  local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

  run "${as_nobody[@]}" jq -r .objectCount "$MNT/.s3mem/stats"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  expect_equal 1 "$output" "objectCount read by nobody"
  run "${as_nobody[@]}" cat "$MNT/.s3mem/keys"
  expect_equal f "$output" "keys read by nobody"
  run "${as_nobody[@]}" cat "$MNT/f"
  expect_equal data "$output"

  local file
  for file in snapshot clear save restore load import export; do
    run "${as_nobody[@]}" sh -c "echo x >'$MNT/.s3mem/$file'"
    [ "$status" -ne 0 ] && [[ "$output" == *"Permission denied"* ]] \
      || { echo "nobody writing $file: status $status, output: $output"; false; }
  done
  fails_with "Permission denied" "${as_nobody[@]}" mkdir "$MNT/.s3mem/snapshots/x"
  # the wrapper says so too, and exits 1
  run --separate-stderr "${as_nobody[@]}" "$S3MEM_SOURCE_DIR/mount-scripts/s3mem-ctl" "$MNT" snapshot x
  expect_equal 1 "$status" "s3mem-ctl exit status for nobody"
  [[ "$stderr" == *"Permission denied"* ]] || { echo "stderr: $stderr"; false; }
  run "${as_nobody[@]}" "$S3MEM_SOURCE_DIR/mount-scripts/s3mem-ctl" "$MNT" keys
  expect_equal f "$output" "s3mem-ctl keys for nobody"
  expect_equal "" "$(cat "$(ctl_path snapshot)")" "snapshots after nobody's attempts"
  expect_equal data "$(cat "$MNT/f")"
  expect_equal "no command yet" "$(status_message)"

  # root (the mounting user here) may
  ctl snapshot s
  fails_with "Permission denied" "${as_nobody[@]}" rmdir "$MNT/.s3mem/snapshots/s"
  expect_equal s "$(cat "$(ctl_path snapshot)")"
  # and nobody may browse the snapshot
  run "${as_nobody[@]}" cat "$MNT/.s3mem/snapshots/s/f"
  expect_equal data "$output"
}

# ---- mount-scripts/s3mem-ctl ---------------------------------------------------------------

S3MEM_CTL="$S3MEM_SOURCE_DIR/mount-scripts/s3mem-ctl"

@test "s3mem-ctl --help" {
  succeeds "$S3MEM_CTL" --help
  [[ "$output" == *"Usage: s3mem-ctl"* ]] || { echo "$output"; false; }
  local command
  for command in snapshot restore save load export import clear stats keys shadowed snapshots status; do
    [[ "$output" == *"$command"* ]] || { echo "--help does not mention $command"; false; }
  done
  run "$S3MEM_CTL"
  [ "$status" -eq 1 ]
  [[ "$output" == *Usage* ]] || { echo "$output"; false; }
}

@test "s3mem-ctl runs commands, prints the message, resolves relative paths" {
  ctl_mount
  echo hi >"$MNT/f"
  cd "$T"
  run --separate-stderr "$S3MEM_CTL" "$MNT" snapshot s1
  [ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
  expect_equal "snapshot 's1' taken: 1 objects" "$output"
  expect_equal s1 "$("$S3MEM_CTL" "$MNT" snapshots)"

  run --separate-stderr "$S3MEM_CTL" "$MNT" save rel.json
  [ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
  expect_equal "saved 1 objects to '$T/rel.json'" "$output"
  [ -f "$T/rel.json" ]
  succeeds "$S3MEM_CTL" "$MNT" save "with space/../spaced name.json"
  expect_equal "saved 1 objects to '$T/spaced name.json'" "$output"
  succeeds jq -e '.objects.f' "$T/spaced name.json"

  echo changed >"$MNT/f"
  succeeds "$S3MEM_CTL" "$MNT" restore s1
  expect_equal hi "$(cat "$MNT/f")"
  echo changed >"$MNT/f"
  succeeds "$S3MEM_CTL" "$MNT" load rel.json
  expect_equal hi "$(cat "$MNT/f")"

  run "$S3MEM_CTL" "$MNT" stats
  [ "$status" -eq 0 ]
  expect_equal 1 "$(jq .objectCount <<<"$output")"
  expect_equal f "$("$S3MEM_CTL" "$MNT" keys)"
  expect_equal "" "$("$S3MEM_CTL" "$MNT" shadowed)"
  succeeds "$S3MEM_CTL" "$MNT" status
  expect_equal true "$(jq .ok <<<"$output")"

  succeeds "$S3MEM_CTL" "$MNT" load "$FIXTURES/shop.snapshot.json"
  succeeds "$S3MEM_CTL" "$MNT" export out --no-compress --resources users
  expect_equal "exported 3 records of 1 resources to '$T/out'; 6 objects outside resource=<name>/ are not in it (a backup holds s3db.js resources; save keeps every object)" \
    "$output"
  expect_equal $'s3db.json\nusers.jsonl' "$(ls "$T/out")"
  succeeds "$S3MEM_CTL" "$MNT" export outgz
  expect_equal $'posts.jsonl.gz\ns3db.json\nusers.jsonl.gz' "$(ls "$T/outgz")"
  succeeds "$S3MEM_CTL" "$MNT" import out --clear
  expect_equal resource=users "$(ls "$MNT")"
  succeeds "$S3MEM_CTL" "$MNT" import outgz --resources posts
  expect_equal $'resource=posts\nresource=users' "$(ls "$MNT")"
  succeeds "$S3MEM_CTL" "$MNT" clear
  expect_equal "cleared 5 objects" "$output"
  expect_equal "" "$(ls "$MNT")"
}

@test "s3mem-ctl fails with exit 1 and the message on stderr" {
  ctl_mount
  echo hi >"$MNT/f"
  cd "$T"
  run --separate-stderr "$S3MEM_CTL" "$MNT" restore nosuch
  expect_equal 1 "$status" "exit status"
  expect_equal "" "$output" stdout
  [[ "$stderr" == *"no snapshot named 'nosuch'"* ]] || { echo "stderr: $stderr"; false; }

  run --separate-stderr "$S3MEM_CTL" "$MNT" load missing.json
  expect_equal 1 "$status" "exit status"
  [[ "$stderr" == *"cannot read '$T/missing.json'"* ]] || { echo "stderr: $stderr"; false; }

  echo "not json" >"$T/bad.json"
  run --separate-stderr "$S3MEM_CTL" "$MNT" load bad.json
  expect_equal 1 "$status"
  [[ "$stderr" == *"not valid JSON"* ]] || { echo "stderr: $stderr"; false; }
  expect_equal hi "$(cat "$MNT/f")"

  run --separate-stderr "$S3MEM_CTL" "$MNT" frobnicate
  expect_equal 1 "$status"
  [[ "$stderr" == *"unknown command 'frobnicate'"* ]] || { echo "stderr: $stderr"; false; }
  run --separate-stderr "$S3MEM_CTL" "$T" stats
  expect_equal 1 "$status"
  [[ "$stderr" == *"not an s3mem mount"* ]] || { echo "stderr: $stderr"; false; }
  run --separate-stderr "$S3MEM_CTL" "$MNT" load
  expect_equal 1 "$status"
  [[ "$stderr" == *"load needs PATH"* ]] || { echo "stderr: $stderr"; false; }
}

@test "s3mem-ctl --control-dir finds a renamed control directory" {
  ctl_mount -o control_dir=ctl
  echo hi >"$MNT/f"
  succeeds "$S3MEM_CTL" --control-dir ctl "$MNT" keys
  expect_equal f "$output"
  succeeds "$S3MEM_CTL" --control-dir=ctl "$MNT" snapshot s
  expect_equal s "$(cat "$MNT/ctl/snapshot")"
  run --separate-stderr "$S3MEM_CTL" "$MNT" keys
  expect_equal 1 "$status"
  [[ "$stderr" == *"not an s3mem mount"* ]] || { echo "stderr: $stderr"; false; }
}

# ---- last: nothing left behind -------------------------------------------------------------

@test "no s3mem mount or daemon of this file is left behind" {
  nothing_left_behind
}
