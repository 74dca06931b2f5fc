"""What the `make verify` unit tests share: a parsed .env with every port refused unless set,
and a Context on it."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from llm_otel.contract import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_COST_AMOUNT,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from scripts.envfile.parser import parse_env_text
from scripts.envfile.spec import CONTRACT_DEFAULTS, KeySpec
from scripts.verify.context import Context, Options
from tests.doubles.verify_peers import (
    MASTER_KEY,
)
from tests.support.chdb_engine import ADMIN_PASSWORD, READER_PASSWORD
from tests.support.span_rows import exporter_span_row, insert_span_rows

SPEC = KeySpec(source="test", defaults=dict(CONTRACT_DEFAULTS))


def free_port() -> int:
    """A port nothing listens on (bound and released): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_values(**overrides: object) -> dict[str, str]:
    values = dict(CONTRACT_DEFAULTS)
    values.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        OPENROUTER_API_KEY="sk-or-test-" + "1c" * 10,
        CLICKHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD,
        CLICKHOUSE_WRITER_PASSWORD="writer-" + "2d" * 8,
        CLICKHOUSE_READER_PASSWORD=READER_PASSWORD,
    )
    ports = [k for k in values if k.endswith("_PORT")]
    values.update({k: str(free_port()) for k in ports})  # all refused unless overridden
    values.update({k: str(v) for k, v in overrides.items()})
    return values


def make_ctx(timeout_s: float = 2.0, http_timeout_s: float = 2.0, **overrides: object) -> Context:
    text = "".join(f"{k}={v}\n" for k, v in env_values(**overrides).items())
    options = Options(
        native=True,
        native_reason="test",
        timeout_s=timeout_s,
        http_timeout_s=http_timeout_s,
        poll_interval_s=0.05,
    )
    return Context(options=options, env=parse_env_text(text), spec=SPEC)


@dataclass
class ClickHouse:
    """The adapter's port and an admin client on it."""

    port: int
    admin: Any

    def insert_llm_span(self, trace_id: str, **attributes: object) -> None:
        attrs: dict[str, object] = {
            GEN_AI_OPERATION_NAME: "chat",
            GEN_AI_REQUEST_MODEL: "verify-mock",
            GEN_AI_USAGE_INPUT_TOKENS: 12,
            GEN_AI_USAGE_OUTPUT_TOKENS: 8,
            GEN_AI_USAGE_COST_AMOUNT: 2.4e-05,
        }
        attrs.update(attributes)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        row = exporter_span_row(
            start_ns=time.time_ns(),
            duration_ns=5_000_000,
            name="chat verify-mock",
            attributes=attrs,
            trace_id=trace_id,
        )
        insert_span_rows(self.admin.command, [row])
