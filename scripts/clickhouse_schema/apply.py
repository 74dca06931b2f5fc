"""`make schema`: bring a ClickHouse up to the owned schema (idempotent, keeps data).

The bundled server: clickhouse/apply-schema.sh runs the initdb files inside its container (its
admin may log in from localhost only). An external server (clickhouse/external.yaml): the same
files, or their cluster form when CLICKHOUSE_CLUSTER is set, sent over HTTP(S) as the admin user.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from scripts.envfile.parser import read_values
from scripts.envfile.spec import PLACEHOLDER

from .cluster import FLAVOURS, ClusterRenderer, UnsupportedStatementError, render_files
from .endpoint import Endpoint, EndpointError, external_endpoint, tls_problem
from .files import INITDB_DIR, REPO_ROOT, initdb_files, latest_version, split_sql
from .retention import Retention, RetentionError

if TYPE_CHECKING:  # the driver is imported only when a server is reached
    from clickhouse_connect.driver.client import Client

BUNDLED_SCRIPT = REPO_ROOT / "clickhouse" / "apply-schema.sh"
VERSIONS_SQL = "SELECT version, name, applied_at FROM otel.schema_version FINAL ORDER BY version"


class SchemaError(Exception):
    """What the user must fix; the message says how."""


def cluster_files(values: Mapping[str, str], out: Path) -> Path:
    """Render the cluster form chosen in .env into `out`; the initdb directory without a cluster."""
    cluster = (values.get("CLICKHOUSE_CLUSTER") or "").strip()
    if not cluster:
        return INITDB_DIR
    flavour = (values.get("CLICKHOUSE_CLUSTER_FLAVOUR") or "replicated").strip()
    if flavour not in FLAVOURS:
        raise SchemaError(
            f"CLICKHOUSE_CLUSTER_FLAVOUR={flavour!r}: use one of {', '.join(FLAVOURS)}"
        )
    try:
        rendered = render_files(flavour, cluster)
    except UnsupportedStatementError as exc:
        raise SchemaError(f"cannot render the cluster form: {exc}") from exc
    for name, text in rendered.items():
        (out / name).write_text(text, encoding="utf-8")
    return out


def statements(directory: Path) -> Iterator[tuple[str, str]]:
    for path in initdb_files(directory):
        for statement in split_sql(path.read_text(encoding="utf-8")):
            yield path.name, statement


def connect(endpoint: Endpoint, values: Mapping[str, str]) -> Client:
    import clickhouse_connect

    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    user = values.get("CLICKHOUSE_ADMIN_USER") or "admin"
    password = values.get("CLICKHOUSE_ADMIN_PASSWORD") or ""
    if not password or password == PLACEHOLDER:
        raise SchemaError(
            "CLICKHOUSE_ADMIN_PASSWORD is not set in .env: the schema is applied as admin"
        )
    try:
        return clickhouse_connect.get_client(
            **endpoint.client_options(),
            username=user,
            password=password,
            connect_timeout=10,
            send_receive_timeout=120,
            query_retries=0,
            autogenerate_session_id=False,
        )
    except Exception as exc:
        text = str(exc)
        reason = tls_problem(text) or text.strip().splitlines()[0]
        raise SchemaError(f"cannot log in to {endpoint.url} as {user}: {reason}") from exc


def retention_sql(retention: Retention, values: Mapping[str, str]) -> list[str]:
    """The retention statements, in the cluster form when .env names a cluster."""
    cluster = (values.get("CLICKHOUSE_CLUSTER") or "").strip()
    if not cluster:
        return retention.statements()
    renderer = ClusterRenderer(
        (values.get("CLICKHOUSE_CLUSTER_FLAVOUR") or "replicated").strip(), cluster
    )
    for path in initdb_files():  # the renderer learns which tables exist and how
        renderer.render_script(path.read_text(encoding="utf-8"), path.name)
    return [sql for statement in retention.statements() for sql in renderer.render(statement)]


def apply_external(endpoint: Endpoint, values: Mapping[str, str]) -> int:
    retention = Retention.from_env(values)
    client = connect(endpoint, values)
    with tempfile.TemporaryDirectory(prefix="schema-") as tmp:
        directory = cluster_files(values, Path(tmp))
        current = None
        for name, statement in statements(directory):
            if name != current:
                print(f"applying {name}" + (" (cluster form)" if directory != INITDB_DIR else ""))
                current = name
            try:
                client.command(statement)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0]
                raise SchemaError(f"{name}: {first}\n---\n{statement}") from exc
    print(f"retention: usage {retention.usage_days} days, content {retention.content_days} days")
    for statement in retention_sql(retention, values):
        client.command(statement)
    rows = client.query(VERSIONS_SQL).result_rows
    print(f"schema versions now on {endpoint.url}:")
    for version, name, applied_at in rows:
        print(f"  {version:>4}  {name}  {applied_at}")
    newest = max((row[0] for row in rows), default=0)
    if newest < latest_version():
        raise SchemaError(f"the server reports version {newest}, expected {latest_version()}")
    return 0


def apply_bundled_retention(retention: Retention) -> int:
    """The .env retention, through the bundled server's own client (as apply-schema.sh)."""
    compose = (os.environ.get("COMPOSE") or "docker compose").split()
    client = (
        'exec clickhouse-client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD"'
        " --multiquery"
    )
    sql = "".join(f"{statement};\n" for statement in retention.statements())
    print(f"retention: usage {retention.usage_days} days, content {retention.content_days} days")
    done = subprocess.run(
        [*compose, "exec", "-T", "clickhouse", "sh", "-c", client],
        input=sql,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make schema", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=REPO_ROOT / ".env")
    args = parser.parse_args(argv)
    values = {**read_values(args.env_file), **os.environ}
    try:
        endpoint = external_endpoint(values, args.env_file.resolve().parent)
        if endpoint is None:
            if (values.get("CLICKHOUSE_CLUSTER") or "").strip():
                raise SchemaError(
                    "CLICKHOUSE_CLUSTER is set but the stack runs its own single server: "
                    "a cluster is an external ClickHouse (CLICKHOUSE_URL, clickhouse/external.yaml)"
                )
            retention = Retention.from_env(values)  # refused before anything is applied
            status = subprocess.call([str(BUNDLED_SCRIPT)])
            return status or apply_bundled_retention(retention)
        return apply_external(endpoint, values)
    except (SchemaError, EndpointError, RetentionError) as exc:
        print(f"make schema: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
