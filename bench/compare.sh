#!/usr/bin/env bash
# certgate and FreeRADIUS side by side, in one run, on this machine, under
# the same certgate-bench load: full EAP-TLS (TLS 1.2 and 1.3, ECDSA P-256
# and RSA-2048 server certificates, TLS session cache off on both), resumed
# EAP-TLS (cache on on both), Status-Server, and accounting (certgate:
# every record fdatasync'ed before its answer; FreeRADIUS: detail file, not
# synced). Each server's CPU is utime + stime from /proc before and after a
# run, read by certgate-bench; peak RSS is the server's VmHWM so far.
#
# Same settings on both: PKI, client certificate, fragment size 1024, no
# CRL checks, the same VLAN reply, classic key exchange (the supplicant
# offers no post-quantum group, since OpenSSL 3.0 has none), no log line
# per request on either (FreeRADIUS `auth = no`, its default; certgate's
# decision lines filtered out). DECISION_LOG=1 turns one line per
# authentication decision on for both (FreeRADIUS `auth = yes`; certgate's
# default level). Installs Debian's freeradius when missing.
#
#   bench/compare.sh [seconds-per-run]      (default 10)
set -euo pipefail
if [ -n "${DECISION_LOG:-}" ]; then
  export FR_AUTH_LOG=yes
else
  export BENCH_LOG_LEVEL="warn,certgate::server=info,certgate::proto=warn"
fi
secs=${1:-10}
eap_conc=${EAP_CONCURRENCY:-16}
udp_conc=${UDP_CONCURRENCY:-64}
if ! command -v freeradius > /dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends freeradius > /dev/null
fi
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/freeradius.sh"
bench_init
fr_pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$fr_pid" ] && kill $fr_pid 2>/dev/null; rm -rf "$dir"' EXIT
results="$dir/results.jsonl"

for key in ecdsa rsa; do bench_pki "$dir/pki-$key" $key; done

certgate_config() { # PKI RESUMPTION
  # With the session cache off, the verified-chain cache is off too: every
  # full handshake then verifies the client chain, as for a device seen
  # for the first time (the bench reuses one client certificate).
  bench_eap_config "$1" "resumption = $2
verified_chain_cache = $([ "$2" = true ] && echo 10000 || echo 0)"
}

run_server() { # SERVER KEY CACHE
  local server=$1 key=$2 cache=$3 pki="$dir/pki-$2" spid auth acct
  if [ "$server" = certgate ]; then
    certgate_config "$pki" "$([ "$cache" = yes ] && echo true || echo false)"
    bench_start
    spid=$pid auth=$(bench_port auth) acct=$(bench_port acct)
  else
    fr_config "$pki" "$cache" 1024
    fr_start
    spid=$fr_pid auth=$fr_auth acct=$fr_acct
  fi
  local keyname=$([ "$key" = ecdsa ] && echo "ECDSA P-256" || echo "RSA-2048")
  # Status-Server and accounting first, on a fresh process: FreeRADIUS
  # spends up to twice the CPU per request after EAP load than before.
  if [ "$key" = ecdsa ] && [ "$cache" = no ]; then
    measure "$server" "Status-Server" "$spid" "$auth" "$udp_conc" status
    measure "$server" "Accounting" "$spid" "$acct" "$udp_conc" acct
  fi
  if [ "$cache" = no ]; then
    for tls in 1.2 1.3; do
      measure "$server" "EAP-TLS $tls full, $keyname" "$spid" "$auth" "$eap_conc" \
        eap-tls --pki "$pki" --tls $tls --no-pq
    done
  else
    for tls in 1.2 1.3; do
      measure "$server" "EAP-TLS $tls resumed, $keyname" "$spid" "$auth" "$eap_conc" \
        eap-tls --pki "$pki" --tls $tls --no-pq --resume
    done
  fi
  if [ "$server" = certgate ]; then bench_stop; else fr_stop; fi
}

for key in ecdsa rsa; do
  for server in certgate freeradius; do
    run_server $server $key no
  done
done
for server in certgate freeradius; do
  run_server $server ecdsa yes
done

python3 - "$results" "$secs" "$eap_conc" "$udp_conc" <<'PY'
import json, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["row"] not in rows:
        rows[j["row"]] = {}
        order.append(j["row"])
    rows[j["row"]][j["server"]] = j

def fmt(j):
    if j is None:
        return ["–"] * 5
    failed = sum(j["failed"].values())
    tput = f'{j["throughput_per_s"]:.0f}' + (f" ({failed} failed)" if failed else "")
    cpu = j["server_cpu_ms_per_op"]
    rss = j["server_peak_rss_kib"]
    return [tput, f"{cpu:.3f}" if cpu is not None else "?", f'{j["latency_ms"]["p99"]:.2f}',
            f"{rss / 1024:.0f}" if rss else "?", f'{j["round_trips_per_op"]:.1f}']

print("| workload | certgate op/s | FreeRADIUS op/s | certgate CPU ms/op | FreeRADIUS CPU ms/op | CPU ratio | throughput ratio | certgate p99 ms | FreeRADIUS p99 ms | certgate peak RSS MiB | FreeRADIUS peak RSS MiB | round trips (cg / FR) | resumed (cg / FR) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for row in order:
    c, f = rows[row].get("certgate"), rows[row].get("freeradius")
    fc, ff = fmt(c), fmt(f)
    ratio = tratio = "–"
    if c and f and c["server_cpu_ms_per_op"] and f["server_cpu_ms_per_op"]:
        ratio = f'{c["server_cpu_ms_per_op"] / f["server_cpu_ms_per_op"]:.3f}'
    if c and f and f["throughput_per_s"]:
        tratio = f'{c["throughput_per_s"] / f["throughput_per_s"]:.2f}'
    res = f'{c["resumed"] if c else "–"} / {f["resumed"] if f else "–"}'
    print(f"| {row} | {fc[0]} | {ff[0]} | {fc[1]} | {ff[1]} | {ratio} | {tratio} | {fc[2]} | {ff[2]} | {fc[3]} | {ff[3]} | {fc[4]} / {ff[4]} | {res} |")
print()
print(f"{sys.argv[2]} s per run; EAP-TLS with {sys.argv[3]} conversations in flight, Status-Server and accounting with {sys.argv[4]} senders.")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB; $(freeradius -v | head -1); certgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
