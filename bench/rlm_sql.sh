#!/usr/bin/env bash
# Accounting into PostgreSQL, side by side on one PostgreSQL started here
# (initdb into a temporary folder, loopback port): FreeRADIUS 3.2 with
# rlm_sql (Debian's freeradius-postgresql, its shipped schema and queries,
# synchronous: the Accounting-Response waits for the database) against
# certgate (journal fdatasync, then the shipper writes batches). For each:
# acknowledged requests per second and server CPU per request
# (certgate-bench, 64 in flight), PostgreSQL CPU per request, and for
# certgate the drain time of the shipping backlog.
#
#   bench/rlm_sql.sh [seconds]        (default 10)
set -euo pipefail
secs=${1:-10}
conc=${CONCURRENCY:-64}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/freeradius.sh"
bench_init
fr_pid=""
bench_postgres radius freeradius
psql -q -h 127.0.0.1 -p "$pgport" -U certgate -d freeradius -f /etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql > /dev/null
hz=$(getconf CLK_TCK)
report() { # name json pg_ticks_before pg_ticks_after [drain]
  python3 - "$@" "$hz" <<'PY'
import json, sys
name, j, t0, t1, drain, hz = sys.argv[1:]
j = json.loads(j)
n = j["completed"]
pg_us = 1e6 * (int(t1) - int(t0)) / int(hz) / max(n, 1)
extra = f", shipping drained {float(drain):.1f} s after the load" if drain != "-" else ""
print(f"{name:<22} {j['throughput_per_s']:>9.0f} req/s  server {1000*j['server_cpu_ms_per_op']:>5.0f} µs/req  PostgreSQL {pg_us:>5.0f} µs/req  p99 {j['latency_ms']['p99']:.1f} ms{extra}")
PY
}

# FreeRADIUS + rlm_sql.
pki="$dir/pki"
bench_pki "$pki"
FR_SQL="$pgport freeradius" fr_config "$pki" no 1024
fr_start
t0=$(pg_ticks)
json=$(target/release/certgate-bench --target "127.0.0.1:$fr_acct" -c "$conc" -d "${secs}s" --warmup 20 --server-pid "$fr_pid" --json acct)
t1=$(pg_ticks)
fr_stop
fr_json=$json fr_t0=$t0 fr_t1=$t1

# certgate + shipping.
bench_config "[accounting]
journal_dir = \"$dir/journal\"
[accounting.postgres]
url = \"host=127.0.0.1 port=$pgport user=certgate dbname=radius\"
node = \"bench\""
bench_start
port=$(bench_port acct)
mport=$(bench_port metrics)
sleep 1
t0=$(pg_ticks)
json=$(target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" --warmup 20 --server-pid $pid --json acct)
loaded=$(date +%s.%N)
until [ "$(curl -s "127.0.0.1:$mport/metrics" | awk '/^certgate_ship_lag_records / {print $2}')" = "0" ]; do sleep 0.1; done
drain=$(python3 -c "import time; print(time.time() - $loaded)")
t1=$(pg_ticks)
bench_stop
echo "accounting into PostgreSQL, $conc in flight, ${secs}s each; $(nproc) cores"
report "FreeRADIUS + rlm_sql" "$fr_json" "$fr_t0" "$fr_t1" "-"
report "certgate + shipper" "$json" "$t0" "$t1" "$drain"
echo "rows: FreeRADIUS radacct $(psql -h 127.0.0.1 -p "$pgport" -U certgate -d freeradius -At -c 'SELECT count(*) FROM radacct'), certgate records $(psql -h 127.0.0.1 -p "$pgport" -U certgate -d radius -At -c 'SELECT count(*) FROM certgate_acct_records')"
