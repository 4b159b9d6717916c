#!/usr/bin/env bash
# The 'abi' test: the shared library against the ABI baseline kept in the
# repository (abi/libsegment-1.abi, written by tools/abi-baseline.sh).
# Additions (new functions, new symbol versions) are reported and pass; a
# change that breaks a program built against the baseline fails.
#
#   check-abi.sh ABIDIFF LIB BASELINE INCLUDE_DIR
set -uo pipefail
abidiff=$1 lib=$2 baseline=$3 inc=$4
"$abidiff" --headers-dir1 "$inc" --headers-dir2 "$inc" "$baseline" "$lib" >abidiff.out 2>&1
rc=$?
# abidiff's status is a bit set: 1 error, 2 usage error, 4 ABI change,
# 8 incompatible ABI change
if [ $((rc & 3)) -ne 0 ]; then
  echo "abi: abidiff failed (status $rc):"
  cat abidiff.out
  exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
  echo "abi: INCOMPATIBLE change against $baseline:"
  cat abidiff.out
  exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
  echo "abi: compatible changes against the baseline (additions):"
  cat abidiff.out
else
  echo "abi: the same as the baseline"
fi
exit 0
