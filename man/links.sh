#!/bin/sh
# Installs (or removes) one stub page per function, "man3/mps_queue_put.3"
# containing ".so man3/mps_queue.3", so that `man mps_queue_put` finds the
# family page. The names are read from each page's NAME section.
#   links.sh install|uninstall SRCDIR MAN3DIR
set -eu
action=$1 srcdir=$2 man3dir=$3
for page in "$srcdir"/man/*.3; do
  base=$(basename "$page")
  sed -n '/^\.SH NAME$/,/^\.SH /p' "$page" | grep -v '^\.' | sed 's/\\-.*//' | tr ',' '\n' |
    tr -d ' ' | grep -E '^[A-Za-z_][A-Za-z0-9_]*$' | while read -r name; do
      [ "$name.3" = "$base" ] && continue
      case $action in
      install) printf '.so man3/%s\n' "$base" >"$man3dir/$name.3" ;;
      uninstall) rm -f "$man3dir/$name.3" ;;
      esac
    done
done
