#!/bin/sh
# The live counters' cost, two ways, in one run:
# - instructions (when valgrind is installed): callgrind counts the
#   instructions of one process's uncontended lock loop and FIFO put/get
#   loop, built with counters (stats_cost_on) and without
#   (stats_cost_off). The same on any machine under any load.
# - time: alternates the two programs ROUNDS times, each round running
#   on, off and on again (a control: what identical programs differ by on
#   this machine now), in turns of order, and prints the median and the
#   best of each figure and the differences. Other load only ever slows a
#   round down, so on a busy machine the best rounds are the steadier
#   comparison.
#
#   stats_cost.sh ON OFF [rounds] [lock ops] [queue messages]
set -e
on=$1 off=$2 rounds=${3:-31} ops=${4:-200000} msgs=${5:-300000}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# ir PROG LOOP N: instructions callgrind counts in counted_loop (N loops)
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect=counted_loop \
    ./"$1" --loop "$2" "$3" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
iters=200000
if command -v valgrind >/dev/null 2>&1; then
  echo "instructions per iteration (callgrind, $iters iterations in one process)"
  printf '%-36s %10s %10s %8s\n' "" "on" "off" "cost"
  for loop in lock queue; do
    a=$(ir "$on" $loop $iters) b=$(ir "$off" $loop $iters)
    case $loop in
    lock) label="Value lock acquire + release" ;;
    *) label="FIFO put + get (64 bytes)" ;;
    esac
    awk -v l="$label" -v a="$a" -v b="$b" -v n=$iters 'BEGIN {
      if (a == "" || b == "") { printf "%-36s %s\n", l, "(callgrind failed)"; exit }
      printf "%-36s %10.1f %10.1f %+7.2f%%\n", l, a / n, b / n, (a / b - 1) * 100 }'
  done
else
  echo "valgrind is not installed: no instruction counts (apt-get install valgrind)"
fi
echo

i=0
# Each round runs on, off and on again (side "ctl"), in turns of order,
# so that none always goes first after another's caches and frequency.
while [ "$i" -lt "$rounds" ]; do
  case $((i % 3)) in
  0) order="on off ctl" ;;
  1) order="off ctl on" ;;
  *) order="ctl on off" ;;
  esac
  for side in $order; do
    prog=$on
    [ "$side" = off ] && prog=$off
    ./"$prog" "$ops" "$msgs" | sed "s/^/$side /" >>"$tmp"
  done
  i=$((i + 1))
done
# stat FILE SIDE WHAT: "median best" of that figure (best: lowest ns, highest rate)
stat() {
  awk -v s="$2" -v w="$3" '$1 == s && $2 == w {print $3}' "$1" | sort -g |
    awk -v w="$3" '{a[NR] = $1} END {print a[int((NR + 1) / 2)], (w ~ /_ns$/ ? a[1] : a[NR])}'
}
# cost A B C D DIR: "+x% / +y%", how much worse A is than C and B than D
cost() {
  awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" -v k="$5" 'BEGIN {
    if (k > 0) printf "%+.1f%% / %+.1f%%", (a / c - 1) * 100, (b / d - 1) * 100
    else printf "%+.1f%% / %+.1f%%", (c / a - 1) * 100, (d / b - 1) * 100 }'
}
echo "time: counters on vs off (configure --disable-stats), $rounds rounds of on, off, on again"
echo "load: $(uptime)"
printf '%-30s %22s %22s %16s %16s\n' "" "on: median / best" "off: median / best" \
  "cost: med / best" "on again vs on"
for what in lock_ns lock1_ns queue1_ns queue11 queue11_ns queue22; do
  set -- $(stat "$tmp" on "$what") $(stat "$tmp" off "$what") $(stat "$tmp" ctl "$what")
  case $what in
  lock_ns) label="Value lock, 2 procs (ns/op)" dir=1 ;;
  lock1_ns) label="Value lock, 1 proc (CPU ns/op)" dir=1 ;;
  queue1_ns) label="queue put+get, 1 proc (CPU ns)" dir=1 ;;
  queue11) label="queue 1 -> 1 (msgs/s)" dir=-1 ;;
  queue11_ns) label="queue 1 -> 1 (CPU ns/msg)" dir=1 ;;
  *) label="queue 2 -> 2 (msgs/s)" dir=-1 ;;
  esac
  printf '%-30s %22s %22s %16s %16s\n' "$label" "$1 / $2" "$3 / $4" \
    "$(cost "$1" "$2" "$3" "$4" $dir)" "$(cost "$5" "$6" "$1" "$2" $dir)"
done
