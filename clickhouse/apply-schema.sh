#!/usr/bin/env bash
# Re-apply clickhouse/initdb/*.sql to the running `clickhouse` compose service.
#
# The image's entrypoint runs the initdb files only when the data volume is created, so a
# schema added or changed later (a new numbered file) reaches an existing volume only through
# this script. Every statement is idempotent: re-running it keeps data and changes nothing that
# is already there. Runs as the admin user the container was started with
# (CLICKHOUSE_USER / CLICKHOUSE_PASSWORD in its environment), so no password is typed here.
#
# Usage (from anywhere): clickhouse/apply-schema.sh        COMPOSE="docker compose -p x" to override
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a compose <<< "${COMPOSE:-docker compose}"

client=(exec -T clickhouse sh -c
  'exec clickhouse-client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery')

for file in clickhouse/initdb/*.sql; do
  echo "applying ${file}"
  "${compose[@]}" "${client[@]}" < "${file}"
done

echo "schema versions now on this volume:"
"${compose[@]}" "${client[@]}" <<< \
  "SELECT version, name, applied_at FROM otel.schema_version FINAL ORDER BY version FORMAT PrettyCompact"
