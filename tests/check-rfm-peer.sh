#!/usr/bin/env bash
# The 'rfm-peer' test: `segment rfm` computes recency, frequency and monetary
# exactly as the SQL peer of the benchmark does, customer by customer.
#
#   check-rfm-peer.sh SEGMENT RFM_PEER SEGMENT_GEN SOURCE_ROOT
#
# RFM_PEER is tests/rfm-peer.c: the peer's query (../shared/bench/peers/
# rfm_sqlite.sh) on the sqlite3 C API.  Compared on the bundled sample, on
# two generated samples (segment-gen), and, when ../shared/bench is there
# with python3/numpy and the sqlite3 shell, with the real peer script on a
# file of the benchmark's generator.  Only the last part is skipped (with a
# message) when its tools or data are absent.
set -uo pipefail
seg=$(readlink -f "$1")
peer=$(readlink -f "$2")
gen=$(readlink -f "$3")
src=$(readlink -f "$4")
. "$(dirname "$0")/cli-lib.sh"

# compare NAME FILE: the value columns of segment rfm and of the peer agree
# (the ids of these files hold no commas, so cut splits the columns right)
compare() {
  local name=$1 file=$2
  checks=$((checks + 1))
  if ! "$seg" rfm --events "$file" >"$name.seg.csv" 2>"$name.err"; then
    fail "$name: segment rfm failed: $(cat "$name.err")"
    return
  fi
  if ! "$peer" "$file" "$name.peer.csv"; then
    fail "$name: rfm-peer failed"
    return
  fi
  cut -d, -f1-4 "$name.seg.csv" >"$name.seg4.csv"
  local rows
  rows=$(($(wc -l <"$name.peer.csv") - 1))
  if [ "$rows" -lt 1 ]; then
    fail "$name: the peer found no customers"
  elif ! cmp -s "$name.seg4.csv" "$name.peer.csv"; then
    fail "$name: recency/frequency/monetary differ from the SQL peer ($rows customers):"
    diff "$name.peer.csv" "$name.seg4.csv" | head -20 | sed 's/^/    /'
  else
    echo "ok: $name: $rows customers agree with the SQL peer"
  fi
}

compare sample "$src/examples/data/sample_events.csv"
"$gen" --customers 3000 --seed 11 --events-out gen1.csv || fail "segment-gen failed"
compare gen-3000 gen1.csv
"$gen" --customers 800 --seed 12345 --days 90 --start 2024-02-15 --events-out gen2.csv ||
  fail "segment-gen failed"
compare gen-800-90d gen2.csv

# the real peer script on the benchmark generator's data, when available
shared=$(cd "$src/.." && pwd)/shared/bench
py=
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then py=$p; break; fi
done
if [ ! -x "$shared/peers/rfm_sqlite.sh" ] || [ ! -r "$shared/gen_events.py" ]; then
  echo "SKIP: $shared/peers/rfm_sqlite.sh or gen_events.py not found: the real peer script is not run"
elif ! command -v sqlite3 >/dev/null || [ -z "$py" ]; then
  echo "SKIP: the sqlite3 shell or python3 with numpy is missing: the real peer script is not run"
else
  checks=$((checks + 1))
  if "$py" "$shared/gen_events.py" --customers 20000 --events 200000 --seed 7 --out bench.csv \
       >/dev/null 2>&1 &&
     "$shared/peers/rfm_sqlite.sh" bench.csv bench.sqlite.csv 2>/dev/null &&
     "$seg" rfm --events bench.csv >bench.seg.csv; then
    cut -d, -f1-4 bench.sqlite.csv >bench.sqlite4.csv
    cut -d, -f1-4 bench.seg.csv >bench.seg4.csv
    if cmp -s bench.sqlite4.csv bench.seg4.csv; then
      echo "ok: gen_events.py 200k events: $(($(wc -l <bench.seg.csv) - 1)) customers agree with rfm_sqlite.sh"
    else
      fail "gen_events.py data: values differ from rfm_sqlite.sh:"
      diff bench.sqlite4.csv bench.seg4.csv | head -20 | sed 's/^/    /'
    fi
  else
    fail "the generator, the peer script or segment rfm failed on the benchmark data"
  fi
fi

finish rfm-peer
