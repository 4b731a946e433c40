#!/usr/bin/env bash
# Profiles a loaded certgate with perf (cpu-clock samples, DWARF call
# graphs) while certgate-bench drives it, and prints the load report.
# The same PKI and settings as bench/compare.sh (ECDSA P-256 unless
# KEY=rsa; fragment size 1024; file directory; one VLAN rule).
#
#   bench/profile.sh MODE [ARGS...]     e.g. eap-tls --pki PKI --tls 1.2 --no-pq
#   (PKI in the arguments stands for the generated PKI directory)
#
# Environment: PERF=1 records to ${PERF_OUT:-perf.data}; RESUME=true turns
# the TLS session cache on; CHAIN=0 turns the verified-chain cache off;
# PORT=acct targets the accounting listener; CONC, SECS as in certgate-bench.
# Read the profile with `perf report -i perf.data --no-children`.
set -euo pipefail
out=$(realpath -m "${PERF_OUT:-perf.data}")
source "$(dirname "$0")/lib.sh"
bench_init
bench_pki "$dir/pki" "${KEY:-ecdsa}"
bench_eap_config "$dir/pki" "resumption = ${RESUME:-false}
verified_chain_cache = ${CHAIN:-10000}"
bench_start
port=$(bench_port "${PORT:-auth}")
args=("$@")
args=("${args[@]//PKI/$dir/pki}")
perfpid=""
if [ -n "${PERF:-}" ]; then
  perf record -F 2000 -e cpu-clock -g --call-graph dwarf,16384 -p "$pid" -o "$out" \
    -- sleep "${SECS:-5}" 2> /dev/null &
  perfpid=$!
fi
target/release/certgate-bench --target "127.0.0.1:$port" -c "${CONC:-16}" -d "${SECS:-5}s" \
  --warmup 20 --server-pid "$pid" "${args[@]}"
if [ -n "$perfpid" ]; then wait "$perfpid" || true; fi
