#!/usr/bin/env bash
# The 'cli-journey' test: `segment run`: actions of a replay, a --db run
# continued by a later one, help and errors.  Expected rows are worked out
# from the definition in the comments (doc/journey.md).
#
#   check-cli-journey.sh path/to/segment
set -uo pipefail

seg=$(readlink -f "$1")
. "$(dirname "$0")/cli-lib.sh"

cat >defs.seg <<'EOF2'
journey r {
  enter when orders >= 1;
  state wait { after 60d since last_purchase -> offer do "email:discount"(percent: 5); }
  state offer { on purchase -> won; after 14d -> exit do "email:last_call"; }
  state won { do "tag:reactivated"; -> exit; }
}
EOF2

# events out of time order in the file: the replay sorts them
cat >ev.csv <<'EOF2'
event_id,customer_id,ts,type,amount,quantity,order_id,channel,category,sku,refund_of,name
e2,bob,2024-02-01T12:00:00Z,purchase,20.00,1,o2,,,,,
e1,ann,2024-01-01T10:00:00Z,purchase,10.00,1,o1,,,,,
e3,ann,2024-03-05T09:00:00Z,purchase,5.00,1,o3,,,,,
EOF2

# ann: in at 01-01 10:00; 60 days on (03-01 10:00) the offer; her purchase
# of 03-05 09:00 wins.  bob: in at 02-01 12:00, offer 04-01 12:00, last
# call 14 days on (04-15 12:00), then out.
cat >want.csv <<'EOF2'
time,customer_id,journey,state,action,params
2024-03-01T10:00:00Z,ann,r,offer,email:discount,percent=5
2024-03-05T09:00:00Z,ann,r,won,tag:reactivated,
2024-04-01T12:00:00Z,bob,r,offer,email:discount,percent=5
2024-04-15T12:00:00Z,bob,r,,email:last_call,
EOF2
run 0 -- run defs.seg --events ev.csv --until 2024-06-01 && expect_out want.csv

# until earlier: only what happened by then
head -2 want.csv >want2.csv
run 0 -- run defs.seg --events ev.csv --until 2024-03-02 && expect_out want2.csv

# --db: the first run to 03-02, the second goes on to 06-01 (the events given
# again are not replayed: nothing twice)
if [ "${SEG_HAVE_SQLITE:-1}" = 1 ]; then
  run 0 -- run defs.seg --events ev.csv --db j.db --until 2024-03-02 && expect_out want2.csv
  { head -1 want.csv; tail -n +3 want.csv; } >want3.csv
  run 0 -- run defs.seg --events ev.csv --db j.db --until 2024-06-01 && expect_out want3.csv
  run 0 -- run defs.seg --db j.db --until 2024-06-01 && { head -1 want.csv >want4.csv; expect_out want4.csv; }
fi

# help and errors
run 0 -- run --help && grep -q "time,customer_id,journey,state,action,params" out ||
  fail "run --help lacks the columns"
run_error 2 "no --until" -- run defs.seg --events ev.csv
run_error 2 "no events given" -- run defs.seg --until 2024-01-01
run_error 2 "--until: not a time" -- run defs.seg --events ev.csv --until soon
run_error 2 "--until given twice" -- run defs.seg --events ev.csv --until 2024-01-01 --until 2024-02-01
printf 'journey x {\n  enter when true;\n  state a { on purchase -> b; }\n}\n' >bad.seg
run_error 1 "bad.seg:3:28: transition to unknown state 'b'" -- run defs.seg bad.seg --events ev.csv --until 2024-06-01
printf 'segment s: true;\n' >nojourney.seg
run_error 1 "no journey" -- run nojourney.seg --events ev.csv --until 2024-06-01

finish cli-journey
