#!/usr/bin/env bash
# Status-Server throughput with Debian's radclient as the load generator, and
# the server's CPU time per request read from /proc (utime + stime), plus RSS
# at idle. radclient itself costs more CPU than the server, so this measures
# a floor, not certgate's ceiling; the load generator of bench/ replaces it.
#
#   bench/status-radclient.sh [requests]        (default 64000)
set -euo pipefail
total=${1:-64000}
parallel=64
source "$(dirname "$0")/lib.sh"
bench_init
bench_config ""
bench_start
port=$(bench_port auth)
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
for _ in $(seq $parallel); do printf 'Message-Authenticator = 0x00\n\n'; done > "$dir/packets"
before=$(cpu)
start=$(date +%s.%N)
radclient -q -f "$dir/packets" -p $parallel -c $((total / parallel)) -r 3 -t 2 "127.0.0.1:$port" status testing123 || true
end=$(date +%s.%N)
after=$(cpu)
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
awk -v n="$total" -v s="$start" -v e="$end" -v b="$before" -v a="$after" -v t="$tick" -v ri="$rss_idle" -v ra="$rss_after" 'BEGIN {
  el = e - s; cpu = (a - b) / t;
  printf "Status-Server requests:     %d\n", n;
  printf "elapsed:                    %.2f s\n", el;
  printf "throughput:                 %.0f requests/s (radclient-bound)\n", n / el;
  printf "server CPU:                 %.2f s = %.1f us/request\n", cpu, cpu / n * 1e6;
  printf "server RSS idle / after:    %.1f MiB / %.1f MiB\n", ri / 1024, ra / 1024;
}'
