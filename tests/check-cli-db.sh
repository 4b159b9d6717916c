#!/usr/bin/env bash
# The 'cli-db' test: `segment import --db`, and `segment customers`, `rfm`,
# `eval`, `report` and `clv` reading the database with --db
# (database files through the SQLite backend), in the style of check-cli.sh.
#
#   check-cli-db.sh path/to/segment path/to/examples/data
set -uo pipefail

seg=$(readlink -f "$1")
data=$(readlink -f "$2")
. "$(dirname "$0")/cli-lib.sh"
# same FILE: stdout equals FILE
same() { expect_out "$1"; }

ev=$data/sample_events.csv
cu=$data/sample_customers.csv
nev=$(($(wc -l <"$ev") - 1))

# ---- the reference: the same files in memory ----
run 0 -- customers --events "$ev" --customers "$cu" && cp out want-all.csv
run 0 -- customers --events "$ev" --customers "$cu" --as-of 2024-01-01 && cp out want-asof.csv
run 0 -- rfm --events "$ev" --customers "$cu" && cp out want-rfm.csv
defs=$data/../definitions/journeys.seg
run 0 -- eval "$defs" --events "$ev" --customers "$cu" --as-of 2025-01-01 && cp out want-eval.csv
run 0 -- report "$defs" --events "$ev" --customers "$cu" --as-of 2025-01-01 && cp out want-report.csv
clv_args="--model bgnbd --calibration-end 2024-06-30 --unit week --horizon 26w"
# shellcheck disable=SC2086
run 0 -- clv --events "$ev" $clv_args && cp out want-clv.csv
run 0 -- rfm --events "$ev" --customers "$cu" --as-of 2024-01-01 --window 180d && cp out want-rfm-asof.csv
[ "$(wc -l <want-all.csv)" -gt 400 ] || fail "the reference output is too short"

# ---- import, then read ----
run 0 -- import --db shop.db "$ev" --customers "$cu" && {
  grep -qx "$ev: $nev new events, 0 already stored" out || fail "import output: $(cat out)"
  grep -qx "$cu: customers imported" out || fail "import output: $(cat out)"
  [ -s err ] && fail "import wrote to stderr: $(cat err)"
}
[ -f shop.db ] || fail "import made no shop.db"
run 0 -- customers --db shop.db && same want-all.csv
run 0 -- customers --db=shop.db --as-of 2024-01-01 && same want-asof.csv
run 0 -- rfm --db shop.db && same want-rfm.csv
run 0 -- eval "$defs" --db shop.db --as-of 2025-01-01 && same want-eval.csv
run 0 -- report "$defs" --db shop.db --as-of 2025-01-01 && same want-report.csv
# shellcheck disable=SC2086
run 0 -- clv --db shop.db $clv_args && same want-clv.csv
run 0 -- rfm --db shop.db --as-of 2024-01-01 --window 180d && same want-rfm-asof.csv
# again: nothing new, the same answers
run 0 -- import --db shop.db --events "$ev" && {
  grep -qx "$ev: 0 new events, $nev already stored" out || fail "re-import output: $(cat out)"
}
run 0 -- customers --db shop.db && same want-all.csv

# in pieces, from standard input, in two runs
head -n 3001 "$ev" >part1.csv
{ head -n 1 "$ev"; tail -n +3002 "$ev"; } >part2.csv
run 0 -- import --db=pieces.db --events part1.csv
run 0 -- import --db pieces.db - --customers "$cu" <part2.csv && {
  grep -q "^<stdin>: $((nev - 3000)) new events" out || fail "stdin import output: $(cat out)"
}
run 0 -- customers --db pieces.db && same want-all.csv

# ---- usage errors: status 2 ----
run_error 2 "import: no database file given" -- import "$ev"
run_error 2 "import: nothing to import" -- import --db shop.db
run_error 2 "give one or the other" -- customers --db shop.db --events "$ev"
run_error 2 "give one or the other" -- customers --db shop.db --customers "$cu"
run_error 2 "--db given twice" -- customers --db shop.db --db shop.db
run_error 2 "empty file name for --db" -- import --db= "$ev"
run_error 2 "'--db' needs a value" -- customers --db
run_error 2 "no events file given" -- customers --as-of 2024-01-01
run_error 2 "import: unknown option '--as-of'" -- import --db shop.db --as-of 2024-01-01 "$ev"

# ---- data and file errors: status 1 ----
run_error 1 "no database file 'missing.db'" -- customers --db missing.db
[ -e missing.db ] && fail "a read created missing.db"
printf 'customer_id,ts,amount\na,2024-01-01,1.00\nb,2024-01-01,12.3.4\n' >bad-amount.csv
cp shop.db before.db
run_error 1 "bad-amount\.csv:3:" -- import --db shop.db bad-amount.csv
run 0 -- customers --db shop.db && same want-all.csv       # nothing of it stored
printf 'customer_id,ts,amount\nnew1,2024-05-01,5.00\n' >good.csv
run 1 -- import --db shop.db good.csv bad-amount.csv
grep -qx "good.csv: 1 new events, 0 already stored" out || fail "partial import output: $(cat out)"
run 0 -- customers --db shop.db && grep -q '^new1,' out || fail "good.csv was not kept"
echo 'not a database at all, just text' >text.db
run_error 1 "is not an SQLite database" -- customers --db text.db
run_error 1 "is not an SQLite database" -- import --db text.db good.csv
mkdir adir
run_error 1 "is a directory" -- import --db adir good.csv
run_error 1 "directory .*nodir" -- import --db nodir/x.db good.csv

# ---- one writer at a time; readers meanwhile ----
mkfifo fifo
"$seg" import --db busy.db - <fifo >bg.out 2>bg.err &
bg=$!
exec 3>fifo            # the background import now waits for its input
# wait until it holds the writer's lock (flock(1) tries the same lock), so
# that the second writer below cannot take it first on a slow machine
for _ in $(seq 200); do
  [ -e busy.db-seglock ] && ! flock -n busy.db-seglock true 2>/dev/null && break
  sleep 0.05
done
busy=0
for _ in $(seq 50); do
  "$seg" import --db busy.db good.csv >out 2>err
  st=$?
  if [ "$st" = 1 ] && grep -q "open for writing" err; then busy=1; break; fi
  sleep 0.1
done
checks=$((checks + 1))
[ "$busy" = 1 ] || fail "a second writer was not refused: status $st, $(cat err)"
[ "$(wc -l <err)" -eq 1 ] || fail "busy: more than one line on stderr: $(cat err)"
# a reader is welcome (once the writer has made the schema of the new file)
ok=0
for _ in $(seq 50); do
  if "$seg" customers --db busy.db >out 2>err; then ok=1; break; fi
  sleep 0.1
done
checks=$((checks + 1))
[ "$ok" = 1 ] || fail "a reader was refused while a writer had the file: $(cat err)"
cat "$ev" >&3
exec 3>&-
wait "$bg"
st=$?
bg=
checks=$((checks + 1))
[ "$st" = 0 ] || fail "the background import failed ($st): $(cat bg.err)"
run 0 -- import --db busy.db --customers "$cu"   # free again
run 0 -- customers --db busy.db && same want-all.csv

# ---- help ----
for args in "import --help" "import -h" "help import"; do
  # shellcheck disable=SC2086
  run 0 -- $args || continue
  grep -q "Usage: segment import" out || fail "segment $args: no usage line"
  for word in --db --events --customers "FILE.db" "atomic" "crash"; do
    grep -qF -- "$word" out || fail "segment $args does not mention $word"
  done
done
run 0 -- customers --help && { grep -qF -- "--db FILE.db" out || fail "customers --help lacks --db"; }
run 0 -- --help && { grep -qE "^  import " out || fail "segment --help lacks import"; }

finish cli-db
