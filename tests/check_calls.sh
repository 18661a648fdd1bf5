#!/bin/sh
# Dependencies in lib/ run one way: no two files call into each other,
# directly (A calls B and B calls A) or around a longer loop (A calls B,
# B calls C, C calls A). Where a lower file must reach up, it takes a
# callback from the higher one (future.c's cancel step), which is a
# function pointer and not a call that nm sees.
#
# The call graph is read from the library's own objects: file A calls file
# B when A's object has an undefined symbol that B's object defines as a
# function (nm types T and W). Static functions cannot be called across
# files and data is left out. The graph is the one this build made: a
# build without hiredis links remote_stub.c in place of the Redis files.
#   check_calls.sh SRCDIR BUILDDIR
#   check_calls.sh --self-test CC   (the check finds the loops of a small
#                                    tree made for it, and fails on them)
set -eu
work=$(mktemp -d "${TMPDIR:-/tmp}/mps-calls.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ "$1" = --self-test ]; then
  cc=$2
  mkdir -p "$work/t/lib"
  # a -> b -> c -> a around a loop; d <-> e directly; f calls a, one way.
  for f in "a: int b(void); int a(void) { return b(); }" \
    "b: int c(void); int b(void) { return c(); }" \
    "c: int a(void); int c(void) { return 0; } int c2(void) { return a(); }" \
    "d: int e(void); int d(void) { return e(); }" \
    "e: int d(void); int e(void) { return 0; } int e2(void) { return d(); }" \
    "f: int a(void); int f(void) { return a(); }"; do
    name=${f%%:*}
    echo "${f#*: }" >"$work/t/lib/$name.c"
    : >"$work/t/lib/libmpshare_la-$name.lo"
    $cc -c -o "$work/t/lib/libmpshare_la-$name.o" "$work/t/lib/$name.c"
  done
  if out=$(sh "$0" "$work/t" "$work/t" 2>&1); then
    echo "FAIL: the check passed a tree with loops:"; echo "$out"; exit 1
  fi
  printf '%s\n' "$out" | sed 's/^/  (expected) /'
  for want in "FAIL: d.c and e.c call each other:" "  d.c -> e.c: e" "  e.c -> d.c: d" \
    "FAIL: a loop of calls among a.c b.c c.c"; do
    printf '%s\n' "$out" | grep -qxF "$want" || { echo "FAIL: no line \"$want\""; exit 1; }
  done
  printf '%s\n' "$out" | grep -q "f\.c" && { echo "FAIL: f.c is in no loop"; exit 1; }
  echo "ok: the check finds both loops of its test tree"
  exit 0
fi
srcdir=$1 builddir=$2

# One object per lib/*.c this build compiled: the PIC one libtool puts in
# .libs/, else the static one (a --disable-shared build). Objects of
# sources that no longer exist are left over, not part of the library.
n=0
for lo in "$builddir"/lib/libmpshare_la-*.lo; do
  [ -e "$lo" ] || break
  base=$(basename "$lo" .lo)
  [ -e "$srcdir/lib/${base#libmpshare_la-}.c" ] || continue
  obj="$builddir/lib/.libs/$base.o"
  [ -e "$obj" ] || obj="$builddir/lib/$base.o"
  [ -e "$obj" ] || { echo "FAIL: no object for $lo" >&2; exit 1; }
  file=${base#libmpshare_la-}.c
  nm "$obj" | awk -v f="$file" '
    NF == 3 && ($2 == "T" || $2 == "W") { print "D", f, $3 }
    NF == 2 && $1 == "U" { print "U", f, $2 }' >>"$work/syms"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no lib/libmpshare_la-*.lo in $builddir: build first" >&2; exit 1; }

# The edges (caller callee symbol), then every loop among the files: the
# transitive closure (Warshall; a few dozen files) gives each file the
# files it reaches, and files that reach each other share a loop.
awk '
  $1 == "D" { def[$3] = $2; next }
  { use[++nu] = $2 " " $3 }
  END {
    for (i = 1; i <= nu; i++) {
      split(use[i], u, " ")
      if ((u[2] in def) && def[u[2]] != u[1]) print u[1], def[u[2]], u[2]
    }
  }' "$work/syms" | sort -u >"$work/edges"

awk -v files="$n" '
  { e[$1, $2] = e[$1, $2] (e[$1, $2] == "" ? "" : ", ") $3; r[$1, $2] = 1
    if (!($1 in id)) { id[$1] = ++n; name[n] = $1 }
    if (!($2 in id)) { id[$2] = ++n; name[n] = $2 } }
  END {
    for (k = 1; k <= n; k++) for (i = 1; i <= n; i++) if (r[name[i], name[k]])
      for (j = 1; j <= n; j++) if (r[name[k], name[j]]) r[name[i], name[j]] = 1
    bad = 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) {
      a = name[i]; b = name[j]
      if (e[a, b] != "" && e[b, a] != "") {
        printf "FAIL: %s and %s call each other:\n  %s -> %s: %s\n  %s -> %s: %s\n", \
          a, b, a, b, e[a, b], b, a, e[b, a]
        bad = 1
      }
    }
    for (i = 1; i <= n; i++) {
      if (done[i] || !r[name[i], name[i]]) continue
      loop = name[i]; size = 1
      for (j = i + 1; j <= n; j++)
        if (r[name[i], name[j]] && r[name[j], name[i]]) { loop = loop " " name[j]; done[j] = 1; size++ }
      if (size > 2) { printf "FAIL: a loop of calls among %s\n", loop; bad = 1 }
    }
    for (p in e) if (e[p] != "") ne++
    if (ne == 0) { print "FAIL: no call between files was read (nm output not understood?)"; bad = 1 }
    if (!bad) printf "ok: %d files, %d one-way dependencies between them, no loop\n", files, ne
    exit bad
  }' "$work/edges"
