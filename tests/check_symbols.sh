#!/bin/sh
# The library exports exactly the symbols listed in lib/libmpshare.sym, and
# the public headers declare (MPS_API) exactly those: a public call cannot be
# added, removed or left unexported without this list changing with it.
#   check_symbols.sh SRCDIR BUILDDIR
set -eu
srcdir=$1 builddir=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/mps-syms.XXXXXX")
trap 'rm -rf "$work"' EXIT
grep -v '^#' "$srcdir/lib/libmpshare.sym" | sort >"$work/list"
if [ -e "$builddir/lib/.libs/libmpshare.so" ]; then
  nm -D --defined-only "$builddir/lib/.libs/libmpshare.so" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }'
else
  nm -g --defined-only "$builddir/lib/.libs/libmpshare.a" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }'
fi | sort -u >"$work/exported"
# A declaration runs from MPS_API (not the macro's own #define) to its ';'
# and may be wrapped: its name is the first mps_ word followed by '('.
cat "$srcdir"/include/mpshare/*.h |
  awk '/MPS_API/ && !/^#/ { d = ""; on = 1 } on { d = d " " $0 } on && /;/ { print d; on = 0 }' |
  sed -E 's/^[^(]*[^a-z0-9_](mps_[a-z0-9_]+) *\(.*/\1/' | sort -u >"$work/declared"
status=0
if ! diff -u "$work/list" "$work/exported" >"$work/d1"; then
  echo "FAIL: exported symbols (+) differ from lib/libmpshare.sym (-):" >&2
  cat "$work/d1" >&2
  status=1
fi
if ! diff -u "$work/list" "$work/declared" >"$work/d2"; then
  echo "FAIL: MPS_API declarations in include/ (+) differ from lib/libmpshare.sym (-):" >&2
  cat "$work/d2" >&2
  status=1
fi
[ $status -eq 0 ] && echo "ok: $(wc -l <"$work/list") symbols exported, declared and listed"
exit $status
