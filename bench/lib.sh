# Shared by the bench scripts (source it): a release build, a scratch
# directory removed on exit, and a certgate server started from a config
# file with its listening ports read from its log.
#
#   bench_init                       build, make $dir, arrange cleanup
#   bench_config EXTRA_TOML          write $dir/c.toml: loopback listeners on
#                                    free ports, client "bench"/testing123
#   bench_start                      start the server on $dir/c.toml; sets $pid
#   bench_port LISTENER              the port of "auth", "acct" or "metrics"
#   bench_stop                       stop it

bench_init() {
  cd "$(dirname "${BASH_SOURCE[1]}")/.."
  cargo build --release -q
  dir=$(mktemp -d)
  pid=""
  trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
}

bench_config() {
  cat > "$dir/c.toml" <<TOML
[server]
auth_listen = ["127.0.0.1:0"]
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
$1
TOML
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
