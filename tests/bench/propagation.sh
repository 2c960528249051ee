#!/bin/sh
# Propagation benchmark: event in the feed → first UDP answer showing it, and the CPU cost of one
# publish, at 1k and 100k pods. Prints the machine and a table; see tests/bench/README.md.
#
#   tests/bench/propagation.sh                           # 1k and 100k pods, 500 events each
#   PROPAGATION_SIZES=1k,3k,10k tests/bench/propagation.sh
#   PROPAGATION_POLL_GAPS_US=0 PROPAGATION_ONLY=publish tests/bench/propagation.sh
set -eu
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
exec cargo bench --bench propagation "$@"
