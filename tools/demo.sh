#!/usr/bin/env bash
# The demo (see README.md): build build/ if needed and run examples/demo over
# the bundled sample: import the events and the customers, print a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
tools/deps.sh --minimal
# build progress goes to stderr; stdout is the demo's output
{ setup_gcc_build && ninja -C build examples/demo; } >&2
exec build/examples/demo examples/data/sample_events.csv examples/data/sample_customers.csv
