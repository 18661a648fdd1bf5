#!/bin/sh
# The man pages are clean for mandoc -Tlint (any warning fails), each has
# the sections a reader looks for, and each example that starts with an
# #include is a complete program that compiles without a warning and runs.
# Then, for information, the exported calls that no page names yet.
#   lint_man.sh SRCDIR BUILDDIR CC MANDOC
set -eu
srcdir=$1 builddir=$2 cc=$3 mandoc=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/mps-man.XXXXXX")
trap 'rm -rf "$work"' EXIT
libdir=$builddir/lib/.libs
if [ -z "$mandoc" ] || ! command -v "$mandoc" >/dev/null 2>&1; then
  echo "FAIL: mandoc is needed to lint the man pages (apt-get install mandoc; quickstart.sh does it)" >&2
  exit 1
fi
status=0
for page in "$srcdir"/man/*.[137]; do
  out=$("$mandoc" -Tlint -Wwarning "$page" 2>&1) || true
  if [ -n "$out" ]; then
    echo "FAIL: $page:" >&2
    echo "$out" >&2
    status=1
  fi
  for section in NAME SYNOPSIS DESCRIPTION EXAMPLES "SEE ALSO"; do
    case $page in *.7) [ "$section" = SYNOPSIS ] && continue ;; esac
    grep -q "^\.SH \"*$section\"*\$" "$page" || { echo "FAIL: $page has no $section section" >&2; status=1; }
  done
  case $page in
  *.3)
    for section in "RETURN VALUE" ERRORS; do
      grep -q "^\.SH \"*$section\"*\$" "$page" || { echo "FAIL: $page has no $section section" >&2; status=1; }
    done ;;
  esac
done
for page in "$srcdir"/man/*.[137]; do
  src=$work/$(basename "$page").c
  sed -n '/^\.SH EXAMPLES/,/^\.SH SEE/p' "$page" | sed -n '/^\.EX$/,/^\.EE$/p' | sed '1d;$d' |
    sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\(aq/'"'"'/g' >"$src"
  head -n 1 "$src" | grep -q '^#include' || continue
  if ! $cc -Wall -Wextra -Werror -I"$srcdir/include" -I"$builddir/include" -o "${src%.c}" "$src" \
       -L"$libdir" -Wl,-rpath,"$libdir" -lmpshare -lpthread; then
    echo "FAIL: the example of $page does not compile" >&2
    status=1
  elif ! timeout 120 "${src%.c}" >"$src.out" 2>&1; then
    echo "FAIL: the example of $page fails:" >&2
    cat "$src.out" >&2
    status=1
  fi
done
missing=$(grep -v '^#' "$srcdir/lib/libmpshare.sym" | while read -r sym; do
  grep -qw -- "$sym" "$srcdir"/man/*.[37] || echo "$sym"
done)
[ -z "$missing" ] || echo "note: exported but not yet in a man page:" $missing
[ $status -eq 0 ] && echo "ok: $(ls "$srcdir"/man/*.[37] | wc -l) man pages lint clean"
exit $status
