#!/usr/bin/env bash
# tests/run.sh - the test command: installs what is missing (as root on
# Debian), builds with AddressSanitizer and UBSan in build-test/, and runs
# every unit and mount test with ctest. Exits with ctest's status; ctest's
# summary is the last thing it prints.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(cmake gcc make pkg-config libfuse3-dev fuse3 libjansson-dev libxxhash-dev zlib1g-dev attr bats jq fio stress-ng clang libclang-rt-14-dev)

missing=()
for package in "${packages[@]}"; do
  if command -v dpkg-query >/dev/null; then
    [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" == "install ok installed" ]] \
      || missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  else
    echo "tests/run.sh: missing packages: ${missing[*]}" >&2
    echo "install them (sudo apt-get install ${missing[*]}) or run as root" >&2
    exit 1
  fi
fi
for tool in cmake gcc pkg-config bats fusermount3 getfattr setfattr jq; do
  command -v "$tool" >/dev/null || { echo "tests/run.sh: '$tool' not found" >&2; exit 1; }
done

if [[ ! -c /dev/fuse ]]; then
  echo "tests/run.sh: /dev/fuse is missing: the mount tests need FUSE" >&2
  echo "(in a container: --device /dev/fuse --cap-add SYS_ADMIN)" >&2
  exit 1
fi

cmake -S . -B build-test -DS3MEM_SANITIZE=address,undefined
cmake --build build-test -j2

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1
exec ctest --test-dir build-test --output-on-failure
