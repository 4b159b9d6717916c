#!/usr/bin/env bash
# The 'cli-rfm' test: `segment rfm`: output, thresholds, options, help and
# errors.  Expected outputs are worked out from the definitions in the
# comments (doc/rfm.md).
#
#   check-cli-rfm.sh path/to/segment
set -uo pipefail

seg=$(readlink -f "$1")
. "$(dirname "$0")/cli-lib.sh"

header='customer_id,recency_days,frequency,monetary,r,f,m'

cat >ev1.csv <<'EOF2'
event_id,customer_id,ts,type,amount,quantity,order_id,channel,category,sku,refund_of,name
e5,bob,2024-02-01T18:00:00Z,purchase,7.25,1,o3,store,home,H2,,
e1,alice,2024-01-05T10:00:00Z,purchase,10.00,1,o1,web,books,B1,,
e2,alice,2024-01-05T10:00:00Z,purchase,5.50,2,o1,web,toys,T1,,
e3,alice,2024-01-20T09:00:00Z,refund,-5.50,1,,web,toys,T1,o1,
e4,bob,2024-02-01T12:00:00Z,purchase,20.00,1,o2,store,home,H1,,
e6,bob,2024-03-03T08:00:00Z,purchase,0.00,1,o4,web,gifts,G1,,
e7,"x,y",2024-01-10,purchase,1.00,1,o5,web,,,,
e8,carol,2024-01-15T10:00:00Z,engagement,,,,email,,,,email_open
e9,"q""z",2024-04-01T00:00:00Z,purchase,3.00,,o6,,,,,
EOF2

# Default reference date: the day after the last event (2024-04-01) =
# 2024-04-02.  recency: alice 2024-01-05 -> 88 days, bob 2024-02-01 (the
# 0.00 line of 03-03 is no purchase) -> 61, "x,y" 2024-01-10 -> 83, "q""z"
# 2024-04-01 -> 1.  frequency: bob 2 orders, the others 1.  monetary: alice
# 15.50 - 5.50.  carol only opened an email: a prospect, no scores.
# Scores: 4 active customers, fewer distinct values than 5 bins in every
# dimension, so each value scores 1 + floor(5 * midrank):
#   recency 88, 83, 61, 1 (worst first): midranks 1/8, 3/8, 5/8, 7/8 -> 1, 2, 4, 5
#   frequency 1 (3 customers, midrank 3/8 -> 2), 2 (7/8 -> 5)
#   monetary 1.00, 3.00, 10.00, 27.25 -> 1, 2, 4, 5
cat >want.csv <<EOF2
$header
alice,88,1,10.00,1,2,4
bob,61,2,27.25,4,5,5
carol,,0,0.00,,,
"q""z",1,1,3.00,5,2,2
"x,y",83,1,1.00,2,2,1
EOF2
run 0 -- rfm --events ev1.csv && expect_out want.csv
run 0 -- rfm --events=ev1.csv --bins=5 --monetary=total && expect_out want.csv
run 0 -- rfm ev1.csv --events ev1.csv && expect_out want.csv   # idempotent
run 0 -- rfm --events - <ev1.csv && expect_out want.csv

# The bounds of those scores: r: a recency of at most 83 for score 2, 61 for
# 3 and 4 (no value has score 3), 1 for 5; f: 1 for 2, 2 for 3..5;
# m: 3.00, 10.00, 10.00, 27.25.
run 0 -- rfm --events ev1.csv --thresholds &&
  for line in 'libsegment-rfm-thresholds 1' 'bins 5' 'monetary total' 'window 0' 'exponent 2' \
              'r 83 61 61 1' 'f 1 2 2 2' 'm 3.00 10.00 10.00 27.25' \
              '# Calibrated as of 2024-04-02T00:00:00Z on 4 active customers.'; do
    grep -qxF -- "$line" out || fail "--thresholds: no line '$line' in: $(cat out)"
  done
cp out thresholds.txt
# scoring with them gives the same scores without calibrating
run 0 -- rfm --events ev1.csv --use-thresholds thresholds.txt && expect_out want.csv

# --bins 3: recency has 4 distinct values for 3 bins: {88} {83} {61, 1}
# (sizes 1, 1, 2: as equal as possible, the larger bin on top); frequency
# has 2 values: 1 -> 1 + floor(3 * 3/8) = 2, 2 -> 1 + floor(3 * 7/8) = 3.
cat >want-b3.csv <<EOF2
$header
alice,88,1,10.00,1,2,3
bob,61,2,27.25,3,3,3
carol,,0,0.00,,,
"q""z",1,1,3.00,3,2,2
"x,y",83,1,1.00,2,2,1
EOF2
run 0 -- rfm --events ev1.csv --bins 3 && expect_out want-b3.csv

# --monetary aov: bob 27.25 / 2 = 13.625 -> 13.63 (half away from zero)
sed 's/^bob,61,2,27.25,/bob,61,2,13.63,/' want.csv >want-aov.csv
run 0 -- rfm --events ev1.csv --monetary aov && expect_out want-aov.csv

# --window 30d: [2024-03-03, 2024-04-02).  Only "q""z" bought in it: one
# customer, one value per dimension: midrank 1/2 -> score 3.  alice, bob
# and "x,y" bought before: lapsed, no scores; bob's 0.00 line is in the
# window but no purchase.
cat >want-w.csv <<EOF2
$header
alice,,0,0.00,,,
bob,,0,0.00,,,
carol,,0,0.00,,,
"q""z",1,1,3.00,3,3,3
"x,y",,0,0.00,,,
EOF2
run 0 -- rfm --events ev1.csv --window 30d && expect_out want-w.csv
run 0 -- rfm --events ev1.csv --window 720h && expect_out want-w.csv
run 0 -- rfm --events ev1.csv --window 30d --thresholds && cp out thresholds-w.txt
grep -qxF 'window 2592000' thresholds-w.txt || fail "--window 30d --thresholds: no 'window 2592000'"
# the window comes with the thresholds
run 0 -- rfm --events ev1.csv --use-thresholds thresholds-w.txt && expect_out want-w.csv

# --as-of 2024-02-01T12:00:00Z: bob's first order is exactly then (it does
# not count) and "q""z" buys later: both left out.  Recency to 2024-02-01:
# alice 27, "x,y" 22.  Two active customers: 2 and 4 by midrank; one
# frequency value: 3.
cat >want-asof.csv <<EOF2
$header
alice,27,1,10.00,2,3,4
carol,,0,0.00,,,
"x,y",22,1,1.00,4,3,2
EOF2
run 0 -- rfm --events ev1.csv --as-of 2024-02-01T12:00:00Z && expect_out want-asof.csv
run 0 -- rfm --events ev1.csv --as-of=1706788800 && expect_out want-asof.csv

# --value: status, orders, total_value, average_order_value, tenure_days
# (first purchase to 2024-04-02), purchase_rate (orders per 365 days)
cat >want-value.csv <<EOF2
$header,status,orders,total_value,average_order_value,tenure_days,purchase_rate
alice,88,1,10.00,1,2,4,active,1,10.00,10.00,88,4.148
bob,61,2,27.25,4,5,5,active,2,27.25,13.63,61,11.967
carol,,0,0.00,,,,prospect,0,0.00,,,
"q""z",1,1,3.00,5,2,2,active,1,3.00,3.00,1,365.000
"x,y",83,1,1.00,2,2,1,active,1,1.00,1.00,83,4.398
EOF2
run 0 -- rfm --events ev1.csv --value && expect_out want-value.csv
run 0 -- rfm --events ev1.csv --value --window 30d &&
  { grep -qxF 'alice,,0,0.00,,,,lapsed,1,10.00,10.00,88,4.148' out ||
      fail "--value --window: alice not lapsed with her history: $(cat out)"; }

# hand-written fixed thresholds
cat >fixed.txt <<'EOF2'
# two scores: recent (30 days), repeat buyers, 5.00 and more
libsegment-rfm-thresholds 1
bins 2
monetary total
window 0
exponent 2
r 30
f 2
m 5.00
EOF2
cat >want-fixed.csv <<EOF2
$header
alice,88,1,10.00,1,1,2
bob,61,2,27.25,1,2,2
carol,,0,0.00,,,
"q""z",1,1,3.00,2,1,1
"x,y",83,1,1.00,1,1,1
EOF2
run 0 -- rfm --events ev1.csv --use-thresholds fixed.txt && expect_out want-fixed.csv

# --timings: the phases on stderr, the same output
run 0 -- rfm --events ev1.csv --timings && expect_out want.csv
for p in import rfm write; do
  grep -qE "^phase $p [0-9]+\.[0-9]{3}$" err || fail "--timings: no phase $p: $(cat err)"
done

# an empty file: the header only
printf 'customer_id,ts,amount\n' >header-only.csv
printf '%s\n' "$header" >want-empty.csv
run 0 -- rfm --events header-only.csv && expect_out want-empty.csv

# ---- help ----
for args in "rfm --help" "rfm -h" "help rfm"; do
  # shellcheck disable=SC2086
  run 0 -- $args || continue
  grep -q "Usage: segment rfm" out || fail "segment $args: no usage line"
done
run 0 -- rfm --help
for word in --events --db --as-of --window --bins --monetary --use-thresholds --thresholds \
  --value --timings --help recency_days frequency monetary "r, f, m" status orders \
  total_value average_order_value tenure_days purchase_rate "ts < TIME" "equal values"; do
  grep -qF -- "$word" out || fail "segment rfm --help does not mention $word"
done
run 0 -- --help && { grep -qE '^  rfm ' out || fail "segment --help does not list rfm"; }

# ---- usage errors: status 2 ----
run_error 2 "no events file" -- rfm
run_error 2 "rfm: unknown option '--bogus'" -- rfm --events ev1.csv --bogus
run_error 2 "'--bins' needs a value" -- rfm --events ev1.csv --bins
run_error 2 "--bins: must be a whole number from 2 to 20: '1'" -- rfm --events ev1.csv --bins 1
run_error 2 "--bins: must be a whole number from 2 to 20: '21'" -- rfm --events ev1.csv --bins 21
run_error 2 "--bins: must be a whole number" -- rfm --events ev1.csv --bins 5x
run_error 2 "--window: not a duration: '10'" -- rfm --events ev1.csv --window 10
run_error 2 "--window: not a duration: '3m'" -- rfm --events ev1.csv --window 3m
run_error 2 "--window: must be longer than 0" -- rfm --events ev1.csv --window 0d
run_error 2 "--window: too long" -- rfm --events ev1.csv --window 99999999999999d
run_error 2 "--monetary: must be 'total' or 'aov': 'mean'" -- rfm --events ev1.csv --monetary mean
run_error 2 "--as-of: not a time: 'tomorrow'" -- rfm --events ev1.csv --as-of tomorrow
run_error 2 "--as-of given twice" -- rfm --events ev1.csv --as-of 2024-01-01 --as-of 2024-01-02
run_error 2 "not with --bins, --monetary or --window" -- rfm --events ev1.csv --use-thresholds fixed.txt --bins 3
run_error 2 "give one or the other" -- rfm --events ev1.csv --db x.db

# ---- data errors: status 1 ----
run_error 1 "x\.db" -- rfm --db x.db
run_error 1 "cannot open 'missing\.txt'" -- rfm --events ev1.csv --use-thresholds missing.txt
printf 'libsegment-rfm-thresholds 1\nbins 3\ncolour red\n' >bad-t.txt
run_error 1 "bad-t\.txt: line 3: unknown key 'colour'" -- rfm --events ev1.csv --use-thresholds bad-t.txt
cat >bad-amount.csv <<'EOF2'
customer_id,ts,amount
a,2024-01-01,1.00
b,2024-01-01,12.3.4
EOF2
run_error 1 "bad-amount\.csv:3:" -- rfm --events bad-amount.csv
run_error 1 "missing\.csv" -- rfm --events missing.csv
if [ -w /dev/full ]; then
  checks=$((checks + 1))
  "$seg" rfm --events ev1.csv >/dev/full 2>err
  st=$?
  [ "$st" = 1 ] || fail "writing to /dev/full exited $st, expected 1"
  grep -qE '^segment: write error' err || fail "writing to /dev/full: $(cat err)"
fi

finish cli-rfm
