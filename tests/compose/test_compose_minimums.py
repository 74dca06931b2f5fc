"""The Compose minimum each file needs (docs/PINS.md, "Compose"), proven on the loader itself.

Docker Compose reads compose files with compose-spec/compose-go. For the releases around each
minimum, this builds a small loader (compose_at/main.go.tmpl) against the compose-go release that
Compose release's go.mod requires, loads the base file with each overlay, and compares what it
read with what today's loader reads (scripts/native_stack/compose-config). A release reads a file
set "as today" only if it is at least the minimum the preflight computes for it
(`compose_minimum`): older ones either refuse the file or, worse, load it wrongly (Compose
2.17 ignores `!reset` and publishes the gateway's port twice).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from scripts.native_stack.paths import CACHE_DIR, REPO
from scripts.verify.hops import settings
from tests.support.ci import missing_tool
from tests.support.compose_loader import build_compose_config, run_loader

TEMPLATE = Path(__file__).parent / "compose_at" / "main.go.tmpl"
V1, V2 = "github.com/compose-spec/compose-go", "github.com/compose-spec/compose-go/v2"
# Compose release -> the compose-go release in its go.mod (read from docker/compose's tags).
RELEASES = {
    (2, 17, 3): (V1, "v1.13.4"),
    (2, 18, 0): (V1, "v1.13.5"),
    (2, 19, 0): (V1, "v1.15.0"),
    (2, 20, 0): (V1, "v1.16.0"),
    (2, 24, 3): (V2, "v2.0.0-rc.2"),
    (2, 24, 4): (V2, "v2.0.0-rc.3"),
}
OVERLAYS = [
    "",
    "loadbalancer/compose.yaml",
    "grafana/compose.yaml",
    "clickhouse/external.yaml",
    "langfuse/compose.yaml",
    "agentops/compose.yaml",
]


def go() -> str:
    found = shutil.which(os.environ.get("GO", "go"))
    if found is None:
        missing_tool("Go is not installed: cannot build the compose-go loaders")
    return str(found)


def build_loader(module: str, version: str) -> Path:
    """compose-at built against compose-go `version`, cached per version and template."""
    digest = hashlib.sha256(TEMPLATE.read_bytes()).hexdigest()[:12]
    binary = CACHE_DIR / "compose-at" / f"{version}-{digest}" / "compose-at"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        source = TEMPLATE.read_text().replace("COMPOSE_GO_MODULE", module)
        (Path(work) / "main.go").write_text(source)
        env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        for argv in (
            [go(), "mod", "init", "compose-at"],
            [go(), "get", f"{module}@{version}"],
            [go(), "mod", "tidy"],
            [go(), "build", "-o", str(binary) + ".tmp", "."],
        ):
            run = subprocess.run(
                argv, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            if run.returncode != 0:
                pytest.fail(f"building compose-at {version}: {' '.join(argv)}\n{run.stderr}")
    Path(str(binary) + ".tmp").rename(binary)
    return binary


def variables() -> dict[str, str]:
    """A value for every key .env.example names (overlay keys included), of the right kind."""
    out: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line)
        if not match or match[1] == "COMPOSE_FILE":
            continue
        key, value = match[1], match[2].split(" #")[0].strip()
        if not value or "CHANGEME" in value:
            if key.endswith("_URL"):
                value = "https://clickhouse.example.test:8443"
            elif key.endswith("_FILE"):
                value = "/etc/hosts"
            else:
                value = f"test-{key.lower()}"
        out.setdefault(key, value)
    return out


def what_was_read(model: dict[str, Any]) -> dict[str, tuple[list[str], list[str]]]:
    """Per service, what the overlays change: published ports and dependencies."""
    services = model["services"]
    items = services.items() if isinstance(services, dict) else ((s["name"], s) for s in services)
    return {
        name: (
            sorted(
                f"{p.get('host_ip', '')}:{p.get('published', '')}:{p.get('target')}"
                for p in service.get("ports") or []
            ),
            sorted(service.get("depends_on") or {}),
        )
        for name, service in items
    }


@pytest.fixture(scope="module")
def today(compose_config: Path) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    """Each file set as today's loader reads it (the Compose these tests run on)."""
    out = {}
    for overlay in OVERLAYS:
        files = ["docker-compose.yml", *([overlay] if overlay else [])]
        args = [a for f in files for a in ("-f", f)]
        result = run_loader(compose_config, [*args, "--format", "json"], env=variables())
        assert result.returncode == 0, result.stderr
        out[overlay] = what_was_read(json.loads(result.stdout))
    return out


@pytest.fixture(scope="module")
def compose_config() -> Path:
    return build_compose_config()


@pytest.mark.parametrize(
    "release", sorted(RELEASES), ids=lambda r: "compose-" + ".".join(map(str, r))
)
def test_a_release_reads_the_files_as_today_only_from_its_minimum(
    release: tuple[int, int, int], today: dict[str, Any]
) -> None:
    loader = build_loader(*RELEASES[release])
    verdicts = {}
    for overlay in OVERLAYS:
        files = ["docker-compose.yml", *([overlay] if overlay else [])]
        needs, _ = settings.compose_minimum([REPO / f for f in files], REPO)
        result = run_loader(loader, files, env=variables())
        as_today = (
            result.returncode == 0 and what_was_read(json.loads(result.stdout)) == (today[overlay])
        )
        verdicts[overlay or "base"] = (as_today, release >= needs, result.stderr.strip()[:200])
    wrong = {name: v for name, v in verdicts.items() if v[0] != v[1]}
    assert not wrong, f"(reads as today, preflight allows): {wrong}"
