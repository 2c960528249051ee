#!/usr/bin/env bash
# A/B of two stsdns binaries on one cluster: UDP queries per server CPU-second, alternating.
#
#   tests/bench/ab.sh BIN_A BIN_B FEED QUERIES [ROUNDS [FEED_B QUERIES_B]]
#
# FEED and QUERIES are what `tests/bench/gen_cluster.py --pods N --out DIR` writes (DIR/feed and
# DIR/queries.txt). Both binaries serve FEED at once, pinned to CPU 1 (ports 15401 and 15402 on
# 127.0.0.1); each round runs `dnsperf -c 4 -q 200 -l 8 -n 100` from CPU 0 against A and B and
# prints the queries completed divided by the server's CPU time during the run (utime + stime from
# /proc/PID/stat). Odd rounds run A first, even rounds B first. ROUNDS defaults to 4.
# Both servers are started afresh every AB_ROUNDS_PER_START rounds (default 2), the one started
# first alternating: one pair of processes can run several percent apart for the whole of its
# life, the same binary on the same feed included (memory layout), so a figure from one pair
# is that pair's. Meant for a change that touches the query path, where dnsperf.sh's
# Knot-paced rounds are too coarse: the two builds see the same machine noise.
# With FEED_B and QUERIES_B, B serves and is asked those instead: one build on two cluster
# sizes (BIN_A = BIN_B) gives the flatness of the query path under the same noise. Last, the
# medians of each side and their ratio, and the median, lowest and highest of the rounds' own
# B/A (each round's pair ran seconds apart, so drift on the machine cancels in it). Every run is
# bounded (-l, -n); the servers are stopped, by PID, before the next pair starts and on exit.
set -euo pipefail

if [[ $# -lt 4 ]]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
A=$1 B=$2 FEED=$3 QUERIES=$4 ROUNDS=${5:-4} FEED_B=${6:-$3} QUERIES_B=${7:-$4}
if [[ $# -eq 6 || $# -gt 7 ]]; then echo "ab.sh: FEED_B needs QUERIES_B" >&2; exit 2; fi
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "ab.sh: ROUNDS must be a positive number" >&2; exit 2 ;; esac
PER_START=${AB_ROUNDS_PER_START:-2}
case "$PER_START" in '' | *[!0-9]* | 0) echo "ab.sh: AB_ROUNDS_PER_START must be a positive number" >&2; exit 2 ;; esac
for tool in dnsperf dig taskset; do
    command -v "$tool" >/dev/null || { echo "ab.sh: $tool is missing (apt-get install dnsperf bind9-dnsutils util-linux)" >&2; exit 2; }
done

pids=()
# Stops the servers and waits until they are gone: a server still closing its sockets would
# answer for the next one on the same port.
stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    pids=()
}
trap stop_all EXIT

start() { # BIN PORT FEED -> the server's PID
    taskset -c 1 "$1" serve --feed "$3" --listen "127.0.0.1:$2" -q >/dev/null 2>&1 &
    echo $!
}
wait_ready() { # PORT: the SOA answers, within 10 minutes
    for _ in $(seq 3000); do
        if dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 SOA cluster.local 2>/dev/null | grep -q hostmaster; then
            return 0
        fi
        sleep 0.2
    done
    echo "ab.sh: the server on port $1 did not answer" >&2
    exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_side() { # A or B: starts that side's server (setting pid_a or pid_b) and waits for it
    if [[ $1 == A ]]; then
        pid_a=$(start "$A" 15401 "$FEED"); pids+=("$pid_a")
        wait_ready 15401
    else
        pid_b=$(start "$B" 15402 "$FEED_B"); pids+=("$pid_b")
        wait_ready 15402
    fi
}
start_pair() { # FIRST SECOND: a fresh pair of servers, FIRST started (and loaded) first
    stop_all
    start_side "$1"
    start_side "$2"
}
ticks=$(getconf CLK_TCK)

rates_a=() rates_b=() ratios=()
starts=0
for round in $(seq "$ROUNDS"); do
    if (((round - 1) % PER_START == 0)); then
        starts=$((starts + 1))
        if ((starts % 2 == 1)); then start_pair A B; else start_pair B A; fi
    fi
    order="A B"
    if ((round % 2 == 0)); then order="B A"; fi
    for name in $order; do
        # Set one by one, not split from a string: a query file's path may hold spaces.
        if [[ $name == A ]]; then pid=$pid_a port=15401 queries=$QUERIES; else pid=$pid_b port=15402 queries=$QUERIES_B; fi
        before=$(cpu_ticks "$pid")
        completed=$(taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l 8 -c 4 -q 200 -n 100 2>&1 |
            awk '/Queries completed/ {print $3}')
        after=$(cpu_ticks "$pid")
        used=$((after - before))
        if [[ -z "$completed" || $used -le 0 ]]; then
            echo "ab.sh: no measurement for $name in round $round" >&2
            exit 1
        fi
        rate=$((completed * ticks / used))
        if [[ $name == A ]]; then rates_a+=("$rate"); else rates_b+=("$rate"); fi
        echo "round $round (pair $starts) $name: $completed queries, server CPU $(awk -v t="$used" -v h="$ticks" 'BEGIN {printf "%.2f", t / h}') s, $rate per CPU-second"
    done
    ratios+=("$(awk -v a="${rates_a[-1]}" -v b="${rates_b[-1]}" 'BEGIN {printf "%.4f", b / a}')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
med_a=$(median "${rates_a[@]}") med_b=$(median "${rates_b[@]}")
echo "median per CPU-second: A $med_a, B $med_b, B/A $(awk -v a="$med_a" -v b="$med_b" 'BEGIN {printf "%.3f", b / a}')"
sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
echo "B/A of each round: median $(median "${ratios[@]}" | awk '{printf "%.3f", $1}'), lowest $(head -1 <<<"$sorted"), highest $(tail -1 <<<"$sorted")"
for side in "A $pid_a" "B $pid_b"; do
    read -r name pid <<<"$side"
    echo "$name VmHWM: $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status")"
done
