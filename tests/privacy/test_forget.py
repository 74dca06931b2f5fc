"""`make forget` on the ClickHouse engine (issue #26), with rows the real proxy and collector
wrote: every row carrying the id goes (usage spans, captured content), nothing else does; the
counts it reports are the rows there were; a second run deletes nothing; without the admin's
credentials it refuses."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import forget
from scripts.native_stack.harness import PROVIDER_MODEL, NativeStack, StackOptions
from scripts.native_stack.paths import REPO
from tests.conftest import require_collector

pytestmark = pytest.mark.stack  # the real proxy, collector and ClickHouse engine

APP = "crm"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    require_collector()
    options = StackOptions(clickhouse=True, proxy_env={"LLM_OTEL_CAPTURE_CONTENT_APPS": APP})
    with NativeStack(tmp_path_factory.mktemp("forget"), options) as running:
        yield running


def _calls(stack: NativeStack, user: str, *conversations: str) -> None:
    # One call per conversation: LiteLLM gives the calls of one session_id one trace id, which
    # the hook takes for one request (reported, not changed here).
    for conversation in conversations:
        response = stack.chat(
            PROVIDER_MODEL,
            f"hello from {user}",
            user=user,
            metadata={"session_id": conversation},
            headers={"x-litellm-tags": f"app:{APP}"},
        )
        assert response.status_code == 200, response.text


def _rows_with(stack: NativeStack, value: str) -> dict[str, int]:
    """{table: rows whose text holds `value` anywhere}, over every MergeTree table."""
    admin = stack.clickhouse.client("admin")
    tables = [
        r[0]
        for r in admin.query(
            "SELECT name FROM system.tables WHERE database = 'otel' AND engine LIKE '%MergeTree'"
        ).result_rows
    ]
    found = {}
    for table in tables:
        text = admin.raw_query(f"SELECT * FROM otel.`{table}` FORMAT TSV").decode(errors="replace")
        hits = sum(value in line for line in text.splitlines())
        if hits:
            found[table] = hits
    return found


def _run(env_file: Path, **chosen: str) -> subprocess.CompletedProcess[str]:
    """`make forget user=...`, as the user types it (the venv is the one running the tests)."""
    args = [f"{kind}={value}" for kind, value in chosen.items()]
    args.append(f"ARGS=--env-file={env_file}")
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.scripts-stamp", "forget", *args],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "FORGET_"))},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_forget_a_user_leaves_no_row_with_that_id(stack: NativeStack) -> None:
    gone, kept = f"user-{secrets.token_hex(4)}", f"user-{secrets.token_hex(4)}"
    _calls(stack, gone, f"conv-{secrets.token_hex(4)}", f"conv-{secrets.token_hex(4)}")
    _calls(stack, kept, f"conv-{secrets.token_hex(4)}")
    expected = {"otel_traces": 2, "otel_traces_content": 2}
    stack.wait_for(lambda: _rows_with(stack, gone) == expected, timeout=40, what="2 calls stored")
    stack.wait_for(lambda: _rows_with(stack, kept), timeout=40, what="the other user's call")
    env_file = stack.write_env_file(CLICKHOUSE_URL=stack.clickhouse.endpoint)

    first = _run(env_file, user=gone)
    assert first.returncode == 0, first.stderr
    assert f"user={gone}: 4 rows deleted in ClickHouse" in first.stdout
    for table, rows in expected.items():
        assert f"  {table:<40} {rows:>8} rows deleted" in first.stdout
    assert _rows_with(stack, gone) == {}
    assert _rows_with(stack, kept) == {"otel_traces": 1, "otel_traces_content": 1}

    again = _run(env_file, user=gone)  # idempotent: nothing left, nothing deleted
    assert again.returncode == 0, again.stderr
    assert f"user={gone}: 0 rows deleted in ClickHouse" in again.stdout


def test_forget_a_conversation_and_an_app(stack: NativeStack) -> None:
    user, conversation = f"user-{secrets.token_hex(4)}", f"conv-{secrets.token_hex(4)}"
    _calls(stack, user, conversation)
    stack.wait_for(lambda: _rows_with(stack, conversation), timeout=40, what="the call stored")
    env_file = stack.write_env_file(CLICKHOUSE_URL=stack.clickhouse.endpoint)
    done = _run(env_file, conversation=conversation)
    assert done.returncode == 0, done.stderr
    assert _rows_with(stack, conversation) == {} and _rows_with(stack, user) == {}
    done = _run(env_file, app=APP)
    assert done.returncode == 0, done.stderr
    admin = stack.clickhouse.client("admin")
    left = admin.query(
        "SELECT count() FROM otel.otel_traces WHERE SpanAttributes['litellm.app'] = {a:String}",
        parameters={"a": APP},
    ).result_rows[0][0]
    assert left == 0


def test_refuses_without_the_admin_credentials(stack: NativeStack) -> None:
    url = stack.clickhouse.endpoint
    missing = _run(stack.write_env_file(CLICKHOUSE_URL=url, CLICKHOUSE_ADMIN_PASSWORD=""), user="x")
    assert missing.returncode == 2
    assert "set CLICKHOUSE_ADMIN_PASSWORD in .env" in missing.stderr
    wrong = _run(
        stack.write_env_file(CLICKHOUSE_URL=url, CLICKHOUSE_ADMIN_PASSWORD="not-the-password"),
        user="x",
    )
    assert wrong.returncode == 2 and "cannot log in" in wrong.stderr
    neither = _run(stack.write_env_file(CLICKHOUSE_URL=url))
    assert neither.returncode == 2 and "name exactly one" in neither.stderr


def test_where_each_kind_is_looked_for() -> None:
    columns = ["Timestamp", "SpanAttributes", "LogAttributes", "user_id"]
    assert forget.conditions(columns, "user") == [
        "SpanAttributes['litellm.end_user'] = {id:String}",
        "SpanAttributes['litellm.user_id'] = {id:String}",
        "LogAttributes['litellm.end_user'] = {id:String}",
        "LogAttributes['litellm.user_id'] = {id:String}",
        "user_id = {id:String}",
    ]
    assert forget.conditions(["Timestamp", "day"], "app") == []


def test_overlay_advice_names_the_traces() -> None:
    values = {"COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml:agentops/compose.yaml"}
    lines = forget.overlay_advice(values, "user", "u1", ["t1", "t2"])
    text = "\n".join(lines)
    assert "Langfuse keeps its own copy of these traces: t1, t2" in text
    assert "/api/public/traces" in text and "AgentOps keeps its own copy" in text
    assert forget.overlay_advice({"COMPOSE_FILE": "docker-compose.yml"}, "user", "u1", []) == []


def test_bundled_server_is_reached_through_its_own_client(tmp_path: Path) -> None:
    """The bundled ClickHouse admits its admin from inside the container only, so `make forget`
    runs clickhouse-client there (`docker compose exec`): here a stand-in for compose runs the
    same command line locally, with a clickhouse-client that records what it was asked."""
    log = tmp_path / "client.log"
    client = tmp_path / "clickhouse-client"
    client.write_text(
        "#!/bin/bash\n"
        f'printf "%s|" "$@" >> {log}; echo "pw=$FORGET_PASSWORD" >> {log}\n'
        'case "$*" in\n'
        "  *system.columns*) printf \"otel_traces\\t['Timestamp','SpanAttributes']\\n\" ;;\n"
        '  *"SELECT count()"*) echo 3 ;;\n'
        "esac\n"
    )
    compose = tmp_path / "compose"
    # `compose exec -T -e FORGET_PASSWORD clickhouse CMD...`: run CMD here.
    compose.write_text('#!/bin/bash\nshift 5\nexec "$@"\n')
    for script in (client, compose):
        script.chmod(0o755)
    env = {"COMPOSE": str(compose), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        run = forget.bundled_runner("s3cret pass")
        deleted = forget.forget(run, "user", "it's me")
    assert deleted == [forget.Deleted("otel_traces", 3)]
    calls = log.read_text().splitlines()
    assert len(calls) == 3  # the tables, the count, the delete
    # The password reaches the container in the environment, not on the host's command line.
    assert all(line.startswith("--user|admin|--password|s3cret pass|") for line in calls)
    assert all(line.endswith("|pw=s3cret pass") for line in calls)
    assert "|--param_id=it's me|" in calls[1] and "|--param_id=it's me|" in calls[2]
    assert "|--query|ALTER TABLE otel.`otel_traces` DELETE WHERE" in calls[2]
