#!/usr/bin/env bats
# core_single.bats - every test of core.bats again, with the daemon
# single-threaded (-s), so the session loop that -s selects stays tested.
# core.bats runs as a nested bats whose TAP lines are copied to this file's
# output as comments; on failure they name the failing tests.

@test "core.bats passes with the daemon single-threaded (-s)" {
  S3MEM_EXTRA_OPTS="-s${S3MEM_EXTRA_OPTS:+ $S3MEM_EXTRA_OPTS}" \
    run bats --tap "$BATS_TEST_DIRNAME/core.bats"
  sed 's/^/# /' <<<"$output" >&3
  if [ "$status" -ne 0 ]; then
    echo "core.bats with -s failed (status $status); see the TAP lines above"
    false
  fi
}
