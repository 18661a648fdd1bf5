#!/bin/sh
# Runs every example once under a wrapper command ($WRAPPER: valgrind, or
# empty for a ThreadSanitizer build), with arguments small enough for a
# slow wrapper, and fails if one fails. The examples named in
# $MPS_SKIP_EXAMPLES are skipped, and $MPS_SKIP_WHY says why.
# Usage: run-examples.sh BUILDDIR
set -u
dir=$1
pass=0 fail=0 skip=0
for spec in "increment_decrement 20000" "shared_array 2 2000" named_counter process_workers \
  semaphore_pool event_start condition_counter barrier_phases worker_queue \
  "producer_consumer 2 2 2000" priority_jobs pool_map futures; do
  set -- $spec
  ex=$1
  shift
  case " ${MPS_SKIP_EXAMPLES:-} " in *" $ex "*)
    echo "SKIP: $ex (${MPS_SKIP_WHY:-})"
    skip=$((skip + 1))
    continue ;;
  esac
  if ${WRAPPER:-} "$dir/examples/$ex" "$@" > "$dir/run-examples-$ex.log" 2>&1; then
    echo "PASS: $ex"
    pass=$((pass + 1))
  else
    echo "FAIL: $ex (exit $?); its output:"
    tail -40 "$dir/run-examples-$ex.log"
    fail=$((fail + 1))
  fi
done
echo "examples: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
