#!/usr/bin/env bash
# RadSec against UDP, certgate against FreeRADIUS, on this machine, under the
# same certgate-bench load: full EAP-TLS 1.2 and 1.3 (ECDSA P-256 server
# certificate, no TLS session cache, 16 conversations in flight) and
# accounting (64 senders), each over RADIUS/UDP and over RadSec (TLS 1.3,
# every sender sharing ONE connection, as a NAS or proxy shares it). Then
# certgate's memory per idle RadSec connection at 10 000 connections (full
# handshakes, fresh server). Server CPU is utime + stime from /proc, read by
# certgate-bench. Installs Debian's freeradius when missing.
#
#   bench/radsec.sh [seconds-per-run]      (default 10)
set -euo pipefail
export BENCH_LOG_LEVEL="warn,certgate::server=info,certgate::server::radsec=warn,certgate::proto=warn"
secs=${1:-10}
eap_conc=${EAP_CONCURRENCY:-16}
udp_conc=${UDP_CONCURRENCY:-64}
idle=${IDLE_CONNECTIONS:-10000}
if ! command -v freeradius > /dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends freeradius > /dev/null
fi
# Both ends of 10 000 connections in this shell's children.
ulimit -n $((idle * 2 + 1000)) 2> /dev/null || ulimit -n "$(ulimit -Hn)"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/freeradius.sh"
bench_init
fr_pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$fr_pid" ] && kill $fr_pid 2>/dev/null; rm -rf "$dir"' EXIT
results="$dir/results.jsonl"
pki="$dir/pki"
bench_pki "$pki" ecdsa
nas=nas.bench.example
target/release/certgate pki client --dir "$pki" --name $nas > /dev/null
radsec_args=(--secret radsec --radsec-cert "$pki/clients/$nas.pem" --radsec-key "$pki/clients/$nas.key"
  --radsec-ca "$pki/ca.pem" --radsec-connections 1)

certgate_config() { # MAX_CONNECTIONS_PER_CLIENT
  BENCH_SERVER_EXTRA='radsec_listen = ["127.0.0.1:0"]' bench_eap_config "$pki" "resumption = false
verified_chain_cache = 0"
  cat >> "$dir/c.toml" <<TOML
[radsec]
ca = ["$pki/ca.pem"]
max_connections = $((idle + 100))
max_connections_per_client = ${1:-$(((idle + 101) / 2))}
[[radsec.clients]]
name = "nas"
names = ["$nas"]
TOML
}

for server in certgate freeradius; do
  if [ $server = certgate ]; then
    certgate_config
    bench_start
    spid=$pid auth=$(bench_port auth) acct=$(bench_port acct) rs=$(bench_port radsec)
  else
    FR_RADSEC=1 fr_config "$pki" no 1024
    fr_start
    spid=$fr_pid auth=$fr_auth acct=$fr_acct rs=$fr_radsec
  fi
  measure $server "Accounting, UDP" "$spid" "$acct" "$udp_conc" acct
  measure $server "Accounting, RadSec" "$spid" "$rs" "$udp_conc" "${radsec_args[@]}" acct
  for tls in 1.2 1.3; do
    measure $server "EAP-TLS $tls full, UDP" "$spid" "$auth" "$eap_conc" \
      eap-tls --pki "$pki" --tls $tls --no-pq
    measure $server "EAP-TLS $tls full, RadSec" "$spid" "$rs" "$eap_conc" "${radsec_args[@]}" \
      eap-tls --pki "$pki" --tls $tls --no-pq
  done
  if [ $server = certgate ]; then bench_stop; else fr_stop; fi
done

python3 - "$results" "$secs" "$eap_conc" "$udp_conc" <<'PY'
import json, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["row"] not in rows:
        rows[j["row"]] = {}
        order.append(j["row"])
    rows[j["row"]][j["server"]] = j

def cell(j):
    if j is None:
        return ["–"] * 3
    failed = sum(j["failed"].values())
    tput = f'{j["throughput_per_s"]:.0f}' + (f" ({failed} failed)" if failed else "")
    cpu = j["server_cpu_ms_per_op"]
    return [tput, f"{cpu:.3f}" if cpu is not None else "?", f'{j["latency_ms"]["p99"]:.2f}']

print("| workload | certgate op/s | FreeRADIUS op/s | certgate CPU ms/op | FreeRADIUS CPU ms/op | CPU ratio | certgate p99 ms | FreeRADIUS p99 ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for row in order:
    c, f = rows[row].get("certgate"), rows[row].get("freeradius")
    a, b = cell(c), cell(f)
    ratio = "–"
    if c and f and c["server_cpu_ms_per_op"] and f["server_cpu_ms_per_op"]:
        ratio = f'{c["server_cpu_ms_per_op"] / f["server_cpu_ms_per_op"]:.3f}'
    print(f"| {row} | {a[0]} | {b[0]} | {a[1]} | {b[1]} | {ratio} | {a[2]} | {b[2]} |")
print()
print("RadSec over UDP, CPU per operation (each server against itself):")
for server in ["certgate", "freeradius"]:
    for base in sorted({r.rsplit(", ", 1)[0] for r in order}):
        u, r = rows.get(f"{base}, UDP", {}).get(server), rows.get(f"{base}, RadSec", {}).get(server)
        if u and r and u["server_cpu_ms_per_op"] and r["server_cpu_ms_per_op"]:
            print(f"  {server:10} {base:22} {r['server_cpu_ms_per_op'] / u['server_cpu_ms_per_op']:.2f}×")
print()
print(f"{sys.argv[2]} s per run; EAP-TLS with {sys.argv[3]} conversations in flight, accounting with {sys.argv[4]} senders; RadSec: one TLS 1.3 connection shared by all.")
PY

# Memory per idle RadSec connection: a fresh server, $idle connections,
# each a full handshake proven by one Status-Server.
certgate_config $((idle + 100))
bench_start
echo
target/release/certgate-bench --target "127.0.0.1:$(bench_port radsec)" "${radsec_args[@]}" --radsec-no-resume \
  -c 64 -n "$idle" --server-pid "$pid" connections 2>&1 | grep -E "server RSS|completed|failed"
bench_stop
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB; $(freeradius -v | head -1); certgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
