#!/usr/bin/env bash
# Install the Debian packages the build and the tests need, if missing.
#
#   tools/deps.sh            everything tools/test.sh needs
#   tools/deps.sh --minimal  only what tools/demo.sh needs (the gcc build)
#
# As root, missing packages are installed with apt-get (nothing is done when
# all are present).  Otherwise the apt-get command is printed and the exit
# status is 1 if something is missing.
set -euo pipefail

# the gcc build (build/): g++ for the C++ header test, check for the unit
# tests, libsqlite3-dev for the optional SQLite backend (-Dsqlite=auto)
pkgs=(meson ninja-build pkg-config gcc libc6-dev g++ check libsqlite3-dev)
# the outbox's send windows read the system's time zones (/usr/share/zoneinfo)
pkgs+=(tzdata)
if [ "${1:-}" != "--minimal" ]; then
  # the sanitizer build (build-san/): clang with the ASan/UBSan runtimes
  pkgs+=(clang-14 libclang-rt-14-dev)
  # the rfm-peer test runs the benchmark's SQL peer (../shared/bench) when
  # these are there: the sqlite3 shell, and numpy for its data generator
  pkgs+=(sqlite3 python3-numpy)
  # the abi test: abidiff against abi/libsegment-1.abi
  pkgs+=(abigail-tools)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: not a Debian system; make sure these (or their equivalents) are installed: ${pkgs[*]}" >&2
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with:  sudo apt-get update && sudo $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
