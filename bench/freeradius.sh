# FreeRADIUS (Debian package freeradius, 3.2.x) configured like the certgate
# under test, for bench/compare.sh (source it after lib.sh):
#
#   fr_config PKI CACHE FRAG     write $dir/fr: Debian's radiusd.conf (runs as
#                                root, logs to a file, no debug), one virtual
#                                server on free loopback ports with Status-
#                                Server on, client "bench"/testing123, the
#                                eap module with EAP-TLS only (TLS 1.2-1.3, the
#                                PKI's server certificate and CA, TLS session
#                                cache yes/no (on disk: FreeRADIUS 3.2 has no
#                                in-memory one), fragment size FRAG), the same
#                                VLAN reply as certgate, and a detail file for
#                                accounting (not synced: FreeRADIUS does not)
#                                With $FR_SQL set ("PORT DATABASE"), accounting
#                                goes through rlm_sql into that PostgreSQL on
#                                127.0.0.1 (user certgate, Debian's queries.conf,
#                                acct_unique in preacct) instead of the detail file.
#                                With $FR_RADSEC set, also a RadSec listener
#                                (TLS, auth+acct, NAS certificate required from
#                                the PKI's CA, client "nas"/radsec from
#                                127.0.0.1, no connection limits) on $fr_radsec
#   fr_start                     start it; sets $fr_pid, $fr_auth, $fr_acct
#   fr_stop

fr_free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

fr_free_tcp_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

fr_config() {
  local pki=$1 cache=$2 frag=$3 fr="$dir/fr"
  rm -rf "$fr"
  mkdir -p "$fr/mods-enabled" "$fr/sites-enabled" "$fr/run" "$fr/log" "$fr/tlscache"
  # Debian's main file and dictionaries; our own modules and site.
  sed -e "s|^\s*user = freerad|#|" -e "s|^\s*group = freerad|#|" \
      -e "s|^logdir = .*|logdir = $fr/log|" -e "s|^run_dir = .*|run_dir = $fr/run|" \
      -e "s|^\$INCLUDE clients.conf|\$INCLUDE $fr/clients.conf|" \
      -e "s|^\s*auth = no|auth = ${FR_AUTH_LOG:-no}|" \
      /etc/freeradius/3.0/radiusd.conf > "$fr/radiusd.conf"
  cp -r /etc/freeradius/3.0/dictionary /etc/freeradius/3.0/policy.d /etc/freeradius/3.0/templates.conf \
        /etc/freeradius/3.0/trigger.conf /etc/freeradius/3.0/mods-config "$fr/"
  touch "$fr/proxy.conf"
  cat > "$fr/clients.conf" <<CONF
client bench {
  ipaddr = 127.0.0.1
  secret = testing123
  require_message_authenticator = no
}
CONF
  cat > "$fr/mods-enabled/always" <<'CONF'
always ok {
  rcode = ok
}
CONF
  cat > "$fr/mods-enabled/detail" <<CONF
detail {
  filename = $fr/log/detail
  escape_filenames = no
  permissions = 0600
  header = "%t"
}
CONF
  cat > "$fr/mods-enabled/eap" <<CONF
eap {
  default_eap_type = tls
  timer_expire = 60
  ignore_unknown_eap_types = no
  cisco_accounting_username_bug = no
  max_sessions = \${max_requests}
  tls-config tls-common {
    private_key_file = $pki/server.key
    certificate_file = $pki/server.pem
    ca_file = $pki/ca.pem
    cipher_list = "DEFAULT"
    cipher_server_preference = no
    tls_min_version = "1.2"
    tls_max_version = "1.3"
    ecdh_curve = ""
    fragment_size = $frag
    include_length = yes
    check_crl = no
    cache {
      enable = $cache
      lifetime = 1
      max_entries = 10000
      # FreeRADIUS 3.2 keeps resumable sessions only on disk (its OpenSSL
      # in-memory cache is disabled): two files per session.
      name = "bench"
      persist_dir = "$fr/tlscache"
    }
    verify {
    }
    ocsp {
      enable = no
    }
  }
  tls {
    tls = tls-common
  }
}
CONF
  local accounting="detail" preacct=""
  if [ -n "${FR_SQL:-}" ]; then
    read -r sql_port sql_db <<< "$FR_SQL"
    accounting="sql"
    preacct="acct_unique"
    # Debian's queries use %{tolower:…}, which the expr module provides.
    printf 'expr {\n}\n' > "$fr/mods-enabled/expr"
    cat > "$fr/mods-enabled/sql" <<CONF
sql {
  dialect = "postgresql"
  driver = "rlm_sql_postgresql"
  server = "127.0.0.1"
  port = $sql_port
  login = "certgate"
  password = ""
  radius_db = "$sql_db"
  acct_table1 = "radacct"
  acct_table2 = "radacct"
  postauth_table = "radpostauth"
  authcheck_table = "radcheck"
  groupcheck_table = "radgroupcheck"
  authreply_table = "radreply"
  groupreply_table = "radgroupreply"
  usergroup_table = "radusergroup"
  delete_stale_sessions = yes
  read_clients = no
  client_table = "nas"
  group_attribute = "SQL-Group"
  pool {
    start = 5
    min = 4
    max = 32
    spare = 10
    uses = 0
    retry_delay = 30
    lifetime = 0
    idle_timeout = 60
  }
  \$INCLUDE $fr/mods-config/sql/main/postgresql/queries.conf
}
CONF
  fi
  fr_auth=$(fr_free_port)
  fr_acct=$(fr_free_port)
  local radsec=""
  if [ -n "${FR_RADSEC:-}" ]; then
    fr_radsec=$(fr_free_tcp_port)
    cat >> "$fr/clients.conf" <<CONF
clients radsec {
  client nas {
    ipaddr = 127.0.0.1
    proto = tls
    secret = radsec
  }
}
CONF
    radsec="listen {
    ipaddr = 127.0.0.1
    port = $fr_radsec
    type = auth+acct
    proto = tcp
    clients = radsec
    limit {
      max_connections = 0
      lifetime = 0
      idle_timeout = 0
    }
    tls {
      private_key_file = $pki/server.key
      certificate_file = $pki/server.pem
      ca_file = $pki/ca.pem
      cipher_list = \"DEFAULT\"
      tls_min_version = \"1.2\"
      tls_max_version = \"1.3\"
      ecdh_curve = \"\"
      require_client_cert = yes
      fragment_size = 8192
      verify {
      }
    }
  }"
  fi
  cat > "$fr/sites-enabled/bench" <<CONF
server bench {
  $radsec
  listen {
    type = auth
    ipaddr = 127.0.0.1
    port = $fr_auth
  }
  listen {
    type = acct
    ipaddr = 127.0.0.1
    port = $fr_acct
  }
  authorize {
    eap {
      ok = return
    }
  }
  authenticate {
    eap
  }
  preacct {
    $preacct
  }
  accounting {
    $accounting
  }
  post-auth {
    update reply {
      Tunnel-Type := VLAN
      Tunnel-Medium-Type := IEEE-802
      Tunnel-Private-Group-Id := "20"
    }
  }
}
CONF
}

fr_start() {
  freeradius -d "$dir/fr" -f -l "$dir/fr/log/radius.log" > "$dir/fr/log/stdout" 2>&1 &
  fr_pid=$!
  for _ in $(seq 200); do
    if echo "Message-Authenticator = 0x00" | radclient -q -r 1 -t 1 "127.0.0.1:$fr_auth" status testing123 > /dev/null 2>&1; then
      return 0
    fi
    kill -0 $fr_pid 2> /dev/null || break
    sleep 0.05
  done
  echo "FreeRADIUS did not start:" >&2
  cat "$dir/fr/log/stdout" "$dir/fr/log/radius.log" >&2 2> /dev/null
  return 1
}

fr_stop() {
  if ! kill -0 $fr_pid 2> /dev/null; then
    wait $fr_pid 2> /dev/null && code=0 || code=$?
    echo "FreeRADIUS (pid $fr_pid) had exited (status $code); the end of its log:" >&2
    tail -n 5 "$dir/fr/log/radius.log" "$dir/fr/log/stdout" >&2 2> /dev/null || true
  fi
  kill $fr_pid 2> /dev/null || true
  wait $fr_pid 2> /dev/null || true
  fr_pid=""
}
