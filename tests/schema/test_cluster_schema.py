"""The cluster forms of the owned schema (scripts/clickhouse_schema/cluster.py), on the real engine.

What runs here, and what does not: no ClickHouse cluster, no Keeper. chdb parses every rendered
statement (EXPLAIN AST, the server's own parser). Then a separate chdb process, configured with
a one-shard cluster on localhost and the {cluster}/{shard}/{replica} macros, applies each form
with `ON CLUSTER` removed and Replicated* swapped back to the plain engine (the only two changes
a cluster needs Keeper for); its Distributed tables are real, so the exporter's INSERTs and the
LLM views run through them. Their columns are compared with the single-node schema's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scripts.clickhouse_schema.cluster import (
    FLAVOURS,
    LOCAL_SUFFIX,
    SHARDING_KEYS,
    ClusterRenderer,
    UnsupportedStatementError,
    main,
    mask,
    render_files,
    rendered_statements,
)
from scripts.clickhouse_schema.files import REPO_ROOT, initdb_files, split_sql
from tests.schema.test_schema import (
    INSERTS,
    exporter_module_dir,
    insert_columns,
    pinned_exporter_version,
)
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.span_rows import LlmCall

CLUSTER = "{cluster}"  # the macro; the isolated engine's config defines it
FORMS = ("single", *FLAVOURS)

# ---------------------------------------------------------------- helpers


def single_node_statements() -> list[str]:
    return [s for p in initdb_files() for s in split_sql(p.read_text(encoding="utf-8"))]


def form_statements(form: str) -> list[str]:
    if form == "single":
        return single_node_statements()
    return [statement for _, statement in rendered_statements(form, CLUSTER)]


def without_keeper(statement: str) -> str:
    """`statement` minus what needs Keeper: ON CLUSTER, and Replicated* -> the plain engine."""
    plain = re.sub(r"\s+ON CLUSTER '[^']*'", "", statement)
    plain = re.sub(r"\bReplicated(\w*MergeTree)\((?:'[^']*',\s*'[^']*'(?:,\s*)?)?", r"\1(", plain)
    assert "ON CLUSTER" not in mask(plain) and "Replicated" not in mask(plain), plain
    return plain


def renderer_after_initdb(flavour: str) -> ClusterRenderer:
    """A renderer that has seen every initdb file, as a new migration file would meet it."""
    renderer = ClusterRenderer(flavour, CLUSTER)
    for path in initdb_files():
        renderer.render_script(path.read_text(encoding="utf-8"), path.name)
    return renderer


# A chdb engine of its own (chdb keeps one per process, and this one needs a cluster config).
ISOLATED_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <macros><cluster>probe</cluster><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <probe><shard><replica><host>localhost</host><port>9000</port></replica></shard></probe>
  </remote_servers>
</clickhouse>
"""

ISOLATED_RUNNER = textwrap.dedent(
    """
    import json, sys
    from chdb import session
    job = json.load(sys.stdin)
    # Foreground inserts: a Distributed INSERT has reached its shard when it returns.
    sess = session.Session(job["path"] + "?config-file=" + job["config"]
                           + "&distributed_foreground_insert=1")
    results = {}
    for kind, key, sql in job["steps"]:
        try:
            out = sess.query(sql, "JSONCompact" if kind == "query" else "CSV").bytes()
        except Exception as exc:
            print(json.dumps({"error": str(exc), "step": key, "sql": sql}))
            sys.exit(0)
        if kind == "query":
            results[key] = json.loads(out)["data"]
    print(json.dumps({"results": results}))
    """
)


def run_isolated(tmp: Path, steps: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Run ("exec"|"query", key, sql) steps on a fresh chdb with the cluster config."""
    (tmp / "config.xml").write_text(ISOLATED_CONFIG, encoding="utf-8")
    job = {"path": str(tmp / "data"), "config": str(tmp / "config.xml"), "steps": steps}
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED_RUNNER],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"isolated chdb failed:\n{done.stderr[-3000:]}"
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in outcome, (
        f"step {outcome.get('step')} failed: {outcome.get('error')}\n---\n{outcome.get('sql')}"
    )
    return outcome["results"]


COLUMNS_SQL = (
    "SELECT table, name, type, default_kind, default_expression, compression_codec, comment "
    "FROM system.columns WHERE database = 'otel' ORDER BY table, position"
)
ENGINES_SQL = "SELECT name, engine FROM system.tables WHERE database = 'otel'"
LLM_TOTALS_SQL = (
    "SELECT (SELECT count() FROM otel.llm_calls), "
    "(SELECT sum(calls) FROM otel.llm_usage_daily), "
    "(SELECT sum(input_tokens) FROM otel.llm_usage_daily), "
    "(SELECT toString(max(p95_duration_ms)) FROM otel.llm_usage_daily), "
    "(SELECT count() FROM otel.otel_traces_trace_id_ts), "
    "(SELECT count() FROM otel.schema_version)"
)


def llm_rows() -> list[dict[str, object]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    calls = [
        LlmCall("gpt-a", now, 120.0, input_tokens=10, output_tokens=5, cost=0.001),
        LlmCall("gpt-a", now, 480.0, input_tokens=30, output_tokens=7, stream=True, ttft_s=0.2),
        LlmCall("gpt-b", now, 90.0, input_tokens=4, output_tokens=2, error_type="Timeout"),
    ]
    return [call.row() for call in calls]


def json_insert(table: str, rows: list[dict[str, object]]) -> str:
    columns = ", ".join(f"`{c}`" for c in rows[0])
    body = "\n".join(json.dumps(row) for row in rows)
    return f"INSERT INTO otel.{table} ({columns}) FORMAT JSONEachRow\n{body}"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def exporter_inserts() -> dict[str, list[str]] | None:
    """{table: the exporter's INSERT column list}, or None without the Go toolchain."""
    try:
        templates = exporter_module_dir(pinned_exporter_version()) / "internal" / "sqltemplates"
    except pytest.skip.Exception:
        return None
    return {table: insert_columns(templates, file) for file, table in INSERTS.items()}


@pytest.fixture(scope="module")
def isolated(
    tmp_path_factory: pytest.TempPathFactory, exporter_inserts: dict[str, list[str]] | None
) -> dict[str, Any]:
    """Every form applied in turn on the isolated engine, then written to and read back."""
    steps: list[tuple[str, str, str]] = []
    spans = llm_rows()
    for form in FORMS:
        steps.append(("exec", f"{form}:reset", "DROP DATABASE IF EXISTS otel SYNC"))
        ddl = form_statements(form)
        steps += [
            ("exec", f"{form}:ddl", s if form == "single" else without_keeper(s)) for s in ddl
        ]
        steps.append(("query", f"{form}:columns", COLUMNS_SQL))
        steps.append(("query", f"{form}:engines", ENGINES_SQL))
        steps.append(("exec", f"{form}:spans", json_insert("otel_traces", spans)))
        steps.append(("query", f"{form}:llm", LLM_TOTALS_SQL))
        for table, columns in (exporter_inserts or {}).items():
            time_column = "Timestamp" if "Timestamp" in columns else "TimeUnix"
            row = json.dumps({time_column: dt.datetime.now(dt.UTC).strftime("%s")})
            column_list = ", ".join(f"`{c}`" for c in columns)
            insert = f"INSERT INTO otel.{table} ({column_list}) FORMAT JSONEachRow {row}"
            steps.append(("exec", f"{form}:insert:{table}", insert))
            steps.append(("query", f"{form}:count:{table}", f"SELECT count() FROM otel.{table}"))
            if form == "sharded":
                local = f"SELECT count() FROM otel.{table}{LOCAL_SUFFIX}"
                steps.append(("query", f"{form}:local:{table}", local))
    return run_isolated(tmp_path_factory.mktemp("cluster-chdb"), steps)


def columns_by_table(rows: list[list[Any]]) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table, *column in rows:
        tables.setdefault(table, []).append(tuple(column))
    return tables


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_cluster_statement_parses(fresh_otel_db: FreshOtelDatabase, flavour: str) -> None:
    """EXPLAIN AST runs the server's parser on the statement exactly as a cluster would get it."""
    statements = list(rendered_statements(flavour, CLUSTER))
    assert len(statements) >= len(single_node_statements())
    for file, statement in statements:
        try:
            ast = fresh_otel_db.query(f"EXPLAIN AST {statement}", "TSV").bytes().decode()
        except Exception as exc:
            raise AssertionError(f"{flavour} {file}: does not parse: {exc}\n{statement}") from exc
        assert ast.split()[0] in {"CreateQuery", "AlterQuery", "InsertQuery", "DropQuery"}, ast


def test_cloud_form_without_on_cluster_parses(fresh_otel_db: FreshOtelDatabase) -> None:
    for file, statement in rendered_statements("cloud", ""):
        assert "ON CLUSTER" not in statement, f"{file}: {statement[:80]}"
        fresh_otel_db.query(f"EXPLAIN AST {statement}", "TSV")


def test_the_parser_rejects_what_it_should(fresh_otel_db: FreshOtelDatabase) -> None:
    """The parse check has teeth: a malformed engine argument list is a syntax error."""
    with pytest.raises(Exception, match=r"SYNTAX_ERROR|Syntax error"):
        fresh_otel_db.query("EXPLAIN AST CREATE TABLE t (a UInt8) ENGINE = MergeTree(,) ORDER BY a")


# ---------------------------------------------------------------- the shape of each form


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_ddl_statement_is_on_cluster(flavour: str) -> None:
    for file, statement in rendered_statements(flavour, "c1"):
        head = statement.split(None, 1)[0].upper()
        if head == "INSERT":
            assert "ON CLUSTER" not in statement
        else:
            assert head in {"CREATE", "ALTER", "DROP"}, f"{file}: {statement[:60]}"
            assert "ON CLUSTER 'c1'" in statement, f"{file}: no ON CLUSTER in {statement[:80]}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_table_engine_is_replicated_or_distributed(flavour: str) -> None:
    for file, statement in rendered_statements(flavour, CLUSTER):
        for engine in re.findall(r"ENGINE\s*=\s*(\w+)\s*(\([^\n]*\))?", statement):
            name, args = engine
            if name == "Distributed":
                assert flavour == "sharded", f"{file}: Distributed in the {flavour} form"
                continue
            assert name.startswith("Replicated") and name.endswith("MergeTree"), f"{file}: {name}"
            if flavour == "cloud":
                assert args == "()", f"{file}: Cloud expects a parameterless {name}: {args}"
            else:
                assert "{replica}" in args and "{shard}" in args, f"{file}: {name}{args}"


def test_sharded_form_writes_and_reads_through_distributed_tables() -> None:
    files = render_files("sharded", CLUSTER)
    text = "\n".join(files.values())
    for table in set(INSERTS.values()):
        assert re.search(
            rf"CREATE TABLE IF NOT EXISTS otel\.{table} ON CLUSTER '{{cluster}}' "
            rf"AS otel\.{table}_local\nENGINE = Distributed\('{{cluster}}', otel, {table}_local, ",
            text,
        ), f"the exporter writes otel.{table}: it must be a Distributed table"
    # Materialized views fire on each shard's local table and fill its local aggregate.
    for mv, target in (
        ("otel_traces_trace_id_ts_mv", "otel_traces_trace_id_ts_local"),
        ("llm_usage_daily_mv", "llm_usage_daily_agg_local"),
    ):
        assert re.search(
            rf"VIEW IF NOT EXISTS otel\.{mv} ON CLUSTER '{{cluster}}'\nTO otel\.{target}\n", text
        )
    statements = [statement for _, statement in rendered_statements("sharded", CLUSTER)]
    mv_queries = [s for s in statements if "MATERIALIZED VIEW" in s or "MODIFY QUERY" in s]
    assert len(mv_queries) == 4  # the MV and one MODIFY QUERY per migration (110, 120)
    for query in mv_queries:
        assert re.findall(r"FROM (otel\.\w+)", query) == ["otel.otel_traces_local"], query[-300:]
    # Plain views read the Distributed tables (all shards), never a shard's local part.
    views = [s for s in statements if s.startswith("CREATE OR REPLACE VIEW")]
    # llm_calls and llm_usage_daily (100, 110, 120), llm_attempts (120), llm_content (130)
    assert len(views) == 8
    for view in views:
        assert "_local" not in view and "FROM otel." in view, view[:200]


def test_sharded_migrations_alter_local_and_distributed_tables() -> None:
    renderer = renderer_after_initdb("sharded")
    assert renderer.render("ALTER TABLE otel.otel_logs ADD COLUMN IF NOT EXISTS x String") == [
        "ALTER TABLE otel.otel_logs_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS x String",
        "ALTER TABLE otel.otel_logs ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS x String",
    ]
    ttl = "MODIFY TTL toDateTime(Timestamp) + toIntervalDay(7)"
    assert renderer.render(f"ALTER TABLE otel.otel_traces {ttl}") == [
        f"ALTER TABLE otel.otel_traces_local ON CLUSTER '{{cluster}}' {ttl}"
    ]
    assert renderer.render("DROP TABLE IF EXISTS otel.otel_metrics_sum SYNC") == [
        "DROP TABLE IF EXISTS otel.otel_metrics_sum ON CLUSTER '{cluster}' SYNC",
        "DROP TABLE IF EXISTS otel.otel_metrics_sum_local ON CLUSTER '{cluster}' SYNC",
    ]
    # The schema ledger is on every node, not sharded.
    ttl = "MODIFY TTL applied_at + toIntervalYear(9)"
    assert renderer.render(f"ALTER TABLE otel.schema_version {ttl}") == [
        f"ALTER TABLE otel.schema_version ON CLUSTER '{{cluster}}' {ttl}"
    ]


def test_every_sharded_table_has_a_deterministic_sharding_key() -> None:
    for table, key in SHARDING_KEYS.items():
        assert "rand" not in key.lower(), f"{table}: a retried batch must land on the same shards"


# ---------------------------------------------------------------- statements the renderer refuses

REFUSED = [
    ("cloud", "CREATE TABLE IF NOT EXISTS otel.x (a UInt8) ENGINE = Log", "MergeTree"),
    (
        "cloud",
        "CREATE TABLE otel.x ON CLUSTER c (a UInt8) ENGINE = MergeTree ORDER BY a",
        "ON CLUSTER",
    ),
    (
        "replicated",
        "CREATE TABLE otel.x (a UInt8) ENGINE = ReplicatedMergeTree ORDER BY a",
        "already",
    ),
    (
        "sharded",
        "CREATE TABLE IF NOT EXISTS otel.new (a UInt8) ENGINE = MergeTree ORDER BY a",
        "sharding key",
    ),
    (
        "sharded",
        "CREATE MATERIALIZED VIEW otel.mv ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a",
        "no cluster form",
    ),
    ("sharded", "ALTER TABLE otel.otel_traces DELETE WHERE 1", "not handled"),
    ("sharded", "ALTER TABLE otel.otel_logs MODIFY TTL Timestamp + 1, ADD COLUMN y UInt8", "split"),
    ("replicated", "ALTER TABLE otel.llm_calls ADD COLUMN y UInt8", "no earlier file creates"),
    ("replicated", "ALTER TABLE otel.llm_usage_daily_mv MODIFY COMMENT 'x'", "MODIFY QUERY"),
    (
        "sharded",
        "ALTER TABLE otel.llm_usage_daily_mv MODIFY QUERY SELECT * FROM otel.otel_traces "
        "JOIN otel.otel_logs USING (TraceId)",
        "2 sharded tables",
    ),
    (
        "sharded",
        "ALTER TABLE otel.llm_usage_daily_mv MODIFY QUERY SELECT 1 FROM otel_traces",
        "db.table",
    ),
    ("cloud", "RENAME TABLE otel.otel_logs TO otel.logs2", "no cluster form"),
    ("cloud", "OPTIMIZE TABLE otel.otel_logs FINAL", "no cluster form"),
    ("cloud", "CREATE DATABASE IF NOT EXISTS x ENGINE = Atomic", "ENGINE"),
    ("cloud", "INSERT INTO otel.nowhere SELECT 1", "no earlier file creates"),
]


@pytest.mark.parametrize(("flavour", "statement", "message"), REFUSED)
def test_unhandled_statement_shapes_raise(flavour: str, statement: str, message: str) -> None:
    renderer = renderer_after_initdb(flavour)
    with pytest.raises(UnsupportedStatementError, match=re.escape(message)):
        renderer.render(statement)


def test_keywords_in_comments_and_strings_do_not_count() -> None:
    renderer = renderer_after_initdb("sharded")
    [rendered] = renderer.render(
        "-- FROM otel.otel_logs ON CLUSTER x\nALTER TABLE otel.llm_usage_daily_mv MODIFY QUERY "
        "SELECT 'FROM otel.otel_logs' AS s FROM otel.otel_traces /* JOIN otel.otel_logs */"
    )
    assert rendered == (
        "ALTER TABLE otel.llm_usage_daily_mv ON CLUSTER '{cluster}' MODIFY QUERY "
        "SELECT 'FROM otel.otel_logs' AS s FROM otel.otel_traces_local /* JOIN otel.otel_logs */"
    )


# ---------------------------------------------------------------- the CLI


def test_cli_writes_one_file_per_initdb_file(tmp_path: Path) -> None:
    for flavour in FLAVOURS:
        assert (
            main(["--flavour", flavour, "--cluster", "c1", "--out", str(tmp_path / flavour)]) == 0
        )
        written = sorted(p.name for p in (tmp_path / flavour).iterdir())
        assert written == [p.name for p in initdb_files()]
        # What the tests above parse and run is what the files hold (and apply_schema reads).
        for name, text in render_files(flavour, "c1").items():
            assert (tmp_path / flavour / name).read_text(encoding="utf-8") == text


def test_cli_names_the_file_of_an_unhandled_statement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "001_x.sql").write_text(
        "CREATE DATABASE IF NOT EXISTS otel;\nOPTIMIZE TABLE otel.t;\n"
    )
    assert main(["--flavour", "replicated", "--initdb", str(tmp_path)]) == 1
    assert "001_x.sql" in capsys.readouterr().err


def test_sharded_and_replicated_need_a_cluster_name() -> None:
    for flavour in ("replicated", "sharded"):
        with pytest.raises(ValueError, match="needs a cluster name"):
            ClusterRenderer(flavour, "")


# ---------------------------------------------------------------- on the isolated engine


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_cluster_form_defines_the_single_node_columns(
    isolated: dict[str, Any], flavour: str
) -> None:
    """Same tables and views, same columns: names, types, defaults, codecs and comments."""
    single = columns_by_table(isolated["single:columns"])
    mine = columns_by_table(isolated[f"{flavour}:columns"])
    if flavour == "sharded":
        locals_ = {t for t in mine if t.endswith(LOCAL_SUFFIX)}
        assert locals_ == {f"{t}{LOCAL_SUFFIX}" for t in SHARDING_KEYS}
        for local in locals_:
            base = local.removesuffix(LOCAL_SUFFIX)
            assert mine[local] == single[base], f"otel.{local} differs from single-node otel.{base}"
        mine = {t: c for t, c in mine.items() if t not in locals_}
    assert sorted(mine) == sorted(single)
    for table, columns in single.items():
        assert mine[table] == columns, f"otel.{table}: {flavour} columns differ from single-node"


def test_sharded_tables_are_distributed_over_local_parts(isolated: dict[str, Any]) -> None:
    engines = dict(isolated["sharded:engines"])
    single = dict(isolated["single:engines"])
    for table in SHARDING_KEYS:
        assert engines[table] == "Distributed"
        assert engines[f"{table}{LOCAL_SUFFIX}"] == single[table]
    assert engines["schema_version"] == single["schema_version"]  # on every node, unsharded


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_llm_views_and_daily_aggregate_agree_with_single_node(
    isolated: dict[str, Any], flavour: str
) -> None:
    """Spans written to otel.otel_traces (Distributed when sharded) reach every view alike."""
    single = isolated["single:llm"]
    assert single[0][:3] == [3, 3, 40], single  # the failed call reports no tokens
    assert isolated[f"{flavour}:llm"] == single


@pytest.mark.parametrize("flavour", FORMS)
def test_exporter_inserts_land_in_every_form(
    isolated: dict[str, Any], exporter_inserts: dict[str, list[str]] | None, flavour: str
) -> None:
    """The exporter's INSERT column lists, run against the names it writes, store the row."""
    if exporter_inserts is None:
        pytest.skip("no Go toolchain: cannot read the exporter's INSERT templates")
    columns = columns_by_table(isolated[f"{flavour}:columns"])
    for table, insert in exporter_inserts.items():
        names = {c[0] for c in columns[table]}
        assert not set(insert) - names, f"{flavour} otel.{table} lacks {set(insert) - names}"
        expected = 4 if table == "otel_traces" else 1  # three LLM spans were written before
        assert isolated[f"{flavour}:count:{table}"] == [[expected]], f"{flavour} {table}"
        if flavour == "sharded":
            assert isolated[f"sharded:local:{table}"] == [[expected]], f"{table}{LOCAL_SUFFIX}"
