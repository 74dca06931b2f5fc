"""The owned schema (clickhouse/initdb) against the exporter's own DDL, on the real engine (chdb).

The collector runs the contrib clickhouse exporter with `create_schema: false`, so its INSERTs
land in tables this repository creates. These tests render the exporter's embedded SQL
templates at the version pinned in otel-collector/builder-config.yaml, create them in a
separate database beside ours, and compare system.columns, so any drift in a column name or
type fails here, naming the table and column, instead of failing inserts at run time.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.clickhouse_schema.files import (
    INITDB_DIR,
    REPO_ROOT,
    apply_schema,
    initdb_files,
    split_sql,
)
from scripts.envfile.spec import FIXED_VALUES
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.ci import missing_tool

BUILDER_CONFIG = REPO_ROOT / "otel-collector" / "builder-config.yaml"
EXPORTER_MODULE = (
    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter"
)
OURS = "otel"
REFERENCE = "exporter_ref"  # where the exporter's own DDL is created, beside ours
TTL_DAYS = 30

# Templates that render tables the pipeline writes, with the table name the exporter gives
# them by default, how it fills the placeholders and the time column of its TTL expression.
# *_json_* (the `json: true` variant) and profiles are not used by this stack.
UNUSED_TEMPLATES = {"logs_json_table.sql", "traces_json_table.sql", "profiles_table.sql"}


@dataclass(frozen=True)
class Template:
    file: str
    table: str
    ttl_column: str


TEMPLATES = [
    Template("traces_table.sql", "otel_traces", "Timestamp"),
    Template("traces_id_ts_lookup_table.sql", "otel_traces", "Start"),
    Template("traces_id_ts_lookup_mv.sql", "otel_traces", ""),
    Template("logs_table.sql", "otel_logs", "Timestamp"),
    Template("metrics_gauge_table.sql", "otel_metrics_gauge", "TimeUnix"),
    Template("metrics_sum_table.sql", "otel_metrics_sum", "TimeUnix"),
    Template("metrics_summary_table.sql", "otel_metrics_summary", "TimeUnix"),
    Template("metrics_histogram_table.sql", "otel_metrics_histogram", "TimeUnix"),
    Template("metrics_exp_histogram_table.sql", "otel_metrics_exponential_histogram", "TimeUnix"),
]

# INSERT templates and the table each writes (logs gets EventName: the exporter adds it when
# DESC TABLE shows the column, which ours has).
INSERTS = {
    "traces_insert.sql": "otel_traces",
    "logs_insert.sql": "otel_logs",
    "metrics_gauge_insert.sql": "otel_metrics_gauge",
    "metrics_sum_insert.sql": "otel_metrics_sum",
    "metrics_summary_insert.sql": "otel_metrics_summary",
    "metrics_histogram_insert.sql": "otel_metrics_histogram",
    "metrics_exp_histogram_insert.sql": "otel_metrics_exponential_histogram",
}


# ---------------------------------------------------------------- locating the exporter source


def pinned_exporter_version(config: Path = BUILDER_CONFIG) -> str:
    """The clickhouseexporter version on the builder manifest's gomod line."""
    match = re.search(
        r"clickhouseexporter\s+(v\d+\.\d+\.\d+\S*)", config.read_text(encoding="utf-8")
    )
    if not match:
        raise AssertionError(f"no `clickhouseexporter vX` line in {config}")
    return match.group(1)


def exporter_module_dir(version: str) -> Path:
    """The module's source in the Go module cache, downloading it through the proxy if absent."""
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        missing_tool("no Go toolchain: cannot locate the exporter's SQL templates")
    modcache = subprocess.run(
        [go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    module_dir = Path(modcache) / f"{EXPORTER_MODULE}@{version}"
    if module_dir.is_dir():
        return module_dir
    # Outside a module `go mod download` needs an explicit module@version and prints its Dir.
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{EXPORTER_MODULE}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"go mod download {EXPORTER_MODULE}@{version} failed: {result.stdout}{result.stderr}"
        )
    return Path(json.loads(result.stdout)["Dir"])


@pytest.fixture(scope="module")
def templates_dir() -> Path:
    directory = exporter_module_dir(pinned_exporter_version()) / "internal" / "sqltemplates"
    assert directory.is_dir(), f"{directory} is missing: has the exporter moved its SQL templates?"
    return directory


# ---------------------------------------------------------------- rendering like the exporter


def go_ttl_expr(days: int, column: str) -> str:
    """internal.GenerateTTLExpr for a whole number of days."""
    return f"TTL {column} + toIntervalDay({days})"


def go_sprintf(template: str, *args: str) -> str:
    """fmt.Sprintf for the verbs the templates use: %s, %q (a Go quoted string) and %%."""
    values = iter(args)

    def verb(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        value = next(values)
        return json.dumps(value) if match.group(0) == "%q" else value

    rendered = re.sub(r"%[sq%]", verb, template)
    leftover = list(values)
    assert not leftover, f"template took fewer arguments than given: {leftover}"
    return rendered


def go_text_template(template: str, data: dict[str, Any]) -> str:
    """The subset of text/template the logs templates use: ident, fields and if/else/end.

    `{{-` trims the whitespace before the action, as text/template does.
    """
    text = re.sub(r"\s*\{\{-", "{{", template)

    def branch(match: re.Match[str]) -> str:
        chosen = match.group(2) if data[match.group(1)] else (match.group(3) or "")
        return chosen

    text = re.sub(
        r"\{\{\s*if \.(\w+)\s*\}\}(.*?)(?:\{\{\s*else\s*\}\}(.*?))?\{\{\s*end\s*\}\}",
        branch,
        text,
        flags=re.DOTALL,
    )
    text = re.sub(
        r"\{\{\s*ident \.(\w+)\s*\}\}",
        lambda m: "`" + str(data[m.group(1)]).replace("`", "\\`") + "`",
        text,
    )
    text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: str(data[m.group(1)]), text)
    assert "{{" not in text, f"unrendered template action left in: {text[text.index('{{') :][:80]}"
    return text


def render_create(templates: Path, spec: Template, database: str) -> str:
    """The DDL the exporter would run for `spec` with create_schema: true and ttl: 720h."""
    raw = (templates / spec.file).read_text(encoding="utf-8")
    ttl = go_ttl_expr(TTL_DAYS, f"toDateTime({spec.ttl_column})") if spec.ttl_column else ""
    engine, cluster = "MergeTree()", ""
    if spec.file == "logs_table.sql":
        # text/template; the server is 26.x, so the exporter picks the full-text index branch.
        data = {
            "Database": database,
            "TableName": spec.table,
            "ClusterString": cluster,
            "Engine": engine,
            "TTL": ttl,
            "HasFullTextSearch": True,
        }
        return go_text_template(raw, data)
    if spec.file == "traces_id_ts_lookup_mv.sql":
        return go_sprintf(
            raw, database, spec.table, cluster, database, spec.table, database, spec.table
        )
    return go_sprintf(raw, database, spec.table, cluster, engine, ttl)


def insert_columns(templates: Path, file: str) -> list[str]:
    """The column list of an exporter INSERT template (feature columns included)."""
    raw = (templates / file).read_text(encoding="utf-8")
    body = raw[raw.index("(") + 1 : raw.index(")")]
    body = re.sub(r"\{\{[^}]*\}\}", "", body)
    columns = [c.strip() for c in body.split(",") if c.strip()]
    if file == "logs_insert.sql":
        columns.append("EventName")
    return columns


# ---------------------------------------------------------------- engine fixtures


@pytest.fixture(scope="module")
def our_schema_files(fresh_otel_db: FreshOtelDatabase) -> list[str]:
    """The initdb files applied to `otel`, in order."""
    return fresh_otel_db.statements


@pytest.fixture(scope="module")
def reference(fresh_otel_db: FreshOtelDatabase, templates_dir: Path) -> Iterator[list[str]]:
    """The exporter's own DDL applied in REFERENCE, beside `otel`; its template files."""
    execute = fresh_otel_db.execute
    execute(f"DROP DATABASE IF EXISTS {REFERENCE} SYNC")
    execute(f"CREATE DATABASE {REFERENCE}")
    for spec in TEMPLATES:
        ddl = render_create(templates_dir, spec, REFERENCE)
        try:
            execute(ddl)
        except Exception as exc:
            raise AssertionError(
                f"exporter DDL {spec.file} does not run on this engine: {exc}\n{ddl}"
            ) from exc
    yield [spec.file for spec in TEMPLATES]
    execute(f"DROP DATABASE IF EXISTS {REFERENCE} SYNC")


def columns_of(session: Any, database: str) -> dict[str, dict[str, tuple[str, str, str]]]:
    """{table: {column: (type, default_kind, default_expression)}} from system.columns."""
    rows = session.query(
        "SELECT table, name, type, default_kind, default_expression FROM system.columns "
        f"WHERE database = '{database}' FORMAT JSONCompact"
    ).bytes()
    tables: dict[str, dict[str, tuple[str, str, str]]] = {}
    for table, name, col_type, kind, expr in json.loads(rows)["data"]:
        tables.setdefault(table, {})[name] = (col_type, kind, expr)
    return tables


def object_exists(session: Any, database: str, name: str) -> bool:
    result = session.query(
        f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = '{name}'",
        "CSV",
    )
    return result.bytes().strip() == b"1"


# ---------------------------------------------------------------- tests


def test_every_used_template_is_covered(templates_dir: Path) -> None:
    """A new *_table.sql in a newer exporter must be looked at, not silently ignored."""
    present = {p.name for p in templates_dir.glob("*_table.sql")} | {
        p.name for p in templates_dir.glob("*_mv.sql")
    }
    covered = {spec.file for spec in TEMPLATES} | UNUSED_TEMPLATES
    assert present - covered == set(), (
        f"exporter templates not compared with our schema: {sorted(present - covered)}"
    )


def test_our_columns_match_the_exporters(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str], reference: list[str]
) -> None:
    expected = columns_of(fresh_otel_db, REFERENCE)
    actual = columns_of(fresh_otel_db, OURS)
    assert expected, "the exporter's DDL created no tables"
    problems: list[str] = []
    for table, columns in sorted(expected.items()):
        if table not in actual:
            problems.append(f"table {OURS}.{table} is missing (the exporter writes it)")
            continue
        for column, (col_type, kind, expr) in columns.items():
            mine = actual[table].get(column)
            if mine is None:
                problems.append(f"{OURS}.{table}.{column} is missing (exporter: {col_type})")
            elif mine[0] != col_type:
                problems.append(
                    f"{OURS}.{table}.{column} has type {mine[0]}, the exporter's is {col_type}"
                )
            elif (mine[1], mine[2]) != (kind, expr):
                problems.append(
                    f"{OURS}.{table}.{column} is `{mine[1]} {mine[2]}`, "
                    f"the exporter's is `{kind} {expr}`"
                )
    assert not problems, "schema drift from the exporter's DDL:\n  " + "\n  ".join(problems)


def test_exporter_inserts_resolve_against_our_tables(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str], templates_dir: Path
) -> None:
    """Every column the exporter names in its INSERTs exists in our tables and accepts a row."""
    actual = columns_of(fresh_otel_db, OURS)
    for file, table in INSERTS.items():
        columns = insert_columns(templates_dir, file)
        missing = [c for c in columns if c not in actual.get(table, {})]
        assert not missing, f"{file}: {OURS}.{table} lacks {missing}"
        column_list = ", ".join(f"`{c}`" for c in columns)
        # Only the time column is set: a row at the epoch would be expired by TTL on insert.
        time_column = "Timestamp" if "Timestamp" in columns else "TimeUnix"
        row = json.dumps({time_column: str(int(time.time()))})
        fresh_otel_db.query(f"INSERT INTO {OURS}.{table} ({column_list}) FORMAT JSONEachRow {row}")
        count = fresh_otel_db.query(f"SELECT count() FROM {OURS}.{table}", "CSV").bytes().strip()
        assert int(count) >= 1, f"row written through {file}'s column list did not land in {table}"


def test_initdb_applies_twice(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str]
) -> None:
    """Re-run by the entrypoint (CLICKHOUSE_ALWAYS_RUN_INITDB_SCRIPTS) and by apply-schema.sh."""
    assert our_schema_files == [p.name for p in initdb_files()]
    assert apply_schema(fresh_otel_db.execute) == our_schema_files


def test_schema_version_has_one_row_per_file(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str]
) -> None:
    apply_schema(fresh_otel_db.execute)  # a second application must not add rows
    rows = json.loads(
        fresh_otel_db.query(
            "SELECT version, name FROM otel.schema_version ORDER BY version FORMAT JSONCompact"
        ).bytes()
    )
    assert [tuple(r) for r in rows["data"]] == [
        (int(f.split("_")[0]), f.removesuffix(".sql")) for f in our_schema_files
    ]


def test_every_statement_is_idempotent_by_construction() -> None:
    """CREATE must be IF NOT EXISTS or OR REPLACE; INSERTs only into schema_version, guarded."""
    for path in initdb_files():
        for statement in split_sql(path.read_text(encoding="utf-8")):
            code = re.sub(r"--[^\n]*", "", statement).strip()
            head = " ".join(code.split()[:6]).upper()
            assert "ON CLUSTER" not in code.upper(), f"{path.name}: ON CLUSTER on a single node"
            if head.startswith("CREATE"):
                assert "IF NOT EXISTS" in head or "OR REPLACE" in head, (
                    f"{path.name}: not idempotent: {head}"
                )
            elif head.startswith("INSERT"):
                assert "otel.schema_version" in code and "NOT IN" in code, (
                    f"{path.name}: unguarded INSERT"
                )
            elif head.startswith("ALTER TABLE"):
                # Migrations: ADD COLUMN IF NOT EXISTS, or MODIFY QUERY (the same query each
                # time); nothing that drops or rewrites data.
                upper = code.upper()
                for verb, what in re.findall(
                    r"\b(ADD|DROP|MODIFY|UPDATE|DELETE|RENAME|CLEAR)\s+(\w+)", upper
                ):
                    assert (verb, what) in {("ADD", "COLUMN"), ("MODIFY", "QUERY")}, (
                        f"{path.name}: ALTER {verb} {what} is not a safe migration"
                    )
                assert upper.count("ADD COLUMN") == upper.count("ADD COLUMN IF NOT EXISTS"), (
                    f"{path.name}: ADD COLUMN without IF NOT EXISTS"
                )
            else:
                raise AssertionError(f"{path.name}: unexpected statement kind: {head}")


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("otel_traces", "TTL toDateTime(Timestamp) + toIntervalDay(30)"),
        ("otel_logs", "TTL toDateTime(Timestamp) + toIntervalDay(30)"),
        ("otel_metrics_sum", "TTL toDateTime(TimeUnix) + toIntervalDay(30)"),
        ("otel_traces_trace_id_ts", "TTL toDateTime(Start) + toIntervalDay(30)"),
        ("llm_usage_daily_agg", "TTL day + toIntervalDay(400)"),
        ("llm_usage_daily_agg", "ENGINE = AggregatingMergeTree"),
        ("llm_usage_daily_mv", "TO otel.llm_usage_daily_agg"),
    ],
)
def test_ttl_and_materialized_view_ddl_is_live(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str], table: str, fragment: str
) -> None:
    """The engine kept the TTL and the MV target (SHOW CREATE reflects what it will enforce)."""
    ddl = json.loads(
        fresh_otel_db.query(f"SHOW CREATE TABLE otel.{table} FORMAT JSONCompact").bytes()
    )["data"][0][0]
    assert fragment in " ".join(ddl.split()), f"otel.{table}: `{fragment}` not in\n{ddl}"


@pytest.mark.parametrize(
    "name",
    ["llm_calls", "llm_usage_daily", "llm_usage_daily_agg", "llm_usage_daily_mv", "schema_version"],
)
def test_llm_objects_exist(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str], name: str
) -> None:
    assert object_exists(fresh_otel_db, OURS, name), f"otel.{name} was not created"


# Scripts the image runs that a test of their own runs too (the native harness applies *.sql).
TESTED_SCRIPTS = {"131_retention.sh": "tests/privacy/test_retention.py"}


def test_initdb_dir_holds_only_sql() -> None:
    """The native harness applies *.sql only: a *.sh would run in the image but never in tests,
    unless a test runs it itself."""
    others = [p.name for p in INITDB_DIR.iterdir() if p.suffix != ".sql"]
    untested = [name for name in others if name not in TESTED_SCRIPTS]
    assert not untested, f"non-SQL files in clickhouse/initdb: {untested}"
    for name, test in TESTED_SCRIPTS.items():
        assert name in (INITDB_DIR.parent.parent / test).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; -- c; d\nSELECT `x;y`", ["SELECT 'a;b'", "-- c; d\nSELECT `x;y`"]),
        (
            "/* one; two */ SELECT 'it''s; fine';\n-- trailing; comment\n",
            ["/* one; two */ SELECT 'it''s; fine'"],
        ),
        ("SELECT 'back\\'slash;'; SELECT \"q;\"", ["SELECT 'back\\'slash;'", 'SELECT "q;"']),
    ],
)
def test_split_sql(script: str, expected: list[str]) -> None:
    assert split_sql(script) == expected


def test_skip_indexes_match_the_exporters(
    fresh_otel_db: FreshOtelDatabase, our_schema_files: list[str], reference: list[str]
) -> None:
    """Same data-skipping indexes, so queries written for the exporter's schema stay fast."""
    sql = (
        "SELECT table, name, type_full, expr FROM system.data_skipping_indices "
        "WHERE database = '{}' FORMAT JSONCompact"
    )
    expected = {
        tuple(r) for r in json.loads(fresh_otel_db.query(sql.format(REFERENCE)).bytes())["data"]
    }
    actual = {tuple(r) for r in json.loads(fresh_otel_db.query(sql.format(OURS)).bytes())["data"]}
    missing = sorted(expected - actual)
    assert not missing, (
        "indexes the exporter creates but ours lack (table, name, type, expr):\n  "
        + "\n  ".join(map(str, missing))
    )


# ---------------------------------------------------------------- server config and users (XML)

CLICKHOUSE_DIR = REPO_ROOT / "clickhouse"


def contract_default(key: str) -> str:
    """The database or user name the scripts connect with (fixed: not a setting in .env)."""
    return FIXED_VALUES[key]


def parse_xml(path: Path) -> Any:
    import xml.etree.ElementTree as ET

    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:  # e.g. a double hyphen inside a comment
        raise AssertionError(
            f"{path.relative_to(REPO_ROOT)} is not well-formed XML; ClickHouse would refuse it: "
            f"{exc}"
        ) from exc


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "clickhouse").glob("*.d/*.xml")), ids=lambda p: p.name
)
def test_xml_is_well_formed_clickhouse_config(path: Path) -> None:
    assert parse_xml(path).tag == "clickhouse"


@pytest.fixture(scope="module")
def users_xml() -> Any:
    return parse_xml(CLICKHOUSE_DIR / "users.d" / "otel-users.xml")


def test_users_are_the_contracts_users(users_xml: Any) -> None:
    users = users_xml.find("users")
    assert users.find("default").get("remove"), "the passwordless `default` user must be removed"
    expected = {
        contract_default("CLICKHOUSE_ADMIN_USER"): "CLICKHOUSE_ADMIN_PASSWORD",
        contract_default("CLICKHOUSE_WRITER_USER"): "CLICKHOUSE_WRITER_PASSWORD",
        contract_default("CLICKHOUSE_READER_USER"): "CLICKHOUSE_READER_PASSWORD",
    }
    defined = {u.tag for u in users if u.get("remove") is None}
    assert defined == set(expected), (
        f"users.d defines {sorted(defined)}, the scripts use {sorted(expected)}"
    )
    for name, env in expected.items():
        user = users.find(name)
        password = user.find("password")
        assert (
            password is not None
            and password.get("from_env") == env
            and not (password.text or "").strip()
        ), f"{name}: the password must come from {env} through from_env, never from the file"
        for other in ("password_sha256_hex", "password_double_sha1_hex", "no_password"):
            assert user.find(other) is None, f"{name}: <{other}> would add a second way in"


def test_user_profiles_exist(users_xml: Any) -> None:
    declared = {p.tag for p in users_xml.find("profiles")} | {
        "default"
    }  # default ships with the image
    for user in users_xml.find("users"):
        if user.get("remove") is None:
            assert user.findtext("profile") in declared, (
                f"{user.tag}: unknown profile {user.findtext('profile')}"
            )


def grants_of(users_xml: Any, user: str) -> list[str]:
    return [q.text.strip() for q in users_xml.find("users").find(user).iter("query")]


def test_grants_parse_and_are_least_privilege(
    users_xml: Any, fresh_otel_db: FreshOtelDatabase
) -> None:
    database = contract_default("CLICKHOUSE_DATABASE")
    writer = grants_of(users_xml, contract_default("CLICKHOUSE_WRITER_USER"))
    reader = grants_of(users_xml, contract_default("CLICKHOUSE_READER_USER"))
    assert writer == [f"GRANT SELECT, INSERT ON {database}.*"]
    assert reader == [f"GRANT SELECT ON {database}.*"]
    for grant in writer + reader:
        # The server parses <grants> queries without grantees; the engine's parser checks syntax.
        fresh_otel_db.execute(f"EXPLAIN AST {grant} TO syntax_probe")


def test_reader_profile_is_readonly(users_xml: Any) -> None:
    user = users_xml.find("users").find(contract_default("CLICKHOUSE_READER_USER"))
    profile = users_xml.find("profiles").find(user.findtext("profile"))
    assert profile.findtext("readonly") == "1"


def test_noisy_system_logs_are_off_and_query_log_is_capped() -> None:
    root = parse_xml(CLICKHOUSE_DIR / "config.d" / "20-system-logs.xml")
    for noisy in (
        "trace_log",
        "text_log",
        "metric_log",
        "asynchronous_metric_log",
        "query_thread_log",
    ):
        element = root.find(noisy)
        assert element is not None and element.get("remove"), f"{noisy} must be removed"
    query_log = root.find("query_log")
    assert (
        query_log is not None
        and query_log.get("replace")
        and "INTERVAL" in query_log.findtext("ttl", "")
    )


def test_admin_is_reachable_from_inside_the_container_only(users_xml: Any) -> None:
    admin = users_xml.find("users").find(contract_default("CLICKHOUSE_ADMIN_USER"))
    networks = {ip.text for ip in admin.find("networks").findall("ip")}
    assert networks == {"::1", "127.0.0.1"}
