"""The optional overlays through the real `docker compose` loader, as a user enables them: one
COMPOSE_FILE line in .env. (Their images cannot run here: no registry serves them.)"""

from __future__ import annotations

import json
from pathlib import Path

from tests.docker.stack import ComposeStack, copy_repository

LANGFUSE_SERVICES = {
    "langfuse-web",
    "langfuse-worker",
    "langfuse-postgres",
    "langfuse-redis",
    "langfuse-minio",
}


def test_langfuse_overlay_resolves(tmp_path: Path, engine: None) -> None:
    stack = ComposeStack(copy_repository(tmp_path))
    stack.make("init").ok()
    stack.set_env({"COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml"})
    config = json.loads(stack.compose("config", "--format", "json").ok().stdout)
    services = config["services"]
    assert set(services) >= LANGFUSE_SERVICES, sorted(services)
    # The collector gets the Langfuse pipeline's config and the generated OTLP credentials.
    collector = services["otel-collector"]
    mounts = {v["target"]: v["source"] for v in collector["volumes"]}
    assert mounts["/etc/otelcol/overlays/langfuse.yaml"].endswith("config.langfuse.yaml")
    assert (
        collector["environment"]["LANGFUSE_OTLP_BASIC_AUTH"]
        == stack.env["LANGFUSE_OTLP_BASIC_AUTH"]
    )
    for name in LANGFUSE_SERVICES:
        for port in services[name].get("ports") or []:
            assert port["host_ip"] == "127.0.0.1", (name, port)
    assert stack.make("preflight").ok()


def test_grafana_overlay_resolves(tmp_path: Path, engine: None) -> None:
    stack = ComposeStack(copy_repository(tmp_path))
    stack.make("init").ok()
    stack.set_env({"COMPOSE_FILE": "docker-compose.yml:grafana/compose.yaml"})
    services = json.loads(stack.compose("config", "--format", "json").ok().stdout)["services"]
    grafana = services["grafana"]
    assert grafana["ports"][0]["host_ip"] == "127.0.0.1"
    assert (
        grafana["environment"]["CLICKHOUSE_READER_PASSWORD"]
        == stack.env["CLICKHOUSE_READER_PASSWORD"]
    )
    assert stack.make("preflight").ok()


def test_agentops_overlay_with_langfuse_resolves(tmp_path: Path, engine: None) -> None:
    stack = ComposeStack(copy_repository(tmp_path))
    stack.make("init").ok()
    stack.set_env(
        {
            "COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml:agentops/compose.yaml",
            "AGENTOPS_OTLP_ENDPOINT": "http://agentops.internal:4318",
        }
    )
    services = json.loads(stack.compose("config", "--format", "json").ok().stdout)["services"]
    mounts = {v["target"]: v["source"] for v in services["otel-collector"]["volumes"]}
    assert mounts["/etc/otelcol/overlays/langfuse.yaml"].endswith("config.langfuse.yaml")
    assert mounts["/etc/otelcol/overlays/agentops.yaml"].endswith("config.agentops.yaml")


def test_grafana_with_an_external_clickhouse_resolves(tmp_path: Path, engine: None) -> None:
    """The real `docker compose` accepts Grafana's dependency on the bundled ClickHouse being
    absent (`required: false`) and hands Grafana and the collector the external URL."""
    stack = ComposeStack(copy_repository(tmp_path))
    stack.make("init").ok()
    stack.set_env(
        {
            "COMPOSE_FILE": "docker-compose.yml:clickhouse/external.yaml:grafana/compose.yaml",
            "CLICKHOUSE_URL": "https://ch.example:8443",
        }
    )
    services = json.loads(stack.compose("config", "--format", "json").ok().stdout)["services"]
    assert "clickhouse" not in services
    assert services["grafana"]["environment"]["CLICKHOUSE_URL"] == "https://ch.example:8443"
    assert services["otel-collector"]["environment"]["CLICKHOUSE_ENDPOINT"] == (
        "https://ch.example:8443"
    )
