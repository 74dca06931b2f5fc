"""Checks docker-compose.yml and .env.example through Compose's own loader.

The compose file is loaded by scripts/native_stack/compose-config, a small Go program on
compose-spec/compose-go (the library `docker compose` is built on) that prints what
`docker compose config --format json` prints: interpolated, validated against the Compose
schema, normalised. The assertions run on that loaded model, not on the YAML text, so they see
exactly what Docker would run (defaults applied, ports parsed, anchors merged).

Also lints every Dockerfile in the repository with hadolint at the `warning` threshold.

Under CI (CI=true) a missing toolchain or a failed tool build fails the tests; locally they are
skipped when Go or hadolint is absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from scripts.clickhouse_schema.files import TELEMETRY_DATABASE
from scripts.native_stack.paths import COLLECTOR_CONFIGS, REPO
from tests.support.ci import missing_tool
from tests.support.compose_loader import run_loader
from tests.support.compose_model import (
    DEFAULT_PORTS,
    TEST_SECRETS,
    Model,
    all_ports,
    published,
    services,
)

COMPOSE_FILE = REPO / "docker-compose.yml"
BUILDER_CONFIG = REPO / "otel-collector" / "builder-config.yaml"
LITELLM_REQUIREMENTS = REPO / "litellm" / "requirements.txt"
USERS_XML = REPO / "clickhouse" / "users.d" / "otel-users.xml"


# Services that deliberately have no healthcheck, and why (the compose file says the same).
NO_HEALTHCHECK: dict[str, str] = {
    "otel-collector": "distroless image; probed from outside by otel-collector-health",
    "otel-collector-init": "one-shot job; depended on with service_completed_successfully",
}
# One-shot jobs: they must not restart once finished.
ONE_SHOT = {"otel-collector-init"}
# depends_on edges allowed to use another condition than service_healthy.
OTHER_CONDITIONS: dict[tuple[str, str], str] = {
    ("otel-collector", "otel-collector-init"): "service_completed_successfully",
    # The collector cannot have a healthcheck; its probe can only wait for it to start.
    ("otel-collector-health", "otel-collector"): "service_started",
    # ClickHouse's health must not gate the gateway: the exporter's disk queue bridges it.
    ("otel-collector", "clickhouse"): "service_started",
}
PORT_VARIABLES: dict[str, tuple[str, int]] = {
    "LITELLM_PORT": ("litellm", 4000),
    "OTEL_COLLECTOR_GRPC_PORT": ("otel-collector", 4317),
    "OTEL_COLLECTOR_HTTP_PORT": ("otel-collector", 4318),
    "OTEL_COLLECTOR_HEALTH_PORT": ("otel-collector", 13133),
    "OTEL_COLLECTOR_METRICS_PORT": ("otel-collector", 8888),
    "CLICKHOUSE_HTTP_PORT": ("clickhouse", 8123),
    "CLICKHOUSE_TCP_PORT": ("clickhouse", 9000),
}


def write_env(path: Path, values: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), encoding="utf-8")
    return path


def load_repo_model(
    tool: Path,
    tmp_path: Path,
    env_file_values: Mapping[str, str],
    os_env: Mapping[str, str] | None = None,
) -> Model:
    """Loads the repository's compose file with a generated env file, never the repo's own .env."""
    env_file = write_env(tmp_path / "test.env", env_file_values)
    result = run_loader(
        tool, ["-f", str(COMPOSE_FILE), "--env-file", str(env_file)], cwd=REPO, env=os_env
    )
    assert result.returncode == 0, f"compose loader rejected docker-compose.yml:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def model(compose_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Model:
    return load_repo_model(compose_config, tmp_path_factory.mktemp("default-env"), TEST_SECRETS)


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; the tag is what follows the last ':'
    after the last '/', so a registry port (host:5000/x) is not mistaken for a tag."""
    digest = None
    if "@" in reference:
        reference, digest = reference.split("@", 1)
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :], digest
    return reference, None, digest


# --- Ports -----------------------------------------------------------------------------------


def test_every_published_port_binds_loopback_by_default(model: Model) -> None:
    ports = list(all_ports(model))
    assert ports, "no published ports at all"
    wrong = [(name, p) for name, p in ports if p.get("host_ip") != "127.0.0.1"]
    assert not wrong, f"ports not bound to 127.0.0.1 by default: {wrong}"


def test_bind_address_moves_every_port(compose_config: Path, tmp_path: Path) -> None:
    loaded = load_repo_model(compose_config, tmp_path, {**TEST_SECRETS, "BIND_ADDRESS": "0.0.0.0"})
    assert {p["host_ip"] for _, p in all_ports(loaded)} == {"0.0.0.0"}


def test_shell_environment_wins_over_env_file(compose_config: Path, tmp_path: Path) -> None:
    # Compose's precedence: a variable exported in the shell overrides the same one in .env.
    loaded = load_repo_model(
        compose_config,
        tmp_path,
        {**TEST_SECRETS, "BIND_ADDRESS": "0.0.0.0"},
        os_env={"BIND_ADDRESS": "192.0.2.10"},
    )
    assert {p["host_ip"] for _, p in all_ports(loaded)} == {"192.0.2.10"}


def test_default_host_ports_follow_the_contract(model: Model) -> None:
    for service, expected in DEFAULT_PORTS.items():
        assert published(model, service) == expected, service
    others = set(services(model)) - set(DEFAULT_PORTS)
    assert not [s for s in others if services(model)[s].get("ports")], "unexpected published ports"


def test_port_variables_change_host_ports(compose_config: Path, tmp_path: Path) -> None:
    overrides = {var: str(20000 + i) for i, var in enumerate(PORT_VARIABLES)}
    loaded = load_repo_model(compose_config, tmp_path, {**TEST_SECRETS, **overrides})
    for var, (service, target) in PORT_VARIABLES.items():
        assert (overrides[var], target) in published(loaded, service), var


# --- Service conventions ---------------------------------------------------------------------


def test_expected_services(model: Model) -> None:
    assert model["name"] == "llm-gateway"
    assert set(services(model)) == {
        "litellm",
        "otel-collector",
        "otel-collector-init",
        "otel-collector-health",
        "clickhouse",
    }


def test_every_service_has_a_healthcheck_or_a_documented_exception(model: Model) -> None:
    for name, service in services(model).items():
        check = service.get("healthcheck")
        if name in NO_HEALTHCHECK:
            assert not check, f"{name} is listed as having no healthcheck but has one"
            continue
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        for timing in ("interval", "timeout", "retries", "start_period"):
            assert check.get(timing), f"{name}: healthcheck.{timing} must be explicit"


def test_no_healthcheck_option_needs_a_newer_engine() -> None:
    """`start_interval` needs Docker Engine 25+: Debian 12 (20.10) and Ubuntu 22.04 (24.0) refuse
    the whole file with it. The stack supports Engine 20.10 and newer (README)."""
    for path in (REPO / "docker-compose.yml", *sorted(REPO.glob("*/compose.yaml"))):
        assert "start_interval" not in path.read_text(), f"{path.relative_to(REPO)}"


def test_collector_probe_targets_the_health_check_extension(model: Model) -> None:
    test = services(model)["otel-collector-health"]["healthcheck"]["test"]
    assert "'http://otel-collector:13133/'" in " ".join(test)


def test_restart_policy(model: Model) -> None:
    for name, service in services(model).items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, name


def test_every_service_has_a_memory_limit(model: Model) -> None:
    for name, service in services(model).items():
        limit = service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
        limit = limit or service.get("mem_limit")
        assert limit and int(limit) > 0, f"{name} has no memory limit"


def test_memory_limits_are_configurable(compose_config: Path, tmp_path: Path) -> None:
    loaded = load_repo_model(
        compose_config, tmp_path, {**TEST_SECRETS, "CLICKHOUSE_MEM_LIMIT": "3g"}
    )
    limits = services(loaded)["clickhouse"]["deploy"]["resources"]["limits"]
    assert int(limits["memory"]) == 3 * 1024**3


def test_every_service_uses_the_capped_json_logging(model: Model) -> None:
    for name, service in services(model).items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        options = logging.get("options", {})
        assert options.get("max-size") and options.get("max-file"), name


def test_depends_on_waits_for_health(model: Model) -> None:
    edges = {
        (name, dependency): spec["condition"]
        for name, service in services(model).items()
        for dependency, spec in service.get("depends_on", {}).items()
    }
    for edge, condition in edges.items():
        assert condition == OTHER_CONDITIONS.get(edge, "service_healthy"), edge
    # Neither telemetry nor ClickHouse may gate the gateway (tests/docker/test_outages.py
    # starts a stack whose collector cannot start).
    assert not [edge for edge in edges if edge[0] == "litellm" and "otel" in edge[1]], edges
    assert edges[("otel-collector", "clickhouse")] == "service_started"
    assert set(OTHER_CONDITIONS) <= set(edges), "stale entry in OTHER_CONDITIONS"


def test_one_shot_jobs_are_adopted(model: Model) -> None:
    # `docker compose up --wait` accepts a one-shot container's exit 0 only when a running
    # service depends on it with service_completed_successfully (docker/compose#9572); otherwise
    # `make up` would report the healthy stack as failed.
    adopted = {
        dependency
        for service in services(model).values()
        for dependency, spec in service.get("depends_on", {}).items()
        if spec["condition"] == "service_completed_successfully"
    }
    assert adopted >= ONE_SHOT


def test_each_healthchecked_dependency_has_a_healthcheck(model: Model) -> None:
    # Compose refuses `service_healthy` on a service without a healthcheck only at `up` time.
    for name, service in services(model).items():
        for dependency, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert services(model)[dependency].get("healthcheck"), f"{name} -> {dependency}"


# --- Images ----------------------------------------------------------------------------------


def test_every_image_is_pinned(model: Model) -> None:
    for name, service in services(model).items():
        image = service.get("image")
        assert image, f"{name} has no image name"
        _, tag, digest = split_image(image)
        assert tag or digest, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} uses latest"


def test_collector_image_matches_builder_config(model: Model) -> None:
    version = yaml.safe_load(BUILDER_CONFIG.read_text(encoding="utf-8"))["dist"]["version"]
    repository, tag, _ = split_image(services(model)["otel-collector"]["image"])
    assert repository == "otel/opentelemetry-collector-contrib"
    assert tag == str(version).removeprefix("v"), "compose and the native collector build differ"


def test_litellm_image_tag_follows_requirements(model: Model) -> None:
    match = re.search(r"^litellm(?:\[[^\]]*\])?==(\S+)", LITELLM_REQUIREMENTS.read_text(), re.M)
    assert match, "litellm is not pinned in litellm/requirements.txt"
    service = services(model)["litellm"]
    assert split_image(service["image"])[1] == match.group(1)
    assert service["build"]["context"] == str(REPO / "litellm")
    assert service.get("pull_policy") == "build"


def test_image_variables_override_the_pins(compose_config: Path, tmp_path: Path) -> None:
    loaded = load_repo_model(
        compose_config,
        tmp_path,
        {
            **TEST_SECRETS,
            "CLICKHOUSE_IMAGE": "example.test:5000/ch:1.2.3",
            "LITELLM_BASE_IMAGE": "example.test:5000/py:3.11",
        },
    )
    assert services(loaded)["clickhouse"]["image"] == "example.test:5000/ch:1.2.3"
    # The helpers run the gateway's base image: an external ClickHouse needs no ClickHouse image.
    for name in ("otel-collector-init", "otel-collector-health"):
        assert services(loaded)[name]["image"] == "example.test:5000/py:3.11", name
    assert services(loaded)["litellm"]["build"]["args"]["PYTHON_IMAGE"] == (
        "example.test:5000/py:3.11"
    )


# --- Service wiring --------------------------------------------------------------------------


def user_with_password(variable: str) -> str:
    """The clickhouse/users.d user whose password is read from this environment variable."""
    users = ET.parse(USERS_XML).getroot().find("users")
    assert users is not None, f"{USERS_XML} defines no users"
    names = [
        u.tag
        for u in users
        if (p := u.find("password")) is not None and p.get("from_env") == variable
    ]
    assert len(names) == 1, f"{variable}: users {names} in {USERS_XML}"
    return names[0]


def test_litellm_environment(model: Model) -> None:
    env = services(model)["litellm"]["environment"]
    assert env["LITELLM_MASTER_KEY"] == TEST_SECRETS["LITELLM_MASTER_KEY"]
    # Secure by default: prompts and completions are recorded only on opt-in.
    assert env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "false"
    # Every call is recorded, whatever sampling decision a client's traceparent carries.
    assert env["OTEL_TRACES_SAMPLER"] == "always_on"
    # Pass-through: absent unless set, so LiteLLM's default base URL applies.
    assert env.get("OPENROUTER_API_BASE") is None


def test_gateway_exports_to_the_collectors_otlp_http_receiver(model: Model) -> None:
    env = services(model)["litellm"]["environment"]
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector" and endpoint.hostname in services(model)
    http = _merged_collector_config()["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    listens = int(collector_setting(model, http).rsplit(":", 1)[1])
    assert endpoint.port == listens, "not the port the collector's HTTP receiver listens on"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"].startswith("http/"), "an HTTP receiver"


def test_optional_pass_through_is_filled_when_set(compose_config: Path, tmp_path: Path) -> None:
    base = "https://openrouter.example/api/v1"
    loaded = load_repo_model(
        compose_config, tmp_path, {**TEST_SECRETS, "OPENROUTER_API_BASE": base}
    )
    assert services(loaded)["litellm"]["environment"]["OPENROUTER_API_BASE"] == base


def test_collector_wiring(model: Model) -> None:
    collector = services(model)["otel-collector"]
    mounts = {m["target"]: m for m in collector["volumes"]}
    # The native harness runs the very files the command loads, in the same order.
    loaded = [Path(mounts[arg.removeprefix("--config=")]["source"]) for arg in collector["command"]]
    assert loaded == [p.resolve() for p in COLLECTOR_CONFIGS]
    assert collector["command"][-1] == "--config=/etc/otelcol/config.extras.yaml"  # extras last
    env = collector["environment"]
    # The bundled ClickHouse's HTTP port, the database the schema creates, the writer user.
    endpoint = urlsplit(env["CLICKHOUSE_ENDPOINT"])
    assert endpoint.hostname == "clickhouse"
    assert endpoint.port in {p["target"] for p in services(model)["clickhouse"]["ports"]}
    assert env["CLICKHOUSE_DATABASE"] == TELEMETRY_DATABASE
    assert env["CLICKHOUSE_WRITER_USER"] == user_with_password("CLICKHOUSE_WRITER_PASSWORD")
    assert env["CLICKHOUSE_WRITER_PASSWORD"] == TEST_SECRETS["CLICKHOUSE_WRITER_PASSWORD"]
    mounts = {m["target"]: m for m in collector["volumes"]}
    for target in ("/etc/otelcol/config.yaml", "/etc/otelcol/config.extras.yaml"):
        assert mounts[target]["type"] == "bind" and mounts[target].get("read_only"), target
    storage = mounts["/var/lib/otelcol/file_storage"]
    assert storage["type"] == "volume" and storage["source"] in model["volumes"]


def test_file_storage_is_made_writable_for_the_collector_user(model: Model) -> None:
    init = services(model)["otel-collector-init"]
    assert init["entrypoint"][:2] == ["chown", "10001:10001"]
    target = init["entrypoint"][2]
    volume = {m["target"]: m["source"] for m in init["volumes"]}[target]
    collector_mounts = {
        m["target"]: m["source"] for m in services(model)["otel-collector"]["volumes"]
    }
    assert collector_mounts.get(target) == volume, "init chowns a different volume"


def test_clickhouse_wiring(model: Model) -> None:
    clickhouse = services(model)["clickhouse"]
    env = clickhouse["environment"]
    # Users come from users.d only: the image must not create its own `default` user.
    assert env["CLICKHOUSE_SKIP_USER_SETUP"] == "1"
    # The entrypoint creates the schema's database and runs initdb as the admin of users.d.
    assert env["CLICKHOUSE_DB"] == TELEMETRY_DATABASE
    assert env["CLICKHOUSE_USER"] == user_with_password("CLICKHOUSE_ADMIN_PASSWORD")
    assert env["CLICKHOUSE_PASSWORD"] == TEST_SECRETS["CLICKHOUSE_ADMIN_PASSWORD"]
    for role in ("ADMIN", "WRITER", "READER"):
        assert env[f"CLICKHOUSE_{role}_PASSWORD"] == TEST_SECRETS[f"CLICKHOUSE_{role}_PASSWORD"]
    mounts = {m["target"]: m for m in clickhouse["volumes"]}
    for source, target in (
        ("clickhouse/config.d", "/etc/clickhouse-server/config.d"),
        ("clickhouse/users.d", "/etc/clickhouse-server/users.d"),
        ("clickhouse/initdb", "/docker-entrypoint-initdb.d"),
    ):
        assert mounts[target]["source"] == str(REPO / source), target
        assert mounts[target].get("read_only"), target
    assert mounts["/var/lib/clickhouse"]["type"] == "volume"


@pytest.mark.parametrize("secret", sorted(TEST_SECRETS))
def test_missing_secret_stops_the_loader(compose_config: Path, tmp_path: Path, secret: str) -> None:
    values = {k: v for k, v in TEST_SECRETS.items() if k != secret}
    env_file = write_env(tmp_path / "test.env", values)
    result = run_loader(
        compose_config, ["-f", str(COMPOSE_FILE), "--env-file", str(env_file)], cwd=REPO
    )
    assert result.returncode != 0
    assert f"set {secret} in .env (see .env.example)" in result.stderr, result.stderr


def test_missing_master_key_message(compose_config: Path, tmp_path: Path) -> None:
    values = {k: v for k, v in TEST_SECRETS.items() if k != "LITELLM_MASTER_KEY"}
    env_file = write_env(tmp_path / "test.env", values)
    result = run_loader(
        compose_config, ["-f", str(COMPOSE_FILE), "--env-file", str(env_file)], cwd=REPO
    )
    assert result.returncode == 1
    assert "required variable LITELLM_MASTER_KEY is missing a value" in result.stderr
    assert "must start with sk-" in result.stderr


# --- The loader behaves like docker compose --------------------------------------------------


def test_compose_file_overlay_and_profiles(compose_config: Path, tmp_path: Path) -> None:
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    write_env(
        tmp_path / ".env", {**TEST_SECRETS, "COMPOSE_FILE": "docker-compose.yml:overlay.yaml"}
    )
    (tmp_path / "overlay.yaml").write_text(
        "services:\n"
        "  extra:\n"
        "    image: example.test/extra:1.0\n"
        "    profiles: [extra]\n"
        "  litellm:\n"
        "    environment:\n"
        "      OVERLAY: 'yes'\n",
        encoding="utf-8",
    )
    plain = run_loader(compose_config, [], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    loaded = json.loads(plain.stdout)
    assert "extra" not in loaded["services"], "a profile-only service is active without its profile"
    assert loaded["services"]["litellm"]["environment"]["OVERLAY"] == "yes"
    with_profile = run_loader(compose_config, ["--profile", "extra"], cwd=tmp_path)
    assert with_profile.returncode == 0, with_profile.stderr
    assert "extra" in json.loads(with_profile.stdout)["services"]


def test_loader_validates_against_the_compose_schema(compose_config: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("services:\n  litellm:\n    restart_policy: always\n", encoding="utf-8")
    env_file = write_env(tmp_path / "test.env", TEST_SECRETS)
    args = ["-f", str(COMPOSE_FILE), "-f", str(overlay), "--env-file", str(env_file)]
    result = run_loader(compose_config, args, cwd=REPO)
    assert result.returncode == 1
    assert "restart_policy" in result.stderr


# --- Files the compose file mounts -----------------------------------------------------------


def bind_sources(model: Model) -> dict[str, Path]:
    return {
        f"{name}:{m['target']}": Path(m["source"])
        for name, service in services(model).items()
        for m in service.get("volumes", [])
        if m["type"] == "bind"
    }


def test_bind_mount_sources_exist(model: Model) -> None:
    # Docker creates a missing bind source as an empty root-owned directory, which then fails
    # confusingly inside the container (e.g. a config *file* that is a directory).
    missing = {k: str(p) for k, p in bind_sources(model).items() if not p.exists()}
    assert not missing, f"bind-mount sources missing from the repository: {missing}"


def _merged_collector_config() -> Model:
    merged: Model = {}

    def merge(into: Model, new: Mapping[str, Any]) -> None:
        for key, value in new.items():
            if isinstance(value, Mapping) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    for path in COLLECTOR_CONFIGS:  # the files compose loads, in its order
        merge(merged, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def collector_setting(model: Model, value: str) -> str:
    """A collector config value with its `${env:NAME:-default}` resolved as in the container."""
    env = services(model)["otel-collector"].get("environment", {})
    return re.sub(
        r"\$\{env:([A-Z0-9_]+)(?::-([^}]*))?\}", lambda m: env.get(m[1], m[2] or ""), value
    )


def _host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


def test_collector_listens_where_compose_publishes(model: Model) -> None:
    """Since v0.104 the collector binds its servers to localhost by default, which inside a
    container means unreachable: the published ports and the health probe need 0.0.0.0."""
    config = _merged_collector_config()
    loopback = {"localhost", "127.0.0.1", "::1"}

    health = [
        v or {}
        for k, v in config.get("extensions", {}).items()
        if k.split("/")[0] == "health_check"
    ]
    assert health, "no health_check extension: otel-collector-health probes port 13133"
    hosts = [_host(collector_setting(model, h["endpoint"])) for h in health if h.get("endpoint")]
    assert hosts and not set(hosts) & loopback, "health_check.endpoint must be 0.0.0.0:13133"
    protocols: dict[str, Model] = {}
    for key, receiver in config.get("receivers", {}).items():
        if key.split("/")[0] == "otlp":
            protocols.update((receiver or {}).get("protocols", {}))
    for protocol in ("grpc", "http"):
        endpoint = (protocols.get(protocol) or {}).get("endpoint")
        assert endpoint and _host(collector_setting(model, endpoint)) not in loopback, (
            f"otlp {protocol} must listen on 0.0.0.0"
        )


def test_clickhouse_config_listens_beyond_loopback() -> None:
    """The config.d mount hides the image's docker_related_config.xml (listen_host ::/0.0.0.0)."""
    config_d = REPO / "clickhouse" / "config.d"
    files = sorted(config_d.glob("*.xml"))
    assert files, "clickhouse/config.d holds no XML"
    hosts = {
        host.strip()
        for path in files
        for host in re.findall(
            r"<listen_host>([^<]*)</listen_host>", path.read_text(encoding="utf-8")
        )
    }
    assert hosts & {"0.0.0.0", "::"}, (
        "clickhouse/config.d must set <listen_host>0.0.0.0</listen_host>"
    )


# --- Dockerfiles -----------------------------------------------------------------------------

SKIP_DIRS = {".git", ".venv", ".cache", "node_modules", "_build", "__pycache__"}


def dockerfiles() -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found.extend(
            Path(root) / f
            for f in files
            if f == "Dockerfile" or f.endswith(".Dockerfile") or f.startswith("Dockerfile.")
        )
    return sorted(found)


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.lint  # run by `make lint` (and so once per `make test`)
@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfile_is_hadolint_clean(dockerfile: Path) -> None:
    binary = hadolint()
    if binary is None:
        missing_tool("hadolint is not installed (pip install -r requirements-dev.txt)")
    result = subprocess.run(
        [binary, "--failure-threshold", "warning", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_dockerfiles_are_found() -> None:
    # Else the hadolint test above would be collected for nothing and pass.
    assert REPO / "litellm" / "Dockerfile" in dockerfiles()


def test_one_clickhouse_pin_across_base_and_overlay() -> None:
    pins = set()
    for path in (REPO / "docker-compose.yml", REPO / "langfuse" / "compose.yaml"):
        pins |= set(re.findall(r"\$\{CLICKHOUSE_IMAGE:-([^}]+)\}", path.read_text()))
    assert len(pins) == 1, f"ClickHouse image defaults differ: {sorted(pins)}"
