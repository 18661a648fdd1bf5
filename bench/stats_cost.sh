#!/bin/sh
# The live counters' cost: alternates the same benchmark built with
# counters (stats_cost_on) and without (stats_cost_off), ROUNDS times each,
# and prints the median of each figure and the difference.
#
#   stats_cost.sh ON OFF [rounds] [lock ops] [queue messages]
set -e
on=$1 off=$2 rounds=${3:-7} ops=${4:-1000000} msgs=${5:-1000000}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
  ./"$on" "$ops" "$msgs" | sed 's/^/on /' >>"$tmp"
  ./"$off" "$ops" "$msgs" | sed 's/^/off /' >>"$tmp"
  i=$((i + 1))
done
echo "live counters on vs off (configure --disable-stats), median of $rounds alternating rounds"
echo "load: $(uptime)"
printf '%-34s %14s %14s %9s\n' "" "counters on" "counters off" "cost"
for what in lock_ns queue11 queue22; do
  med_on=$(awk -v w="$what" '$1 == "on" && $2 == w {print $3}' "$tmp" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  med_off=$(awk -v w="$what" '$1 == "off" && $2 == w {print $3}' "$tmp" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  case $what in
  lock_ns) label="Value lock, 2 procs (ns/op)"; cost=$(awk -v a="$med_on" -v b="$med_off" 'BEGIN {printf "%+.1f%%", (a / b - 1) * 100}') ;;
  queue11) label="queue 1 -> 1 (msgs/s)"; cost=$(awk -v a="$med_on" -v b="$med_off" 'BEGIN {printf "%+.1f%%", (b / a - 1) * 100}') ;;
  queue22) label="queue 2 -> 2 (msgs/s)"; cost=$(awk -v a="$med_on" -v b="$med_off" 'BEGIN {printf "%+.1f%%", (b / a - 1) * 100}') ;;
  esac
  printf '%-34s %14s %14s %9s\n' "$label" "$med_on" "$med_off" "$cost"
done
