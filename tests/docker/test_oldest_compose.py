"""`make up` on the oldest Compose the base stack supports, and preflight's sentence for an
overlay that needs a newer one, on that same Compose (the README's minimums, for real).

Compose 2.17.3 (the last 2.17 release; 2.17.0 brought `up --wait-timeout`, which `make up`
uses) is built from the Go module proxy like the current one (tests/docker/build-compose.sh,
cached) and used as the `docker compose` plugin through DOCKER_CONFIG, so `make`, the scripts
and every `docker compose` they run are that release.
"""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from scripts.verify.compose import compose_files
from scripts.verify.hops.settings import MIN_COMPOSE, compose_minimum
from tests.docker.stack import REPO, ComposeStack

pytestmark = pytest.mark.timeout(1800)

OLDEST = "v2.17.3"
OVERLAYS = (
    "langfuse/compose.yaml",
    "agentops/compose.yaml",
    "grafana/compose.yaml",
    "loadbalancer/compose.yaml",
    "clickhouse/external.yaml",
)
ALLOWED_ON_OLDEST = [
    name for name in OVERLAYS if compose_minimum([REPO / name], REPO)[0] <= MIN_COMPOSE
]


@pytest.fixture(scope="module")
def oldest_compose(tmp_path_factory: pytest.TempPathFactory, engine: None) -> dict[str, str]:
    """DOCKER_CONFIG whose Compose plugin is the oldest supported release (built once, cached)."""
    config = tmp_path_factory.mktemp("docker-config")
    done = subprocess.run(
        [str(REPO / "tests/docker/build-compose.sh")],
        env={**os.environ, "COMPOSE_VERSION": OLDEST, "DOCKER_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, f"Compose {OLDEST} did not build:\n{done.stderr[-3000:]}"
    env = {"DOCKER_CONFIG": str(config)}
    version = subprocess.run(
        ["docker", "compose", "version", "--short"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == OLDEST.lstrip("v"), version
    return env


def test_the_oldest_is_the_base_minimum() -> None:
    """2.17.3 is in the base stack's 2.17 line: the release this test proves is the minimum."""
    minimum, _ = compose_minimum(compose_files(REPO, None), REPO)
    assert minimum == MIN_COMPOSE
    assert tuple(map(int, OLDEST.lstrip("v").split(".")))[:2] == MIN_COMPOSE[:2]
    assert ALLOWED_ON_OLDEST == ["langfuse/compose.yaml", "agentops/compose.yaml"]


def test_make_up_on_the_oldest_compose(
    fresh_clone: tuple[ComposeStack, dict[str, str]], oldest_compose: dict[str, str]
) -> None:
    stack, settings = fresh_clone
    stack.make("init").ok()
    stack.set_env(settings)
    stack.make("up", **oldest_compose).ok()
    trace_id = secrets.token_hex(16)
    answer = stack.chat(trace_id=trace_id)
    assert answer.status_code == 200, answer.text
    assert stack.wait_for_rows([trace_id], timeout=120) == {trace_id: 1}
    stack.make("verify", **oldest_compose).ok()

    # Every overlay the preflight allows on this release is read by it.
    base = settings["COMPOSE_FILE"]
    stack.set_env({"AGENTOPS_OTLP_ENDPOINT": "http://agentops.invalid:4318"})  # required there
    for overlay in ALLOWED_ON_OLDEST:
        stack.set_env({"COMPOSE_FILE": f"{base}:{overlay}"})
        stack.sh("docker compose config -q", env=oldest_compose).ok()

    # An overlay that needs a newer Compose: preflight names it and the release, nothing starts.
    stack.set_env({"COMPOSE_FILE": f"{base}:grafana/compose.yaml"})
    refused = stack.make("preflight", **oldest_compose)
    assert refused.code != 0
    assert "Docker Compose 2.17.3 is older than 2.20.0" in refused.out, refused.out[-3000:]
    assert "grafana/compose.yaml uses depends_on `required:`" in refused.out
    stack.make("down", **oldest_compose).ok()
