"""Upgrading a running stack's schema: a volume initialised by an older checkout (without
110_usage_and_apps.sql) gets the new file with `make schema`, keeping every row."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.docker.stack import ComposeStack

pytestmark = pytest.mark.timeout(900)

NEW_FILE = "clickhouse/initdb/110_usage_and_apps.sql"


def test_make_schema_upgrades_an_older_volume(
    fresh_clone: tuple[ComposeStack, dict[str, str]],
) -> None:
    stack, settings = fresh_clone
    held_back = stack.root.parent / "110_usage_and_apps.sql"
    shutil.move(stack.root / NEW_FILE, held_back)  # the older checkout
    stack.make("init").ok()
    stack.set_env(settings)
    stack.make("up").ok()
    assert stack.chat().status_code == 200
    client = stack.clickhouse()

    def scalar(sql: str) -> int:
        return int(client.query(sql).result_rows[0][0])

    assert scalar("SELECT max(version) FROM schema_version") == 100
    assert (
        scalar(
            "SELECT count() FROM system.columns WHERE database = 'otel' "
            "AND table = 'llm_calls' AND name = 'reasoning_output_tokens'"
        )
        == 0
    )
    time.sleep(3)  # the call's spans land (0.5 s export, 1 s collector flush)
    stored = scalar("SELECT count() FROM otel_traces")

    shutil.move(held_back, stack.root / NEW_FILE)  # `git pull` brings the new file
    run = stack.make("schema", timeout=300).ok()
    assert "110_usage_and_apps" in run.out
    assert scalar("SELECT max(version) FROM schema_version") == 110
    assert scalar("SELECT count() FROM otel_traces") == stored
    assert (
        scalar(
            "SELECT count() FROM system.columns WHERE database = 'otel' "
            "AND table = 'llm_usage_daily' AND name = 'reasoning_output_tokens'"
        )
        == 1
    )
    stack.make("schema", timeout=300).ok()  # idempotent: a second run changes nothing
    assert scalar("SELECT count() FROM otel_traces") == stored
