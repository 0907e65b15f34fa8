#!/usr/bin/env bats
# compat.bats - s3db.js 12.4.0 itself reads what s3mem writes, and s3mem
# reads what s3db.js writes (DESIGN.md section 6): save files
# (MemoryClient.loadFromDisk/saveToDisk), backups (exportBackup/importBackup)
# and the records its Database resources read. The checks are in
# tests/compat/s3db-roundtrip.mjs, run with node against s3db.js installed
# from the npm registry.
#
# Every test is skipped, saying why, when node or npm is missing or
# s3db.js@12.4.0 cannot be installed (registry unreachable, or a registry
# that does not serve that version).
#
# Environment:
#   S3MEM_S3DBJS_DIR    an installed s3db.js 12.4.0 package directory
#                       (.../node_modules/s3db.js) to use instead of npm
#   S3MEM_S3DBJS_CACHE  where npm installs it, kept between runs (default
#                       ${XDG_CACHE_HOME:-/tmp}/s3mem-s3dbjs-12.4.0)

S3DBJS_VERSION=12.4.0

# s3dbjs_install CACHE: installs s3db.js@$S3DBJS_VERSION into CACHE unless a
# complete install is there. Returns non-zero when npm fails; its output is
# in CACHE/npm-install.log. One installer at a time (flock).
s3dbjs_install() {
  local cache=$1
  (
    flock -w 150 9 || exit 1
    local pkg="$cache/node_modules/s3db.js/package.json" version=
    if [[ -f "$cache/installed" && -f "$pkg" ]]; then
      version=$(node -p 'require(process.argv[1]).version' "$pkg" 2>/dev/null) || version=
    fi
    [[ "$version" == "$S3DBJS_VERSION" ]] && exit 0
    rm -rf "$cache/node_modules" "$cache/installed"
    printf '{"private": true}\n' >"$cache/package.json"
    # No peer dependencies (s3db.js 12.4 names pg, hono, bigquery...: the
    # MemoryClient needs none), no install scripts, no lock file.
    timeout 120 npm install --prefix "$cache" --no-audit --no-fund --no-save \
      --no-package-lock --legacy-peer-deps --ignore-scripts --loglevel=error \
      --fetch-timeout=30000 --fetch-retries=1 --fetch-retry-mintimeout=1000 \
      --fetch-retry-maxtimeout=5000 \
      "s3db.js@$S3DBJS_VERSION" >"$cache/npm-install.log" 2>&1 || exit 1
    touch "$cache/installed"
  ) 9>"$cache/.lock"
}

setup_file() {
  export S3DBJS_SKIP="" S3DBJS_DIR=""
  if [[ -n "${S3MEM_S3DBJS_DIR:-}" ]]; then
    local version=
    if command -v node >/dev/null; then
      version=$(node -p 'require(process.argv[1]).version' "$S3MEM_S3DBJS_DIR/package.json" 2>/dev/null) || version=
    fi
    if [[ "$version" == "$S3DBJS_VERSION" ]]; then
      S3DBJS_DIR=$S3MEM_S3DBJS_DIR
    else
      S3DBJS_SKIP="S3MEM_S3DBJS_DIR=$S3MEM_S3DBJS_DIR holds no s3db.js $S3DBJS_VERSION (${version:-no package, or no node}): s3db.js round-trip not run"
    fi
    return 0
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    S3DBJS_SKIP="node and npm are not installed: s3db.js round-trip not run"
    return 0
  fi
  local cache=${S3MEM_S3DBJS_CACHE:-${XDG_CACHE_HOME:-/tmp}/s3mem-s3dbjs-$S3DBJS_VERSION}
  mkdir -p "$cache"
  if s3dbjs_install "$cache"; then
    S3DBJS_DIR="$cache/node_modules/s3db.js"
    return 0
  fi
  local why
  why=$(grep -m1 -E 'npm (ERR|error) (code|404|notarget)|ERR!|error' "$cache/npm-install.log" 2>/dev/null || true)
  if grep -qE 'E404|ETARGET|notarget' "$cache/npm-install.log" 2>/dev/null; then
    S3DBJS_SKIP="s3db.js@$S3DBJS_VERSION is not on the npm registry (${why:-npm install failed}): s3db.js round-trip not run"
  else
    S3DBJS_SKIP="npm registry unreachable: s3db.js round-trip not run (${why:-npm install failed or timed out})"
  fi
}

setup() {
  load helpers
  load control_helpers
  [[ -z "$S3DBJS_SKIP" ]] || skip "$S3DBJS_SKIP"
  COMPAT="$S3MEM_SOURCE_DIR/tests/compat/s3db-roundtrip.mjs"
  s3mem_mount -o bucket=compat
}

teardown() {
  s3mem_teardown
}

# s3dbjs COMMAND ARGS...: runs tests/compat/s3db-roundtrip.mjs, which must
# pass; prints what it said either way (bats shows it on failure).
s3dbjs() {
  run env S3DBJS_DIR="$S3DBJS_DIR" node "$COMPAT" "$@"
  echo "# node s3db-roundtrip.mjs $*"
  echo "$output"
  if ((status != 0)); then
    echo "s3db-roundtrip.mjs $1 failed with status $status"
    return 1
  fi
}

@test "s3db.js loadFromDisk reads s3mem's save of a tree built in the mount" {
  cd "$MNT"
  mkdir -p docs bin "ünïcode dir/日本語" emptydir
  printf 'hello from s3mem\n' >docs/readme.txt
  setfattr -n user.owner -v alice docs/readme.txt
  setfattr -n user.Mixed-Case -v Value docs/readme.txt
  setfattr -n user.s3mem.content-type -v 'text/plain; charset=utf-8' docs/readme.txt
  chmod 600 docs/readme.txt
  gzip -9n <docs/readme.txt >"$T/readme.txt.gz"
  cp "$T/readme.txt.gz" docs/readme.txt.gz
  setfattr -n user.s3mem.content-type -v text/plain docs/readme.txt.gz
  setfattr -n user.s3mem.content-encoding -v gzip docs/readme.txt.gz
  random_file "$T/blob.bin" 300000
  cp "$T/blob.bin" bin/blob.bin
  printf '{"name":"Zoë","tags":["ü","✓"]}' >"ünïcode dir/日本語/ファイル.json"
  setfattr -n user.s3mem.content-type -v application/json "ünïcode dir/日本語/ファイル.json"
  setfattr -n user.note -v 'café ☕' "ünïcode dir/日本語/ファイル.json"
  : >empty.txt
  printf '\000\001\002\377' >bin/tiny

  cat >"$T/expect.json" <<EOF
{
  "bucket": "compat",
  "exact": true,
  "objects": {
    "docs/": {"bodyText": "", "metadata": {}},
    "docs/readme.txt": {"bodyText": "hello from s3mem\n", "contentType": "text/plain; charset=utf-8",
                        "metadata": {"owner": "alice", "mixed-case": "Value"}},
    "docs/readme.txt.gz": {"bodyFile": "$T/readme.txt.gz", "contentType": "text/plain",
                           "contentEncoding": "gzip", "metadata": {}},
    "bin/": {"bodyText": ""},
    "bin/blob.bin": {"bodyFile": "$T/blob.bin", "contentType": "application/octet-stream", "metadata": {}},
    "bin/tiny": {"bodyBase64": "AAEC/w=="},
    "ünïcode dir/": {"bodyText": ""},
    "ünïcode dir/日本語/": {"bodyText": ""},
    "ünïcode dir/日本語/ファイル.json": {"bodyText": "{\"name\":\"Zoë\",\"tags\":[\"ü\",\"✓\"]}",
                                      "contentType": "application/json", "metadata": {"note": "café ☕"}},
    "emptydir/": {"bodyText": "", "metadata": {}},
    "empty.txt": {"bodyText": "", "contentType": "application/octet-stream", "metadata": {}}
  }
}
EOF
  ctl save "$T/save.json"
  s3dbjs check-save "$T/save.json" --expect "$T/expect.json"
}

@test "s3db.js reads s3mem's save of s3db.js's own files (shop, edge) as the originals" {
  ctl load "$FIXTURES/shop.snapshot.json"
  ctl save "$T/shop.json"
  s3dbjs check-save "$T/shop.json" --same-as "$FIXTURES/shop.snapshot.json"
  s3dbjs check-records "$T/shop.json" "$FIXTURES/shop.snapshot.json"

  # Keys that cannot be paths (a//b, ./.., a marker with a body, a long segment).
  ctl load "$FIXTURES/edge.snapshot.json"
  ctl save "$T/edge.json"
  s3dbjs check-save "$T/edge.json" --same-as "$FIXTURES/edge.snapshot.json"
}

# shop_expect COMPRESSED: check-backup expectations for the shop fixture.
shop_expect() {
  cat <<EOF
{
  "compressed": $1,
  "resources": {
    "users": {"count": 3, "records": {
      "admin": {"1": "Admin User", "2": "admin@test.com", "3": "admin", "_v": "v1"},
      "u1": {"1": "Zoë Ünïcödé", "2": "zoe@test.com", "3": "user", "_v": "v1"},
      "u2": {"1": "Bob \"quoted\" \\\\ back", "2": "bob@test.com", "_v": "v1"}}},
    "posts": {"count": 2, "records": {
      "p1": {"1": "u1", "2": "First Post", "3": "Hello!"},
      "p2": {"1": "admin", "2": "Long one", "_overflow": "true"}}}
  }
}
EOF
}

@test "s3db.js importBackup reads s3mem's export of the shop store (compress=true)" {
  ctl load "$FIXTURES/shop.snapshot.json"
  ctl export "$T/gz" compress=true
  [ -f "$T/gz/users.jsonl.gz" ] && [ -f "$T/gz/posts.jsonl.gz" ]
  shop_expect true >"$T/expect.json"
  s3dbjs check-backup "$T/gz" --expect "$T/expect.json" --reference "$FIXTURES/shop.snapshot.json"
}

@test "s3db.js importBackup reads s3mem's export of the shop store (compress=false, resources=)" {
  ctl load "$FIXTURES/shop.snapshot.json"
  ctl export "$T/plain" compress=false
  [ -f "$T/plain/users.jsonl" ] && [ -f "$T/plain/posts.jsonl" ]
  shop_expect false >"$T/expect.json"
  s3dbjs check-backup "$T/plain" --expect "$T/expect.json" --reference "$FIXTURES/shop.snapshot.json"

  ctl export "$T/users" compress=false resources=users
  expect_equal "s3db.json users.jsonl" "$(cd "$T/users" && echo *)" "files of resources=users"
  s3dbjs check-backup "$T/users" --reference "$FIXTURES/shop.snapshot.json"
}

@test "s3mem loads what s3db.js saveToDisk wrote; s3db.js reads it back from s3mem" {
  s3dbjs write-save "$T/node.json"
  ctl load "$T/node.json"

  # What s3db.js wrote, as a user of the mount sees it.
  expect_equal "hello from s3db.js" "$(cat "$MNT/notes/hello.txt")"
  expect_equal node "$(xattr_value "$MNT/notes/hello.txt" user.author)"
  expect_equal text/plain "$(xattr_value "$MNT/notes/hello.txt" user.s3mem.content-type)"
  expect_equal "$(jq -r '.objects["notes/hello.txt"].etag' "$T/node.json")" \
    "$(xattr_value "$MNT/notes/hello.txt" user.s3mem.etag)" "etag"
  expect_equal "$(jq -r '.objects["notes/hello.txt"].lastModified' "$T/node.json")" \
    "$(xattr_value "$MNT/notes/hello.txt" user.s3mem.last-modified)" "last-modified"
  local zoe="$MNT/notes/ünïcödé ✓/zoë.txt"
  expect_equal "Zoë ✓" "$(cat "$zoe")"
  # s3db.js stored the non-ASCII value encoded; getfattr shows the stored bytes.
  expect_equal "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9" "$(xattr_value "$zoe" user.title)"
  expect_equal x "$(xattr_value "$zoe" user.Odd_Name_)"
  expect_equal "text/plain; charset=utf-8" "$(xattr_value "$zoe" user.s3mem.content-type)"
  expect_equal 200000 "$(stat -c %s "$MNT/bin/blob.bin")"
  expect_equal "$(jq -r '.objects["bin/blob.bin"].body' "$T/node.json" | base64 -d | md5sum)" \
    "$(md5sum <"$MNT/bin/blob.bin")" "binary body"
  expect_equal gzip "$(xattr_value "$MNT/gz/data.json.gz" user.s3mem.content-encoding)"
  expect_equal '{"a":1}' "$(zcat "$MNT/gz/data.json.gz")"
  [ -d "$MNT/empty" ]
  [ -d "$MNT/resource=people/partition=byCity/city=Zürich" ]
  expect_equal "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9" \
    "$(xattr_value "$MNT/resource=people/data/id=p1" user.0)" "record p1 field 0 (name)"

  # And back: s3db.js reads s3mem's save as what it wrote, records included.
  ctl save "$T/back.json"
  s3dbjs check-save "$T/back.json" --same-as "$T/node.json"
  s3dbjs check-records "$T/back.json" "$T/node.json"
  # s3mem's export skips the partition references s3db.js 12.4 exported as records.
  ctl export "$T/people" compress=false
  expect_equal 2 "$(grep -c . "$T/people/people.jsonl")" "records in people.jsonl"
  s3dbjs check-backup "$T/people" --reference "$T/node.json"
}

@test "s3db.js resources read the records s3mem imported from s3db.js's backup" {
  # The shop store without its records (the resources' schemas stay in s3db.json).
  ctl load "$FIXTURES/shop.snapshot.json"
  # rm -f: the implicit directories vanish with their last key, so rm -r's
  # final rmdir gets ENOENT; the keys are checked below.
  rm -rf "$MNT/resource=users/data" "$MNT/resource=posts/data"
  [[ "$(cat "$MNT/.s3mem/keys")" != *"resource="* ]] || { cat "$MNT/.s3mem/keys"; false; }
  expect_equal 6 "$(grep -c . "$MNT/.s3mem/keys")" "keys left"
  ctl import "$FIXTURES/shop-backup-gz"
  ctl save "$T/imported.json"
  s3dbjs check-records "$T/imported.json" "$FIXTURES/shop.snapshot.json"
}
