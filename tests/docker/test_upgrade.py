"""Upgrading a running stack's schema: a volume initialised by an older checkout (the files up to
100, without 110 and later) gets the newer files with `make schema`, keeping every row."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.docker.stack import ComposeStack

pytestmark = pytest.mark.timeout(900)

INITDB = "clickhouse/initdb"
FIRST_NEW = "110"  # files from this number on are what the older checkout lacked


def test_make_schema_upgrades_an_older_volume(
    fresh_clone: tuple[ComposeStack, dict[str, str]],
) -> None:
    stack, settings = fresh_clone
    held_back = stack.root.parent / "initdb-held-back"
    held_back.mkdir()
    newer = sorted(p.name for p in (stack.root / INITDB).glob("*.sql") if p.name >= FIRST_NEW)
    for name in newer:  # the older checkout
        shutil.move(stack.root / INITDB / name, held_back / name)
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

    for name in newer:  # `git pull` brings the new files
        shutil.move(held_back / name, stack.root / INITDB / name)
    run = stack.make("schema", timeout=300).ok()
    assert all(name.removesuffix(".sql") in run.out for name in newer), run.out
    assert scalar("SELECT max(version) FROM schema_version") == int(newer[-1].split("_")[0])
    assert scalar("SELECT count() FROM otel_traces") == stored
    assert (
        scalar(
            "SELECT count() FROM system.columns WHERE database = 'otel' "
            "AND table = 'llm_usage_daily' AND name IN ('reasoning_output_tokens', 'retried_calls')"
        )
        == 2
    )
    assert scalar("SELECT count() FROM llm_attempts") >= 1  # the older rows, one attempt each
    stack.make("schema", timeout=300).ok()  # idempotent: a second run changes nothing
    assert scalar("SELECT count() FROM otel_traces") == stored
