#!/bin/sh
# Submits connector configs to a Sluice worker over REST (docker-compose's
# init services): waits for the worker, then for each file
# PUT /connectors/{name}/config (create or update: idempotent on restarts).
# usage: submit-connectors.sh http://worker:8083 file.json...
# Files are {"name": ..., "config": {...}}; ${env:...} references stay as
# they are and are resolved by the worker from its own environment.
set -eu
url=$1; shift
i=0
until curl -sf "$url/" -o /dev/null; do
  i=$((i + 1)); [ $i -gt 120 ] && { echo "worker $url not answering" >&2; exit 1; }
  sleep 1
done
for f in "$@"; do
  name=$(sed -n 's/^ *"name": *"\([^"]*\)".*/\1/p' "$f" | head -n 1)
  [ -n "$name" ] || { echo "$f: no \"name\"" >&2; exit 1; }
  # the "config" object: everything between the first '{' after "config": and its '}'
  body=$(tr '\n' ' ' <"$f" | sed 's/^.*"config": *\({.*}\) *} *$/\1/')
  code=$(curl -s -o /tmp/answer -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
         --data-binary "$body" "$url/connectors/$name/config")
  case $code in
    200|201) echo "connector $name submitted to $url ($code)" ;;
    *) echo "connector $name: HTTP $code: $(cat /tmp/answer)" >&2; exit 1 ;;
  esac
done
