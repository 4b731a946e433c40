#!/usr/bin/env bash
# What LDAP authorization costs per EAP-TLS authentication: the same load
# (certgate-bench, TLS 1.2, resumed and full handshakes) against certgate
# with the file directory, with LDAP and the cache off (every authentication
# asks slapd: user search, disabled check, group search per nesting level),
# and with LDAP and a warm cache. slapd is Debian's, on a free loopback
# port, seeded with docker/ldap/seed.ldif (alice: staff nested in employees).
#
#   bench/ldap.sh [seconds-per-run]        (default 10)
set -euo pipefail
secs=${1:-10}
conc=${CONCURRENCY:-16}
source "$(dirname "$0")/lib.sh"
bench_init
slapd_pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$slapd_pid" ] && kill $slapd_pid 2>/dev/null; rm -rf "$dir"' EXIT

ldap_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$dir/ldapdb"
sed -e "s|/var/lib/ldap/certgate|$dir/ldapdb|" -e "s|/var/run/slapd/slapd.pid|$dir/slapd.pid|" \
  docker/ldap/slapd.conf > "$dir/slapd.conf"
/usr/sbin/slapadd -f "$dir/slapd.conf" -l docker/ldap/seed.ldif 2> /dev/null
/usr/sbin/slapd -d 0 -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$ldap_port/" 2> "$dir/slapd.log" &
slapd_pid=$!
for _ in $(seq 100); do
  ldapsearch -x -H "ldap://127.0.0.1:$ldap_port" -b "" -s base > /dev/null 2>&1 && break
  sleep 0.05
done

pki="$dir/pki"
target/release/certgate pki init --dir "$pki" > /dev/null
target/release/certgate pki client --dir "$pki" --name alice@example.org > /dev/null
printf '[users."alice@example.org"]\ngroups = ["employees"]\n' > "$dir/users.toml"
tls="[tls]
certificate = \"$pki/server.pem\"
private_key = \"$pki/server.key\"
ca = [\"$pki/ca.pem\"]
crls = [\"$pki/crl.pem\"]"
rule='[[authz.rule]]
name = "employees"
groups_any = "employees"
vlan = 20
reply = ["Aruba-User-Role = employee", "Class = dept={attr:departmentNumber}"]'
ldap_section() {
  cat <<TOML
[authz]
directory = "ldap"
cache_ttl = "$1"
negative_cache_ttl = "$1"
[authz.ldap]
urls = ["ldap://127.0.0.1:$ldap_port"]
bind_dn = "cn=certgate,ou=services,dc=example,dc=org"
bind_password = "ldap-secret"
base = "dc=example,dc=org"
user_filter = "(&(objectClass=inetOrgPerson)(mail={identity}))"
groups = "search"
group_base = "ou=groups,dc=example,dc=org"
nested = "recursive"
nested_depth = 3
disabled_filter = "(employeeType=disabled)"
attributes = ["departmentNumber"]
TOML
}

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '%-22s %-8s %10s %16s %16s %9s %9s\n' directory mode "auth/s" "certgate ms/auth" "slapd ms/auth" "p50 ms" "p99 ms"
for setup in file ldap-cold ldap-warm; do
  case $setup in
    file) authz="[authz]
users = \"$dir/users.toml\"" ;;
    ldap-cold) authz=$(ldap_section 0s) ;;
    ldap-warm) authz=$(ldap_section 60s) ;;
  esac
  bench_config "$tls
$authz
$rule"
  bench_start
  port=$(bench_port auth)
  for mode in resumed full; do
    resume=""
    [ $mode = resumed ] && resume="--resume"
    before=$(cpu $slapd_pid)
    json=$(target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" \
      --warmup 50 --server-pid $pid --json eap-tls --pki "$pki" --tls 1.2 $resume)
    after=$(cpu $slapd_pid)
    python3 - "$setup" "$mode" "$json" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
setup, mode, j = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ticks = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
done = j['completed'] or 1
print(f"{setup:<22} {mode:<8} {j['throughput_per_s']:10.0f} {j['server_cpu_ms_per_op']:16.3f} "
      f"{ticks * 1000 / done:16.3f} {j['latency_ms']['p50']:9.2f} {j['latency_ms']['p99']:9.2f}"
      + (f"   failed {j['failed']}" if j['failed'] else ""))
PY
  done
  bench_stop
done
echo "generator: certgate-bench, $conc conversations in flight, ${secs}s per run, TLS 1.2, ECDSA P-256; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
