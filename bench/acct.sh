#!/usr/bin/env bash
# Durable accounting: requests per second with 64 concurrent senders, every
# acknowledged record fdatasync'ed first; mean records per fsync (from the
# server's journal metrics) and server CPU per request (utime + stime from
# /proc). The journal goes to a temporary directory on the same disk as /tmp.
#
#   bench/acct.sh [seconds]        (default 10)
set -euo pipefail
secs=${1:-10}
conc=${CONCURRENCY:-64}
source "$(dirname "$0")/lib.sh"
bench_init
bench_config "[accounting]
journal_dir = \"$dir/journal\""
bench_start
port=$(bench_port acct)
mport=$(bench_port metrics)
target/release/certgate-bench --target "127.0.0.1:$port" -c "$conc" -d "${secs}s" --server-pid $pid acct
metrics=$(curl -s "127.0.0.1:$mport/metrics")
sum=$(echo "$metrics" | awk '/^certgate_journal_batch_records_sum/ {print $2}')
count=$(echo "$metrics" | awk '/^certgate_journal_batch_records_count/ {print $2}')
fsum=$(echo "$metrics" | awk '/^certgate_journal_fsync_seconds_sum/ {print $2}')
echo "journal          $sum records in $count fsyncs: $(python3 -c "print(f'{$sum/$count:.1f}')") records/fsync, mean fsync $(python3 -c "print(f'{1000*$fsum/$count:.2f}')") ms"
echo "journal size     $(du -sh "$dir/journal" | cut -f1) in $(ls "$dir/journal" | wc -l) files"
echo "filesystem       $(df -T "$dir" | awk 'NR==2 {print $2}') on $(df "$dir" | awk 'NR==2 {print $1}')"
