#!/usr/bin/env bats
# xattr.bats - object metadata as extended attributes (DESIGN.md section 4),
# as getfattr and setfattr show it.

setup() {
  load helpers
  s3mem_mount
}

teardown() {
  s3mem_teardown
}

@test "user.s3mem.etag is the md5 of the body, and follows changes" {
  echo hello >"$MNT/f"
  expect_equal "$(md5sum <"$MNT/f" | cut -d' ' -f1)" "$(xattr_value "$MNT/f" user.s3mem.etag)" etag
  echo more >>"$MNT/f"
  expect_equal "$(md5sum <"$MNT/f" | cut -d' ' -f1)" "$(xattr_value "$MNT/f" user.s3mem.etag)" "etag after append"
  : >"$MNT/empty"
  expect_equal d41d8cd98f00b204e9800998ecf8427e "$(xattr_value "$MNT/empty" user.s3mem.etag)" "etag of empty"
  random_file "$T/big" $((5 * 1024 * 1024 + 3))
  cp "$T/big" "$MNT/big"
  expect_equal "$(md5sum <"$T/big" | cut -d' ' -f1)" "$(xattr_value "$MNT/big" user.s3mem.etag)" "etag of 5 MiB"
}

@test "setfattr user.color, getfattr -d shows it with the content type" {
  echo x >"$MNT/f"
  succeeds setfattr -n user.color -v blue "$MNT/f"
  run getfattr --absolute-names -d "$MNT/f"
  [ "$status" -eq 0 ]
  [[ "$output" == *'user.color="blue"'* ]] || { echo "$output"; false; }
  [[ "$output" == *'user.s3mem.content-type="application/octet-stream"'* ]] || { echo "$output"; false; }
  # the read-only virtual attributes are not listed
  [[ "$output" != *etag* && "$output" != *user.s3mem.key* && "$output" != *last-modified* ]] \
    || { echo "$output"; false; }
  expect_equal blue "$(xattr_value "$MNT/f" user.color)"
}

@test "metadata names are case-insensitive and stored lowercased" {
  echo x >"$MNT/f"
  setfattr -n user.color -v blue "$MNT/f"
  succeeds setfattr -n user.Color -v red "$MNT/f"
  expect_equal red "$(xattr_value "$MNT/f" user.color)"
  expect_equal red "$(xattr_value "$MNT/f" user.COLOR)"
  run getfattr --absolute-names -d "$MNT/f"
  [[ "$output" == *'user.color="red"'* ]] || { echo "$output"; false; }
  [[ "$output" != *blue* && "$output" != *user.Color* ]] || { echo "$output"; false; }
  succeeds setfattr -n user.Shape -v round "$MNT/f"
  run getfattr --absolute-names -d "$MNT/f"
  [[ "$output" == *'user.shape="round"'* ]] || { echo "$output"; false; }
}

@test "setfattr -x removes an attribute; a missing one is 'No such attribute'" {
  echo x >"$MNT/f"
  setfattr -n user.color -v blue "$MNT/f"
  succeeds setfattr -x user.COLOR "$MNT/f"
  fails_with "No such attribute" getfattr -n user.color "$MNT/f"
  run getfattr --absolute-names -d "$MNT/f"
  [[ "$output" != *user.color* ]] || { echo "$output"; false; }
  fails_with "No such attribute" getfattr -n user.never-set "$MNT/f"
  fails_with "No such attribute" setfattr -x user.never-set "$MNT/f"
}

@test "user.s3mem.content-type and content-encoding are writable" {
  echo '{}' >"$MNT/f.json"
  succeeds setfattr -n user.s3mem.content-type -v application/json "$MNT/f.json"
  expect_equal application/json "$(xattr_value "$MNT/f.json" user.s3mem.content-type)"
  run getfattr --absolute-names -d "$MNT/f.json"
  [[ "$output" == *'user.s3mem.content-type="application/json"'* ]] || { echo "$output"; false; }
  [[ "$output" != *content-encoding* ]] || { echo "$output"; false; }
  succeeds setfattr -n user.s3mem.content-encoding -v gzip "$MNT/f.json"
  run getfattr --absolute-names -d "$MNT/f.json"
  [[ "$output" == *'user.s3mem.content-encoding="gzip"'* ]] || { echo "$output"; false; }
}

@test "user.s3mem.key and user.s3mem.last-modified" {
  mkdir -p "$MNT/a/b"
  echo x >"$MNT/a/b/c.txt"
  expect_equal a/b/c.txt "$(xattr_value "$MNT/a/b/c.txt" user.s3mem.key)" key
  run xattr_value "$MNT/a/b/c.txt" user.s3mem.last-modified
  [ "$status" -eq 0 ]
  [[ "$output" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$ ]] \
    || { echo "not ISO 8601: $output"; false; }
  TZ=UTC touch -d '2020-01-02 03:04:05.678' "$MNT/a/b/c.txt"
  run xattr_value "$MNT/a/b/c.txt" user.s3mem.last-modified
  [[ "$output" == 2020-01-02T03:04:05* ]] || { echo "after touch -d: $output"; false; }
}

@test "reserved names: unknown user.s3mem.* is EINVAL, removing a read-only one EPERM" {
  echo x >"$MNT/f"
  fails_with "Invalid argument" setfattr -n user.s3mem.foo -v bar "$MNT/f"
  fails_with "Operation not permitted" setfattr -x user.s3mem.etag "$MNT/f"
  fails_with "Operation not permitted" setfattr -x user.s3mem.key "$MNT/f"
  run setfattr -n user.s3mem.etag -v 0123 "$MNT/f"
  [ "$status" -ne 0 ]
  expect_equal "$(md5sum <"$MNT/f" | cut -d' ' -f1)" "$(xattr_value "$MNT/f" user.s3mem.etag)" etag
}

@test "non-user namespaces are not supported" {
  echo x >"$MNT/f"
  fails_with "Operation not supported" setfattr -n trusted.color -v blue "$MNT/f"
  fails_with "Operation not supported" setfattr -n security.color -v blue "$MNT/f"
}

@test "metadata on directories" {
  mkdir "$MNT/d"
  succeeds setfattr -n user.owner -v team "$MNT/d"
  expect_equal team "$(xattr_value "$MNT/d" user.owner)"
  expect_equal d/ "$(xattr_value "$MNT/d" user.s3mem.key)" "directory marker key"
}

@test "metadata follows mv and survives writes to the body" {
  echo x >"$MNT/f"
  setfattr -n user.color -v blue "$MNT/f"
  mv "$MNT/f" "$MNT/g"
  expect_equal blue "$(xattr_value "$MNT/g" user.color)"
  echo more >>"$MNT/g"
  expect_equal blue "$(xattr_value "$MNT/g" user.color)"
}

@test "metadata names and values with spaces, UTF-8 and binary bytes" {
  echo x >"$MNT/héllo wörld.txt"
  succeeds setfattr -n user.greeting -v "hello wörld" "$MNT/héllo wörld.txt"
  expect_equal "hello wörld" "$(xattr_value "$MNT/héllo wörld.txt" user.greeting)"
  succeeds setfattr -n user.bin -v 0x00ff10 "$MNT/héllo wörld.txt"
  run getfattr --absolute-names -e hex -n user.bin "$MNT/héllo wörld.txt"
  [[ "$output" == *"user.bin=0x00ff10"* ]] || { echo "$output"; false; }
}

@test "XATTR_CREATE and XATTR_REPLACE flags (EEXIST / ENODATA)" {
  command -v python3 >/dev/null || skip "python3 not installed"
  echo x >"$MNT/f"
  run python3 - "$MNT/f" <<'EOF'
import errno, os, sys
f = sys.argv[1]
os.setxattr(f, "user.a", b"1", os.XATTR_CREATE)
try:
    os.setxattr(f, "user.a", b"2", os.XATTR_CREATE)
    sys.exit("XATTR_CREATE on an existing name succeeded")
except OSError as e:
    assert e.errno == errno.EEXIST, e
try:
    os.setxattr(f, "user.b", b"2", os.XATTR_REPLACE)
    sys.exit("XATTR_REPLACE on a missing name succeeded")
except OSError as e:
    assert e.errno == errno.ENODATA, e
os.setxattr(f, "user.a", b"3", os.XATTR_REPLACE)
assert os.getxattr(f, "user.a") == b"3"
EOF
  [ "$status" -eq 0 ] || { echo "$output"; false; }
}
