#!/bin/sh
# Header comments keep one shape and agree with the man pages: every public
# call (MPS_API) follows a comment that says what it returns ("Returns")
# and which errors ("Errors", or "Returns, Errors: as ..."), and every
# errno name that comment gives is also in the man page that names the
# call, so that neither can grow an error the other lacks.
#   check_comments.sh SRCDIR
set -eu
srcdir=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/mps-comments.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Headers not in this shape yet, each with its reason. None may be added
# without one. (None left.)
skip=""

# Each man page and the calls its NAME section lists, then the errno names
# it mentions anywhere but in its section headings.
for page in "$srcdir"/man/*.[37]; do
  sed -n '/^\.SH NAME/,/^\.SH/p' "$page" | grep -oE 'mps_[a-z0-9_]+' |
    sed "s|\$| $(basename "$page")|" >>"$work/names"
  grep -v '^\.SH' "$page" | grep -oE '\bE[A-Z]{2,}[A-Z0-9]*\b' | sort -u \
    >"$work/errs.$(basename "$page")"
done
# mpshare(7) documents the calls of common.h in its own words.
for f in mps_strerror mps_err_name mps_version mps_version_number mps_unlink; do
  grep -q "^$f " "$work/names" || echo "$f mpshare.7" >>"$work/names"
done

status=0
for h in "$srcdir"/include/mpshare/*.h; do
  case " $skip " in *" $(basename "$h") "*) continue ;; esac
  # One line per declaration: its name, whether its comment has Returns and
  # Errors, then the errno names the comment gives from "Errors" on (a
  # comment serves the declarations that follow it up to the next one).
  awk '
    /\/\*/ { c = ""; inc = 1 }
    inc { c = c " " $0 }
    /\*\// { inc = 0 }
    /MPS_API/ && !/^#/ { d = ""; on = 1 }
    on { d = d " " $0 }
    on && /;/ {
      on = 0
      name = d; sub(/\(.*/, "", name); sub(/.*[^a-z0-9_]/, "", name)
      errs = ""; s = ""
      if (match(c, /Errors/)) s = substr(c, RSTART)
      while (match(s, /(^|[^A-Za-z0-9_])E[A-Z][A-Z][A-Z0-9]*/)) {
        e = substr(s, RSTART, RLENGTH); sub(/^[^E]/, "", e); errs = errs " " e
        s = substr(s, RSTART + RLENGTH)
      }
      printf "%s %d %d%s\n", name, c ~ /Returns/, c ~ /Errors/, errs
    }' "$h" >"$work/decls"
  while read -r name has_ret has_err errs; do
    [ "$has_ret" = 1 ] || { echo "FAIL: $(basename "$h"): $name: no Returns in its comment"; status=1; }
    [ "$has_err" = 1 ] || { echo "FAIL: $(basename "$h"): $name: no Errors in its comment"; status=1; }
    page=$(awk -v n="$name" '$1 == n { print $2; exit }' "$work/names")
    if [ -z "$page" ]; then
      echo "FAIL: $name is in no man page's NAME section"
      status=1
      continue
    fi
    for e in $errs; do
      grep -qx "$e" "$work/errs.$page" ||
        { echo "FAIL: $name: $(basename "$h") gives $e, man/$page does not"; status=1; }
    done
  done <"$work/decls"
done
[ $status -eq 0 ] && echo "ok: every call's comment has its Returns and Errors, and its man page every errno of them (skipped: $skip)"
exit $status
