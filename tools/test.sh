#!/usr/bin/env bash
# The test command (see README.md): build and test everything twice,
#   build/      gcc, -Werror
#   build-san/  clang, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer
#               (its tests run with the 'sanitize' setup of meson.build:
#               ASAN_OPTIONS=detect_leaks=1, UBSAN_OPTIONS=halt_on_error=1:...)
# then print "N passed, M failed" over both.  Exit status 0 only when every
# test passed.  A build directory that fails to configure or build counts as
# one failed test.  Extra arguments go to both `meson test` runs (for example
# --suite unit).  Missing Debian packages are installed first (tools/deps.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tools/common.sh
tools/deps.sh || exit 1

passed=0
failed=0

# run_dir DIR SETUP_FUNCTION [MESON_TEST_ARGS...]
run_dir() {
  local dir=$1 setup=$2
  shift 2
  echo "==> $dir: configure and build"
  if ! "$setup" || ! ninja -C "$dir"; then
    echo "==> $dir: BUILD FAILED"
    failed=$((failed + 1))
    return
  fi
  echo "==> $dir: meson test"
  local log=$dir/meson-logs/test-summary.txt
  meson test -C "$dir" --no-rebuild --print-errorlogs "$@" 2>&1 | tee "$log"
  local ok xfail fail xpass timeout
  ok=$(awk '/^Ok:/ { print $2 }' "$log")
  xfail=$(awk '/^Expected Fail:/ { print $3 }' "$log")
  fail=$(awk '/^Fail:/ { print $2 }' "$log")
  xpass=$(awk '/^Unexpected Pass:/ { print $3 }' "$log")
  timeout=$(awk '/^Timeout:/ { print $2 }' "$log")
  if [ -z "$ok" ] || [ -z "$fail" ]; then
    echo "==> $dir: meson test printed no summary"
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + ok + ${xfail:-0}))
  failed=$((failed + fail + ${xpass:-0} + ${timeout:-0}))
}

run_dir build setup_gcc_build "$@"
run_dir build-san setup_san_build "$@"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
