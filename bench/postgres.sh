#!/usr/bin/env bash
# Accounting shipped into PostgreSQL: certgate-bench sends durable
# accounting (64 in flight) for N seconds to a certgate that ships its
# journal into a PostgreSQL started here (initdb into a temporary folder,
# loopback port; as the postgres user when run as root). Reports requests
# per second and certgate CPU per request (certgate-bench), then how long
# the shipper took to drain, records shipped per second, PostgreSQL CPU per
# record (utime + stime of every postgres process, from /proc), and the
# peak shipping lag during the load.
#
#   bench/postgres.sh [seconds]        (default 10)
set -euo pipefail
secs=${1:-10}
conc=${CONCURRENCY:-64}
source "$(dirname "$0")/lib.sh"
bench_init
bench_postgres radius
bench_config "[accounting]
journal_dir = \"$dir/journal\"
[accounting.postgres]
url = \"host=127.0.0.1 port=$pgport user=certgate dbname=radius\"
node = \"bench\"
batch = ${BATCH:-500}"
bench_start
port=$(bench_port acct)
mport=$(bench_port metrics)
sleep 1 # the shipper connects and creates the schema
cpu0=$(pg_ticks)
peak=0
( while sleep 0.5; do curl -s "127.0.0.1:$mport/metrics" | awk '/^certgate_ship_lag_records / {print $2}'; done ) > "$dir/lag" &
sampler=$!
target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" --server-pid $pid acct
loaded=$(date +%s.%N)
until [ "$(curl -s "127.0.0.1:$mport/metrics" | awk '/^certgate_ship_lag_records / {print $2}')" = "0" ]; do sleep 0.1; done
drained=$(date +%s.%N)
kill $sampler 2>/dev/null || true
cpu1=$(pg_ticks)
shipped=$(curl -s "127.0.0.1:$mport/metrics" | awk '/^certgate_ship_records_total / {print $2}')
rows=$(psql -h 127.0.0.1 -p "$pgport" -U certgate -d radius -At -c "SELECT count(*) FROM certgate_acct_records")
peak=$(sort -n "$dir/lag" | tail -n 1)
hz=$(getconf CLK_TCK)
python3 - "$shipped" "$rows" "$secs" "$loaded" "$drained" "$cpu0" "$cpu1" "$hz" "$peak" <<'PY'
import sys
shipped, rows, secs, loaded, drained, c0, c1, hz, peak = sys.argv[1:]
shipped, rows = float(shipped), int(rows)
drain = float(drained) - float(loaded)
cpu = (int(c1) - int(c0)) / int(hz)
print(f"shipped          {int(shipped)} records ({rows} rows in certgate_acct_records)")
print(f"drain after load {drain:.2f} s; shipping rate over the run {shipped / (float(secs) + drain):.0f} records/s")
print(f"PostgreSQL CPU   {1e6 * cpu / max(shipped, 1):.0f} µs per record")
print(f"peak lag         {peak} records")
PY
