#!/bin/sh
# Run a libFuzzer target for a bounded time (the 'fuzz' suite of a clang
# build; tests/fuzz/README.md runs the targets longer by hand):
#
#   run-fuzz.sh FUZZER SECONDS EXPONENT_BYTE SEED_DIR...
#
# Each file of the seed directories becomes a seed prefixed with the
# target's first byte (the currency exponent: EXPONENT_BYTE as an octal
# escape, \002 for cents).  New inputs go to a scratch corpus that is
# removed afterwards; a crash fails the test and libFuzzer prints the input
# (as Base64 for short ones) and the stack.
set -eu
fuzzer=$1
secs=$2
byte=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/seeds" "$work/art"
n=0
for dir in "$@"; do
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    { printf "$byte"; cat "$f"; } >"$work/seeds/$n"
  done
done
echo "run-fuzz: $n seeds, $secs seconds"
# libFuzzer exits 77 on a crash by default, which meson reads as "skipped"
exec "$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 -timeout=20 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$work/art/" "$work/corpus" "$work/seeds"
