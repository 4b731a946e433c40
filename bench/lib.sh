# Shared by the bench scripts (source it): a release build, a scratch
# directory removed on exit, and a certgate server started from a config
# file with its listening ports read from its log.
#
#   bench_init                       build, make $dir, arrange cleanup
#   bench_config EXTRA_TOML          write $dir/c.toml: loopback listeners on
#                                    free ports, client "bench"/testing123;
#                                    log level $BENCH_LOG_LEVEL when set (the
#                                    start-up lines must stay on: ports come from them);
#                                    $BENCH_SERVER_EXTRA: more [server] lines
#   bench_pki DIR [KEY-TYPE]         a PKI (ecdsa by default) with client alice@example.org
#   bench_eap_config PKI [TLS] [EAP] bench_config for EAP-TLS with PKI: fragment size
#                                    1024, alice in group "all" → VLAN 20, a journal;
#                                    TLS and EAP are extra lines for [tls] and [eap]
#   bench_start                      start the server on $dir/c.toml; sets $pid
#   bench_port LISTENER              the port of "auth", "acct", "radsec" or "metrics"
#   bench_stop                       stop it
#   bench_postgres DB...             a PostgreSQL (initdb into $dir/pg, loopback port
#                                    $pgport, as the postgres user when run as root)
#                                    with these databases, stopped on exit; sets
#                                    $pgport; pg_ticks prints the CPU clock ticks of
#                                    every postgres process so far
#   measure SERVER ROW PID PORT CONCURRENCY ARGS...
#                                    one certgate-bench run of ${secs}s (20 warm-up
#                                    operations) against 127.0.0.1:PORT with the
#                                    server's PID, its JSON report appended to
#                                    $results tagged with SERVER and ROW

bench_init() {
  cd "$(dirname "${BASH_SOURCE[1]}")/.."
  cargo build --release -q
  dir=$(mktemp -d)
  pid=""
  trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
}

bench_postgres() {
  local pgbin pgdir as_pg=()
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -n 1)
  pgdir="$dir/pg"
  mkdir -p "$pgdir"
  if [ "$(id -u)" -eq 0 ]; then chmod 755 "$dir"; chown postgres:postgres "$pgdir"; as_pg=(runuser -u postgres --); fi
  pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U certgate --no-sync > /dev/null
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -o "-k $pgdir -h 127.0.0.1 -p $pgport -c max_connections=100" -w start > /dev/null
  pg_stop="$(printf '%q ' "${as_pg[@]}" "$pgbin/pg_ctl") -D $pgdir/data -m immediate stop"
  trap 'eval "$pg_stop" > /dev/null 2>&1; [ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "${fr_pid:-}" ] && kill $fr_pid 2>/dev/null; rm -rf "$dir"' EXIT
  for db in "$@"; do "${as_pg[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U certgate "$db"; done
}

pg_ticks() {
  local t=0
  for p in $(pgrep -u postgres postgres || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}

bench_config() {
  cat > "$dir/c.toml" <<TOML
[server]
auth_listen = ["127.0.0.1:0"]
acct_listen = ["127.0.0.1:0"]
dictionary = "$PWD/dictionaries/dictionary"
${BENCH_SERVER_EXTRA:-}
[metrics]
listen = "127.0.0.1:0"
[log]
level = "${BENCH_LOG_LEVEL:-warn,certgate::server=info}"
[[clients]]
name = "bench"
address = "127.0.0.1"
secret = "testing123"
$1
TOML
}

bench_pki() {
  target/release/certgate pki init --dir "$1" --key-type "${2:-ecdsa}" > /dev/null
  target/release/certgate pki client --dir "$1" --name alice@example.org > /dev/null
}

bench_eap_config() {
  printf '[users."alice@example.org"]\ngroups = ["all"]\n' > "$dir/users.toml"
  bench_config "[eap]
fragment_size = 1024
${3:-}
[tls]
certificate = \"$1/server.pem\"
private_key = \"$1/server.key\"
ca = [\"$1/ca.pem\"]
${2:-}
[authz]
users = \"$dir/users.toml\"
[[authz.rule]]
groups_any = \"all\"
vlan = 20
[accounting]
journal_dir = \"$dir/journal\""
}

bench_start() {
  target/release/certgate serve --config "$dir/c.toml" 2> "$dir/log" &
  pid=$!
  for _ in $(seq 200); do grep -q 'certgate started' "$dir/log" && return 0; sleep 0.05; done
  echo "certgate did not start:" >&2
  cat "$dir/log" >&2
  return 1
}

bench_port() {
  grep -o "listener=\"$1\" address=[0-9.:]*" "$dir/log" | sed 's/.*://'
}

bench_stop() {
  kill $pid
  wait $pid 2>/dev/null || true
  pid=""
}

measure() {
  local server=$1 row=$2 spid=$3 port=$4 conc=$5
  shift 5
  local json
  json=$(target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" \
    --warmup 20 --server-pid "$spid" --json "$@")
  python3 -c 'import json,sys; j=json.loads(sys.argv[3]); j["server"]=sys.argv[1]; j["row"]=sys.argv[2]; print(json.dumps(j))' \
    "$server" "$row" "$json" >> "$results"
  echo "  $server $row done" >&2
}
