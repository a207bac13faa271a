#!/usr/bin/env bash
# Installs the Debian packages Sluice needs that are missing. Idempotent and
# silent when everything is there.
set -euo pipefail
PKGS=(build-essential pkg-config librdkafka-dev libavro-dev libwebsockets-dev
      libcurl4-openssl-dev libjansson-dev libssl-dev libsqlite3-dev libcmocka-dev
      kcat python3 python3-avro libmicrohttpd-dev curl openssl jq
      clang libclang-rt-14-dev valgrind
      prometheus  # tests/it_metrics.sh scrapes GET /metrics with the real server
      chromium    # tests/it_ui.sh renders GET /ui headless (only that test)
      docker-compose  # tests/it_compose.sh: `docker-compose config` (no engine needed)
      )
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
