"""The load-balancer overlay (loadbalancer/compose.yaml, issue #13 item 3) through Compose's own
loader (scripts/native_stack/compose-config, the library `docker compose` is built on), with
COMPOSE_FILE and every value coming from a .env file as a user has it; and its HAProxy config
through `haproxy -c` (Debian's haproxy 2.6: `apt-get install haproxy`).

Under CI (CI=true) a missing Go or haproxy fails the tests; locally they are skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.envfile import init as init_env
from scripts.envfile.parser import parse_env_text
from scripts.native_stack.paths import REPO
from tests.support.ci import missing_tool
from tests.support.compose_loader import load_env_file

OVERLAY = REPO / "loadbalancer" / "compose.yaml"
HAPROXY_CFG = REPO / "loadbalancer" / "haproxy.cfg"
PINS = REPO / "docs" / "PINS.md"
ENABLE = "docker-compose.yml:loadbalancer/compose.yaml"
NEW_SERVICES = {"loadbalancer", "litellm-redis"}
PINNED = {
    "loadbalancer": ("LOADBALANCER_IMAGE", "haproxy:3.4.6-alpine"),
    "litellm-redis": ("LITELLM_REDIS_IMAGE", "redis:8.10.2-alpine"),
}
SECRETS = {
    "LITELLM_MASTER_KEY": "sk-test-master-key",
    "CLICKHOUSE_ADMIN_PASSWORD": "test-admin-password",
    "CLICKHOUSE_WRITER_PASSWORD": "test-writer-password",
    "CLICKHOUSE_READER_PASSWORD": "test-reader-password",
    "LITELLM_REDIS_PASSWORD": "test-redis-password",
}
ENABLED = {**SECRETS, "COMPOSE_FILE": ENABLE}

Model = dict[str, Any]


def render(tool: Path, tmp_path: Path, values: Mapping[str, str]) -> Model:
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    result = load_env_file(tool, env_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def model(compose_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Model:
    return render(compose_config, tmp_path_factory.mktemp("lb"), ENABLED)


def test_overlay_adds_the_balancer_and_redis(model: Model) -> None:
    assert set(model["services"]) >= NEW_SERVICES | {"litellm"}


def test_only_the_balancer_publishes_the_gateway_port(model: Model) -> None:
    services = model["services"]
    assert not services["litellm"].get("ports"), "replicas cannot share one host port"
    assert not services["litellm-redis"].get("ports"), "Redis stays on the compose network"
    [port] = services["loadbalancer"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "4000", 4000)


def test_balancer_follows_bind_address_and_litellm_port(
    compose_config: Path, tmp_path: Path
) -> None:
    values = {**ENABLED, "BIND_ADDRESS": "0.0.0.0", "LITELLM_PORT": "4100"}
    [port] = render(compose_config, tmp_path, values)["services"]["loadbalancer"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("0.0.0.0", "4100", 4000)


def test_replicas_default_to_two_and_follow_litellm_replicas(
    model: Model, compose_config: Path, tmp_path: Path
) -> None:
    assert model["services"]["litellm"]["deploy"]["replicas"] == 2
    three = render(compose_config, tmp_path, {**ENABLED, "LITELLM_REPLICAS": "3"})
    litellm = three["services"]["litellm"]
    assert litellm["deploy"]["replicas"] == 3
    # The base file's memory limit survives the overlay's deploy block.
    assert litellm["deploy"]["resources"]["limits"]["memory"]


def test_replicas_share_redis(model: Model) -> None:
    litellm = model["services"]["litellm"]
    env = litellm["environment"]
    assert env["REDIS_HOST"] == "litellm-redis" and env["REDIS_PORT"] == "6379"
    assert env["REDIS_PASSWORD"] == SECRETS["LITELLM_REDIS_PASSWORD"]
    redis = model["services"]["litellm-redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == SECRETS["LITELLM_REDIS_PASSWORD"]
    assert redis["environment"]["REDISCLI_AUTH"] == SECRETS["LITELLM_REDIS_PASSWORD"]
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    # The base's dependency stays, Redis is added: LiteLLM pings Redis only at start.
    assert litellm["depends_on"]["litellm-redis"]["condition"] == "service_healthy"
    assert set(litellm["depends_on"]) == {"litellm-redis"}  # telemetry gates nothing
    assert model["services"]["loadbalancer"]["depends_on"]["litellm"]["condition"] == (
        "service_healthy"
    )


def test_new_services_follow_the_base_conventions(model: Model) -> None:
    for name in NEW_SERVICES:
        service = model["services"][name]
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["driver"] == "json-file", name
        assert service["logging"]["options"]["max-size"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["cap_drop"] == ["ALL"], name
        assert not service.get("cap_add"), name
        assert service["user"].split(":")[0] not in {"0", "root"}, name
        health = service["healthcheck"]
        assert health["test"][0] in ("CMD", "CMD-SHELL"), name
        for timing in ("interval", "timeout", "retries", "start_period"):
            assert health.get(timing), (name, timing)


def test_images_are_exact_pins_with_evidence(model: Model) -> None:
    pins = PINS.read_text()
    section = pins.split("## Used by loadbalancer/compose.yaml", 1)
    assert len(section) == 2, "docs/PINS.md: no 'Used by loadbalancer/compose.yaml' section"
    for name, (variable, pin) in PINNED.items():
        image = model["services"][name]["image"]
        assert image == pin, (name, image)
        assert not image.endswith(":latest") and re.search(r":\d+\.\d+\.\d+", image), image
        assert f"${{{variable}:-{pin}}}" in OVERLAY.read_text(), variable
        assert pin in section[1] and variable in section[1], (pin, variable)


def test_images_are_overridden_from_env_alone(compose_config: Path, tmp_path: Path) -> None:
    values = {**ENABLED, "LOADBALANCER_IMAGE": "lb:1", "LITELLM_REDIS_IMAGE": "kv:2"}
    services = render(compose_config, tmp_path, values)["services"]
    assert services["loadbalancer"]["image"] == "lb:1"
    assert services["litellm-redis"]["image"] == "kv:2"


def test_balancer_mounts_its_config_where_the_image_reads_it(model: Model) -> None:
    balancer = model["services"]["loadbalancer"]
    [mount] = balancer["volumes"]
    assert Path(mount["source"]) == HAPROXY_CFG and mount["read_only"] is True
    assert mount["target"] == "/usr/local/etc/haproxy/haproxy.cfg"
    # The healthcheck asks the config's monitor frontend.
    monitor = re.search(r"bind :(\d+)\n\s+monitor-uri (\S+)", HAPROXY_CFG.read_text())
    assert monitor, "haproxy.cfg: no monitor frontend"
    assert f"http://127.0.0.1:{monitor[1]}{monitor[2]}" in balancer["healthcheck"]["test"]


def test_missing_redis_password_is_refused(compose_config: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "test.env"
    values = {k: v for k, v in ENABLED.items() if k != "LITELLM_REDIS_PASSWORD"}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    result = load_env_file(compose_config, env_file, "--format", "json")
    assert result.returncode != 0
    assert "LITELLM_REDIS_PASSWORD" in result.stderr


def test_overlay_off_leaves_the_single_gateway_unchanged(
    compose_config: Path, tmp_path: Path
) -> None:
    services = render(compose_config, tmp_path, SECRETS)["services"]
    assert not NEW_SERVICES & set(services)
    litellm = services["litellm"]
    assert [(p["published"], p["target"]) for p in litellm["ports"]] == [("4000", 4000)]
    assert "replicas" not in litellm.get("deploy", {}) or litellm["deploy"]["replicas"] == 1
    assert not [k for k in litellm["environment"] if k.startswith("REDIS_")]


def test_env_example_and_make_init_turn_it_on(compose_config: Path, tmp_path: Path) -> None:
    """The documented way: `make init`, then the overlay in COMPOSE_FILE, with the other
    overlays too (every secret they need is generated by `make init`)."""
    env_file = tmp_path / ".env"
    example = REPO / ".env.example"
    assert init_env.main(["--example", str(example), "--output", str(env_file)]) == 0
    generated = parse_env_text(env_file.read_text()).values
    assert re.fullmatch(r"[0-9a-f]{40}", generated["LITELLM_REDIS_PASSWORD"])
    assert re.search(r"^# LITELLM_REPLICAS=2$", example.read_text(), re.M)
    overlays = f"{ENABLE}:langfuse/compose.yaml:grafana/compose.yaml"
    base = env_file.read_text()
    env_file.write_text(base + f"COMPOSE_FILE={overlays}\nLITELLM_REPLICAS=3\n")
    result = load_env_file(compose_config, env_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"loadbalancer", "litellm-redis", "langfuse-web", "grafana"} <= set(services)
    assert services["litellm"]["deploy"]["replicas"] == 3
    password = generated["LITELLM_REDIS_PASSWORD"]
    assert services["litellm"]["environment"]["REDIS_PASSWORD"] == password
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert all(p["host_ip"] == "127.0.0.1" for p in published)
    assert len({p["published"] for p in published}) == len(published), "a host port clashes"


def _haproxy_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in HAPROXY_CFG.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(" ".join(line.split()))
    return sections


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0.001}[unit]


def test_haproxy_retries_only_failed_connections() -> None:
    defaults = _haproxy_sections()["defaults"]
    # Exactly this retry condition: a request a replica already received is never re-sent.
    assert [line for line in defaults if line.startswith("retry-on")] == ["retry-on conn-failure"]
    assert "option redispatch 1" in defaults


def test_haproxy_timeouts_outlast_litellms_request_timeout() -> None:
    request_timeout = yaml.safe_load((REPO / "litellm" / "config.yaml").read_text())[
        "litellm_settings"
    ]["request_timeout"]
    timeouts = {
        line.split()[1]: _seconds(line.split()[2])
        for line in _haproxy_sections()["defaults"]
        if line.startswith("timeout ")
    }
    assert timeouts["client"] > request_timeout and timeouts["server"] > request_timeout


def test_haproxy_discovers_replicas_by_dns_with_health_checks() -> None:
    sections = _haproxy_sections()
    backend = sections["backend litellm"]
    [template] = [line for line in backend if line.startswith("server-template ")]
    _, _, slots, address, *params = template.split()
    assert address == "litellm:4000" and int(slots) >= 8
    assert "check" in params and params[params.index("resolvers") + 1] == "docker"
    assert "resolvers docker" in sections
    assert "http-check send meth GET uri /health/liveliness" in backend
    assert "balance roundrobin" in backend
    assert any(line.startswith("bind :4000") for line in sections["frontend gateway"])


def test_haproxy_accepts_the_config() -> None:
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None
    )
    if haproxy is None:
        missing_tool("haproxy is not installed (apt-get install haproxy)")
    result = subprocess.run(
        [str(haproxy), "-c", "-f", str(HAPROXY_CFG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr
