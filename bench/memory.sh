#!/usr/bin/env bash
# Memory per EAP conversation in flight: certgate's resident set idle, then
# after certgate-bench opens N conversations and abandons each after its
# ClientHello (the server holds a handshake that has answered it: the most
# expensive state a half-open conversation can be in), for N = 10 000 and
# 100 000; then with the table capped at 20 000, 30 000 attempts, to show
# the cap holding (the rest are refused) and memory staying bounded.
#
#   bench/memory.sh [N...]        (default: 10000 100000)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
bench_pki "$dir/pki"

config() { # CAP
  # A long idle timeout: nothing expires while the table fills.
  bench_eap_config "$dir/pki" "" "max_conversations = $1
idle_timeout = \"10m\""
}

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
  local held
  held=$(curl -s "http://127.0.0.1:$(bench_port metrics)/metrics" | awk '/^certgate_eap_conversations_active / {print $2}')
  echo "conversations in the table: ${held:-?}"
  bench_stop
}

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
for n in "${sizes[@]}"; do run 200000 "$n"; done
run 20000 30000
