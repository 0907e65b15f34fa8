#!/usr/bin/env bats
# shellcheck disable=SC2154  # status, output: set by bats run
# stress.bats - Debian-packaged stressors over a fresh mount: fio with
# crc32c verify (tests/stress/*.fio), stress-ng filesystem stressors with
# --verify, and an fsstress-like churn from 4 processes (tests/stress/churn.c),
# each followed by a check that the daemon is alive, that `rm -rf` leaves an
# empty store (.s3mem/keys empty), and a clean unmount (teardown fails on a
# sanitizer report or a bad daemon exit).
#
# Needs fio and stress-ng (Debian packages fio, stress-ng) and a C compiler
# for churn.c; a test whose tool is missing is skipped with a message.
# Environment: STRESS_TIME (seconds per stress-ng run, default 5),
# STRESS_CHURN_OPS (operations per churn process, default 15000),
# STRESS_SEED (churn seed, default 1). The file takes about 2 minutes under
# ASan on 2 cores.

setup() {
  load helpers
  STRESS_DIR="$S3MEM_SOURCE_DIR/tests/stress"
  STRESS_TIME=${STRESS_TIME:-5}
  STRESS_CHURN_OPS=${STRESS_CHURN_OPS:-15000}
  STRESS_SEED=${STRESS_SEED:-1}
}

teardown() {
  stop_background
  s3mem_teardown
}

# Processes a test started in the background (BACKGROUND_PIDS); teardown
# stops those still running when the test failed early, so that the mount
# is not busy.
BACKGROUND_PIDS=()
stop_background() {
  local pid
  for pid in "${BACKGROUND_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BACKGROUND_PIDS[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  BACKGROUND_PIDS=()
}

# need TOOL PACKAGE: skips the test when TOOL is not installed.
need() {
  command -v "$1" >/dev/null || skip "$1 is not installed (Debian package $2)"
}

# daemon_alive: our daemon still runs and still serves the mount.
daemon_alive() {
  if ! kill -0 "$S3MEM_PID" 2>/dev/null || ! mountpoint -q "$MNT"; then
    echo "s3mem died or the mount is gone"
    echo "--- daemon log ---"
    cat "$LOG"
    return 1
  fi
}

# store_keys: the store's keys, one per line.
store_keys() {
  cat "$MNT/.s3mem/keys"
}

# expect_keys: the store holds at least one key (the stressor left files).
expect_keys() {
  [[ -n "$(store_keys)" ]] || { echo "the store is empty: the stressor wrote nothing"; return 1; }
}

# root_entries: sets ENTRIES to the paths in the mount's root but .s3mem.
root_entries() {
  local entry
  ENTRIES=()
  shopt -s nullglob dotglob
  for entry in "$MNT"/*; do
    [[ "$entry" == "$MNT/.s3mem" ]] || ENTRIES+=("$entry")
  done
  shopt -u nullglob dotglob
}

# expect_empty_store: no key in the store and nothing but .s3mem in the root.
expect_empty_store() {
  local keys
  keys=$(store_keys) || return 1
  expect_equal "" "$keys" ".s3mem/keys" || return 1
  root_entries
  expect_equal "" "${ENTRIES[*]}" "entries in the mount's root"
}

# remove_all: rm -rf of everything in the mount, which must succeed and leave
# an empty store.
remove_all() {
  root_entries
  local -a entries=("${ENTRIES[@]}")
  if ((${#entries[@]})); then
    succeeds rm -rf -- "${entries[@]}" || return 1
  fi
  expect_empty_store
}

# run_fio JOBFILE: runs tests/stress/JOBFILE into the mount; fio must exit 0
# and report no error and no verify failure.
run_fio() {
  local job=$1 out="$T/fio-${1%.fio}.out" rc=0
  (cd "$T" && timeout 180 fio --directory="$MNT" "$STRESS_DIR/$job") \
    >"$out" 2>&1 3>&- || rc=$?
  if ((rc != 0)) || grep -Eq 'verify:|bad magic|verify failed|err= *[1-9]|fio: pid=' "$out"; then
    echo "fio $job failed (exit status $rc)"
    cat "$out"
    return 1
  fi
  grep -E 'err=|^ *(READ|WRITE):' "$out" # shown when a later step fails
}

# run_stress_ng NAME STRESS-NG-ARGS...: runs stress-ng with --verify in the
# mount for STRESS_TIME seconds; it must exit 0, report a successful run and
# no failure, and every stressor named in NAME (comma-separated) must have
# done at least one bogo operation.
run_stress_ng() {
  local names=$1 out="$T/stress-ng-${1//,/-}.out" rc=0 name ops
  shift
  timeout $((STRESS_TIME + 120)) stress-ng "$@" --timeout "${STRESS_TIME}s" \
    --verify --temp-path "$MNT" -v --metrics-brief >"$out" 2>&1 3>&- || rc=$?
  if ((rc != 0)) || grep -Eq '^stress-ng: (fail|error):' "$out" ||
     ! grep -q 'successful run completed' "$out"; then
    echo "stress-ng $* failed (exit status $rc)"
    cat "$out"
    return 1
  fi
  for name in ${names//,/ }; do
    ops=$(awk -v n="$name" '$2 == "metrc:" && $4 == n && $5 ~ /^[0-9]+$/ { print $5; exit }' "$out")
    if [[ -z "$ops" || "$ops" -eq 0 ]]; then
      echo "stress-ng: stressor $name did no bogo operation"
      cat "$out"
      return 1
    fi
    echo "$name: $ops bogo ops"
  done
}

# stress_ng_test STRESSOR [ARGS...]: a fresh mount, 2 instances of STRESSOR,
# then the daemon must be alive and stress-ng must have removed all it made.
stress_ng_test() {
  local stressor=$1
  shift
  need stress-ng stress-ng
  s3mem_mount
  run_stress_ng "$stressor" "--$stressor" 2 "$@"
  daemon_alive
  expect_empty_store
}

# build_churn: compiles tests/stress/churn.c to $T/churn.
build_churn() {
  local cc=${CC:-cc}
  command -v "$cc" >/dev/null || skip "no C compiler ($cc) to build tests/stress/churn.c"
  succeeds "$cc" -O2 -Wall -o "$T/churn" "$STRESS_DIR/churn.c"
}

# start_churn N OPS: starts N churn processes in $MNT/churn0..N-1; sets
# CHURN_PIDS.
start_churn() {
  local i
  CHURN_PIDS=()
  for ((i = 0; i < $1; i++)); do
    "$T/churn" "$MNT/churn$i" "$2" $((STRESS_SEED + i)) \
      >"$T/churn$i.out" 2>&1 3>&- &
    CHURN_PIDS+=($!)
    BACKGROUND_PIDS+=($!)
  done
}

# wait_churn: waits for CHURN_PIDS; fails, printing their output, when one
# failed.
wait_churn() {
  local i failed=0
  for i in "${!CHURN_PIDS[@]}"; do
    if ! wait "${CHURN_PIDS[$i]}"; then
      failed=1
      echo "churn $i failed:"
    fi
    cat "$T/churn$i.out"
  done
  return "$failed"
}

@test "fio: sequential write, crc32c verify, read-back verify" {
  need fio fio
  s3mem_mount
  run_fio seq-verify.fio
  daemon_alive
  expect_keys
  remove_all
}

@test "fio: random writes (4k-64k and 16k), crc32c verify, random read-back verify" {
  need fio fio
  s3mem_mount
  run_fio rand-verify.fio
  daemon_alive
  expect_keys
  remove_all
}

@test "fio: random read/write mix from 2 jobs, crc32c verify" {
  need fio fio
  s3mem_mount
  run_fio randrw-mix.fio
  daemon_alive
  expect_keys
  remove_all
}

@test "stress-ng dir --verify" {
  stress_ng_test dir
}

@test "stress-ng dentry --verify" {
  stress_ng_test dentry
}

@test "stress-ng rename --verify" {
  stress_ng_test rename
}

@test "stress-ng open --verify" {
  stress_ng_test open
}

@test "stress-ng seek --verify" {
  stress_ng_test seek --seek-size 8m
}

@test "stress-ng hdd --verify (sequential)" {
  stress_ng_test hdd --hdd-bytes 16m
}

@test "stress-ng hdd --verify (random writes and reads, fsync)" {
  stress_ng_test hdd --hdd-bytes 16m --hdd-opts wr-rnd,rd-rnd,fsync
}

@test "stress-ng xattr --verify (with enforce_limits)" {
  # stress-ng sets user.var_0.. until the filesystem says ENOSPC or E2BIG,
  # up to 4096 names per file; without a metadata limit one such round
  # takes over 30 s under ASan (each setxattr copies every entry). With
  # enforce_limits the 2 KiB S3 metadata limit ends a round at ~100 names.
  need stress-ng stress-ng
  s3mem_mount -o enforce_limits
  run_stress_ng xattr --xattr 2
  daemon_alive
  expect_empty_store
}

@test "stress-ng fallocate --verify, when s3mem supports fallocate" {
  need stress-ng stress-ng
  need fallocate util-linux
  s3mem_mount
  local out rc=0
  out=$(fallocate -l 1M "$MNT/fallocate-probe" 2>&1) || rc=$?
  rm -f "$MNT/fallocate-probe"
  if ((rc != 0)); then
    [[ "$out" == *"not supported"* ]] || {
      echo "fallocate failed with an unexpected error: $out"
      return 1
    }
    expect_empty_store
    skip "s3mem has no fallocate handler (EOPNOTSUPP): stress-ng would only test its fallback"
  fi
  run_stress_ng fallocate --fallocate 2 --fallocate-bytes 8m
  daemon_alive
  expect_empty_store
}

# filename with getdent found that readdirplus handed the kernel entries
# as they were at opendir: "stat succeeded on non-existent file" after an
# unlink, ENOENT creating the name again (6 runs of 6 failed before the fix).
@test "stress-ng: filename and getdent at once (names unlinked while listed)" {
  need stress-ng stress-ng
  s3mem_mount
  run_stress_ng filename,getdent --filename 1 --getdent 1
  daemon_alive
  expect_empty_store
}

@test "stress-ng: other file stressors at once (chmod, utime, fstat, dirdeep, dirmany, getdent, filename, readahead, copy-file, touch, locks)" {
  need stress-ng stress-ng
  s3mem_mount
  local stressors=chmod,utime,fstat,dirdeep,dirmany,getdent,filename,readahead,copy-file,touch,lockf,flock,fcntl
  local -a args=()
  local name
  for name in ${stressors//,/ }; do
    args+=("--$name" 1)
  done
  STRESS_TIME=$((STRESS_TIME * 2)) run_stress_ng "$stressors" "${args[@]}" --dirdeep-inodes 2000 \
    --readahead-bytes 8m
  daemon_alive
  expect_empty_store
}

@test "churn: 4 processes, then rm -rf leaves an empty store and the mount unmounts cleanly" {
  s3mem_mount
  build_churn
  start_churn 4 "$STRESS_CHURN_OPS"
  wait_churn
  daemon_alive
  expect_keys
  remove_all
  daemon_alive
  s3mem_unmount
}

@test "everything at once: fio mix, stress-ng rename/dentry/hdd and 2 churn processes" {
  need fio fio
  need stress-ng stress-ng
  s3mem_mount
  build_churn
  local fio_rc=0 fio_pid
  (cd "$T" && timeout 180 fio --directory="$MNT" "$STRESS_DIR/randrw-mix.fio") \
    >"$T/fio-mix.out" 2>&1 3>&- &
  fio_pid=$!
  BACKGROUND_PIDS+=("$fio_pid")
  start_churn 2 $((STRESS_CHURN_OPS / 2))
  STRESS_TIME=$((STRESS_TIME * 2)) run_stress_ng rename,dentry,hdd \
    --rename 1 --dentry 1 --hdd 1 --hdd-bytes 16m
  wait "$fio_pid" || fio_rc=$?
  if ((fio_rc != 0)) || grep -Eq 'verify:|bad magic|verify failed|err= *[1-9]|fio: pid=' "$T/fio-mix.out"; then
    echo "fio randrw-mix.fio failed (exit status $fio_rc)"
    cat "$T/fio-mix.out"
    return 1
  fi
  wait_churn
  daemon_alive
  remove_all
}
