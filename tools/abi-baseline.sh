#!/usr/bin/env bash
# Write the ABI baseline the 'abi' test compares the library with:
# abi/libsegment-1.abi, from the gcc build in build/ (tools/test.sh makes
# it).  Run it when a release adds to the ABI, and commit the result with
# the release; never to make an incompatible change pass.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=build/lib/libsegment.so.1.0.0
[ -f "$lib" ] || { echo "abi-baseline: no $lib (build first: tools/test.sh)" >&2; exit 1; }
abidw --headers-dir include --no-corpus-path "$lib" >abi/libsegment-1.abi
echo "abi-baseline: wrote abi/libsegment-1.abi ($(grep -c '<elf-symbol' abi/libsegment-1.abi) symbols)"
