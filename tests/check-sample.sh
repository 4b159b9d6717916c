#!/usr/bin/env bash
# The 'sample' test: the committed sample data is exactly what the generator
# makes from the arguments in tools/gen-sample.sh.
#
#   check-sample.sh SOURCE_ROOT SEGMENT_GEN OUTDIR
set -euo pipefail
src=$1 gen=$(readlink -f "$2") out=$3
rm -rf "$out"
"$src/tools/gen-sample.sh" "$gen" "$out"
status=0
for f in sample_events.csv sample_customers.csv; do
  if cmp "$src/examples/data/$f" "$out/$f"; then
    echo "sample: $f matches ($(wc -l <"$out/$f") lines)"
  else
    echo "sample: examples/data/$f differs from the generator's output $out/$f" >&2
    echo "sample: run tools/gen-sample.sh to regenerate it (and commit the result)" >&2
    status=1
  fi
done
# Same arguments, same bytes: a second run must match the first.
"$gen" --customers 50 --seed 7 --events-out "$out/a.csv" --customers-out "$out/ac.csv"
"$gen" --customers 50 --seed 7 --events-out "$out/b.csv" --customers-out "$out/bc.csv"
cmp "$out/a.csv" "$out/b.csv" && cmp "$out/ac.csv" "$out/bc.csv" || status=1
exit $status
