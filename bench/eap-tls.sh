#!/usr/bin/env bash
# Full and resumed EAP-TLS authentications per second and the server's CPU
# milliseconds per authentication, for ECDSA P-256 and RSA-2048 server
# certificates, TLS 1.2 and 1.3, with certgate-bench (the Rust supplicant) as
# the load. Server CPU is utime + stime from /proc, read by certgate-bench.
#
#   bench/eap-tls.sh [seconds-per-run]        (default 10)
set -euo pipefail
secs=${1:-10}
conc=${CONCURRENCY:-16}
source "$(dirname "$0")/lib.sh"
bench_init
printf '[users."alice@example.org"]\ngroups = ["all"]\n' > "$dir/users.toml"

printf '%-8s %-4s %-8s %12s %16s %10s %10s %14s\n' key tls mode "auth/s" "server ms/auth" "p50 ms" "p99 ms" "round trips"
for key in ecdsa rsa; do
  pki="$dir/pki-$key"
  target/release/certgate pki init --dir "$pki" --key-type $key > /dev/null
  target/release/certgate pki client --dir "$pki" --name alice@example.org > /dev/null
  bench_config "[tls]
certificate = \"$pki/server.pem\"
private_key = \"$pki/server.key\"
ca = [\"$pki/ca.pem\"]
crls = [\"$pki/crl.pem\"]
[authz]
users = \"$dir/users.toml\"
[[authz.rule]]
groups_any = \"all\"
vlan = 20"
  bench_start
  port=$(bench_port auth)
  for tls in 1.2 1.3; do
    for mode in full resumed; do
      resume=""
      [ $mode = resumed ] && resume="--resume"
      json=$(target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" \
        --warmup 50 --server-pid $pid --json eap-tls --pki "$pki" --tls $tls $resume)
      python3 - "$key" "$tls" "$mode" "$json" <<'PY'
import json, sys
key, tls, mode, j = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
print(f"{key:<8} {tls:<4} {mode:<8} {j['throughput_per_s']:12.0f} {j['server_cpu_ms_per_op']:16.3f} "
      f"{j['latency_ms']['p50']:10.2f} {j['latency_ms']['p99']:10.2f} {j['round_trips_per_op']:14.2f}"
      + (f"   failed {j['failed']}" if j['failed'] else ""))
PY
    done
  done
  bench_stop
done
echo "generator: certgate-bench, $conc conversations in flight, ${secs}s per run; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
