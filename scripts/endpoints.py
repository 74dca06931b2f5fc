"""Print where the running stack listens, from .env (after `make up`)."""

from __future__ import annotations

import os
from pathlib import Path

from scripts.envfile.parser import read_values
from scripts.envfile.spec import enabled_overlays


def main() -> None:
    env = {**read_values(Path(".env")), **os.environ}
    host = env.get("BIND_ADDRESS") or "127.0.0.1"

    def port(key: str, default: str) -> str:
        return env.get(key) or default

    rows = [
        ("LiteLLM gateway (OpenAI API)", f"http://{host}:{port('LITELLM_PORT', '4000')}/v1"),
        (
            "OTLP gRPC / HTTP in",
            f"{host}:{port('OTEL_COLLECTOR_GRPC_PORT', '4317')} / "
            f"http://{host}:{port('OTEL_COLLECTOR_HTTP_PORT', '4318')}",
        ),
        (
            "Collector health / metrics",
            f"http://{host}:{port('OTEL_COLLECTOR_HEALTH_PORT', '13133')}/ , "
            f"http://{host}:{port('OTEL_COLLECTOR_METRICS_PORT', '8888')}/metrics",
        ),
    ]
    if env.get("CLICKHOUSE_URL"):
        rows.append(("ClickHouse (external)", env["CLICKHOUSE_URL"]))
    else:
        clickhouse = f"http://{host}:{port('CLICKHOUSE_HTTP_PORT', '8124')} / "
        rows.append(
            (
                "ClickHouse HTTP / native",
                clickhouse + f"{host}:{port('CLICKHOUSE_TCP_PORT', '9002')}",
            )
        )
    if "langfuse" in enabled_overlays(env.get("COMPOSE_FILE")):
        rows.append(("Langfuse UI", f"http://{host}:{port('LANGFUSE_PORT', '3000')}"))
    width = max(len(name) for name, _ in rows)
    print("\nThe stack is up:")
    for name, url in rows:
        print(f"  {name:<{width}}  {url}")
    print("\nNext: `make verify` follows one call through every hop; `make report` sums it up.")


if __name__ == "__main__":
    main()
