#!/usr/bin/env bash
# The ingestion benchmark of issue 2, on one core:
#   1. 10 million generated events through the C API (batches of 10,000),
#      then the same again (every event a duplicate: idempotency checks);
#   2. the reference CSV (1M customers, 10M events, from
#      ../shared/bench/gen_events.py, generated once into $BENCH_DATA) through
#      seg_event_import_csv_file, then imported again.
# Each phase prints events/s and resident bytes per event.  Needs a built
# build/ (tools/demo.sh or tools/test.sh make one) and python3-numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${BENCH_DATA:-${TMPDIR:-/tmp}/libsegment-bench}
gen=../shared/bench/gen_events.py
csv=$data/events-1M-10M-seed42.csv
exe=build/bench/bench_ingest
[ -x "$exe" ] || ninja -C build bench/bench_ingest
mkdir -p "$data"
if [ ! -s "$csv" ]; then
  echo "generating $csv" >&2
  /usr/bin/python3 "$gen" --customers 1000000 --events 10000000 --seed 42 --out "$csv.tmp" --quiet
  mv "$csv.tmp" "$csv"
fi
cat "$csv" > /dev/null   # page cache
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c 0 "$exe" api "${EVENTS:-10000000}"
taskset -c 0 "$exe" csv "$csv"
