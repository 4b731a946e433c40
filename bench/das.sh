#!/usr/bin/env bash
# Revocation to disconnect, measured on real NAS software: hostapd (wired
# 802.1X on a veth pair, its DAS server on loopback) and wpa_supplicant in
# a namespace. 20 devices each authenticate, have their certificate
# revoked in the test CA (crl_refresh = 1s) and are timed until hostapd
# closes the port; 20 more are closed by `certgate disconnect`. Needs root
# and the hostapd and wpasupplicant packages.
#   bench/das.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test das revocation_to_disconnect_timing -- --ignored --nocapture 2>&1 |
  grep -E 'runs, median|test result'
