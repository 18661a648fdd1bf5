#!/bin/sh
# The live counters' cost: alternates the same benchmark built with
# counters (stats_cost_on) and without (stats_cost_off), ROUNDS times each,
# and prints the median and the best of each figure and the differences.
# Other load only ever slows a round down, so on a busy machine the best
# rounds are the steadier comparison.
#
#   stats_cost.sh ON OFF [rounds] [lock ops] [queue messages]
set -e
on=$1 off=$2 rounds=${3:-31} ops=${4:-200000} msgs=${5:-300000}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
i=0
# Each round runs both, in turns of order, so that neither always goes
# first after the other's caches and frequency.
while [ "$i" -lt "$rounds" ]; do
  if [ $((i % 2)) -eq 0 ]; then first=$on second=$off; else first=$off second=$on; fi
  for prog in "$first" "$second"; do
    side=on
    [ "$prog" = "$off" ] && side=off
    ./"$prog" "$ops" "$msgs" | sed "s/^/$side /" >>"$tmp"
  done
  i=$((i + 1))
done
# stat FILE SIDE WHAT: "median best" of that figure (best: lowest ns, highest rate)
stat() {
  awk -v s="$2" -v w="$3" '$1 == s && $2 == w {print $3}' "$1" | sort -g |
    awk -v w="$3" '{a[NR] = $1} END {print a[int((NR + 1) / 2)], (w ~ /_ns$/ ? a[1] : a[NR])}'
}
echo "live counters on vs off (configure --disable-stats), $rounds alternating rounds"
echo "load: $(uptime)"
printf '%-30s %22s %22s %16s\n' "" "on: median / best" "off: median / best" "cost: med / best"
for what in lock_ns lock1_ns queue11 queue11_ns queue22; do
  set -- $(stat "$tmp" on "$what") $(stat "$tmp" off "$what")
  case $what in
  lock_ns) label="Value lock, 2 procs (ns/op)" dir=1 ;;
  lock1_ns) label="Value lock, 1 proc (CPU ns/op)" dir=1 ;;
  queue11) label="queue 1 -> 1 (msgs/s)" dir=-1 ;;
  queue11_ns) label="queue 1 -> 1 (CPU ns/msg)" dir=1 ;;
  *) label="queue 2 -> 2 (msgs/s)" dir=-1 ;;
  esac
  cost=$(awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" -v k="$dir" 'BEGIN {
    if (k > 0) printf "%+.1f%% / %+.1f%%", (a / c - 1) * 100, (b / d - 1) * 100
    else printf "%+.1f%% / %+.1f%%", (c / a - 1) * 100, (d / b - 1) * 100 }')
  printf '%-30s %22s %22s %16s\n' "$label" "$1 / $2" "$3 / $4" "$cost"
done
