#!/usr/bin/env bash
# The 'cli' test: the `segment` tool's output, options, help and errors.
#
#   check-cli.sh path/to/segment
set -uo pipefail

seg=$(readlink -f "$1")
. "$(dirname "$0")/cli-lib.sh"

header='customer_id,orders,purchase_days,first_purchase,last_purchase,revenue,net_revenue'

# ---- fixtures ----
cat >ev1.csv <<'EOF'
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
EOF
# no event_id (derived ids), other column order, epoch seconds, an offset
cat >ev2.csv <<'EOF'
customer_id,amount,ts,order_id
dave,12.00,1704067200,od1
alice,4.00,2024-02-10T10:00:00+01:00,o7
EOF
cat >cust.csv <<'EOF'
customer_id,country:string,consent:email
erin,DE,granted
alice,US,
EOF

cat >want1.csv <<EOF
$header
alice,1,1,2024-01-05T10:00:00Z,2024-01-05T10:00:00Z,15.50,10.00
bob,2,1,2024-02-01T12:00:00Z,2024-02-01T18:00:00Z,27.25,27.25
carol,0,0,,,0.00,0.00
"q""z",1,1,2024-04-01T00:00:00Z,2024-04-01T00:00:00Z,3.00,3.00
"x,y",1,1,2024-01-10T00:00:00Z,2024-01-10T00:00:00Z,1.00,1.00
EOF
cat >want-all.csv <<EOF
$header
alice,2,2,2024-01-05T10:00:00Z,2024-02-10T09:00:00Z,19.50,14.00
bob,2,1,2024-02-01T12:00:00Z,2024-02-01T18:00:00Z,27.25,27.25
carol,0,0,,,0.00,0.00
dave,1,1,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,12.00,12.00
erin,0,0,,,0.00,0.00
"q""z",1,1,2024-04-01T00:00:00Z,2024-04-01T00:00:00Z,3.00,3.00
"x,y",1,1,2024-01-10T00:00:00Z,2024-01-10T00:00:00Z,1.00,1.00
EOF
# as of 2024-02-01T12:00:00Z: bob's first order is exactly then, so it does not
# count and bob (no earlier event) is left out; erin has no events and is listed
cat >want-asof.csv <<EOF
$header
alice,1,1,2024-01-05T10:00:00Z,2024-01-05T10:00:00Z,15.50,10.00
carol,0,0,,,0.00,0.00
dave,1,1,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,12.00,12.00
erin,0,0,,,0.00,0.00
"x,y",1,1,2024-01-10T00:00:00Z,2024-01-10T00:00:00Z,1.00,1.00
EOF
printf '%s\n' "$header" >want-empty.csv

# ---- output ----
run 0 -- customers --events ev1.csv && expect_out want1.csv
run 0 -- customers --events=ev1.csv && expect_out want1.csv
run 0 -- customers --events ev1.csv --events ev2.csv --customers cust.csv && expect_out want-all.csv
run 0 -- customers --customers=cust.csv --events ev1.csv ev2.csv && expect_out want-all.csv
run 0 -- customers --events ev1.csv --events ev1.csv && expect_out want1.csv   # idempotent
run 0 -- customers --events - <ev1.csv && expect_out want1.csv
run 0 -- customers --events ev1.csv --events ev2.csv --customers cust.csv \
  --as-of 2024-02-01T12:00:00Z && expect_out want-asof.csv
run 0 -- customers --events ev1.csv --events ev2.csv --customers cust.csv \
  --as-of=1706788800 && expect_out want-asof.csv
printf 'customer_id,ts,amount\n' >header-only.csv
run 0 -- customers --events header-only.csv && expect_out want-empty.csv

# ---- help and version ----
for args in "--help" "-h" "help" "help customers" "customers --help" "customers -h"; do
  # shellcheck disable=SC2086
  run 0 -- $args || continue
  [ -s out ] || fail "segment $args printed nothing"
  grep -q "Usage: segment" out || fail "segment $args: no usage line"
done
run 0 -- customers --help
for word in --events --customers --as-of --help customer_id orders purchase_days \
  first_purchase last_purchase revenue net_revenue "ts < TIME"; do
  grep -qF -- "$word" out || fail "segment customers --help does not mention $word"
done
run 0 -- --version && { grep -qE '^segment [0-9]+\.[0-9]+\.[0-9]+ \(libsegment [0-9.]+\)$' out ||
  fail "unexpected --version output: $(cat out)"; }

# ---- usage errors: status 2 ----
run_error 2 "no command" --
run_error 2 "unknown command 'frobnicate'" -- frobnicate
run_error 2 "unknown option '--frob'" -- --frob
run_error 2 "help: unknown command" -- help frobnicate
run_error 2 "unknown option '--bogus'" -- customers --events ev1.csv --bogus
run_error 2 "'--events' needs a value" -- customers --events
run_error 2 "no events file" -- customers
run_error 2 "no events file" -- customers --customers cust.csv
run_error 2 "--as-of: not a time: 'yesterday'" -- customers --events ev1.csv --as-of yesterday
run_error 2 "--as-of given twice" -- customers --events ev1.csv --as-of 2024-01-01 --as-of 2024-01-02

# ---- data errors: status 1, one line naming file:line ----
cat >bad-amount.csv <<'EOF'
customer_id,ts,amount
a,2024-01-01,1.00
b,2024-01-01,12.3.4
EOF
run_error 1 "bad-amount\.csv:3:" -- customers --events bad-amount.csv
cat >bad-refund.csv <<'EOF'
customer_id,ts,amount,refund_of
a,2024-01-01,-1.00,nosuchorder
EOF
run_error 1 "bad-refund\.csv:2:" -- customers --events bad-refund.csv
cat >bad-column.csv <<'EOF'
customer_id,ts,amount,colour
a,2024-01-01,1.00,red
EOF
run_error 1 "bad-column\.csv" -- customers --events bad-column.csv
cat >bad-quote.csv <<'EOF'
customer_id,ts,amount
"a,2024-01-01,1.00
EOF
run_error 1 "bad-quote\.csv" -- customers --events bad-quote.csv
cat >bad-cust.csv <<'EOF'
customer_id,birth_year:int
a,nineteen
EOF
run_error 1 "bad-cust\.csv:2:" -- customers --events ev1.csv --customers bad-cust.csv
run_error 1 "missing\.csv" -- customers --events missing.csv
# a good file then a bad one: still a failure, nothing printed
run_error 1 "bad-amount\.csv:3:" -- customers --events ev1.csv --events bad-amount.csv
if [ -w /dev/full ]; then
  checks=$((checks + 1))
  "$seg" customers --events ev1.csv >/dev/full 2>err
  st=$?
  [ "$st" = 1 ] || fail "writing to /dev/full exited $st, expected 1"
  grep -qE '^segment: write error' err || fail "writing to /dev/full: $(cat err)"
fi

# ---- segment eval and segment report ----
cat >defs.seg <<'EOF'
# test definitions
segment buyers: orders >= 1;
segment big: revenue >= 20.00;
segment us: attr("country") == "US";
segment set status { prospect: orders == 0; else customer; }
EOF
cat >defs2.seg <<'EOF'
segment mailable: consent("email") and not in(buyers);
EOF
cat >want-eval.csv <<'EOF'
customer_id,segment
alice,buyers
alice,us
alice,customer
bob,buyers
bob,big
bob,customer
carol,prospect
dave,buyers
dave,customer
erin,prospect
erin,mailable
"q""z",buyers
"q""z",customer
"x,y",buyers
"x,y",customer
EOF
# as of bob's first order: bob and "q""z" are not customers yet, alice's
# second order does not count
cat >want-eval-asof.csv <<'EOF'
customer_id,segment
alice,buyers
alice,us
alice,customer
carol,prospect
dave,buyers
dave,customer
erin,prospect
erin,mailable
"x,y",buyers
"x,y",customer
EOF
run 0 -- eval defs.seg defs2.seg --events ev1.csv --events ev2.csv --customers cust.csv &&
  expect_out want-eval.csv
run 0 -- eval defs.seg defs2.seg --events=ev1.csv --events ev2.csv --customers=cust.csv \
  --as-of 2024-02-01T12:00:00Z && expect_out want-eval-asof.csv
run 0 -- eval defs.seg defs2.seg --events - --events ev2.csv --customers cust.csv <ev1.csv &&
  expect_out want-eval.csv
run 0 -- report defs.seg defs2.seg --events ev1.csv --events ev2.csv --customers cust.csv && {
  # 7 customers; carol is in none of the plain segments, alice (buyers, us)
  # and bob (buyers, big) in several; net revenue 14.00 + 27.25 + 12.00 + 3.00 + 1.00
  grep -qx '7,1,2,57.25' out || fail "report totals: $(cat out)"
  grep -qx 'buyers,,5,71.4%,57.25,100.0%' out || fail "report buyers row: $(cat out)"
  grep -qx 'big,,1,14.3%,27.25,47.6%' out || fail "report big row: $(cat out)"
  grep -qx 'prospect,status,2,28.6%,0.00,0.0%' out || fail "report prospect row: $(cat out)"
  grep -qx 'overlap,buyers,big,us,prospect,customer,mailable' out || fail "report overlap header"
  grep -qx 'buyers,5,1,1,0,5,0' out || fail "report overlap row: $(cat out)"
}
for args in "help eval" "eval --help" "help report" "report -h"; do
  # shellcheck disable=SC2086
  run 0 -- $args || continue
  grep -q "Usage: segment" out || fail "segment $args: no usage line"
done
run 0 -- --help && { grep -q "eval" out && grep -q "report" out || fail "--help lacks eval/report"; }
run_error 2 "no definition file" -- eval --events ev1.csv
run_error 2 "no events file" -- eval defs.seg
run_error 1 "x\.db" -- eval defs.seg --db x.db
run_error 2 "give one or the other" -- report defs.seg --events ev1.csv --db=x.db
run_error 2 "unknown option '--bogus'" -- report defs.seg --events ev1.csv --bogus
run_error 2 "'--events' needs a value" -- eval defs.seg --events
run_error 2 "--as-of: not a time" -- eval defs.seg --events ev1.csv --as-of soon
printf 'segment ok: true;\n\nsegment bad: orders >;\n' >bad.seg
run_error 1 "^segment: bad\.seg:3:22: expected a value" -- eval defs.seg bad.seg --events ev1.csv
run_error 1 "^segment: defs2\.seg:1:47: unknown segment 'buyers'" -- eval defs2.seg --events ev1.csv
run_error 1 "cannot open 'nosuch\.seg'" -- eval nosuch.seg --events ev1.csv
run_error 1 "bad-amount\.csv:3:" -- report defs.seg --events bad-amount.csv
# ---- segment clv ----
# A Pareto/NBD-like population in whole days of 2024 (awk's own seeded
# random numbers): purchase rates and lifetimes vary by customer, amounts by
# customer and purchase.  Times are epoch seconds.
awk 'function expo() { return -log(1 - rand()) }
BEGIN {
  srand(42);
  print "customer_id,ts,amount";
  for (c = 1; c <= 400; c++) {
    rate = (expo() + expo()) / 30;
    death = expo() / ((expo() + expo()) / 300);
    mean = 10 + 40 * (expo() + expo()) / 2;
    t = int(90 * rand());
    first = t;
    while (t < 365 && t - first <= death) {
      printf "c%03d,%d,%.2f\n", c, 1704067200 + int(t) * 86400 + 3600, mean * (expo() + expo() + expo() + expo()) / 4;
      t += expo() / rate;
    }
  }
  print "late,1728950400,20.00";   # 2024-10-15: first purchase after the calibration end
  print "c001,1704067200,0.00";    # 2024-01-01: a free item, now c001 first purchase day
}' >clv.csv
# frequency, recency and T (weeks) of every customer, straight from the log
awk -F, 'NR > 1 && $2 < 1727740800 { d = int($2 / 86400); if (!($1 in f) || d < f[$1]) f[$1] = d; day[$1 "," d] = 1 }
  END { for (k in day) { split(k, a, ","); if (a[2] > f[a[1]]) { x[a[1]]++; if (a[2] > l[a[1]]) l[a[1]] = a[2] } }
        for (c in f) printf "%s,%d,%.6f,%.6f\n", c, x[c], x[c] ? (l[c] - f[c]) / 7 : 0, (19996 - f[c]) / 7 }' clv.csv |
  LC_ALL=C sort >clv-summary.csv
# the same without the holdout (purchases after 2024-09-30): same output
awk -F, 'NR == 1 || $2 < 1727740800' clv.csv >clv-cal.csv
[ "$(wc -l <clv-cal.csv)" -lt "$(wc -l <clv.csv)" ] || fail "clv: the test log has no holdout"
clvhead='customer_id,frequency,recency,T,p_alive,expected_purchases,expected_spend,clv'
for model in bgnbd mbgnbd pareto; do
  run 0 -- clv --events clv.csv --model $model --calibration-end 2024-09-30 --unit week \
    --horizon 52w --discount 0.1/52w --params p-$model.csv || continue
  [ "$(head -1 out)" = "$clvhead" ] || fail "clv $model: header $(head -1 out)"
  [ "$(wc -l <out)" = 401 ] || fail "clv $model: $(wc -l <out) lines, expected 401"
  tail -n +2 out | cut -d, -f1 | LC_ALL=C sort -c 2>/dev/null || fail "clv $model: rows not sorted"
  grep -q '^late,' out && fail "clv $model: a customer first buying after the calibration end is listed"
  grep -q 'left out: 1 first buying after the calibration end' err || fail "clv $model: summary: $(cat err)"
  grep -q "log-likelihood -" err || fail "clv $model: no log-likelihood in: $(cat err)"
  awk -F, 'NR > 1 && !($5 >= 0 && $5 <= 1 && $6 >= 0 && $7 > 0 && $8 > 0) { bad = 1 } END { exit bad }' out ||
    fail "clv $model: a score out of range"
  tail -n +2 out | awk -F, '{ printf "%s,%d,%.6f,%.6f\n", $1, $2, $3, $4 }' | cmp -s - clv-summary.csv ||
    fail "clv $model: frequency, recency, T differ from the log's"
  head -3 p-$model.csv | tr '\n' ' ' | grep -q "^param,value model,$model unit,week " ||
    fail "clv $model: params file: $(head -3 p-$model.csv)"
  for name in p q gamma; do grep -q "^$name,[0-9]" p-$model.csv || fail "clv $model: no $name in params"; done
  cp out clv-$model.out
  run 0 -- clv --events clv-cal.csv --model $model --calibration-end 2024-09-30 --unit week \
    --horizon 52w --discount 0.1/52w && expect_out clv-$model.out
done
grep -q '^alpha,' p-bgnbd.csv && grep -q '^beta,' p-pareto.csv || fail "clv: parameter names"
# the CLV values of the definition language, from the parameters just
# written: as of midnight after the calibration end, a customer's p_alive,
# expected_purchases(52w) and clv(52w) are those of 'segment clv' (rows
# within 1e-4 of a threshold are left out: the tool prints 6 decimals)
cat >clvdefs.seg <<'EOF'
segment alive: p_alive >= 0.6;
segment busy: expected_purchases(52w) >= 1.5;
segment valuable: clv(52w) >= 120.00;
EOF
run 0 -- eval clvdefs.seg --events clv.csv --as-of 2024-10-01 --clv p-bgnbd.csv --discount 0.1/52w &&
  cp out clv-eval.out
awk -F, 'NR > 1 {
    near = ($5 - 0.6 < 1e-4 && 0.6 - $5 < 1e-4) || ($6 - 1.5 < 1e-4 && 1.5 - $6 < 1e-4) ||
           ($8 - 120 < 1e-3 && 120 - $8 < 1e-3);
    if (near) { print $1 > "clv-near.txt"; next }
    if ($5 >= 0.6) print $1 ",alive"; if ($6 >= 1.5) print $1 ",busy"; if ($8 >= 120) print $1 ",valuable" }' \
  clv-bgnbd.out >clv-want.txt
touch clv-near.txt
tail -n +2 clv-eval.out | grep -v -F -f <(sed 's/$/,/' clv-near.txt) | cmp -s - clv-want.txt ||
  fail "eval --clv: memberships differ from 'segment clv': $(tail -n +2 clv-eval.out | diff - clv-want.txt | head -5)"
[ "$(wc -l <clv-want.txt)" -gt 100 ] || fail "eval --clv: too few memberships to compare"
grep -v '^[pq],\|^gamma,' p-bgnbd.csv >p-nospend.csv
run_error 1 "no CLV model" -- eval clvdefs.seg --events clv.csv
run_error 1 "spend" -- eval clvdefs.seg --events clv.csv --clv p-nospend.csv
run_error 1 "no 'model," -- eval clvdefs.seg --events clv.csv --clv clvdefs.seg
run_error 2 "go with --clv" -- eval clvdefs.seg --events clv.csv --margin 0.5
run_error 2 "--clv given twice" -- eval clvdefs.seg --events clv.csv --clv p-bgnbd.csv --clv=p-bgnbd.csv
run_error 2 "--as-of given twice" -- report clvdefs.seg --events clv.csv --as-of 2024-01-01 --as-of 2024-02-01
run_error 2 "--margin: '2'" -- report clvdefs.seg --events clv.csv --clv p-bgnbd.csv --margin 2
# the unit changes recency, T and the parameters, never the predictions
run 0 -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52w \
  --discount 0.1/52w && cp out clv-week.out
run 0 -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit day --horizon 364d \
  --discount 0.1/364d && cp out clv-day.out
paste -d, clv-week.out clv-day.out | awk -F, 'NR > 1 {
    if ($3 * 7 - $11 > 1e-6 || $11 - $3 * 7 > 1e-6) bad = "recency";
    for (i = 5; i <= 8; i++) { d = $i - $(i + 8); if (d < 0) d = -d; if (d > 1e-5 * ($i + 1e-9)) bad = "column " i }
  } END { if (bad) { print bad; exit 1 } }' || fail "clv: weeks and days disagree"
# days: recency and T in days
run 0 -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit day --horizon 364d &&
  awk -F, -v T="$(awk -F, '$1 == "c002" { print $4 * 7 }' clv-summary.csv)" '$1 == "c002" && $4 != T { exit 1 }' out ||
  fail "clv --unit day: T of c002"
# no amounts: no spend model, empty columns
awk -F, 'BEGIN { OFS = "," } NR > 1 { $3 = "0.00" } { print }' clv.csv >clv-free.csv
run 0 -- clv --events clv-free.csv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52w &&
  { grep -q 'no spend model' err || fail "clv without amounts: $(cat err)"; } &&
  { awk -F, 'NR > 1 && ($7 != "" || $8 != "") { exit 1 }' out || fail "clv without amounts: spend printed"; }
run 0 -- clv --help
for word in --events --db --model --calibration-end --unit --horizon --discount --margin --params \
  p_alive expected_purchases expected_spend clv; do
  grep -qF -- "$word" out || fail "segment clv --help does not mention $word"
done
run 0 -- help clv
run_error 1 "x\.db" -- clv --db x.db --model bgnbd \
  --calibration-end 2024-09-30 --unit week --horizon 52w
run_error 2 "give one or the other" -- clv --db x.db --events clv.csv --model bgnbd \
  --calibration-end 2024-09-30 --unit week --horizon 52w
run_error 2 "--model is required" -- clv --events clv.csv --calibration-end 2024-09-30 --unit week --horizon 52w
run_error 2 "unknown model 'bg'" -- clv --events clv.csv --model bg --calibration-end 2024-09-30 --unit week --horizon 52w
run_error 2 "--unit is required" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --horizon 52w
run_error 2 "--unit: 'month'" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit month --horizon 52w
run_error 2 "--horizon: '52'" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52
run_error 2 "--horizon is required" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit week
run_error 2 "--calibration-end: not a time" -- clv --events clv.csv --model bgnbd --calibration-end soon --unit week --horizon 52w
run_error 2 "--discount: '-1'" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52w --discount -1
run_error 2 "--discount: '1y'" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52w --discount 0.1/1y
run_error 2 "--margin" -- clv --events clv.csv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52w --margin 2
run_error 2 "--model given twice" -- clv --events clv.csv --model bgnbd --model pareto --calibration-end 2024-09-30 --unit week --horizon 52w
run_error 2 "unknown option '--bogus'" -- clv --events clv.csv --bogus
run_error 2 "no events file" -- clv --model bgnbd --calibration-end 2024-09-30 --unit week --horizon 52w
# too few repeat buyers: the fit fails with the reason
run_error 1 "too few repeat buyers" -- clv --events ev1.csv --model bgnbd --calibration-end 2024-12-31 --unit week --horizon 52w
run_error 1 "bad-amount\.csv:3:" -- clv --events bad-amount.csv --model bgnbd --calibration-end 2024-12-31 --unit week --horizon 52w

finish cli
