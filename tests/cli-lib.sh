# tests/cli-lib.sh: what the command-line test scripts share.  Sourced after
# `seg` (the segment executable) is set; makes and enters a temporary
# directory (removed on exit) and defines:
#   fail MESSAGE              count a failed check
#   run STATUS -- ARGS...     run segment: exit status STATUS; output in out, err
#   run_error STATUS PATTERN -- ARGS...
#                             an error: exit STATUS, one "segment: " line on
#                             stderr matching PATTERN (grep -E), no stdout
#   expect_out FILE           stdout equals FILE
#   finish NAME               print the counts; the script's exit status
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

failures=0
checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

run() {
  local want=$1
  shift 2
  checks=$((checks + 1))
  "$seg" "$@" >out 2>err
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "segment $* exited $got, expected $want"
    sed 's/^/    stderr: /' err
    return 1
  fi
  return 0
}

run_error() {
  local want=$1 pattern=$2
  shift 3
  run "$want" -- "$@" || return
  if [ "$(wc -l <err)" -ne 1 ] || ! grep -qE "^segment: " err; then
    fail "segment $*: expected one 'segment: ' line on stderr, got:"
    sed 's/^/    /' err
  elif ! grep -qE -- "$pattern" err; then
    fail "segment $*: stderr does not match /$pattern/: $(cat err)"
  fi
  [ -s out ] && fail "segment $*: wrote to stdout on error: $(head -c 200 out)"
  return 0
}

expect_out() {
  if ! cmp -s out "$1"; then
    fail "output differs from the expected $1:"
    diff -u "$1" out | head -40 | sed 's/^/    /'
  fi
}

finish() {
  echo "$1: $checks checks, $failures failed"
  [ "$failures" = 0 ]
}
