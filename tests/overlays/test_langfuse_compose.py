"""The Langfuse compose overlay through compose's own loader, its ClickHouse user, and the .env
helper that derives the collector's Basic auth header."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from scripts.envfile import langfuse as langfuse_env
from scripts.envfile.parser import parse_env_text
from scripts.native_stack.paths import (
    REPO,
)
from tests.doubles.fake_langfuse import basic_auth
from tests.overlays.langfuse_support import (
    COMPOSE_OVERLAY,
    LANGFUSE_COLLECTOR_CONFIG,
    PUBLIC_KEY,
    SECRET_KEY,
    USERS_XML,
)
from tests.support.compose_loader import load_env_file

# ---- the compose overlay, through compose's loader ------------------------------------------

BASE_SECRETS = {
    "LITELLM_MASTER_KEY": "sk-test-master-key",
    "CLICKHOUSE_ADMIN_PASSWORD": "test-admin-password",
    "CLICKHOUSE_WRITER_PASSWORD": "test-writer-password",
    "CLICKHOUSE_READER_PASSWORD": "test-reader-password",
}
LANGFUSE_SECRETS = {
    "LANGFUSE_POSTGRES_PASSWORD": "test-postgres",
    "LANGFUSE_REDIS_PASSWORD": "test-redis",
    "LANGFUSE_MINIO_PASSWORD": "test-minio-pw",
    "LANGFUSE_CLICKHOUSE_PASSWORD": "test-clickhouse",
    "LANGFUSE_SALT": "test-salt",
    "LANGFUSE_ENCRYPTION_KEY": "0" * 64,
    "LANGFUSE_NEXTAUTH_SECRET": "test-nextauth",
    "LANGFUSE_INIT_PROJECT_PUBLIC_KEY": PUBLIC_KEY,
    "LANGFUSE_INIT_PROJECT_SECRET_KEY": SECRET_KEY,
    "LANGFUSE_INIT_USER_PASSWORD": "test-user-password",
    "LANGFUSE_OTLP_BASIC_AUTH": langfuse_env.otlp_basic_auth(PUBLIC_KEY, SECRET_KEY),
}
NEW_SERVICES = {
    "langfuse-web",
    "langfuse-worker",
    "langfuse-postgres",
    "langfuse-redis",
    "langfuse-minio",
    "langfuse-clickhouse-init",
}
ONE_SHOT = {"langfuse-clickhouse-init"}


def load(tool: Path, tmp_path: Path, values: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return load_env_file(tool, env_file)


ENABLED = {
    **BASE_SECRETS,
    **LANGFUSE_SECRETS,
    "COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml",
}


@pytest.fixture(scope="module")
def model(compose_config: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = load(compose_config, tmp_path_factory.mktemp("compose"), ENABLED)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_overlay_adds_langfuse_services(model: dict[str, Any]) -> None:
    assert set(model["services"]) >= NEW_SERVICES


def test_overlay_ports_bind_loopback(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)
    assert model["services"]["langfuse-web"]["ports"][0]["published"] == "3000"
    # Nothing else of Langfuse's is published: Postgres, Redis, MinIO stay on the network.
    assert [n for n in NEW_SERVICES if model["services"][n].get("ports")] == ["langfuse-web"]


def test_overlay_services_follow_the_base_conventions(model: dict[str, Any]) -> None:
    for name in NEW_SERVICES:
        service = model["services"][name]
        assert service["logging"]["driver"] == "json-file", name
        assert service["logging"]["options"]["max-size"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        health = service["healthcheck"]
        assert health["test"][0] in ("CMD", "CMD-SHELL"), name
        for timing in ("interval", "timeout", "retries", "start_period"):
            assert health.get(timing), (name, timing)


def test_overlay_waits_for_health(model: dict[str, Any]) -> None:
    for name in NEW_SERVICES:
        for dep, spec in model["services"][name].get("depends_on", {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert spec["condition"] == want, (name, dep)
            if want == "service_healthy":
                assert model["services"][dep].get("healthcheck"), dep
    web = model["services"]["langfuse-web"]["depends_on"]
    assert {
        "langfuse-postgres",
        "langfuse-redis",
        "langfuse-minio",
        "clickhouse",
        "langfuse-clickhouse-init",
    } <= set(web)
    # Spans must reach ClickHouse whatever Langfuse does.
    assert not set(model["services"]["otel-collector"].get("depends_on", {})) & NEW_SERVICES


def test_overlay_images_are_exact_releases(model: dict[str, Any]) -> None:
    images = {n: model["services"][n]["image"] for n in NEW_SERVICES}
    for name, image in images.items():
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", (name, image)
    web, worker = images["langfuse-web"], images["langfuse-worker"]
    assert web.startswith("langfuse/langfuse:") and worker.startswith("langfuse/langfuse-worker:")
    # One migration set: the same version, and an exact x.y.z (never the floating 3 or 3.225).
    assert web.split(":")[1] == worker.split(":")[1]
    assert re.fullmatch(r"3\.\d+\.\d+", web.split(":")[1])


def test_overlay_extends_the_collector(model: dict[str, Any]) -> None:
    collector = model["services"]["otel-collector"]
    assert "--config=/etc/otelcol/overlays/langfuse.yaml" in collector["command"]
    mounts = {v["target"]: v for v in collector["volumes"]}
    assert {
        "/etc/otelcol/config.yaml",
        "/etc/otelcol/config.extras.yaml",
        "/var/lib/otelcol/file_storage",
    } <= set(mounts), "base mounts must survive"
    # The overlay's file replaces the empty slot; the other overlays' slots stay empty.
    assert Path(mounts["/etc/otelcol/overlays/agentops.yaml"]["source"]).name == "config.none.yaml"
    langfuse_mount = mounts["/etc/otelcol/overlays/langfuse.yaml"]
    assert Path(langfuse_mount["source"]) == LANGFUSE_COLLECTOR_CONFIG
    assert langfuse_mount["read_only"] is True
    env = collector["environment"]
    assert env["LANGFUSE_OTLP_BASIC_AUTH"] == LANGFUSE_SECRETS["LANGFUSE_OTLP_BASIC_AUTH"]
    assert env["LANGFUSE_OTLP_ENDPOINT"] == "http://langfuse-web:3000/api/public/otel"
    assert env["CLICKHOUSE_WRITER_PASSWORD"] == BASE_SECRETS["CLICKHOUSE_WRITER_PASSWORD"]


def test_overlay_extends_clickhouse_with_the_langfuse_user(model: dict[str, Any]) -> None:
    clickhouse = model["services"]["clickhouse"]
    mounts = {v["target"]: v for v in clickhouse["volumes"]}
    users = mounts["/etc/clickhouse-server/conf.d/langfuse-users.xml"]
    assert Path(users["source"]) == USERS_XML and users["read_only"] is True
    assert "/etc/clickhouse-server/users.d" in mounts, "base mounts must survive"
    env = clickhouse["environment"]
    assert env["LANGFUSE_CLICKHOUSE_PASSWORD"] == LANGFUSE_SECRETS["LANGFUSE_CLICKHOUSE_PASSWORD"]
    web = model["services"]["langfuse-web"]["environment"]
    assert web["CLICKHOUSE_USER"] == "langfuse" and web["CLICKHOUSE_DB"] == "langfuse"
    assert web["CLICKHOUSE_PASSWORD"] == env["LANGFUSE_CLICKHOUSE_PASSWORD"]
    assert web["CLICKHOUSE_CLUSTER_ENABLED"] == "false"


def test_overlay_initialises_langfuse_headlessly(model: dict[str, Any]) -> None:
    web = model["services"]["langfuse-web"]["environment"]
    assert web["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"] == PUBLIC_KEY
    assert web["LANGFUSE_INIT_PROJECT_SECRET_KEY"] == SECRET_KEY
    for key in (
        "ORG_ID",
        "ORG_NAME",
        "PROJECT_ID",
        "PROJECT_NAME",
        "USER_EMAIL",
        "USER_NAME",
        "USER_PASSWORD",
    ):
        assert web[f"LANGFUSE_INIT_{key}"], key
    assert web["AUTH_DISABLE_SIGNUP"] == "true"
    assert web["NEXTAUTH_URL"] == "http://localhost:3000"
    assert web["HOSTNAME"] == "0.0.0.0"
    assert len(web["ENCRYPTION_KEY"]) == 64
    worker = model["services"]["langfuse-worker"]["environment"]
    assert not [k for k in worker if k.startswith("LANGFUSE_INIT_")]
    redis = model["services"]["langfuse-redis"]["command"]
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"


def test_overlay_bind_sources_exist(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), (name, volume["source"])


def test_overlay_off_leaves_the_base_stack_unchanged(compose_config: Path, tmp_path: Path) -> None:
    result = load(compose_config, tmp_path, BASE_SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert not NEW_SERVICES & set(services)
    assert not [v for v in services["clickhouse"]["volumes"] if "langfuse" in v["source"]]
    sources = [v["source"] for v in services["otel-collector"]["volumes"]]
    assert not [src for src in sources if "config.langfuse.yaml" in src]


@pytest.mark.parametrize("secret", sorted(LANGFUSE_SECRETS))
def test_overlay_refuses_a_missing_secret(
    compose_config: Path, tmp_path: Path, secret: str
) -> None:
    result = load(compose_config, tmp_path, {k: v for k, v in ENABLED.items() if k != secret})
    assert result.returncode == 1
    assert f"required variable {secret} is missing a value" in result.stderr


def test_env_example_turns_the_overlay_on_after_make_init(
    compose_config: Path, tmp_path: Path
) -> None:
    """The documented way: uncomment COMPOSE_FILE in .env.example, `make init`, `docker compose`.
    Needs the overlay's keys in .env.example and `make init` (scripts/envfile/init.py) using
    scripts/envfile/langfuse.py (the encryption key's format, the derived OTLP header)."""
    from scripts.envfile import init as init_env

    text = (REPO / ".env.example").read_text()
    enable = r"^# (COMPOSE_FILE=docker-compose\.yml:langfuse/compose\.yaml)$"
    assert re.search(enable, text, re.M), "the commented COMPOSE_FILE line is missing"
    example = tmp_path / ".env.example"
    example.write_text(re.sub(enable, r"\1", text, flags=re.M))
    env_file = tmp_path / ".env"
    assert init_env.main(["--example", str(example), "--output", str(env_file)]) == 0
    values = parse_env_text(env_file.read_text()).values
    missing = sorted(set(LANGFUSE_SECRETS) - set(values))
    assert not missing, f".env.example lacks the overlay's keys: {missing}"
    result = load_env_file(compose_config, env_file)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    web = services["langfuse-web"]["environment"]
    assert re.fullmatch(r"[0-9a-f]{64}", web["ENCRYPTION_KEY"]), "Langfuse needs 64 hex chars"
    public = web["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"]
    secret = web["LANGFUSE_INIT_PROJECT_SECRET_KEY"]
    assert public.startswith("pk-lf-") and secret.startswith("sk-lf-")
    header = services["otel-collector"]["environment"]["LANGFUSE_OTLP_BASIC_AUTH"]
    assert base64.b64decode(header).decode() == f"{public}:{secret}"
    overlay_env = [v for n in NEW_SERVICES for v in services[n].get("environment", {}).values()]
    assert not [v for v in overlay_env if "CHANGEME" in str(v)]


def test_every_secret_in_the_overlay_is_a_changeme_key_of_env_example() -> None:
    """`# CHANGEME` means one thing: a value the user supplies, marked in .env.example. The
    overlay only references those keys (`${KEY:?...}`), so every one must be marked there."""
    marked = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line.rstrip().endswith("# CHANGEME")
    }
    overlay = COMPOSE_OVERLAY.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", overlay))
    assert required, "the overlay's secrets are `${KEY:?...}` references"
    assert required <= marked, f"mark these in .env.example with # CHANGEME: {required - marked}"
    assert "CHANGEME" not in overlay


# ---- ClickHouse user, .env helper -----------------------------------------------------------


def test_clickhouse_user_sees_only_its_own_database() -> None:
    user = ET.parse(USERS_XML).getroot().find("users/langfuse")
    assert user is not None
    password = user.find("password")
    assert password is not None and password.get("from_env") == "LANGFUSE_CLICKHOUSE_PASSWORD"
    grants = [q.text or "" for q in user.findall("grants/query")]
    assert "GRANT ALL ON langfuse.*" in grants
    assert not [g for g in grants if "otel" in g or re.search(r"ALL ON \*\.\*", g)]


def test_basic_auth_is_base64_of_public_colon_secret() -> None:
    value = langfuse_env.otlp_basic_auth("pk-lf-1", "sk-lf-2")
    assert base64.b64decode(value) == b"pk-lf-1:sk-lf-2"
    assert basic_auth("pk-lf-1", "sk-lf-2") == f"Basic {value}"


def test_env_text_gets_the_derived_header_and_keeps_comments() -> None:
    text = (
        "LANGFUSE_INIT_PROJECT_PUBLIC_KEY=pk-lf-a # CHANGEME\n"
        "LANGFUSE_INIT_PROJECT_SECRET_KEY=sk-lf-b # CHANGEME\n"
        "LANGFUSE_OTLP_BASIC_AUTH=4f3c2a # CHANGEME\n"
    )
    updated = langfuse_env.with_otlp_basic_auth(text)
    expected = langfuse_env.otlp_basic_auth("pk-lf-a", "sk-lf-b")
    assert f"LANGFUSE_OTLP_BASIC_AUTH={expected} # CHANGEME\n" in updated
    assert langfuse_env.basic_auth_mismatch(parse_env_text(updated).values) is None
    assert langfuse_env.basic_auth_mismatch(parse_env_text(text).values)
    # Without keys (overlay never configured) nothing changes.
    assert (
        langfuse_env.with_otlp_basic_auth("BIND_ADDRESS=127.0.0.1\n") == "BIND_ADDRESS=127.0.0.1\n"
    )


def test_generators_make_what_langfuse_accepts() -> None:
    made = {key: make() for key, make in langfuse_env.GENERATORS}
    assert re.fullmatch(r"[0-9a-f]{64}", made["LANGFUSE_ENCRYPTION_KEY"])
    assert made[langfuse_env.PUBLIC_KEY].startswith("pk-lf-")
    assert made[langfuse_env.SECRET_KEY].startswith("sk-lf-")


def test_cli_writes_the_header_into_an_existing_env(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "LANGFUSE_INIT_PROJECT_PUBLIC_KEY=pk-lf-x\nLANGFUSE_INIT_PROJECT_SECRET_KEY=sk-lf-y\n"
    )
    assert langfuse_env.main(["--env-file", str(env_file), "--write"]) == 0
    values = parse_env_text(env_file.read_text()).values
    assert values["LANGFUSE_OTLP_BASIC_AUTH"] == langfuse_env.otlp_basic_auth("pk-lf-x", "sk-lf-y")
