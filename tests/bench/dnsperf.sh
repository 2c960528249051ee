#!/usr/bin/env bash
# Whole-server benchmark: stsdns against Knot DNS, both driven by dnsperf over loopback.
#
#   tests/bench/dnsperf.sh [--pods 3000|100000] [--quick] [--rounds N] [--keep]
#
# 1. Generates a cluster (tests/bench/gen_cluster.py: Services and Pods as `kubectl get -o json`
#    prints them) and a query file (40% pod A, 30% SRV, 20% service A, 10% NXDOMAIN).
# 2. Builds stsdns in release, serves the cluster with `stsdns serve --feed`, and serves the zone
#    text of `stsdns check --write-zones` with knotd (one UDP, one TCP, one background worker).
#    Both servers run on CPU 1, dnsperf and dig on CPU 0.
# 3. Alternates the servers (stsdns, knot, stsdns, knot, ...) for --rounds rounds; each round runs,
#    per server: UDP at full speed, UDP at a fixed 20k qps (latency), TCP at full speed.
# 4. Prints a Markdown table (the median of the rounds), the machine and the versions; also saved
#    to target/bench/dnsperf-<pods>.md.
#
# Installs dnsperf, knot and dig from Debian if missing (apt-get, as root or with sudo). Sends
# traffic to 127.0.0.1 only; every run is bounded in time (-l) and count (-n); every process it
# starts is stopped, by PID, on exit.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

PODS=3000
QUICK=0
ROUNDS=
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --pods) PODS="${2:?--pods needs 3000 or 100000}"; shift 2 ;;
    --pods=*) PODS="${1#--pods=}"; shift ;;
    --quick) QUICK=1; shift ;;
    --rounds) ROUNDS="${2:?--rounds needs a number}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dnsperf.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$PODS" in 3000|100000) ;; *) echo "dnsperf.sh: --pods must be 3000 or 100000" >&2; exit 2 ;; esac
if [ "$QUICK" = 1 ]; then DURATION=3; ROUNDS="${ROUNDS:-2}"; else DURATION=10; ROUNDS="${ROUNDS:-3}"; fi
case "$ROUNDS" in ''|*[!0-9]*|0) echo "dnsperf.sh: --rounds must be a positive number" >&2; exit 2 ;; esac

FIXED_QPS=20000         # offered load of the latency runs
CLIENTS=4               # dnsperf -c: UDP sockets / TCP connections
OUTSTANDING=200         # dnsperf -q
MAX_PASSES=100          # dnsperf -n: at most this many passes through the query file per run
START_TIMEOUT="${STSDNS_BENCH_START_TIMEOUT:-3600}"  # seconds a server may take to load
ZONE=cluster.local

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
need=()
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || need+=(knot)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  log "installing ${need[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
KNOTD="$(command -v knotd || echo /usr/sbin/knotd)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the generator"
command -v cargo >/dev/null 2>&1 || die "cargo is needed to build stsdns"

CPUS="$(nproc)"
if [ "$CPUS" -ge 2 ]; then
  SERVER_CPU=1; CLIENT_CPU=0
  # An array, not a function: `taskset … server &` must leave the server's own PID in $!.
  ON_SERVER=(taskset -c "$SERVER_CPU")
  ON_CLIENT=(taskset -c "$CLIENT_CPU")
  on_client() { taskset -c "$CLIENT_CPU" "$@"; }
else
  log "warning: one CPU: servers and dnsperf share it, nothing is pinned"
  SERVER_CPU=; CLIENT_CPU=
  ON_SERVER=()
  ON_CLIENT=()
  on_client() { "$@"; }
fi
CLK_TCK="$(getconf CLK_TCK)"

# --- clean-up: stop what we started, by PID ------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/stsdns-dnsperf.XXXXXX")"
PIDS=()
cleanup() {
  local pid i
  [ ! -s "$WORK/check.pid" ] || PIDS+=("$(cat "$WORK/check.pid")")
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 - <<'EOF'
import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
EOF
}

now() { date +%s.%N; }
# utime + stime of a process (all its threads), in seconds.
cpu_seconds() {
  local stat
  stat="$(cat "/proc/$1/stat")" || die "process $1 is gone"
  stat="${stat##*) }"   # fields from the 3rd on; the command name may hold spaces
  # shellcheck disable=SC2086
  set -- $stat
  awk -v u="${12}" -v s="${13}" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (u + s) / hz }'
}
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
# Every thread of the process on the server CPU (knotd moves its UDP worker by itself).
pin_all() {
  [ -n "$SERVER_CPU" ] || return 0
  taskset -a -p -c "$SERVER_CPU" "$1" >/dev/null
}
check_pinned() {
  [ -n "$SERVER_CPU" ] || return 0
  local t cpus
  for t in /proc/"$1"/task/*; do
    cpus="$(awk '$1 == "Cpus_allowed_list:" { print $2 }' "$t/status" 2>/dev/null)" || continue
    [ -z "$cpus" ] || [ "$cpus" = "$SERVER_CPU" ] || die "thread ${t##*/} of $2 runs on CPUs $cpus, not $SERVER_CPU"
  done
}

# Polls the zone's SOA until the server answers it (or exits, or START_TIMEOUT passes); prints the
# time of the first answer.
wait_first_answer() {
  local name="$1" pid="$2" port="$3" deadline answer
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  while :; do
    kill -0 "$pid" 2>/dev/null || die "$name exited before answering (log: $WORK/$name.err)"
    answer="$(on_client dig @127.0.0.1 -p "$port" +short +time=1 +tries=1 +norec SOA "$ZONE" 2>/dev/null || true)"
    case "$answer" in *"hostmaster.$ZONE"*) now; return 0 ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || die "$name did not answer within ${START_TIMEOUT}s"
    sleep 0.01
  done
}

RESULTS="$WORK/results.tsv"   # round <tab> server <tab> metric <tab> value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
# The first word after KEY in a dnsperf summary.
field() {
  awk -v key="$2" 'i = index($0, key) { split(substr($0, i + length(key)), w, " "); print w[1]; exit }' "$1"
}

# One dnsperf run against a server; records qps, completed queries and the server's CPU seconds.
#   perf ROUND SERVER PID PORT TAG DNSPERF-ARGS...
perf() {
  local round="$1" server="$2" pid="$3" port="$4" tag="$5"
  shift 5
  local out="$WORK/perf-$round-$server-$tag.txt" cpu0 cpu1 completed runtime cpu
  check_pinned "$pid" "$server"
  cpu0="$(cpu_seconds "$pid")"
  on_client dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/cluster/queries.txt" \
    -l "$DURATION" -n "$MAX_PASSES" -c "$CLIENTS" -q "$OUTSTANDING" "$@" >"$out" 2>"$out.err" \
    || die "dnsperf failed against $server: $(tail -3 "$out.err")"
  cpu1="$(cpu_seconds "$pid")"
  completed="$(field "$out" "Queries completed:")"
  runtime="$(field "$out" "Run time (s):")"
  [ -n "$completed" ] && [ -n "$runtime" ] || die "no dnsperf summary in $out"
  cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')"
  record "$round" "$server" "$tag.qps" "$(field "$out" "Queries per second:")"
  record "$round" "$server" "$tag.completed" "$completed"
  record "$round" "$server" "$tag.lost" "$(field "$out" "Queries lost:")"
  record "$round" "$server" "$tag.cpu" "$cpu"
  record "$round" "$server" "$tag.runtime" "$runtime"
  record "$round" "$server" "$tag.response_bytes" \
    "$(sed -n 's/.*Average packet size:.*response \([0-9]*\).*/\1/p' "$out")"
  record "$round" "$server" "$tag.nxdomain" \
    "$(sed -n 's/.*NXDOMAIN [0-9]* (\([0-9.]*\)%).*/\1/p' "$out")"
  log "  $server $tag: $(field "$out" "Queries per second:") qps, $completed queries, server CPU ${cpu}s"
  PERF_OUT="$out"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. the cluster ----------------------------------------------------------------------------
log "generating the $PODS-pod cluster in $WORK/cluster"
python3 "$ROOT/tests/bench/gen_cluster.py" --pods "$PODS" --out "$WORK/cluster"
FEED="$WORK/cluster/feed"

# --- 2. build, zone text, servers --------------------------------------------------------------
log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)
BIN="$ROOT/target/release/stsdns"

# The zone text for knot, from `stsdns check`, on the client CPU while stsdns serve loads the
# same feed on the server CPU (at 100k pods each takes many minutes).
log "stsdns check --write-zones (zone text for knot), on CPU ${CLIENT_CPU:-any}"
(
  t0="$(now)"
  "${ON_CLIENT[@]}" "$BIN" check "$FEED" --write-zones "$WORK/zones" >/dev/null 2>"$WORK/check.err" </dev/null &
  echo $! >"$WORK/check.pid"
  wait $! && rc=0 || rc=$?
  echo "$rc $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')" >"$WORK/check.done"
) &
PIDS+=("$!")

STSDNS_PORT="$(free_port)"
log "starting stsdns on 127.0.0.1:$STSDNS_PORT (CPU ${SERVER_CPU:-any})"
t0="$(now)"
"${ON_SERVER[@]}" "$BIN" serve --feed "$FEED" --listen "127.0.0.1:$STSDNS_PORT" -q \
  >"$WORK/stsdns.out" 2>"$WORK/stsdns.err" </dev/null &
STSDNS_PID=$!
PIDS+=("$STSDNS_PID")
t1="$(wait_first_answer stsdns "$STSDNS_PID" "$STSDNS_PORT")"
[ "$(cat /proc/$STSDNS_PID/comm)" = stsdns ] || die "PID $STSDNS_PID is not stsdns"
pin_all "$STSDNS_PID"
STSDNS_START="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
STSDNS_RSS_LOADED="$(status_kb "$STSDNS_PID" VmRSS)"
log "  first answer after ${STSDNS_START}s; $(cat "$WORK/stsdns.out")"

deadline=$(( $(date +%s) + START_TIMEOUT ))
until [ -s "$WORK/check.done" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "stsdns check did not finish within ${START_TIMEOUT}s"
  sleep 0.2
done
read -r rc CHECK_SECONDS <"$WORK/check.done"
[ "$rc" = 0 ] || die "stsdns check failed: $(tail -5 "$WORK/check.err")"
log "  stsdns check: $(tail -1 "$WORK/check.err") in ${CHECK_SECONDS}s"

mkdir -p "$WORK/knot/run" "$WORK/knot/db"
KNOT_PORT="$(free_port)"
{
  cat <<EOF
server:
    rundir: "$WORK/knot/run"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot/db"
template:
  - id: default
    storage: "$WORK/zones"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
EOF
  for file in "$WORK"/zones/*zone; do
    origin="$(basename "$file")"
    origin="${origin%zone}"
    printf '  - domain: %s\n    file: %s\n' "$origin" "$(basename "$file")"
  done
} >"$WORK/knot/knot.conf"
log "starting knotd on 127.0.0.1:$KNOT_PORT (CPU ${SERVER_CPU:-any})"
t0="$(now)"
"${ON_SERVER[@]}" "$KNOTD" -c "$WORK/knot/knot.conf" >"$WORK/knot.out" 2>"$WORK/knot.err" </dev/null &
KNOT_PID=$!
PIDS+=("$KNOT_PID")
t1="$(wait_first_answer knot "$KNOT_PID" "$KNOT_PORT")"
[ "$(cat /proc/$KNOT_PID/comm)" = knotd ] || die "PID $KNOT_PID is not knotd"
KNOT_MOVED="$(for t in /proc/"$KNOT_PID"/task/*; do
  awk '$1 == "Cpus_allowed_list:" { print $2 }' "$t/status"; done | sort -u | tr '\n' ' ')"
# knotd pins its UDP worker(s) to CPU (worker index mod online CPUs) itself, overriding taskset:
# put every thread back on the server CPU.
pin_all "$KNOT_PID"
KNOT_START="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
KNOT_RSS_LOADED="$(status_kb "$KNOT_PID" VmRSS)"
log "  first answer after ${KNOT_START}s; threads were on CPUs: $KNOT_MOVED-> all re-pinned to ${SERVER_CPU:-any}"

# Same answers? (a sample of each kind of query; differences in order do not count)
answers() {
  on_client dig @127.0.0.1 -p "$1" +norec +time=2 +tries=1 +noall +answer +additional +comments \
    "$2" "$3" | awk '/status:/ { sub(/.*status: /, ""); sub(/,.*/, ""); print "status " $0; next }
      /^;/ || NF == 0 { next } { $1 = tolower($1); print }' | tr -s ' \t' ' ' | sort
}
SAME=0; TOTAL=0
while read -r qname qtype; do
  [ -n "$qname" ] || continue
  TOTAL=$((TOTAL + 1))
  if [ "$(answers "$STSDNS_PORT" "$qname" "$qtype")" = "$(answers "$KNOT_PORT" "$qname" "$qtype")" ]; then
    SAME=$((SAME + 1))
  else
    log "  answers differ for $qname $qtype:"
    diff <(answers "$STSDNS_PORT" "$qname" "$qtype") <(answers "$KNOT_PORT" "$qname" "$qtype") \
      | sed 's/^/      /' >&2 || true
  fi
done <"$WORK/cluster/sample.txt"
log "same answers from both servers for $SAME of $TOTAL sample queries"

# --- 3. the runs ---------------------------------------------------------------------------------
# Latency percentiles: dnsperf 2.10 has no histogram option, but -v prints one line per answered
# query ending in its latency in seconds: sort them and read the 50th and 99th percentiles.
percentiles() {
  awk '$1 == ">" && $NF ~ /^[0-9.]+$/ { print $NF }' "$1" | sort -g | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "nan nan"; exit }
      p50 = int(NR * 0.50 + 0.999999); p99 = int(NR * 0.99 + 0.999999)
      printf "%.1f %.1f\n", v[p50] * 1e6, v[p99] * 1e6
    }'
}

for round in $(seq "$ROUNDS"); do
  for server in stsdns knot; do
    if [ "$server" = stsdns ]; then pid="$STSDNS_PID"; port="$STSDNS_PORT"; else pid="$KNOT_PID"; port="$KNOT_PORT"; fi
    log "round $round/$ROUNDS: $server"
    perf "$round" "$server" "$pid" "$port" udp
    perf "$round" "$server" "$pid" "$port" fixed -Q "$FIXED_QPS" -v
    read -r p50 p99 <<<"$(percentiles "$PERF_OUT")"
    record "$round" "$server" fixed.p50_us "$p50"
    record "$round" "$server" fixed.p99_us "$p99"
    log "  $server at $FIXED_QPS qps: p50 ${p50} us, p99 ${p99} us"
    perf "$round" "$server" "$pid" "$port" tcp -m tcp
  done
done

for server in stsdns knot; do
  if [ "$server" = stsdns ]; then pid="$STSDNS_PID"; else pid="$KNOT_PID"; fi
  record 0 "$server" hwm_kb "$(status_kb "$pid" VmHWM)"
done
record 0 stsdns start_s "$STSDNS_START"
record 0 knot start_s "$KNOT_START"
record 0 stsdns rss_loaded_kb "$STSDNS_RSS_LOADED"
record 0 knot rss_loaded_kb "$KNOT_RSS_LOADED"

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- 4. the table --------------------------------------------------------------------------------
PODS_REAL="$(grep -h -c '"kind": "Pod"' "$FEED"/*.json | awk '{ n += $1 } END { print n }')"
MACHINE="$(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
VERSIONS="$("$BIN" --version), $("$KNOTD" -V 2>&1 | head -1), dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }'), $(rustc --version 2>/dev/null | cut -d' ' -f1-2)"
mkdir -p "$ROOT/target/bench"
TABLE="$ROOT/target/bench/dnsperf-$PODS.md"
python3 - "$RESULTS" "$PODS_REAL" "$DURATION" "$ROUNDS" "$FIXED_QPS" "$CLIENTS" "$OUTSTANDING" \
  "$MACHINE" "$VERSIONS" "$(date -u +%Y-%m-%d)" "$SAME/$TOTAL" "$CHECK_SECONDS" "$QUICK" \
  "$LOAD_BEFORE" "$LOAD_AFTER" >"$TABLE" <<'EOF'
import statistics, sys
(path, pods, duration, rounds, fixed_qps, clients, outstanding, machine, versions, day, same,
 check_s, quick, load_before, load_after) = sys.argv[1:]
values = {}
for line in open(path):
    rnd, server, metric, value = line.rstrip("\n").split("\t")
    try:
        values.setdefault((server, metric), []).append(float(value.rstrip("%")))
    except ValueError:
        values.setdefault((server, metric), []).append(float("nan"))

def med(server, metric):
    v = values.get((server, metric))
    return statistics.median(v) if v else float("nan")

def per_cpu(server, tag):
    runs = [c / s for c, s in zip(values[(server, tag + ".completed")], values[(server, tag + ".cpu")]) if s > 0]
    return statistics.median(runs) if runs else float("nan")

def busy(server, tag):
    runs = [100 * s / t for s, t in zip(values[(server, tag + ".cpu")], values[(server, tag + ".runtime")])]
    return statistics.median(runs)

rows = [
    ("UDP qps, max (`-c %s -q %s`)" % (clients, outstanding), "higher", lambda s: med(s, "udp.qps"), "{:,.0f}"),
    ("UDP queries per server CPU-second", "higher", lambda s: per_cpu(s, "udp"), "{:,.0f}"),
    ("server CPU busy during the max UDP run", "", lambda s: busy(s, "udp"), "{:.0f}%"),
    ("p50 latency at %s qps (µs)" % format(int(fixed_qps), ","), "lower", lambda s: med(s, "fixed.p50_us"), "{:.0f}"),
    ("p99 latency at %s qps (µs)" % format(int(fixed_qps), ","), "lower", lambda s: med(s, "fixed.p99_us"), "{:.0f}"),
    ("server CPU busy at %s qps" % format(int(fixed_qps), ","), "lower", lambda s: busy(s, "fixed"), "{:.0f}%"),
    ("TCP qps, max (%s connections)" % clients, "higher", lambda s: med(s, "tcp.qps"), "{:,.0f}"),
    ("TCP queries per server CPU-second", "higher", lambda s: per_cpu(s, "tcp"), "{:,.0f}"),
    ("server CPU busy during the TCP run", "", lambda s: busy(s, "tcp"), "{:.0f}%"),
    ("queries lost (UDP max run)", "lower", lambda s: med(s, "udp.lost"), "{:.0f}"),
    ("average response size (bytes)", "", lambda s: med(s, "udp.response_bytes"), "{:.0f}"),
    ("NXDOMAIN share of answers", "", lambda s: med(s, "udp.nxdomain"), "{:.1f}%"),
    ("RSS once answering (MiB)", "lower", lambda s: med(s, "rss_loaded_kb") / 1024, "{:,.1f}"),
    ("peak RSS, VmHWM (MiB)", "lower", lambda s: med(s, "hwm_kb") / 1024, "{:,.1f}"),
    ("start to first answer (s)", "lower", lambda s: med(s, "start_s"), "{:.2f}"),
]
print("### %s pods, %s%s" % (format(int(pods), ","), day, " (--quick)" if quick == "1" else ""))
print()
print("| metric | stsdns | knot | stsdns/knot | better |")
print("|---|---:|---:|---:|---|")
for name, better, get, fmt in rows:
    a, b = get("stsdns"), get("knot")
    ratio = "%.2f" % (a / b) if b and a == a and b == b else "–"
    print("| %s | %s | %s | %s | %s |" % (name, fmt.format(a), fmt.format(b), ratio, better))
print()
print("Median of %s rounds, %s s per run, servers alternated. `stsdns check` of the feed took %s s; "
      "the two servers gave the same answers to %s sample queries." % (rounds, duration, check_s, same))
print()
print("Machine: %s; load average before %s, after %s (the run itself adds about 2). "
      "Versions: %s." % (machine, load_before, load_after, versions))
print()
print("Each round (stsdns / knot):")
print()
def each(server, metric, scale=1.0):
    return ", ".join("%.0f" % (v * scale) for v in values.get((server, metric), []))
for name, metric in [("UDP qps", "udp.qps"), ("p50 µs", "fixed.p50_us"),
                     ("p99 µs", "fixed.p99_us"), ("TCP qps", "tcp.qps")]:
    print("- %s: %s / %s" % (name, each("stsdns", metric), each("knot", metric)))
for name, tag in [("UDP queries per CPU-second", "udp"), ("TCP queries per CPU-second", "tcp")]:
    per = {srv: ", ".join("%.0f" % (c / t) if t else "nan" for c, t in
                          zip(values[(srv, tag + ".completed")], values[(srv, tag + ".cpu")]))
           for srv in ("stsdns", "knot")}
    print("- %s: %s / %s" % (name, per["stsdns"], per["knot"]))
EOF
echo
cat "$TABLE"
echo
log "table saved to $TABLE"
