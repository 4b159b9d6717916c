#!/usr/bin/env bash
# Regenerate the bundled sample (examples/data/) with the project's generator.
#
#   tools/gen-sample.sh [SEGMENT_GEN [OUTDIR]]
#
# Defaults: build/tools/segment-gen and examples/data.  The 'sample' test runs
# this into the build directory and compares the result with the committed
# files byte for byte, so change the arguments here only together with the
# committed sample.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
gen=${1:-$here/build/tools/segment-gen}
out=${2:-$here/examples/data}
mkdir -p "$out"
"$gen" --customers 500 --seed 20260101 --start 2023-01-01 --days 730 \
  --events-out "$out/sample_events.csv" --customers-out "$out/sample_customers.csv"
