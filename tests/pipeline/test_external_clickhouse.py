"""An external ClickHouse over TLS (clickhouse/external.yaml), natively: the ClickHouse engine
(chdb) behind the HTTP adapter serving HTTPS with a certificate from a CA made here. `make schema`,
`make up`'s preflight, `make report` and the real collector all go through TLS with
CLICKHOUSE_CA_FILE; a server signed by another CA fails each of them with a message saying so."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_otel.contract import GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL
from scripts.native_stack import collector as collector_support
from scripts.native_stack.chdb_server import AdapterProcess, start_adapter
from scripts.native_stack.collector import Collector
from scripts.native_stack.paths import REPO
from scripts.native_stack.procs import free_port
from tests.conftest import require_collector
from tests.support.tls import ServerCertificate, make_server_certificate

pytestmark = pytest.mark.stack


@dataclass
class External:
    adapter: AdapterProcess
    cert: ServerCertificate
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.adapter.port}"

    def client(self, user: str = "otel_reader") -> object:
        return clickhouse_connect.get_client(
            host="127.0.0.1",
            port=self.adapter.port,
            username=user,
            password=self.passwords[user],
            secure=True,
            ca_cert=str(self.cert.ca_file),
        )


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[External]:
    """An empty server with the stack's three users, as a team's own ClickHouse would be."""
    base = tmp_path_factory.mktemp("external-ch")
    cert = make_server_certificate(base / "tls")
    passwords = {name: secrets.token_hex(12) for name in ("admin", "otel_writer", "otel_reader")}
    users = {
        "admin": passwords["admin"],
        "otel_writer": passwords["otel_writer"],
        "otel_reader": {"password": passwords["otel_reader"], "readonly": True},
    }
    adapter = start_adapter(
        base / "data", users=users, tls=(cert.ca_file, cert.cert_file, cert.key_file)
    )
    try:
        yield External(adapter, cert, passwords)
    finally:
        adapter.stop()


def write_env(directory: Path, external: External, ca_file: Path | None) -> Path:
    """A .env for the external overlay, every published port free (preflight binds them)."""
    ports = {
        key: free_port()
        for key in (
            "LITELLM_PORT",
            "OTEL_COLLECTOR_GRPC_PORT",
            "OTEL_COLLECTOR_HTTP_PORT",
            "OTEL_COLLECTOR_HEALTH_PORT",
            "OTEL_COLLECTOR_METRICS_PORT",
            "CLICKHOUSE_HTTP_PORT",
            "CLICKHOUSE_TCP_PORT",
        )
    }
    lines = [
        "COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml",
        f"CLICKHOUSE_URL={external.url}",
        f"CLICKHOUSE_CA_FILE={ca_file or ''}",
        "BIND_ADDRESS=127.0.0.1",
        f"LITELLM_MASTER_KEY=sk-{secrets.token_hex(16)}",
        "OPENROUTER_API_KEY=",
        f"CLICKHOUSE_ADMIN_PASSWORD={external.passwords['admin']}",
        f"CLICKHOUSE_WRITER_PASSWORD={external.passwords['otel_writer']}",
        f"CLICKHOUSE_READER_PASSWORD={external.passwords['otel_reader']}",
        *(f"{key}={port}" for key, port in ports.items()),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    env_file = directory / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def good_env(external: External, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_env(tmp_path_factory.mktemp("good"), external, external.cert.ca_file)


@pytest.fixture(scope="module")
def wrong_ca_env(external: External, tmp_path_factory: pytest.TempPathFactory) -> Path:
    other = make_server_certificate(tmp_path_factory.mktemp("other-ca"), ca_name="another CA")
    return write_env(tmp_path_factory.mktemp("wrong"), external, other.ca_file)


def test_preflight_names_a_missing_schema_then_make_schema_applies_it(
    external: External, good_env: Path
) -> None:
    before = run_module("scripts.verify", "--preflight", "--env-file", str(good_env))
    assert before.returncode != 0, before.stdout
    assert "otel is missing on https://" in before.stdout and "make schema" in before.stdout

    applied = run_module("scripts.clickhouse_schema.apply", "--env-file", str(good_env))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "applying 110_usage_and_apps.sql" in applied.stdout
    assert f"schema versions now on {external.url}" in applied.stdout

    after = run_module("scripts.verify", "--preflight", "--env-file", str(good_env))
    assert after.returncode == 0, after.stdout + after.stderr
    assert f"external ClickHouse {external.url}: both users log in" in after.stdout

    again = run_module("scripts.clickhouse_schema.apply", "--env-file", str(good_env))
    assert again.returncode == 0, again.stdout + again.stderr  # idempotent


def test_a_wrong_ca_fails_schema_preflight_and_report_with_the_fix(wrong_ca_env: Path) -> None:
    schema = run_module("scripts.clickhouse_schema.apply", "--env-file", str(wrong_ca_env))
    assert schema.returncode == 2
    assert "TLS" in schema.stderr and "CLICKHOUSE_CA_FILE" in schema.stderr, schema.stderr

    preflight = run_module("scripts.verify", "--preflight", "--env-file", str(wrong_ca_env))
    assert preflight.returncode != 0
    assert "TLS handshake with https://127.0.0.1" in preflight.stdout, preflight.stdout
    assert "CLICKHOUSE_CA_FILE" in preflight.stdout

    report = run_module("scripts.report", "--env-file", str(wrong_ca_env), "--json")
    assert report.returncode != 0
    assert "TLS" in report.stderr and "CLICKHOUSE_CA_FILE" in report.stderr, report.stderr


def test_overlay_and_url_must_come_together(external: External, tmp_path: Path) -> None:
    env_file = write_env(tmp_path, external, external.cert.ca_file)
    text = env_file.read_text().replace(
        "COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml\n", ""
    )
    env_file.write_text(text)
    result = run_module("scripts.verify", "--preflight", "--env-file", str(env_file))
    assert result.returncode != 0
    assert "CLICKHOUSE_URL is set, but the stack would still start its own ClickHouse" in (
        result.stdout
    )
    assert "clickhouse/external.yaml to COMPOSE_FILE" in result.stdout


def send_llm_spans(endpoint: str, count: int, model: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "external-ch-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{endpoint}/v1/traces")))
    tracer = provider.get_tracer("external-ch-test")
    attributes = {GEN_AI_OPERATION_NAME: "chat", GEN_AI_REQUEST_MODEL: model}
    for _ in range(count):
        with tracer.start_as_current_span(f"chat {model}", attributes=attributes):
            pass
    provider.shutdown()


def traces_of(external: External, model: str) -> int:
    query = (
        "SELECT count() FROM otel.otel_traces "
        "WHERE SpanAttributes['gen_ai.request.model'] = {m:String}"
    )
    return int(external.client().query(query, parameters={"m": model}).result_rows[0][0])  # type: ignore[attr-defined]


def collector_for(external: External, workdir: Path, ca_file: Path) -> Collector:
    env = {
        "CLICKHOUSE_ENDPOINT": external.url,
        "CLICKHOUSE_TLS_CA_FILE": str(ca_file),
        "CLICKHOUSE_WRITER_PASSWORD": external.passwords["otel_writer"],
    }
    return Collector(
        workdir, env, collector_support.test_overlay(workdir / "exported", clickhouse=True)
    )


def test_the_collector_writes_over_tls_and_names_an_untrusted_certificate(
    external: External, good_env: Path, tmp_path: Path
) -> None:
    require_collector()
    applied = run_module("scripts.clickhouse_schema.apply", "--env-file", str(good_env))
    assert applied.returncode == 0, applied.stderr

    trusted = collector_for(external, tmp_path / "trusted", external.cert.ca_file).start()
    try:
        model = f"tls-{secrets.token_hex(4)}"
        send_llm_spans(trusted.otlp_http_url, 5, model)
        deadline = time.monotonic() + 90
        while traces_of(external, model) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert traces_of(external, model) == 5
    finally:
        trusted.stop()

    other = make_server_certificate(tmp_path / "other-ca", ca_name="another CA")
    untrusted = collector_for(external, tmp_path / "untrusted", other.ca_file).start()
    try:
        model = f"untrusted-{secrets.token_hex(4)}"
        send_llm_spans(untrusted.otlp_http_url, 3, model)
        deadline = time.monotonic() + 90
        while "certificate signed by unknown authority" not in untrusted.log_text():
            assert time.monotonic() < deadline, untrusted.log_text()[-2000:]
            time.sleep(0.5)
        assert traces_of(external, model) == 0
    finally:
        untrusted.stop()


def test_report_reads_over_tls(good_env: Path) -> None:
    applied = run_module("scripts.clickhouse_schema.apply", "--env-file", str(good_env))
    assert applied.returncode == 0, applied.stderr
    result = run_module("scripts.report", "--env-file", str(good_env), "--json", "--since", "1h")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)


def test_make_schema_sends_the_cluster_form_when_a_cluster_is_set(
    external: External, tmp_path: Path
) -> None:
    """No cluster runs here: the server refusing an unknown cluster shows the rendered
    `ON CLUSTER` form is what `make schema` sends (tests/schema proves the form itself)."""
    env_file = write_env(tmp_path, external, external.cert.ca_file)
    env_file.write_text(env_file.read_text() + "CLICKHOUSE_CLUSTER=telemetry\n")
    result = run_module("scripts.clickhouse_schema.apply", "--env-file", str(env_file))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "applying 001_database.sql (cluster form)" in result.stdout
    assert "ON CLUSTER" in result.stderr and "telemetry" in result.stderr, result.stderr

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    (bundled / ".env").write_text("CLICKHOUSE_CLUSTER=telemetry\n")
    refused = run_module("scripts.clickhouse_schema.apply", "--env-file", str(bundled / ".env"))
    assert refused.returncode == 2
    assert "a cluster is an external ClickHouse" in refused.stderr, refused.stderr


def test_https_to_a_plain_http_port_is_named(
    external: External, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An https:// URL pointing at a server that speaks plain HTTP there: the message says so."""
    plain = start_adapter(
        tmp_path_factory.mktemp("plain") / "data", users={"otel_reader": "pw-reader"}
    )
    try:
        directory = tmp_path_factory.mktemp("plain-env")
        env_file = directory / ".env"
        env_file.write_text(
            f"CLICKHOUSE_URL=https://127.0.0.1:{plain.port}\nCLICKHOUSE_READER_PASSWORD=pw-reader\n"
        )
        result = run_module("scripts.report", "--env-file", str(env_file), "--json")
        assert result.returncode != 0
        assert "does not speak TLS on that port" in result.stderr, result.stderr
    finally:
        plain.stop()
