#!/usr/bin/env bash
# tests/fuzz/build.sh [OUTDIR] - builds the libFuzzer targets fuzz_load,
# fuzz_import, fuzz_path and fuzz_json with clang, AddressSanitizer and UBSan (every
# UBSan report aborts, so libFuzzer keeps the input).
#
# OUTDIR defaults to $S3MEM_FUZZ_BUILD, else ${TMPDIR:-/tmp}/s3mem-fuzz-build-$UID
# (outside the repository). The library sources are compiled once per
# build into OUTDIR/obj ($S3MEM_FUZZ_JOBS at a time, default 2) and only again when a source or
# header is newer; the targets are then linked against them.
# CC picks the compiler (default clang-14, else clang); needs
# libclang-rt-14-dev, libjansson-dev, libxxhash-dev, zlib1g-dev.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-${S3MEM_FUZZ_BUILD:-${TMPDIR:-/tmp}/s3mem-fuzz-build-$(id -u)}}"
if [[ -z "${CC:-}" ]]; then
  if command -v clang-14 >/dev/null; then CC=clang-14; else CC=clang; fi
fi
command -v "$CC" >/dev/null || {
  echo "tests/fuzz/build.sh: '$CC' not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
}

cflags=(-g -O1 -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
        -DS3MEM_VERSION=\"fuzz\" -I"$root/include"
        -fno-omit-frame-pointer -fno-sanitize-recover=all
        -Wall -Wextra -Wno-unused-parameter)
sanitize=address,undefined
# the targets themselves are held to the project's warnings
target_flags=(-Werror -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings -Wshadow)
libs=(-ljansson -lz -lxxhash -lpthread -lm)

mkdir -p "$out/obj"
# one build at a time per directory (run.sh may be started twice)
if command -v flock >/dev/null; then
  exec 9>"$out/.lock"
  flock 9
fi
shopt -s nullglob
sources=("$root"/src/util/*.c "$root"/src/store/*.c "$root"/src/format/*.c)
headers=("$root"/include/s3mem/*.h "$root"/src/*/*.h)

# the newest header: any object older than it is rebuilt
newest_header="${headers[0]}"
for header in "${headers[@]}"; do
  [[ "$header" -nt "$newest_header" ]] && newest_header="$header"
done

# objects are named after their module and file (src/store/path.c -> store_path.o)
stale=()
objects=()
for source in "${sources[@]}"; do
  module="$(basename "$(dirname "$source")")"
  object="$out/obj/${module}_$(basename "${source%.c}").o"
  objects+=("$object")
  if [[ ! -e "$object" || "$source" -nt "$object" || "$newest_header" -nt "$object" ]]; then
    stale+=("$source" "$object")
  fi
done

# the list of objects changes when sources are added or removed
printf '%s\n' "${objects[@]}" >"$out/obj/list.new"
if ! cmp -s "$out/obj/list.new" "$out/obj/list" 2>/dev/null; then
  rm -f "$out"/obj/*.o
  stale=()
  for ((i = 0; i < ${#sources[@]}; i++)); do stale+=("${sources[i]}" "${objects[i]}"); done
fi
mv "$out/obj/list.new" "$out/obj/list"

jobs="${S3MEM_FUZZ_JOBS:-2}"
failed=0
compile() {
  "$CC" "${cflags[@]}" -fsanitize="$sanitize",fuzzer-no-link -c "$1" -o "$2.tmp$$" &&
    mv "$2.tmp$$" "$2"
}
if ((${#stale[@]})); then
  echo "tests/fuzz/build.sh: compiling $((${#stale[@]} / 2)) source(s) with $CC"
  pids=()
  for ((i = 0; i < ${#stale[@]}; i += 2)); do
    compile "${stale[i]}" "${stale[i + 1]}" &
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || { echo "tests/fuzz/build.sh: compile failed" >&2; exit 1; }
fi

for target in fuzz_load fuzz_import fuzz_path fuzz_json; do
  binary="$out/$target"
  source="$root/tests/fuzz/$target.c"
  relink=0
  [[ -e "$binary" ]] || relink=1
  for input in "$source" "$root/tests/fuzz/fuzz_common.h" "$newest_header" "${objects[@]}"; do
    [[ "$input" -nt "$binary" ]] && relink=1
  done
  if ((relink)); then
    echo "tests/fuzz/build.sh: linking $binary"
    "$CC" "${cflags[@]}" "${target_flags[@]}" -fsanitize="$sanitize",fuzzer "$source" "${objects[@]}" \
      "${libs[@]}" -o "$binary.tmp$$"
    mv "$binary.tmp$$" "$binary"
  fi
done
echo "tests/fuzz/build.sh: targets in $out"
