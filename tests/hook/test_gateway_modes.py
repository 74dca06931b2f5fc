"""The hook under other settings: opt-in content, disabled, misconfigured, workers, no collector."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from llm_otel.contract import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    LITELLM_CALL_ID,
)
from scripts.native_stack.harness import MOCK_MODEL, PROVIDER_MODEL, NativeStack
from scripts.native_stack.paths import LITELLM_CONFIG

StackFactory = Callable[..., NativeStack]


def test_content_captured_only_when_opted_in(make_stack: StackFactory) -> None:
    stack = make_stack(proxy_env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"})
    marker = f"prompt-marker-{secrets.token_hex(6)}"
    assert stack.chat(PROVIDER_MODEL, marker).status_code == 200
    span = stack.wait_for_llm_spans(1)[0]
    # The collector keeps content out of the usage span and sends it on by itself.
    assert GEN_AI_INPUT_MESSAGES not in span.attributes
    content = stack.wait_for(stack.content_spans, what="the content span")[0]
    assert marker in content.attributes[GEN_AI_INPUT_MESSAGES]
    assert "fake upstream" in content.attributes[GEN_AI_OUTPUT_MESSAGES]
    assert "content captured" in stack.proxy.log_text()  # type: ignore[union-attr]


def test_litellms_own_loggers_get_no_content_when_capture_is_off(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """With LiteLLM's own `otel` callback configured too, capture off still means no prompt or
    answer in any exported span: the hook turns LiteLLM's redaction on for such loggers (and
    off when none is configured, where it would only cost copies: test_gateway_spans)."""
    config = yaml.safe_load(LITELLM_CONFIG.read_text())
    config["litellm_settings"]["callbacks"] = ["otel"]
    path = tmp_path / "litellm-with-otel.yaml"
    path.write_text(yaml.safe_dump(config))
    stack = make_stack(litellm_config=path)
    marker = f"prompt-marker-{secrets.token_hex(6)}"
    assert stack.chat(PROVIDER_MODEL, marker).status_code == 200
    stack.wait_for_llm_spans(1)
    stack.wait_for(lambda: len(stack.spans()) > 1, what="LiteLLM's own otel spans")
    assert marker not in repr(stack.spans())
    assert "fake upstream" not in repr(stack.spans())  # nor the answer
    assert "redacted for LiteLLM's loggers: otel" in stack.proxy.log_text()  # type: ignore[union-attr]


def test_sdk_disabled_means_no_spans_and_proxy_serves(make_stack: StackFactory) -> None:
    stack = make_stack(proxy_env={"OTEL_SDK_DISABLED": "true"})
    for _ in range(3):
        assert stack.chat(MOCK_MODEL).status_code == 200
    time.sleep(2)  # longer than the export delay: spans would have arrived by now
    assert stack.spans() == []
    assert "telemetry OFF: OTEL_SDK_DISABLED=true" in stack.proxy.log_text()  # type: ignore[union-attr]


def test_broken_hook_config_keeps_proxy_serving(make_stack: StackFactory) -> None:
    stack = make_stack(proxy_env={"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
    assert stack.chat(MOCK_MODEL).status_code == 200
    log = stack.proxy.log_text()  # type: ignore[union-attr]
    assert "telemetry OFF: OTEL_EXPORTER_OTLP_PROTOCOL='carrier-pigeon' is not supported" in log
    assert log.count("telemetry OFF") == 1


def test_grpc_without_exporter_says_why(make_stack: StackFactory) -> None:
    stack = make_stack(proxy_env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert stack.chat(MOCK_MODEL).status_code == 200
    assert "gRPC exporter is not installed" in stack.proxy.log_text()  # type: ignore[union-attr]


def test_two_workers_one_span_per_call(make_stack: StackFactory) -> None:
    stack = make_stack(workers=2)
    calls = 12
    call_ids = set()
    for i in range(calls):
        response = stack.chat(MOCK_MODEL, f"call {i}")
        assert response.status_code == 200
        call_ids.add(response.headers["x-litellm-call-id"])
    spans = stack.wait_for_llm_spans(calls)
    time.sleep(1.5)  # let any duplicate arrive before counting
    spans = stack.llm_spans()
    assert sorted(s.attributes[LITELLM_CALL_ID] for s in spans) == sorted(call_ids)
    # Spans come from the spawned workers (each its own service.instance.id), never from the
    # supervisor process that also ran the hook.
    supervisor = f"-{stack.proxy.pid}"  # type: ignore[union-attr]
    instances = {s.resource["service.instance.id"] for s in spans}
    assert instances and not any(i.endswith(supervisor) for i in instances)


def test_gateway_serves_when_collector_is_down(make_stack: StackFactory) -> None:
    stack = make_stack()
    stack.stop_collector()
    started = time.monotonic()
    for _ in range(5):
        assert stack.chat(MOCK_MODEL).status_code == 200
    assert time.monotonic() - started < 10  # generous: only "not stalled on the exporter"


def test_two_workers_start_while_the_cpu_is_saturated(make_stack: StackFactory) -> None:
    """Workers answer uvicorn's health ping only after `import litellm`; on a busy host that
    takes longer than uvicorn's 5 s default, and the supervisor kills and respawns them forever.
    The stack's TIMEOUT_WORKER_HEALTHCHECK (from docker-compose.yml) lets them finish."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(3)]
    try:
        stack = make_stack(workers=2)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert stack.chat(MOCK_MODEL).status_code == 200
    assert "died" not in stack.proxy.log_text()  # type: ignore[union-attr]


# A CPU burner that ends by itself (bounded even if the test is interrupted).
BURN = "import time\nend = time.monotonic() + 240\nwhile time.monotonic() < end: pass"
