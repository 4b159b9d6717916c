#!/usr/bin/env bash
# The demo (see README.md): build build/ if needed and run, over the bundled
# sample, examples/demo (import the events and the customers, print a
# summary and one line per customer), then the RFM named map of
# examples/definitions/rfm_map.seg (segment sizes and revenue shares), the
# loyalty tiers of examples/definitions/loyalty.seg, and the actions the
# journeys of examples/definitions/journeys.seg send over the sample.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
tools/deps.sh --minimal
# build progress goes to stderr; stdout is the demo's output
{ setup_gcc_build && ninja -C build examples/demo tools/segment; } >&2
build/examples/demo examples/data/sample_events.csv examples/data/sample_customers.csv
echo
echo "RFM segments (segment report examples/definitions/rfm_map.seg):"
# (the overlap matrix is left out: a segment set's labels never overlap)
build/tools/segment report examples/definitions/rfm_map.seg \
  --events examples/data/sample_events.csv --customers examples/data/sample_customers.csv |
  sed '/^overlap,/,$d'
echo
echo "Loyalty (segment loyalty examples/definitions/loyalty.seg), the first customers:"
build/tools/segment loyalty examples/definitions/loyalty.seg \
  --events examples/data/sample_events.csv | awk 'NR <= 6'
echo
echo "Journeys (segment run examples/definitions/journeys.seg --until 2025-01-01):"
echo "actions sent over the sample, per journey and action:"
build/tools/segment run examples/definitions/journeys.seg \
  --events examples/data/sample_events.csv --customers examples/data/sample_customers.csv \
  --until 2025-01-01 | awk -F, 'NR > 1 { n[$3 "," $5]++ } END { for (k in n) print n[k] "," k }' |
  LC_ALL=C sort -t, -k1,1nr -k2 | awk 'BEGIN { print "actions,journey,action" } { print }'
