# shellcheck shell=bash
# Sourced by tools/test.sh and tools/demo.sh: how the two build directories
# are configured.  Run from the top of the source tree.

# The compilers of build-san/: clang (ASan and UBSan from libclang-rt), for C
# and for the C++ header test alike, so one sanitizer runtime is linked.
san_cc() {
  if command -v clang-14 >/dev/null 2>&1; then echo clang-14; else echo clang; fi
}
san_cxx() {
  if command -v clang++-14 >/dev/null 2>&1; then echo clang++-14; else echo clang++; fi
}

# setup_build DIR CC CXX [MESON_ARGS...]: configure DIR unless it is configured;
# reconfigure when a test source appeared or changed since (tests/meson.build
# adds a Check suite only for the check_*.c files that exist).
setup_build() {
  local dir=$1 cc=$2 cxx=$3
  shift 3
  if [ ! -f "$dir/build.ninja" ]; then
    # a directory left by a failed configure is wiped; anything else is kept
    if [ -d "$dir/meson-private" ]; then rm -rf "$dir"; fi
    CC=$cc CXX=$cxx meson setup "$dir" "$@"
  elif [ -n "$(find tests -maxdepth 1 -name 'check_*.c' -newer "$dir/build.ninja" 2>/dev/null)" ]; then
    meson setup --reconfigure "$dir"
  fi
}

setup_gcc_build() {
  setup_build build gcc g++
}

setup_san_build() {
  setup_build build-san "$(san_cc)" "$(san_cxx)" -Db_sanitize=address,undefined -Db_lundef=false
}
