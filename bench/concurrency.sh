#!/usr/bin/env bash
# Server CPU per full EAP-TLS authentication by how many conversations are
# in flight: certgate-bench (the Rust supplicant) with 1, 2 and 16 in
# flight, and eapol_test (wpa_supplicant's test client, one process per
# authentication) with 1 and 2 loops running side by side. At low
# concurrency the server's fixed costs per wake-up (thread hand-offs,
# timers, parking) are not shared between requests; this shows how much of
# a lone authentication they are.
#
# TLS 1.2, ECDSA P-256 server certificate, no resumption, no CRL, the
# classic key exchange (OpenSSL 3.0 in eapol_test has no post-quantum
# group), fragment size 1024; certgate logs no line per request.
#
#   bench/concurrency.sh [seconds-per-run]        (default 10)
set -euo pipefail
secs=${1:-10}
export BENCH_LOG_LEVEL="warn,certgate::server=info,certgate::proto=warn"
source "$(dirname "$0")/lib.sh"
bench_init
bench_pki "$dir/pki"
bench_eap_config "$dir/pki" "resumption = false
verified_chain_cache = 0"
bench_start
port=$(bench_port auth)
cat > "$dir/eapol.conf" <<CONF
network={
  key_mgmt=IEEE8021X
  eap=TLS
  identity="alice@example.org"
  ca_cert="$dir/pki/ca.pem"
  client_cert="$dir/pki/clients/alice@example.org.pem"
  private_key="$dir/pki/clients/alice@example.org.key"
  eapol_flags=0
  phase1="tls_disable_tlsv1_3=1"
}
CONF

printf '%-28s %10s %16s\n' client "auth/s" "server ms/auth"
for conc in 1 2 16; do
  json=$(target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" \
    --warmup 20 --server-pid "$pid" --json eap-tls --pki "$dir/pki" --tls 1.2 --no-pq)
  python3 - "certgate-bench, $conc in flight" "$json" <<'PY'
import json, sys
j = json.loads(sys.argv[2])
print(f'{sys.argv[1]:<28} {j["throughput_per_s"]:>10.0f} {j["server_cpu_ms_per_op"]:>16.3f}')
PY
done

python3 - "$pid" "$port" "$dir/eapol.conf" "$secs" <<'PY'
import subprocess, sys, threading, time

pid, port, conf, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
tick = 100.0  # USER_HZ

def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def loop(stop, done):
    while not stop.is_set():
        r = subprocess.run(["eapol_test", "-c", conf, "-a", "127.0.0.1", "-p", port,
                            "-s", "testing123", "-t", "5"], capture_output=True)
        if r.returncode == 0:
            done.append(1)

for loops in (1, 2):
    stop, done = threading.Event(), []
    before, t0 = cpu(), time.monotonic()
    threads = [threading.Thread(target=loop, args=(stop, done)) for _ in range(loops)]
    for t in threads:
        t.start()
    time.sleep(secs)
    stop.set()
    for t in threads:
        t.join()
    used, elapsed = cpu() - before, time.monotonic() - t0
    n = max(len(done), 1)
    print(f'{"eapol_test, " + str(loops) + " in flight":<28} {n / elapsed:>10.0f} {1000 * used / n:>16.3f}')
PY
bench_stop
