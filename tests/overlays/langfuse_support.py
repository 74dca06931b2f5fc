"""What the Langfuse overlay tests share: keys, the collector configured as the overlay configures
it, a native stack that also exports to the fake Langfuse, and `make verify` hop 7 as it runs."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from llm_otel import contract
from scripts.envfile import langfuse as langfuse_env
from scripts.envfile.parser import parse_env_text
from scripts.envfile.spec import KeySpec
from scripts.native_stack import otlp
from scripts.native_stack.harness import (
    MOCK_MODEL,
    NativeStack,
    StackOptions,
)
from scripts.native_stack.paths import (
    COLLECTOR_CONFIGS,
    COLLECTOR_DIR,
    REPO,
)
from scripts.verify.context import CallRecord, Context, Options
from scripts.verify.hops.langfuse import check
from scripts.verify.results import Result
from tests.doubles.fake_langfuse import FakeLangfuse, ReceivedSpan
from tests.support.traceparent import traceparent

PUBLIC_KEY = f"pk-lf-{secrets.token_hex(16)}"
SECRET_KEY = f"sk-lf-{secrets.token_hex(16)}"

LANGFUSE_COLLECTOR_CONFIG = COLLECTOR_DIR / "config.langfuse.yaml"
# The order the compose overlay passes them: base, Langfuse, then the user's extras last.
# The Langfuse slot (second file) filled, as the overlay's mount does in compose.
WITH_LANGFUSE = (COLLECTOR_CONFIGS[0], LANGFUSE_COLLECTOR_CONFIG, *COLLECTOR_CONFIGS[2:])
COMPOSE_OVERLAY = REPO / "langfuse" / "compose.yaml"
USERS_XML = REPO / "langfuse" / "clickhouse-users.xml"


# The harness's test overlay sends traces to the file exporter only; add Langfuse beside it.
def langfuse_collector_env(
    fake: FakeLangfuse, public: str = PUBLIC_KEY, secret: str = SECRET_KEY
) -> dict[str, str]:
    return {
        "LANGFUSE_OTLP_BASIC_AUTH": langfuse_env.otlp_basic_auth(public, secret),
        "LANGFUSE_OTLP_ENDPOINT": fake.otlp_endpoint,
    }


class LangfuseStack(NativeStack):
    """The native stack whose collector also exports to a fake Langfuse."""

    def __init__(self, workdir: Path, fake: FakeLangfuse, options: StackOptions) -> None:
        super().__init__(workdir, options)
        self.fake = fake

    def collector_env(self) -> dict[str, str]:
        return {**super().collector_env(), **langfuse_collector_env(self.fake)}


def call(
    stack: NativeStack, model: str = MOCK_MODEL, content: str = "hello", **body: Any
) -> tuple[str, httpx.Response]:
    trace_id = secrets.token_hex(16)
    response = stack.chat(model, content, headers={"traceparent": traceparent(trace_id)}, **body)
    assert response.status_code == 200, response.text
    return trace_id, response


def in_trace(trace_id: str) -> Any:
    return lambda s: s.trace_id == trace_id


# The name config.langfuse.yaml gives the cost on Langfuse's pipeline: the one Langfuse reads.
LANGFUSE_COST = contract.LEGACY_GEN_AI_USAGE_COST


def as_langfuse_gets_it(attributes: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes after the Langfuse pipeline's cost rename (and nothing else)."""
    out = dict(attributes)
    if contract.GEN_AI_USAGE_COST_AMOUNT in out:
        out[LANGFUSE_COST] = out.pop(contract.GEN_AI_USAGE_COST_AMOUNT)
        out.pop(contract.GEN_AI_USAGE_COST_CURRENCY, None)
    return out


def comparable(span: otlp.Span | ReceivedSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent_span_id,
        "status": span.status_code,
        "start": span.start_ns,
        "end": span.end_ns,
        "scope": span.scope,
        "attributes": span.attributes,
        "resource": span.resource,
    }


def hop7(
    base_url: str,
    trace_id: str,
    *,
    timeout_s: float,
    poll_interval_s: float = 0.1,
    public_key: str = PUBLIC_KEY,
    expected: tuple[int | None, int | None, float | None] = (None, None, None),
    metrics_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Hop 7 against base_url as `make verify` runs it after the call with this trace id, with
    the gateway's (input tokens, output tokens, cost) of that call as expected."""
    values = {
        "COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml",
        "BIND_ADDRESS": "127.0.0.1",
        "LANGFUSE_PORT": str(httpx.URL(base_url).port),
        langfuse_env.PUBLIC_KEY: public_key,
        langfuse_env.SECRET_KEY: SECRET_KEY,
        langfuse_env.BASIC_AUTH: langfuse_env.otlp_basic_auth(public_key, SECRET_KEY),
        **(
            {"OTEL_COLLECTOR_METRICS_PORT": str(httpx.URL(metrics_url).port)} if metrics_url else {}
        ),
        **(env or {}),
    }
    ctx = Context(
        Options(poll_interval_s=poll_interval_s),
        parse_env_text("".join(f"{k}={v}\n" for k, v in values.items())),
        KeySpec(source="test", defaults={}),
    )
    ctx.call = CallRecord(trace_id, MOCK_MODEL, *expected)
    return check(ctx, timeout_s)


def langfuse_generation(langfuse: FakeLangfuse, trace_id: str) -> dict[str, Any]:
    """The GENERATION observation of a trace, as Langfuse's public API returns it."""
    trace = httpx.get(
        f"{langfuse.base_url}/api/public/traces/{trace_id}",
        auth=(PUBLIC_KEY, SECRET_KEY),
        timeout=10,
    ).json()
    generation: dict[str, Any] = next(o for o in trace["observations"] if o["type"] == "GENERATION")
    return generation
