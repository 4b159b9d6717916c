#!/usr/bin/env bash
# The RFM benchmark of issue 4, on one core:
#   1. the whole job, CSV in and RFM CSV out: `segment rfm --events FILE
#      --timings`, with its phases (import, rfm = values + calibration +
#      sorting by id, write = scoring and formatting the rows) and the peak
#      RSS from GNU time;
#   2. bench_rfm: the RFM step alone on the events in memory (calibration,
#      scoring with and without sorting, a window, an as-of in the past,
#      re-scoring one customer at a time).
# Input: $RFM_DATA, or the reference file of ../shared/bench/gen_events.py
# (1M customers, 10M events, seed 42) generated once into $BENCH_DATA.
# Needs a built build/ (tools/test.sh or tools/demo.sh make one).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${BENCH_DATA:-${TMPDIR:-/tmp}/libsegment-bench}
csv=${RFM_DATA:-$data/events-1M-10M-seed42.csv}
[ -x build/tools/segment ] && [ -x build/bench/bench_rfm ] ||
  ninja -C build tools/segment bench/bench_rfm
if [ ! -s "$csv" ]; then
  mkdir -p "$(dirname "$csv")"
  echo "generating $csv" >&2
  /usr/bin/python3 ../shared/bench/gen_events.py --customers 1000000 --events 10000000 \
    --seed 42 --out "$csv.tmp" --quiet
  mv "$csv.tmp" "$csv"
fi
cat "$csv" > /dev/null   # page cache
out=${TMPDIR:-/tmp}/libsegment-rfm-out.csv
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# whole job: segment rfm --events $csv > $out"
for run in 1 2 3; do
  /usr/bin/time -f 'wall %e s, peak RSS %M KiB' taskset -c 0 \
    build/tools/segment rfm --events "$csv" --timings > "$out" 2> "$out.err" ||
    { cat "$out.err" >&2; exit 1; }
  echo "run $run: $(grep -E '^phase' "$out.err" | awk '{printf "%s %s s, ", $2, $3}')$(tail -1 "$out.err")"
done
echo "# the RFM step alone (bench_rfm, best of 3)"
taskset -c 0 build/bench/bench_rfm "$csv" 3
