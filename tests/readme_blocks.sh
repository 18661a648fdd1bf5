#!/bin/sh
# Every ```c block of README.md whose first line is an #include is a
# complete program: it must compile without a warning against the built
# library and exit with status 0. Blocks that start otherwise are
# fragments and are not built.
#   readme_blocks.sh SRCDIR BUILDDIR CC
set -eu
srcdir=$1 builddir=$2 cc=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/mps-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT
awk -v dir="$work" '
  /^```c$/ { inblock = 1; first = 1; next }
  /^```/   { if (inblock && keep) close(file); inblock = 0; keep = 0; next }
  inblock && first { first = 0; keep = /^#include/; if (keep) file = sprintf("%s/block%02d.c", dir, ++n) }
  inblock && keep { print > file }
' "$srcdir/README.md"
libdir=$builddir/lib/.libs
set -- "$work"/block*.c
[ -e "$1" ] || { echo "no complete C program found in README.md" >&2; exit 1; }
status=0
for src in "$@"; do
  exe=${src%.c}
  if ! $cc -Wall -Wextra -Werror -I"$srcdir/include" -I"$builddir/include" -o "$exe" "$src" \
       -L"$libdir" -Wl,-rpath,"$libdir" -lmpshare -lpthread; then
    echo "FAIL: README block $(basename "$src") does not compile:" >&2
    cat -n "$src" >&2
    status=1
    continue
  fi
  if ! timeout 120 "$exe" >"$exe.out" 2>&1; then
    echo "FAIL: README block $(basename "$src") exits with an error:" >&2
    cat "$exe.out" >&2
    status=1
    continue
  fi
  echo "ok: README block $(basename "$src") ($(head -c 60 "$exe.out" | tr '\n' ' '))"
done
exit $status
