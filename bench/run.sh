#!/bin/sh
# Runs each benchmark program given, one after the other, with a heading.
# Numbers are only comparable within one program's output: each program
# alternates mpshare and its peers in the same run.
set -e
echo "mpshare benchmarks on $(nproc) CPUs, $(uname -srm)"
for prog in "$@"; do
  echo
  echo "== $prog"
  ./"$prog"
done
