"""An external ClickHouse over TLS on a real Docker engine (clickhouse/external.yaml, issue #13
item 1), the way a user switches to one: the overlay and CLICKHOUSE_URL/CLICKHOUSE_CA_FILE in .env.
The "external" server is the ClickHouse stand-in serving HTTPS with a certificate from a CA this
test makes (tests/docker/external-clickhouse.yaml), started before the stack as a team's own
server would be. `make up` refuses an empty server and names `make schema`; `make schema`,
`make up`, `make verify`, `make report` and the collector then all go through TLS; the bundled
ClickHouse never starts; a CA that did not sign the server's certificate fails with that reason."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest

from tests.docker.stack import ComposeStack
from tests.support.tls import make_server_certificate

SERVER_IP = "10.213.77.50"  # tests/docker/external-clickhouse.yaml
TEST_OVERLAY = "tests/docker/external-clickhouse.yaml"


@pytest.fixture(scope="module")
def external_clickhouse_stack(
    fresh_clone: tuple[ComposeStack, dict[str, str]], standins: dict[str, str]
) -> Iterator[ComposeStack]:
    stack, settings = fresh_clone
    certs = stack.root / "external-certs"
    cert = make_server_certificate(certs, hosts=(SERVER_IP,), ca_name="external ClickHouse CA")
    stack.make("init").ok()
    stack.set_env(
        {
            **{k: v for k, v in settings.items() if k not in ("COMPOSE_FILE",)},
            "COMPOSE_FILE": f"docker-compose.yml:clickhouse/external.yaml:{TEST_OVERLAY}",
            "CLICKHOUSE_URL": f"https://{SERVER_IP}:8443",
            "CLICKHOUSE_CA_FILE": f"./external-certs/{cert.ca_file.name}",
        }
    )
    stack.compose("up", "-d", "--wait", "external-clickhouse").ok()
    yield stack


def test_make_up_names_make_schema_for_an_empty_server(
    external_clickhouse_stack: ComposeStack,
) -> None:
    refused = external_clickhouse_stack.make("up", timeout=300)
    assert refused.code != 0
    assert "database otel is missing" in refused.out and "make schema" in refused.out, refused.out
    assert external_clickhouse_stack.compose("ps", "--services").ok().stdout.split() == [
        "external-clickhouse"
    ]


def test_make_schema_then_make_up_runs_without_the_bundled_clickhouse(
    external_clickhouse_stack: ComposeStack,
) -> None:
    schema = external_clickhouse_stack.make("schema", timeout=300).ok()
    assert f"schema versions now on https://{SERVER_IP}:8443" in schema.out, schema.out
    external_clickhouse_stack.make("up", UP_TIMEOUT="600", timeout=900).ok()
    services = external_clickhouse_stack.compose("ps", "--services").ok().stdout.split()
    assert "clickhouse" not in services and "otel-collector" in services, services


def test_a_call_is_stored_on_the_external_server_and_verify_reads_it_over_tls(
    external_clickhouse_stack: ComposeStack,
) -> None:
    trace_id = secrets.token_hex(16)
    assert external_clickhouse_stack.chat("verify-mock", trace_id=trace_id).status_code == 200
    assert external_clickhouse_stack.wait_for_rows([trace_id]) == {trace_id: 1}
    doc = json.loads(external_clickhouse_stack.make("verify ARGS=--json", timeout=180).ok().stdout)
    hops = {h["name"]: h for h in doc["hops"]}
    assert hops["clickhouse"]["state"] == "ok", hops["clickhouse"]
    report = json.loads(
        external_clickhouse_stack.make("report ARGS='--json --since 1h'", timeout=120).ok().stdout
    )
    assert report, report


def test_an_untrusted_certificate_is_named_by_verify_and_the_collector(
    external_clickhouse_stack: ComposeStack,
) -> None:
    other = make_server_certificate(
        external_clickhouse_stack.root / "other-ca", ca_name="another CA"
    )
    external_clickhouse_stack.set_env({"CLICKHOUSE_CA_FILE": f"./other-ca/{other.ca_file.name}"})
    verdict = external_clickhouse_stack.make("verify ARGS=clickhouse", timeout=180)
    assert verdict.code != 0
    assert "TLS handshake with https://" in verdict.out and "CLICKHOUSE_CA_FILE" in verdict.out
    external_clickhouse_stack.compose("up", "-d", "otel-collector").ok()
    trace_id = secrets.token_hex(16)
    assert (
        external_clickhouse_stack.chat("verify-mock", trace_id=trace_id).status_code == 200
    )  # the gateway serves
    logs = ""
    for _ in range(60):
        logs = external_clickhouse_stack.compose("logs", "otel-collector").ok().stdout
        if "certificate signed by unknown authority" in logs:
            break
        time.sleep(1)
    assert "certificate signed by unknown authority" in logs, logs[-3000:]
