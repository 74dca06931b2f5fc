"""The owned schema in cluster form, rendered from the single-node files (clickhouse/initdb).

clickhouse/initdb/*.sql stay the one source; this module turns each of their statements into
its cluster form, so the two forms cannot drift:

  cloud       ON CLUSTER (optional) + parameterless Replicated*MergeTree(), which ClickHouse
              Cloud accepts (and maps to its own engine).
  replicated  ON CLUSTER + Replicated*MergeTree('/clickhouse/tables/{shard}/{database}/{table}',
              '{replica}'): a self-run cluster of one shard and several replicas.
  sharded     as replicated, but every table holding telemetry becomes `<table>_local` on each
              shard plus `<table>` = Distributed(cluster, db, <table>_local, <sharding key>), so
              the exporter's INSERTs and every reader keep using the single-node names.
              Materialized views fire on the shard-local table and write the shard-local
              aggregate; `ALTER ... MODIFY QUERY` is rewritten the same way; column changes
              go to both `_local` and the Distributed table, storage changes to `_local` only.

Only the statement shapes the initdb files use are understood (found with regexes over a copy
of the statement whose comments and string literals are blanked out). Anything else raises
UnsupportedStatementError naming the file, so a new migration cannot render wrong in silence.

    python -m scripts.clickhouse_schema.cluster --cluster NAME --flavour sharded [--out DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts.clickhouse_schema.files import INITDB_DIR, initdb_files, split_sql

FLAVOURS = ("cloud", "replicated", "sharded")
DEFAULT_CLUSTER = "{cluster}"  # the server's own `cluster` macro
LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"
# Small tables every node must see whole (the schema ledger): one replication group spanning
# all shards, so a replica name must be unique cluster-wide, hence shard and replica together.
EVERY_NODE_PATH = "/clickhouse/tables/all/{database}/{table}"
EVERY_NODE_REPLICA = "{shard}-{replica}"
EVERY_NODE_TABLES = frozenset({"schema_version"})

# Sharding keys: deterministic (never rand()), so a batch the exporter retries splits into the
# same per-shard blocks and the replicas' insert deduplication drops the repeat.
SHARDING_KEYS: dict[str, str] = {
    # A trace's spans stay on one shard: the trace-id lookup MV then sees the whole trace.
    "otel_traces": "cityHash64(TraceId)",
    "otel_traces_trace_id_ts": "cityHash64(TraceId)",
    "otel_traces_content": "cityHash64(TraceId)",
    "otel_logs": "cityHash64(TraceId, Timestamp)",
    # One series per shard keeps per-series reads (rates, last value) on one node.
    "otel_metrics_gauge": "cityHash64(ServiceName, MetricName, Attributes)",
    "otel_metrics_sum": "cityHash64(ServiceName, MetricName, Attributes)",
    "otel_metrics_summary": "cityHash64(ServiceName, MetricName, Attributes)",
    "otel_metrics_histogram": "cityHash64(ServiceName, MetricName, Attributes)",
    "otel_metrics_exponential_histogram": "cityHash64(ServiceName, MetricName, Attributes)",
    # Filled on each shard by its MV; the key only matters for a backfill through the table.
    "llm_usage_daily_agg": "cityHash64(day, request_model, provider, team_id, api_key_hash)",
}

_NAME = r"(?P<db>\w+)\.(?P<name>\w+)"
_CREATE_DATABASE = re.compile(r"CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?\w+", re.I)
_CREATE_TABLE = re.compile(rf"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s*\(", re.I)
# A table shaped like an earlier one: `CREATE TABLE db.t AS db.src ENGINE = ...MergeTree`.
_CREATE_TABLE_AS = re.compile(
    rf"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}"
    r"\s+AS\s+(?P<src_db>\w+)\.(?P<src>\w+)(?=\s+ENGINE\b)",
    re.I,
)
_CREATE_VIEW = re.compile(
    rf"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}(?=\s+AS\s)", re.I
)
_CREATE_MV = re.compile(
    rf"CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}"
    r"\s+TO\s+(?P<to_db>\w+)\.(?P<to>\w+)(?=\s+AS\s)",
    re.I,
)
_ALTER = re.compile(rf"ALTER\s+TABLE\s+{_NAME}(?=\s)", re.I)
_DROP = re.compile(rf"DROP\s+(?P<kind>TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?{_NAME}", re.I)
_INSERT = re.compile(rf"INSERT\s+INTO\s+{_NAME}[\s(]", re.I)
_ENGINE = re.compile(r"\s*ENGINE\s*=\s*(?P<family>\w*)MergeTree\b(?:\s*\((?P<args>[^()]*)\))?")
_ON_CLUSTER = re.compile(r"\bON\s+CLUSTER\b", re.I)
_SOURCE = re.compile(r"\b(?:FROM|JOIN)\s+", re.I)
_QUALIFIED = re.compile(r"(?P<db>\w+)\.(?P<name>\w+)\b")
_COLUMN_ACTION = re.compile(r"(?:ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)
_STORAGE_ACTION = re.compile(
    r"(?:MODIFY\s+TTL|REMOVE\s+TTL|(?:ADD|DROP|MATERIALIZE|CLEAR)\s+(?:INDEX|PROJECTION)"
    r"|(?:MODIFY|RESET)\s+SETTING)\b",
    re.I,
)
_MODIFY_QUERY = re.compile(r"MODIFY\s+QUERY\b", re.I)


class UnsupportedStatementError(ValueError):
    """A single-node statement whose cluster form this renderer does not know."""


def mask(sql: str) -> str:
    """`sql` with comments and '...' literals blanked to spaces (same length, same offsets).

    Regexes run on the mask, so a keyword inside a comment or a string cannot match; edits
    are made on the original at the offsets found.
    """
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
        elif sql[i] == "'":
            end = i + 1
            while end < n:
                if sql[end] == "\\" or sql.startswith("''", end):
                    end += 2
                elif sql[end] == "'":
                    break
                else:
                    end += 1
            end += 1
        else:
            i += 1
            continue
        for j in range(i, min(end, n)):
            if out[j] != "\n":
                out[j] = " "
        i = end
    return "".join(out)


def _matching_paren(masked: str, open_at: int) -> int:
    """Index of the `)` closing the `(` at `open_at` (on a masked statement)."""
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == "(":
            depth += 1
        elif masked[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise UnsupportedStatementError("unbalanced parentheses")


def _top_level_split(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) spans of the comma-separated items of masked[start:end] at depth 0."""
    spans, depth, begin = [], 0, start
    for i in range(start, end):
        ch = masked[i]
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            spans.append((begin, i))
            begin = i + 1
    spans.append((begin, end))
    return spans


@dataclass
class ClusterRenderer:
    """Renders statements in file order; remembers what each created name is."""

    flavour: str
    cluster: str = DEFAULT_CLUSTER
    storage: set[str] = field(default_factory=set)  # db.name of MergeTree-family tables
    views: set[str] = field(default_factory=set)
    materialized: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {self.flavour!r}")
        if not self.cluster and self.flavour != "cloud":
            raise ValueError(f"the {self.flavour} flavour needs a cluster name")
        if "'" in self.cluster or "\\" in self.cluster:
            raise ValueError(f"cluster name must not contain quotes: {self.cluster!r}")

    # ------------------------------------------------------------------ public

    def render(self, statement: str) -> list[str]:
        """The cluster form of one single-node statement (one or more statements)."""
        # Leading comments explain the single-node source and stay there, not in the output.
        masked = mask(statement)
        start = len(masked) - len(masked.lstrip())
        statement, masked = statement[start:], masked[start:]
        if _ON_CLUSTER.search(masked):
            raise UnsupportedStatementError("already has ON CLUSTER; the source is single-node SQL")
        for pattern, handler in (
            (_CREATE_DATABASE, self._create_database),
            (_CREATE_TABLE, self._create_table),
            (_CREATE_TABLE_AS, self._create_table_as),
            (_CREATE_MV, self._create_materialized_view),
            (_CREATE_VIEW, self._create_view),
            (_ALTER, self._alter),
            (_DROP, self._drop),
            (_INSERT, self._insert),
        ):
            match = pattern.match(masked)
            if match:
                return handler(statement, masked, match)
        raise UnsupportedStatementError(f"no cluster form for: {' '.join(masked.split()[:6])} ...")

    def render_script(self, text: str, source: str = "<sql>") -> str:
        """A whole initdb file in cluster form: a header, then `;`-terminated statements."""
        out = [
            f"-- clickhouse/initdb/{source} in the `{self.flavour}` cluster form (cluster "
            f"'{self.cluster}'),\n-- rendered by scripts/clickhouse_schema/cluster.py. "
            "Do not edit: change the source file and render again;\n-- the comments that "
            "explain each statement are in the source.\n"
        ]
        for statement in split_sql(text):
            try:
                rendered = self.render(statement)
            except UnsupportedStatementError as exc:
                raise UnsupportedStatementError(f"{source}: {exc}\n---\n{statement}") from None
            out.extend(f"{sql};\n" for sql in rendered)
        return "\n".join(out)

    # ------------------------------------------------------------------ pieces

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER '{self.cluster}'" if self.cluster else ""

    @property
    def sharded(self) -> bool:
        return self.flavour == "sharded"

    def _is_sharded_table(self, qualified: str) -> bool:
        return (
            self.sharded
            and qualified in self.storage
            and qualified.split(".")[1] not in EVERY_NODE_TABLES
        )

    def _insert_cluster(self, statement: str, at: int) -> str:
        return statement[:at] + self.on_cluster + statement[at:]

    def _engine(self, family: str, args: str, table: str) -> str:
        args = args.strip()
        if self.flavour == "cloud":
            return f"Replicated{family}MergeTree({args})"
        path, replica = REPLICA_PATH, REPLICA_NAME
        if self.sharded and table in EVERY_NODE_TABLES:
            path, replica = EVERY_NODE_PATH, EVERY_NODE_REPLICA
        params = f"'{path}', '{replica}'" + (f", {args}" if args else "")
        return f"Replicated{family}MergeTree({params})"

    # ------------------------------------------------------------------ statement kinds

    def _create_database(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        if masked[m.end() :].strip():
            raise UnsupportedStatementError("CREATE DATABASE with an ENGINE or other clauses")
        return [self._insert_cluster(statement, m.end())]

    def _create_table(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        close = _matching_paren(masked, m.end() - 1)
        return self._table_with_engine(statement, masked, m, close + 1)

    def _create_table_as(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        source = f"{m.group('src_db')}.{m.group('src')}"
        if source not in self.storage:
            raise UnsupportedStatementError(f"a table shaped AS {source}, not a known table")
        engine_at = m.end()
        if self._is_sharded_table(source):
            # Each shard's table copies the shard-local source's columns.
            at = m.end("src")
            statement = statement[:at] + LOCAL_SUFFIX + statement[at:]
            masked = masked[:at] + LOCAL_SUFFIX + masked[at:]
            engine_at += len(LOCAL_SUFFIX)
        return self._table_with_engine(statement, masked, m, engine_at)

    def _table_with_engine(
        self, statement: str, masked: str, m: re.Match[str], engine_at: int
    ) -> list[str]:
        db, name = m.group("db"), m.group("name")
        engine = _ENGINE.match(masked, engine_at)
        if not engine:
            raise UnsupportedStatementError(
                f"{db}.{name}: only `ENGINE = <X>MergeTree[(<simple args>)]` right after the "
                "column list (or AS <table>) is handled"
            )
        family = engine.group("family")
        if family.startswith(("Replicated", "Shared")):
            raise UnsupportedStatementError(f"{db}.{name}: already {family}MergeTree")
        args = statement[engine.start("args") : engine.end("args")] if engine.group("args") else ""
        engine_sql = self._engine(family, args, name)
        engine_at = masked.index("=", engine.start()) + 1
        body = statement[:engine_at] + " " + engine_sql + statement[engine.end() :]
        self.storage.add(f"{db}.{name}")
        if not self._is_sharded_table(f"{db}.{name}"):
            return [self._insert_cluster(body, m.end("name"))]
        if name not in SHARDING_KEYS:
            raise UnsupportedStatementError(
                f"{db}.{name}: no sharding key; add it to SHARDING_KEYS (or EVERY_NODE_TABLES)"
            )
        local = f"{name}{LOCAL_SUFFIX}"
        at = m.end("name")
        local_sql = body[: m.start("name")] + local + self.on_cluster + body[at:]
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {db}.{name}{self.on_cluster} AS {db}.{local}\n"
            f"ENGINE = Distributed('{self.cluster}', {db}, {local}, {SHARDING_KEYS[name]})"
        )
        return [local_sql, distributed]

    def _create_view(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        self.views.add(f"{m.group('db')}.{m.group('name')}")
        return [self._insert_cluster(statement, m.end())]

    def _create_materialized_view(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        target = f"{m.group('to_db')}.{m.group('to')}"
        if target not in self.storage:
            raise UnsupportedStatementError(f"materialized view writes {target}, not a known table")
        self.materialized.add(f"{m.group('db')}.{m.group('name')}")
        query_at = m.end()
        query = self._local_sources(statement[query_at:], masked[query_at:])
        head = statement[: m.end("name")] + self.on_cluster
        head += statement[m.end("name") : m.start("to")]
        head += m.group("to") + (LOCAL_SUFFIX if self._is_sharded_table(target) else "")
        return [head + query]

    def _alter(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        qualified = f"{m.group('db')}.{m.group('name')}"
        at = m.end()
        if qualified in self.materialized:
            # The rest is one action whose query holds commas of its own: no splitting.
            modify = _MODIFY_QUERY.match(masked, at + len(masked[at:]) - len(masked[at:].lstrip()))
            if not modify:
                raise UnsupportedStatementError(
                    f"{qualified}: only ALTER ... MODIFY QUERY on a view"
                )
            query = self._local_sources(statement[modify.end() :], masked[modify.end() :])
            return [self._insert_cluster(statement[: modify.end()], at) + query]
        actions = [masked[a:b].strip() for a, b in _top_level_split(masked, at, len(masked))]
        if qualified not in self.storage:
            raise UnsupportedStatementError(f"ALTER of {qualified}, which no earlier file creates")
        columns = [bool(_COLUMN_ACTION.match(a)) for a in actions]
        storage = [bool(_STORAGE_ACTION.match(a)) for a in actions]
        for action, is_column, is_storage in zip(actions, columns, storage, strict=True):
            if not (is_column or is_storage):
                raise UnsupportedStatementError(
                    f"{qualified}: ALTER action not handled: {action[:40]}"
                )
        if not self._is_sharded_table(qualified):
            return [self._insert_cluster(statement, at)]
        name_at = m.end("name")
        local = statement[:name_at] + LOCAL_SUFFIX + self.on_cluster + statement[name_at:]
        if all(storage):
            return [local]
        if all(columns):
            # The Distributed table's columns must follow its _local table's.
            return [local, self._insert_cluster(statement, at)]
        raise UnsupportedStatementError(
            f"{qualified}: split column and storage changes into separate ALTER statements"
        )

    def _drop(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        qualified = f"{m.group('db')}.{m.group('name')}"
        if masked[m.end() :].strip().upper() not in ("", "SYNC"):
            raise UnsupportedStatementError(f"DROP of {qualified} with clauses other than SYNC")
        dropped = self._insert_cluster(statement, m.end())
        sharded = self._is_sharded_table(qualified)
        for known in (self.storage, self.views, self.materialized):
            known.discard(qualified)
        if not sharded:
            return [dropped]
        name_at = m.end("name")
        local = statement[:name_at] + LOCAL_SUFFIX + self.on_cluster + statement[name_at:]
        return [dropped, local]

    def _insert(self, statement: str, masked: str, m: re.Match[str]) -> list[str]:
        # INSERT has no ON CLUSTER: it runs once, into a replicated (or Distributed) table.
        qualified = f"{m.group('db')}.{m.group('name')}"
        if qualified not in self.storage:
            raise UnsupportedStatementError(
                f"INSERT INTO {qualified}, which no earlier file creates"
            )
        return [statement]

    def _local_sources(self, query: str, masked: str) -> str:
        """A materialized view's query reading the shard-local table its trigger writes.

        A materialized view fires on inserts into the table in its FROM; on a sharded cluster
        those inserts reach `<table>_local` on each shard, never the Distributed table.
        """
        if not self.sharded:
            return query
        edits: list[tuple[int, int, str]] = []
        for source in _SOURCE.finditer(masked):
            if masked.startswith("(", source.end()):
                continue
            ref = _QUALIFIED.match(masked, source.end())
            if not ref:
                raise UnsupportedStatementError(
                    "a materialized view's FROM/JOIN must name `db.table` or a subquery: "
                    f"{masked[source.start() : source.end() + 30].strip()!r}"
                )
            if self._is_sharded_table(f"{ref.group('db')}.{ref.group('name')}"):
                edits.append((ref.end("name"), ref.end("name"), LOCAL_SUFFIX))
        if len(edits) != 1:
            raise UnsupportedStatementError(
                f"a materialized view reads {len(edits)} sharded tables; exactly one (the table "
                "whose inserts trigger it) can be rewritten to its shard-local table"
            )
        for start, end, text in reversed(edits):
            query = query[:start] + text + query[end:]
        return query


def render_files(
    flavour: str, cluster: str = DEFAULT_CLUSTER, directory: Path = INITDB_DIR
) -> dict[str, str]:
    """{file name: cluster-form SQL} for every initdb file, in order."""
    renderer = ClusterRenderer(flavour, cluster)
    return {
        path.name: renderer.render_script(path.read_text(encoding="utf-8"), path.name)
        for path in initdb_files(directory)
    }


def rendered_statements(
    flavour: str, cluster: str = DEFAULT_CLUSTER, directory: Path = INITDB_DIR
) -> Iterator[tuple[str, str]]:
    """(file name, statement) for every cluster-form statement, in apply order."""
    for name, text in render_files(flavour, cluster, directory).items():
        for statement in split_sql(text):
            masked = mask(statement)  # drop the file's header comment
            yield name, statement[len(masked) - len(masked.lstrip()) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.clickhouse_schema.cluster",
        description="Render clickhouse/initdb/*.sql in a cluster form.",
    )
    parser.add_argument(
        "--cluster",
        default=DEFAULT_CLUSTER,
        help="cluster name for ON CLUSTER and Distributed (default: the {cluster} macro; "
        "'' with --flavour cloud omits ON CLUSTER)",
    )
    parser.add_argument("--flavour", choices=FLAVOURS, required=True)
    parser.add_argument("--out", type=Path, help="write one file per initdb file here")
    parser.add_argument("--initdb", type=Path, default=INITDB_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        files = render_files(args.flavour, args.cluster, args.initdb)
    except (UnsupportedStatementError, ValueError) as exc:
        print(f"cluster schema: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write("\n".join(files.values()))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
