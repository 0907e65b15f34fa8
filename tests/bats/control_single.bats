#!/usr/bin/env bats
# control_single.bats - every test of control.bats again, with the daemon
# single-threaded (-s): commands run inside a FUSE request, and with -s no
# other request is served meanwhile. control.bats runs as a nested bats
# whose TAP lines are copied to this file's output as comments; on failure
# they name the failing tests.

@test "control.bats passes with the daemon single-threaded (-s)" {
  S3MEM_EXTRA_OPTS="-s${S3MEM_EXTRA_OPTS:+ $S3MEM_EXTRA_OPTS}" \
    run bats --tap "$BATS_TEST_DIRNAME/control.bats"
  sed 's/^/# /' <<<"$output" >&3
  if [ "$status" -ne 0 ]; then
    echo "control.bats with -s failed (status $status); see the TAP lines above"
    false
  fi
}
