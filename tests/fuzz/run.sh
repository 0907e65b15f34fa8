#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - builds the libFuzzer targets (build.sh) and
# runs fuzz_load, fuzz_import, fuzz_path and fuzz_json one after the other, each for
# SECONDS (default 30), from seed corpora copied or made in a private temp
# directory (nothing is written into the repository). Exits non-zero when a
# target crashes, leaks, hangs or breaks an invariant; the input is then kept
# and its path printed with the command that replays it.
#
# Environment: S3MEM_FUZZ_BUILD (build directory, see build.sh),
# S3MEM_FUZZ_TARGETS (default "load import path json"), S3MEM_FUZZ_ARGS (more
# libFuzzer flags, e.g. "-jobs=1"), TMPDIR (where the temp directory goes;
# /dev/shm is used when TMPDIR is unset and it is writable).
set -euo pipefail

seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fixtures="$root/tests/fixtures/s3db-12.4.0"
build="${S3MEM_FUZZ_BUILD:-${TMPDIR:-/tmp}/s3mem-fuzz-build-$(id -u)}"

"$root/tests/fuzz/build.sh" "$build"

base="${TMPDIR:-}"
if [[ -z "$base" ]]; then
  if [[ -d /dev/shm && -w /dev/shm ]]; then base=/dev/shm; else base=/tmp; fi
fi
work="$(mktemp -d "$base/s3mem-fuzz-run.XXXXXX")"
keep=0
cleanup() {
  if ((keep)); then
    echo "tests/fuzz/run.sh: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
mkdir -p "$work/scratch" "$work/artifacts"

# ---- seed corpora ---------------------------------------------------------

mkdir -p "$work/corpus/load" "$work/corpus/import" "$work/corpus/path" \
  "$work/corpus/json"
cp "$fixtures"/*.snapshot.json "$work/corpus/load/"

# fuzz_import input: flag byte, s3db.json, NUL, resource file (fuzz_import.c)
import_seed() { # FLAGS(hex) MANIFEST NAME < resource bytes
  { printf "\\x$1"; cat "$2"; printf '\0'; cat; } >"$work/corpus/import/$3"
}
import_seed 00 "$fixtures/shop-backup-users-only/s3db.json" users-only \
  <"$fixtures/shop-backup-users-only/users.jsonl"
import_seed 20 "$fixtures/shop-backup-plain/s3db.json" plain-users \
  <"$fixtures/shop-backup-plain/users.jsonl"
import_seed 24 "$fixtures/shop-backup-plain/s3db.json" plain-posts \
  <"$fixtures/shop-backup-plain/posts.jsonl"
import_seed 38 "$fixtures/shop-backup-plain/s3db.json" plain-users-prefix-filter \
  <"$fixtures/shop-backup-plain/users.jsonl"
import_seed 22 "$fixtures/shop-backup-gz/s3db.json" gz-raw-users \
  <"$fixtures/shop-backup-gz/users.jsonl.gz"
if command -v gzip >/dev/null; then
  gzip -dc "$fixtures/shop-backup-gz/users.jsonl.gz" |
    import_seed 21 "$fixtures/shop-backup-gz/s3db.json" gz-users
  gzip -dc "$fixtures/shop-backup-gz/posts.jsonl.gz" |
    import_seed 25 "$fixtures/shop-backup-gz/s3db.json" gz-posts
  gzip -dc "$fixtures/shop-backup-gz/users.jsonl.gz" |
    import_seed 43 "$fixtures/shop-backup-gz/s3db.json" gz-users-truncated
fi
printf '{}\0{"id":"a","x":1}\n\n{"_id":7,"_body":{"k":[1,2]}}\n{"id":"a","y":null}' \
  >"$work/corpus/import/no-manifest-resources"

# fuzz_path input: delimiter, options, prefix, NUL-separated keys (fuzz_path.c)
printf '/\x03a/\0a/b\0a/b/c\0a/\0b\0.\0..\0x//y\0a/b/\0zo\xc3\xab\0bad\xff\xfe' \
  >"$work/corpus/path/dirs"
printf '\0\x06\0photos/2024/a.jpg\0photos/2024/\0photos/\0photos\0docs/x\0docs/y/z' \
  >"$work/corpus/path/root"
printf -- '-\x02p-\0q\0p-a-b\0p-a\0p-\0p--\0p-\xff' >"$work/corpus/path/dash"
printf '\xff\x01a\xff\0a\xff\xff\0a\xff\xffb\0a\xff\0b\0a' >"$work/corpus/path/ff"

# fuzz_json input: any JSON text; the fixtures, their lines and odd corners
cp "$fixtures"/*.snapshot.json "$fixtures"/*/s3db.json "$work/corpus/json/" 2>/dev/null || true
for f in "$fixtures"/*/*.jsonl; do head -c 4096 "$f" >"$work/corpus/json/line-$(basename "$(dirname "$f")")-$(basename "$f")"; done
printf '[1e400, -0, 9223372036854775808, "\\ud83d\\ude00\\u0000", {"a":1,"a":2}]' \
  >"$work/corpus/json/corners"
printf '{"objects":{"k":{"body":""},"k":[true,false,null]},"x":"\xc3\xab"}' \
  >"$work/corpus/json/streamed"

# ---- run ------------------------------------------------------------------

declare -A max_len=([load]=16384 [import]=8192 [path]=4096 [json]=8192)
failed=()
read -r -a extra <<<"${S3MEM_FUZZ_ARGS:-}"
for target in ${S3MEM_FUZZ_TARGETS:-load import path json}; do
  echo "tests/fuzz/run.sh: fuzz_$target for ${seconds}s"
  status=0
  (cd "$work" && S3MEM_FUZZ_TMP="$work/scratch" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len="${max_len[$target]}" \
      -dict="$root/tests/fuzz/$target.dict" -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$target-" "${extra[@]}" \
      "$work/corpus/$target") || status=$?
  if ((status != 0)); then
    failed+=("fuzz_$target")
    keep=1
  fi
done

if ((${#failed[@]})); then
  echo "tests/fuzz/run.sh: FAILED: ${failed[*]}" >&2
  for artifact in "$work"/artifacts/*; do
    [[ -e "$artifact" ]] || continue
    target="$(basename "$artifact")"
    target="${target%%-*}"
    echo "  replay: $build/fuzz_$target $artifact" >&2
  done
  exit 1
fi
echo "tests/fuzz/run.sh: ok (${seconds}s per target)"
