#!/bin/sh
# Grafana's entrypoint in this image: derive the ClickHouse data source's host, port and TLS
# settings from CLICKHOUSE_URL (the one setting every ClickHouse client of the stack reads), then
# start Grafana as the base image does. provisioning/datasources/clickhouse.yaml reads them.
set -eu
url="${CLICKHOUSE_URL:-http://clickhouse:8123}"
scheme="${url%%://*}"
address="${url#*://}"
address="${address%%/*}"   # no path
address="${address%%,*}"   # several hosts (exporter failover): the first, as the scripts do
case "$scheme" in
  https) secure=true; port=8443 ;;
  http) secure=false; port=8123 ;;
  *) echo "clickhouse-env: CLICKHOUSE_URL must start with http:// or https://" >&2; exit 64 ;;
esac
case "$address" in
  *"["*) echo "clickhouse-env: use a host name, not an IPv6 literal, in CLICKHOUSE_URL" >&2; exit 64 ;;
  *:*) host="${address%:*}"; port="${address##*:}" ;;
  *) host="$address" ;;
esac
# A CA file mounted (clickhouse/external.yaml's CLICKHOUSE_CA_FILE) replaces the system store.
tls_ca=false
if [ -s "${CLICKHOUSE_CA_PATH:-/etc/grafana/clickhouse-ca.pem}" ]; then tls_ca=true; fi
export CLICKHOUSE_HOST="$host" CLICKHOUSE_PORT="$port" CLICKHOUSE_SECURE="$secure"
export CLICKHOUSE_TLS_CA="$tls_ca"
exec "$@"
