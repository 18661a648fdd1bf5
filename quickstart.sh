#!/bin/sh
# Builds mpshare from a fresh clone and runs the shared-counter example.
#
# Installs the missing build dependencies with apt-get when run as root (or
# prints the apt-get line to run otherwise), then autoreconf, configure, make.
# MPS_CI_TOOLS=1 also installs clang and clang-format, which .ci/run uses.
# Extra arguments go to ./configure (for example --prefix=/usr/local).
set -eu
cd "$(dirname "$0")"

need_pkgs=""
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd autoreconf || need_pkgs="$need_pkgs autoconf"
have_cmd automake || need_pkgs="$need_pkgs automake"
have_cmd libtoolize || need_pkgs="$need_pkgs libtool"
have_cmd pkg-config || need_pkgs="$need_pkgs pkg-config"
have_cmd make || need_pkgs="$need_pkgs make"
have_cmd cc || need_pkgs="$need_pkgs gcc libc6-dev"
pkg-config --exists criterion 2>/dev/null || need_pkgs="$need_pkgs libcriterion-dev"
# The Redis backend (redis:// queue names) and the server its tests start.
pkg-config --exists hiredis 2>/dev/null || need_pkgs="$need_pkgs libhiredis-dev"
have_cmd redis-server || [ -x /usr/bin/redis-server ] || need_pkgs="$need_pkgs redis-server"
have_cmd mandoc || need_pkgs="$need_pkgs mandoc" # make check lints the man pages
# CI (.ci/run) also builds with clang, checks the layout with clang-format,
# fuzzes (clang's libFuzzer) and runs the examples under valgrind.
if [ "${MPS_CI_TOOLS:-0}" = 1 ]; then
  have_cmd clang || need_pkgs="$need_pkgs clang"
  have_cmd clang-format || need_pkgs="$need_pkgs clang-format"
  [ -n "$(find /usr/lib/llvm-*/lib/clang -name 'libclang_rt.fuzzer*.a' 2>/dev/null | head -1)" ] ||
    need_pkgs="$need_pkgs libclang-rt-14-dev"
  have_cmd valgrind || need_pkgs="$need_pkgs valgrind"
fi

if [ -n "$need_pkgs" ]; then
  if [ "$(id -u)" = 0 ] && have_cmd apt-get; then
    echo "quickstart: installing$need_pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $need_pkgs
  else
    echo "quickstart: missing build dependencies. Install them with:" >&2
    echo "  sudo apt-get install$need_pkgs" >&2
    exit 1
  fi
fi

autoreconf -fi
./configure "$@"
make -j"$(nproc 2>/dev/null || echo 2)"

echo
echo "quickstart: running examples/increment_decrement"
./examples/increment_decrement
