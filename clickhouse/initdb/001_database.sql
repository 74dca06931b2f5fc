-- 001_database.sql: the telemetry database and the schema_version ledger.
--
-- How the files in this directory are applied
--   * Fresh volume: the clickhouse/clickhouse-server entrypoint runs every
--     /docker-entrypoint-initdb.d/*.sql once, in name order, through clickhouse-client as
--     CLICKHOUSE_USER (compose sets it to the admin user). It skips them when the data
--     directory already exists, so an upgrade on an old volume needs them applied again:
--     `clickhouse/apply-schema.sh` (keeps data), or `docker compose down -v && make up`
--     (a fresh volume; deletes stored telemetry).
--   * Tests and the native harness: scripts/clickhouse_schema/files.py applies the same files to chdb.
--
-- Rules that keep re-application safe
--   * Every statement is idempotent: CREATE ... IF NOT EXISTS, CREATE OR REPLACE VIEW for plain
--     views (so a new definition replaces the old one), guarded INSERTs into schema_version.
--   * No ON CLUSTER: this is a single node.
--   * A released file is never changed to alter an existing table. A change is a new file with
--     a higher number (for example 110_add_column.sql) holding ALTER TABLE ... statements and
--     its own schema_version row, so `SELECT * FROM otel.schema_version` shows what a volume has.
--
-- The database name `otel` is fixed here and must equal CLICKHOUSE_DATABASE in .env; the
-- entrypoint runs these files verbatim and cannot substitute it.

CREATE DATABASE IF NOT EXISTS otel;

-- One row per applied file. ReplacingMergeTree collapses an accidental duplicate on merge;
-- the guard on each INSERT keeps duplicates from being written in the first place.
CREATE TABLE IF NOT EXISTS otel.schema_version
(
    `version` UInt32 COMMENT 'Number of the initdb file (001, 010, ...)',
    `name` String COMMENT 'File name without extension',
    `applied_at` DateTime DEFAULT now() COMMENT 'When this version was first applied'
)
ENGINE = ReplacingMergeTree
ORDER BY version;

INSERT INTO otel.schema_version (version, name)
SELECT 1, '001_database'
WHERE 1 NOT IN (SELECT version FROM otel.schema_version);
