#!/usr/bin/env bash
# Memory per EAP conversation in flight: certgate's resident set idle, then
# after certgate-bench opens N conversations and abandons each after its
# ClientHello (the server holds a handshake that has answered it: the most
# expensive state a half-open conversation can be in), for N = 20 000 and
# 100 000, then again once the idle timeout has swept them all; then with
# the table capped at 20 000, a flood of 30 000, to show the cap holding
# with the idlest evicted to make room, and memory staying bounded.
#
#   bench/memory.sh [N...]        (default: 20000 100000)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
bench_pki "$dir/pki"

config() { # CAP
  # An idle timeout longer than the fill takes: nothing expires before the
  # count. One NAS (loopback) sends everything, so its share is the table.
  bench_eap_config "$dir/pki" "" "max_conversations = $1
max_conversations_per_nas = $1
idle_timeout = \"${IDLE:-90s}\""
}

metric() { curl -s "http://127.0.0.1:$(bench_port metrics)/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

run() { # CAP N
  config "$1"
  bench_start
  local port idle
  port=$(bench_port auth)
  # One full authentication first, so what follows measures conversations,
  # not the first use of lazily built state.
  target/release/certgate-bench --target "127.0.0.1:$port" -n 1 eap-tls --pki "$dir/pki" --no-pq > /dev/null
  idle=$(rss)
  echo "== cap $1, $2 half-open conversations (idle RSS $((idle / 1024)) MiB)"
  target/release/certgate-bench --target "127.0.0.1:$port" -c 64 -n "$2" --server-pid "$pid" \
    half-open --pki "$dir/pki" 2>&1 | grep -E 'completed|failed|seconds|server RSS'
  sleep 1.5 # evictions are counted by the once-a-second sweep
  echo "conversations in the table: $(metric certgate_eap_conversations_active)," \
    "evicted to make room: $(metric 'certgate_eap_conversations_evicted_total{reason="table_full"}')," \
    "refused: $(metric 'certgate_eap_conversations_failed_total{reason="table_full"}')"
  echo "waiting for the idle timeout to sweep them"
  while [ "$(metric certgate_eap_conversations_active)" != 0 ]; do sleep 1; done
  echo "after the idle timeout: RSS $(($(rss) / 1024)) MiB"
  sleep 20 # jemalloc returns freed pages over its 10 s decay
  echo "20 s later: RSS $(($(rss) / 1024)) MiB"
  bench_stop
}

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(20000 100000)
for n in "${sizes[@]}"; do run 200000 "$n"; done
run 20000 30000
