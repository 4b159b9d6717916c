#!/usr/bin/env bash
# The 'cli' test: the `segment` tool's output, options, help and errors.
#
#   check-cli.sh path/to/segment
set -uo pipefail

seg=$(readlink -f "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

failures=0
checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run STATUS -- ARGS...: run segment, check the exit status; output in out/err
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

# an error: exit STATUS, exactly one stderr line starting "segment: " and
# matching PATTERN (grep -E), nothing on stdout
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

# expect_out FILE: stdout equals FILE
expect_out() {
  if ! cmp -s out "$1"; then
    fail "output differs from the expected $1:"
    diff -u "$1" out | sed 's/^/    /'
  fi
}

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

echo "cli: $checks checks, $failures failed"
[ "$failures" = 0 ]
