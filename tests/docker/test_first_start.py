"""The first `make up` on a host where telemetry cannot start: the gateway still serves.

A collector that cannot start (here a typo in `otel-collector/config.extras.yaml`, the file a
user edits) must not keep every app offline: `make up` fails naming it, the gateway answers all
the same, and once the file is fixed the calls made meanwhile are stored (the hook held them).
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.docker.stack import ComposeStack

pytestmark = pytest.mark.timeout(900)

# Valid YAML, but a pipeline naming an exporter that is not configured: the collector exits.
BROKEN_EXTRAS = """\
service:
  pipelines:
    traces:
      exporters: [clickhouse, clickhous]
"""


def test_gateway_serves_while_the_collector_cannot_start(
    fresh_clone: tuple[ComposeStack, dict[str, str]],
) -> None:
    stack, settings = fresh_clone
    stack.make("init").ok()
    stack.set_env(settings)
    extras = stack.root / "otel-collector" / "config.extras.yaml"
    shipped = extras.read_text()
    extras.write_text(BROKEN_EXTRAS)

    up = stack.make("up", UP_TIMEOUT="90")
    assert up.code != 0, "make up succeeded with a collector that cannot start"
    assert "otel-collector" in up.out, up.out[-3000:]

    trace_id = secrets.token_hex(16)
    answer = stack.chat(trace_id=trace_id)
    assert answer.status_code == 200, answer.text  # the apps keep their gateway
    logs = stack.compose("logs", "otel-collector").out
    assert "clickhous" in logs, logs[-2000:]  # the collector says what is wrong
    verify = stack.make("verify", ARGS="--json")
    assert verify.code != 0
    hops = {hop["name"]: hop for hop in json.loads(verify.stdout)["hops"]}
    assert hops["gateway"]["state"] == "ok", hops["gateway"]
    assert hops["collector"]["state"] == "fail", hops["collector"]

    extras.write_text(shipped)
    stack.make("up").ok()
    # The call made while the collector was down is stored, exactly once.
    assert stack.wait_for_rows([trace_id], timeout=90) == {trace_id: 1}
