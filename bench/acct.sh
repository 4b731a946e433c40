#!/usr/bin/env bash
# Durable accounting: requests per second with 64 concurrent senders, every
# acknowledged record fdatasync'ed first; mean records per fsync (from the
# server's journal metrics) and server CPU per request (utime + stime from
# /proc). The journal goes to a temporary directory on the same disk as /tmp.
#
#   bench/acct.sh [seconds]        (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${CONCURRENCY:-64}
cargo build --release -q
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
cat > "$dir/c.toml" <<TOML
[server]
auth_listen = []
acct_listen = ["127.0.0.1:0"]
dictionary = "$PWD/dictionaries/dictionary"
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn,certgate::server=info"
[[clients]]
name = "bench"
address = "127.0.0.1"
secret = "testing123"
[accounting]
journal_dir = "$dir/journal"
TOML
target/release/certgate serve --config "$dir/c.toml" 2> "$dir/log" &
pid=$!
for _ in $(seq 100); do grep -q 'listener="metrics"' "$dir/log" && break; sleep 0.05; done
port=$(grep -o 'listener="acct" address=[0-9.:]*' "$dir/log" | sed 's/.*://')
mport=$(grep -o 'listener="metrics" address=[0-9.:]*' "$dir/log" | sed 's/.*://')
target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" --server-pid $pid acct
metrics=$(curl -s "127.0.0.1:$mport/metrics")
sum=$(echo "$metrics" | awk '/^certgate_journal_batch_records_sum/ {print $2}')
count=$(echo "$metrics" | awk '/^certgate_journal_batch_records_count/ {print $2}')
fsum=$(echo "$metrics" | awk '/^certgate_journal_fsync_seconds_sum/ {print $2}')
echo "journal          $sum records in $count fsyncs: $(python3 -c "print(f'{$sum/$count:.1f}')") records/fsync, mean fsync $(python3 -c "print(f'{1000*$fsum/$count:.2f}')") ms"
echo "journal size     $(du -sh "$dir/journal" | cut -f1) in $(ls "$dir/journal" | wc -l) files"
echo "filesystem       $(df -T "$dir" | awk 'NR==2 {print $2}') on $(df "$dir" | awk 'NR==2 {print $1}')"
