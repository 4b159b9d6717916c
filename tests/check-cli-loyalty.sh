#!/usr/bin/env bash
# The 'cli-loyalty' test: `segment loyalty`: output, --as-of, --program,
# --db (the ledger stored with the SQLite backend), help and errors.
# Expected outputs are worked out from the rules of doc/loyalty.md in the
# comments.
#
#   check-cli-loyalty.sh path/to/segment [sqlite]
set -uo pipefail

seg=$(readlink -f "$1")
with_db=${2:-}
. "$(dirname "$0")/cli-lib.sh"

header='customer_id,tier,points,next_tier,spend_to_next_tier'

cat >prog.seg <<'EOF2'
# 1 point per 1.00, 2x on books; tiers by spend over 30 days
program shop {
  earn 1 point per 1.00;
  qualify spend over 30d;
  bonus category "books" multiplier 2;
  tier member;
  tier silver from 100.00 multiplier 1.5;
  tier gold from 500.00 multiplier 2;
}
segment unrelated: orders > 0;
EOF2

cat >ev.csv <<'EOF2'
event_id,customer_id,ts,type,amount,order_id,category,refund_of,name
e1,ann,2024-01-01T10:00:00Z,purchase,80.00,o1,toys,,
e2,ann,2024-01-02T10:00:00Z,purchase,40.00,o2,books,,
e3,ann,2024-01-03T10:00:00Z,purchase,20.00,o3,toys,,
e4,"b,c",2024-01-05T10:00:00Z,purchase,600.00,o4,toys,,
e5,"b,c",2024-01-06T10:00:00Z,refund,-300.00,,toys,o4,
e6,dee,2024-01-02T10:00:00Z,engagement,,,,,email_open
e7,gus,2024-01-04T10:00:00Z,purchase,12.34,o7,books,,
EOF2

# Default as-of: 2024-01-06T10:00:01Z.
# ann: 80.00 -> 80 (member); 40.00 books at member: 2 x 40 = 80, crosses
#   100.00 (120.00 in the window): silver; 20.00 at silver: 1.5 x 20 = 30.
#   190 points; 140.00 in the window: 360.00 to gold.
# "b,c": 600.00 -> 600 at member (then gold); a refund of half the order
#   takes back 300: 300 points; the window holds 600.00 - 300.00 = 300.00:
#   below gold, kept in grace? grace is 0: down to silver at once; next
#   tier gold, 200.00 to go.
# dee: only an engagement: no row.
# gus: 12.34 books: 2 x 12.34 = 24.68 -> 24; 87.66 to silver.
cat >want.csv <<EOF2
$header
ann,silver,190,gold,360.00
"b,c",silver,300,gold,200.00
gus,member,24,silver,87.66
EOF2
run 0 -- loyalty prog.seg --events ev.csv && expect_out want.csv
run 0 -- loyalty --events=ev.csv prog.seg --program shop && expect_out want.csv

# As of 2024-01-03T00:00:00Z: ann has e1 and e2 (160 points, silver,
# 120.00 spent: 380.00 to gold); "b,c" and gus have nothing yet.
cat >want-early.csv <<EOF2
$header
ann,silver,160,gold,380.00
EOF2
run 0 -- loyalty prog.seg --events ev.csv --as-of 2024-01-03 && expect_out want-early.csv

# As of 2024-02-04T10:00:01Z (30 days and 1 second after ann's last
# purchase) every purchase has left the window: tiers drop to member
# (no grace); points do not expire.
cat >want-late.csv <<EOF2
$header
ann,member,190,silver,100.00
"b,c",member,300,silver,100.00
gus,member,24,silver,100.00
EOF2
run 0 -- loyalty prog.seg --events ev.csv --as-of 2024-02-04T10:00:01Z && expect_out want-late.csv

# The top tier: no next tier, no spend.
cat >ev2.csv <<'EOF2'
customer_id,ts,amount,order_id
zoe,2024-01-01,900.00,z1
EOF2
cat >want-top.csv <<EOF2
$header
zoe,gold,900,,
EOF2
run 0 -- loyalty prog.seg --events ev2.csv && expect_out want-top.csv

# --db: the same figures from a database file; the ledger is stored with
# the file the first time a writer attaches it (here: never, the command
# reads), and read back the same way every time.
if [ -n "$with_db" ]; then
  run 0 -- import --db shop.db ev.csv
  run 0 -- loyalty prog.seg --db shop.db && expect_out want.csv
  run 0 -- loyalty prog.seg --db shop.db --as-of 2024-01-03 && expect_out want-early.csv
fi

# ---- help ----
run 0 -- loyalty --help && grep -q 'customer_id,tier,points,next_tier,spend_to_next_tier' out ||
  fail "loyalty --help does not name the columns"
run 0 -- help loyalty && grep -q -- '--as-of' out || fail "help loyalty"
run 0 -- --help && grep -q 'loyalty' out || fail "--help does not list loyalty"

# ---- usage errors: status 2 ----
run_error 2 "no program file given" -- loyalty --events ev.csv
run_error 2 "no events file given" -- loyalty prog.seg
run_error 2 "give one or the other" -- loyalty prog.seg --events ev.csv --db x.db
run_error 2 "--as-of: not a time: 'soon'" -- loyalty prog.seg --events ev.csv --as-of soon
run_error 2 "unknown option '--bins'" -- loyalty prog.seg --events ev.csv --bins 3
run_error 2 "--as-of given twice" -- loyalty prog.seg --events ev.csv --as-of 2024-01-01 --as-of=2024-02-01
run_error 2 "one program file only" -- loyalty prog.seg prog.seg --events ev.csv

# ---- data errors: status 1 ----
cat >bad.seg <<'EOF2'
program shop {
  earn 1 point per 1.00;
  tier member;
  tier silver from 100.00;
  tier gold from 50.00;
}
EOF2
run_error 1 "^segment: bad\.seg:5:18: tiers are not in increasing order" -- loyalty bad.seg --events ev.csv
cat >overlap.seg <<'EOF2'
program shop {
  earn 1 point per 1.00;
  bonus category "books" multiplier 2;
  bonus channel "web" points 10;
  tier member;
}
EOF2
run_error 1 "overlap\.seg:4:3: bonus rules overlap" -- loyalty overlap.seg --events ev.csv
run_error 1 "no program 'other'" -- loyalty prog.seg --events ev.csv --program other
run_error 1 "missing\.seg" -- loyalty missing.seg --events ev.csv
run_error 1 "missing\.csv" -- loyalty prog.seg --events missing.csv

finish cli-loyalty
