#!/usr/bin/env bash
# The 'install' test: stage `meson install` of this build, then build and run
# a program against the staged copy with nothing but pkg-config.
#
#   check-install.sh BUILD_ROOT PREFIX HELLO.c CC [CC_ARGS...]
#
# meson installs for the configured PREFIX; with DESTDIR=STAGE the files land
# under STAGE/PREFIX while the .pc file still says prefix=PREFIX, so pkg-config
# is told the staged prefix with --define-variable.
set -euo pipefail

build=$1 prefix=$2 hello=$3
shift 3
cc=("$@")

stage=$build/tests/install-stage
work=$build/tests/install-work
rm -rf "$stage" "$work"
mkdir -p "$work"

fail() { echo "install: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$stage" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "meson install failed"; }

root=$stage$prefix
[ -f "$root/include/segment.h" ] || fail "segment.h not installed under $root/include"
for h in core event customer storage; do
  [ -f "$root/include/segment/$h.h" ] || fail "segment/$h.h not installed"
done

pc=$(find "$root" -name libsegment.pc -print -quit)
[ -n "$pc" ] || fail "libsegment.pc not installed under $root"
libdir=$(dirname "$(dirname "$pc")")
so=$(find "$libdir" -maxdepth 1 -name 'libsegment.so.1' -print -quit)
[ -n "$so" ] || fail "libsegment.so.1 (the soname link) not installed in $libdir"
[ -f "$libdir/libsegment.a" ] || fail "libsegment.a not installed in $libdir"

PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
flags=$(pkg-config --define-variable=prefix="$root" --cflags --libs libsegment) ||
  fail "pkg-config --cflags --libs libsegment failed"
echo "pkg-config: $flags"
case "$flags" in
  *"-L$libdir"*) ;;
  *) fail "pkg-config --libs does not point into the staged $libdir: $flags" ;;
esac

# shellcheck disable=SC2086 # the flags are meant to split
"${cc[@]}" -std=c11 -Wall -Wextra -Werror -o "$work/hello" "$hello" $flags ||
  fail "compiling hello.c with the pkg-config flags failed"

export LD_LIBRARY_PATH=$libdir  # only the staged copy, not the build tree meson adds
resolved=$(ldd "$work/hello" | awk '$1 == "libsegment.so.1" { print $3 }')
[ "$(readlink -f "$resolved")" = "$(readlink -f "$so")" ] ||
  fail "hello resolves libsegment.so.1 to '$resolved', not the staged $so"
out=$("$work/hello") || fail "hello exited with status $?"
echo "$out"
case "$out" in
  "hello from libsegment "*) ;;
  *) fail "unexpected output from hello: $out" ;;
esac

# The installed tool runs against the installed library too.
"$root/bin/segment" --version || fail "installed segment --version failed"
echo "install: ok"
