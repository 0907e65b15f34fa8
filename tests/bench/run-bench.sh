#!/usr/bin/env bash
# tests/bench/run-bench.sh - compare s3mem with tmpfs: file system workloads
# (fsbench.c) on a fresh tmpfs, a fresh s3mem and any extra directories given,
# in one run; then the s3mem control plane (snapshot, restore, save, load,
# export, import) and the daemon's memory per object.
#
# A benchmark, not a test: it prints figures and never fails on a time. It
# exits non-zero only when something is incorrect (fsbench saw wrong data, a
# control command failed, an object count is wrong, the daemon did not come
# up or left a sanitizer report).
#
# Usage: tests/bench/run-bench.sh [--scale F] [--quick] [--threads N]
#                                 [--only PARTS] [DIR...]
#   --scale F    size scale for fsbench (default 1: 10,000 small files, 1 GiB)
#   --only PARTS comma-separated parts to run: fs, control, memory (default all)
#   --quick      smoke run: scale 0.01 and 1,000 objects for the control
#                plane and memory parts (well under a minute)
#   DIR...       also run fsbench in these directories (extra table columns)
# Environment:
#   S3MEM_BIN          the daemon to use (default: a Release build made in
#                      build-bench/ under the repository)
#   S3MEM_BENCH_OPTS   extra daemon options, e.g. "-o timeout=1"
#   STOREMEM_BIN       the store-only memory probe (tests/bench/storemem.c;
#                      default: tests/storemem beside S3MEM_BIN)
#
# Mounting the tmpfs needs root; otherwise a directory in /dev/shm is used.
# Everything is mounted under one private temp dir and unmounted on exit; only
# the daemon this script started is ever signalled.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

scale=1
threads=2
control_count=20000
memory_count=100000
extra_dirs=()
parts=fs,control,memory

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 2
}

while (($#)); do
  case $1 in
    --scale) (($# >= 2)) || usage; scale=$2; shift 2 ;;
    --threads) (($# >= 2)) || usage; threads=$2; shift 2 ;;
    --quick) scale=0.01; control_count=1000; memory_count=1000; shift ;;
    --only) (($# >= 2)) || usage; parts=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *)
      [[ -d $1 ]] || { echo "run-bench.sh: '$1' is not a directory" >&2; exit 2; }
      extra_dirs+=("$(cd "$1" && pwd)"); shift ;;
  esac
done

for tool in cc jq findmnt fusermount3 mkfifo timeout; do
  command -v "$tool" >/dev/null || { echo "run-bench.sh: '$tool' not found" >&2; exit 1; }
done

# wants PART: true when PART is among --only's parts
wants() {
  [[ ,$parts, == *,$1,* ]]
}

failed=0
incorrect() {
  echo "INCORRECT: $*" >&2
  failed=1
}

# ---- temp dir, mounts, cleanup ---------------------------------------------

T=$(mktemp -d "${TMPDIR:-/tmp}/s3mem-bench.XXXXXX")
tmpfs_dir=$T/tmpfs
tmpfs_mounted=0
s3mem_pid=
s3mem_mnt=
s3mem_log=$T/s3mem.log
: >"$s3mem_log"

is_mounted() {
  findmnt -rn --mountpoint "$1" >/dev/null 2>&1
}

# s3mem_start MOUNTPOINT: a fresh daemon in the foreground (in our background);
# returns once its ready FIFO says so.
s3mem_start() {
  local -a opts=()
  read -r -a opts <<<"${S3MEM_BENCH_OPTS:-}"
  s3mem_mnt=$1
  mkdir -p "$s3mem_mnt"
  rm -f "$T/ready"
  mkfifo "$T/ready"
  "$S3MEM_BIN" -f -o "ready_file=$T/ready" "${opts[@]}" "$s3mem_mnt" \
    </dev/null >>"$s3mem_log" 2>&1 &
  s3mem_pid=$!
  local ready
  ready=$(timeout 10 cat "$T/ready") || true
  if [[ $ready != ready ]] || ! is_mounted "$s3mem_mnt"; then
    echo "run-bench.sh: s3mem did not become ready: $S3MEM_BIN -f ${opts[*]} $s3mem_mnt" >&2
    cat "$s3mem_log" >&2
    exit 1
  fi
}

# s3mem_stop: unmounts and reaps our daemon (and only it).
s3mem_stop() {
  [[ -n $s3mem_pid ]] || return 0
  local rc=0
  if is_mounted "$s3mem_mnt"; then
    fusermount3 -u "$s3mem_mnt" 2>/dev/null || {
      echo "run-bench.sh: unmount of $s3mem_mnt failed, detaching it" >&2
      fusermount3 -uz "$s3mem_mnt" 2>/dev/null || umount -l "$s3mem_mnt" 2>/dev/null || true
      failed=1
    }
  fi
  if ! timeout 20 tail --pid="$s3mem_pid" -f /dev/null; then
    echo "run-bench.sh: s3mem (pid $s3mem_pid) did not exit after unmount: killing it" >&2
    kill -TERM "$s3mem_pid" 2>/dev/null || true
    timeout 5 tail --pid="$s3mem_pid" -f /dev/null || kill -KILL "$s3mem_pid" 2>/dev/null || true
    failed=1
  fi
  wait "$s3mem_pid" || rc=$?
  ((rc == 0)) || { echo "run-bench.sh: s3mem exited with status $rc" >&2; failed=1; }
  s3mem_pid=
  if grep -Eq 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ThreadSanitizer' "$s3mem_log"; then
    echo "run-bench.sh: sanitizer report in the daemon's log ($s3mem_log):" >&2
    cat "$s3mem_log" >&2
    failed=1
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cd /
  s3mem_stop || true
  if ((tmpfs_mounted)); then
    umount "$tmpfs_dir" 2>/dev/null || umount -l "$tmpfs_dir" 2>/dev/null || true
  fi
  if findmnt -rn -o TARGET | grep -qF "$T/"; then
    echo "run-bench.sh: something is still mounted under $T, leaving it" >&2
    rc=1
  else
    rm -rf "$T"
  fi
  ((rc == 0 && failed)) && rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ------------------------------------------------------------------

if [[ -z ${S3MEM_BIN:-} ]]; then
  build_dir=$repo/build-bench
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    # -Wno-error=maybe-uninitialized: -O3 raises false maybe-uninitialized
    # warnings in src/format that -O2 does not; -g only for perf symbols.
    cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DS3MEM_SANITIZE= \
      -DCMAKE_C_FLAGS="-g -Wno-error=maybe-uninitialized" >"$T/build.log" 2>&1 \
      || { cat "$T/build.log" >&2; exit 1; }
  fi
  cmake --build "$build_dir" -j"$(nproc)" --target s3mem storemem >"$T/build.log" 2>&1 \
    || { cat "$T/build.log" >&2; exit 1; }
  S3MEM_BIN=$build_dir/s3mem
fi
# the store alone (memory part): beside the daemon in its build directory
STOREMEM_BIN=${STOREMEM_BIN:-$(dirname "$S3MEM_BIN")/tests/storemem}
fsbench=$T/fsbench
cc -std=c11 -Wall -Wextra -Werror -O2 -o "$fsbench" "$here/fsbench.c" -lpthread

# ---- machine ------------------------------------------------------------------

echo "== machine"
echo "cpus:    $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel:  $(uname -srm)"
echo "s3mem:   $S3MEM_BIN $("$S3MEM_BIN" --version 2>&1 | head -1) opts: ${S3MEM_BENCH_OPTS:-(none)}"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine skews the figures)"
echo "scale:   $scale, threads $threads, control plane $control_count objects, memory $memory_count objects"
echo

# the store's object count, and a check of it (control plane and memory)
object_count() {
  jq -r .objectCount "$s3mem_mnt/.s3mem/stats"
}

expect_objects() {
  local want=$1 what=$2 got
  got=$(object_count)
  [[ $got == "$want" ]] || incorrect "$what: objectCount is $got, want $want"
}

# ---- file system workloads ------------------------------------------------------

if wants fs; then

if [[ $(id -u) -eq 0 ]]; then
  mkdir -p "$tmpfs_dir"
  mount -t tmpfs -o size=3G tmpfs "$tmpfs_dir"
  tmpfs_mounted=1
elif [[ $(findmnt -rn -o FSTYPE --target /dev/shm 2>/dev/null) == tmpfs ]]; then
  tmpfs_dir=$(mktemp -d /dev/shm/s3mem-bench.XXXXXX)
  echo "note: not root, so tmpfs is $tmpfs_dir (/dev/shm may be too small at scale 1)"
else
  echo "run-bench.sh: cannot mount a tmpfs (not root, no /dev/shm tmpfs)" >&2
  exit 1
fi
s3mem_start "$T/s3mem"

targets=(tmpfs s3mem)
target_dirs=("$tmpfs_dir" "$s3mem_mnt")
for i in "${!extra_dirs[@]}"; do
  targets+=("$(basename "${extra_dirs[$i]}")")
  target_dirs+=("${extra_dirs[$i]}")
done

for i in "${!targets[@]}"; do
  echo "== fsbench on ${targets[$i]} (${target_dirs[$i]})"
  rc=0
  "$fsbench" "${target_dirs[$i]}" --scale "$scale" --threads "$threads" \
    | tee "$T/out.$i" || rc=$?
  ((rc == 0)) || incorrect "fsbench on ${targets[$i]} exited with status $rc"
  echo
done
((tmpfs_mounted)) || rm -rf "$tmpfs_dir"

# The table: one row per workload, throughput per target, s3mem/tmpfs.
echo "== summary (throughput; ratio = s3mem/tmpfs, higher is better for s3mem)"
files=()
for i in "${!targets[@]}"; do files+=("$T/out.$i"); done
awk -v names="${targets[*]}" '
  BEGIN { n = split(names, target, " ") }
  FNR == 1 { t++ }
  /^#/ || /^workload/ { next }
  $3 == "ops" { if (!($1 in seen)) { seen[$1] = 1; order[++rows] = $1 }
                rate[t, $1] = $6; unit[$1] = $7; next }
  $2 == "n/a" { if (!($1 in seen)) { seen[$1] = 1; order[++rows] = $1 }
                rate[t, $1] = "n/a" }
  function shown(v) {
    if (v == "" ) return "-"
    if (v == "n/a") return v
    return v >= 100 ? sprintf("%.0f", v) : sprintf("%.2f", v)
  }
  END {
    printf "%-14s %-6s %12s %12s %8s", "workload", "unit", target[1], target[2], "ratio"
    for (j = 3; j <= n; j++) printf " %12s", target[j]
    printf "\n"
    for (r = 1; r <= rows; r++) {
      w = order[r]; a = rate[1, w]; b = rate[2, w]
      ratio = (a != "" && a != "n/a" && b != "" && b != "n/a" && a > 0) ? sprintf("%.3f", b / a) : "-"
      printf "%-14s %-6s %12s %12s %8s", w, unit[w], shown(a), shown(b), ratio
      for (j = 3; j <= n; j++) printf " %12s", shown(rate[j, w])
      printf "\n"
    }
    # each N-thread workload against its one-thread twin, per target
    for (r = 1; r <= rows; r++) {
      w = order[r]
      if (w !~ /-[0-9]+t$/) continue
      base = w; sub(/-[0-9]+t$/, "", base)
      printf "%-14s %-6s", w, "x of 1"
      for (j = 1; j <= n; j++) {
        a = rate[j, base]; b = rate[j, w]
        printf " %12s", (a != "" && a != "n/a" && b != "" && b != "n/a" && a > 0) ? sprintf("%.2fx", b / a) : "-"
      }
      printf "\n"
    }
  }' "${files[@]}"
echo "(seq-read: a new descriptor on the file just written; both read their page cache, which s3mem keeps across opens)"
echo

s3mem_stop
if ((tmpfs_mounted)); then umount "$tmpfs_dir"; tmpfs_mounted=0; fi
fi

# ---- control plane ---------------------------------------------------------------

if wants control; then

# ctl FILE LINE: runs one control command; prints the wall time of the whole
# write and the command's own durationMs from status.
ctl() {
  local file=$1 line=$2 start end status
  start=$EPOCHREALTIME
  if ! echo "$line" >"$s3mem_mnt/.s3mem/$file"; then
    end=$EPOCHREALTIME
    incorrect "control command '$file $line' failed: $(jq -r .message "$s3mem_mnt/.s3mem/status")"
    return 0
  fi
  end=$EPOCHREALTIME
  status=$(cat "$s3mem_mnt/.s3mem/status")
  [[ $(jq -r .ok <<<"$status") == true ]] \
    || incorrect "control command '$file $line': $(jq -r .message <<<"$status")"
  awk -v f="$file" -v s="$start" -v e="$end" -v d="$(jq -r .durationMs <<<"$status")" \
      -v m="$(jq -r .message <<<"$status")" \
    'BEGIN { printf "%-9s %10.1f ms %10.1f ms  %s\n", f, (e - s) * 1000, d, m }'
}

echo "== control plane: $control_count objects of 1 KiB (keys resource=bench/data/id=N)"
s3mem_start "$T/s3mem"
mkdir -p "$s3mem_mnt/resource=bench/data"
"$fsbench" "$s3mem_mnt/resource=bench/data" --populate "$control_count" --size 1024
total=$(object_count)   # the records plus the two directory markers
(( total >= control_count )) || incorrect "populate: objectCount is $total"
# the files go to a tmpfs: the figures are s3mem's, not the disk's
files=$(mktemp -d /dev/shm/s3mem-bench-files.XXXXXX 2>/dev/null || mktemp -d "$T/files.XXXXXX")
echo "files:   $files ($(findmnt -rn -o FSTYPE --target "$files" | head -1))"
printf "%-9s %13s %13s  %s\n" command "wall" "durationMs" "message"
ctl snapshot snap
ctl restore snap
expect_objects "$total" "after restore"
ctl save "$files/x.json"
ctl load "$files/x.json"
expect_objects "$total" "after load"
ctl export "$files/bk"
ctl import "$files/bk clear"
expect_objects "$control_count" "after import clear"
seen=$(find "$s3mem_mnt/resource=bench/data" -type f | wc -l)
((seen == control_count)) || incorrect "after import: $seen files visible, want $control_count"
echo "save file $(du -h "$files/x.json" | cut -f1), backup $(du -sh "$files/bk" | cut -f1) ($(cd "$files/bk" && echo *))"
rm -rf "$files"
s3mem_stop
echo
fi

# ---- memory ---------------------------------------------------------------------

if wants memory; then

rss_bytes() {
  awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$s3mem_pid/status"
}

echo "== memory: $memory_count empty objects with 24-byte names in 100 dirs"
s3mem_start "$T/s3mem"
mkdir "$s3mem_mnt/mem"
before=$(rss_bytes)
"$fsbench" "$s3mem_mnt/mem" --populate "$memory_count" --dirs 100 --name-len 24
after=$(rss_bytes)
expect_objects "$((memory_count + 101))" "after the memory populate"
echo snapshot-mem >"$s3mem_mnt/.s3mem/snapshot"
after_snapshot=$(rss_bytes)
awk -v b="$before" -v a="$after" -v s="$after_snapshot" -v n="$memory_count" 'BEGIN {
  printf "daemon RSS: %.1f MiB before, %.1f MiB after (+%.1f MiB)\n", b / 1048576, a / 1048576, (a - b) / 1048576
  printf "per object: %.0f bytes, %.0f bytes beyond the 24-byte name\n", (a - b) / n, (a - b) / n - 24
  printf "snapshot:   +%.1f MiB, %.0f bytes per object\n", (s - a) / 1048576, (s - a) / n
}'
# everything deleted: the heap trimmer gives the memory back once the daemon
# has been idle for S3MEM_TRIM_MS (2 s); skipped at smoke size, where the
# heap never holds enough free memory to be trimmed
if ((memory_count >= 50000)); then
  trims() { grep -c ' s3mem: heap: .* gave free memory back' "$s3mem_log" || true; }
  trims_before=$(trims)
  rmdir "$s3mem_mnt/.s3mem/snapshots/snapshot-mem"
  rm_start=$EPOCHREALTIME
  rm -rf "$s3mem_mnt/mem"
  rm_end=$EPOCHREALTIME
  for _ in $(seq 300); do
    (($(trims) > trims_before)) && break
    sleep 0.05
  done
  awk -v r="$(rss_bytes)" -v s="$rm_start" -v e="$rm_end" -v t="$EPOCHREALTIME" \
      -v done="$(($(trims) > trims_before))" 'BEGIN {
    printf "deleted:    rm -rf in %.1f s; RSS %.1f MiB %.1f s after it (%s)\n", e - s,
           r / 1048576, t - e, done ? "trimmed" : "no trim within 15 s"
  }'
fi
s3mem_stop
# the same keys put straight into a store, without FUSE (small pages): what
# the daemon holds beyond this is the filesystem's node per file
if [[ -x $STOREMEM_BIN ]]; then
  env -u GLIBC_TUNABLES "$STOREMEM_BIN" "$memory_count" || failed=1
else
  echo "store alone: not measured ($STOREMEM_BIN not built: cmake --build BUILD --target storemem)"
fi
echo
fi

echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((failed)); then
  echo "run-bench.sh: something was INCORRECT (see above)"
else
  echo "run-bench.sh: done"
fi
