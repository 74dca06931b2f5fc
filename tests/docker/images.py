"""Which images the Docker flows run: stand-ins by default, the shipped images on request.

`STANDINS=0 make test` runs the same flows on the images the compose files name (pulled first,
like `make up` would pull them); it needs a registry. The default never pulls: it runs the
stand-ins, except where a shipped image is already on the engine, which is then used as it is.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tests.docker.stack import REPO

# The images a stand-in replaces, and the compose file whose `${KEY:-default}` is the shipped pin.
REPLACEABLE = {
    "LITELLM_BASE_IMAGE": "docker-compose.yml",
    "OTEL_COLLECTOR_IMAGE": "docker-compose.yml",
    "CLICKHOUSE_IMAGE": "docker-compose.yml",
    "LOADBALANCER_IMAGE": "loadbalancer/compose.yaml",
    "LITELLM_REDIS_IMAGE": "loadbalancer/compose.yaml",
}


def shipped_images() -> dict[str, str]:
    """Each replaceable key's default image, read from the compose file that pins it."""
    found = {}
    for key, name in REPLACEABLE.items():
        match = re.search(rf"\$\{{{key}:-([^}}]+)\}}", (REPO / name).read_text())
        if match is None:
            raise RuntimeError(f"{name} no longer pins {key} as ${{{key}:-image}}")
        found[key] = match.group(1)
    return found


def wants_shipped(environ: Mapping[str, str] = os.environ) -> bool:
    """STANDINS=0 (or false/no/off) asks for the shipped images."""
    return environ.get("STANDINS", "1").strip().lower() in {"0", "false", "no", "off"}


def on_engine(image: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


def pull(image: str) -> None:
    done = subprocess.run(
        ["docker", "pull", image], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(
            f"STANDINS=0: `docker pull {image}` failed ({lines[-1] if lines else 'no output'}). "
            "The shipped images need a reachable registry; without one, run `make test` "
            "without STANDINS=0 (stand-ins)."
        )


@dataclass(frozen=True)
class Choice:
    images: dict[str, str]  # every image key the flows set in .env
    shipped: tuple[str, ...]  # the keys running a shipped image

    def describe(self) -> str:
        lines = [
            f"  {key}={image} ({'shipped' if key in self.shipped else 'stand-in'})"
            for key, image in sorted(self.images.items())
        ]
        return "Docker flows ran these images:\n" + "\n".join(lines)


def choose(
    standins: Mapping[str, str],
    shipped: Mapping[str, str],
    want_shipped: bool,
    present: Callable[[str], bool] = on_engine,
    fetch: Callable[[str], None] = pull,
) -> Choice:
    """The images to run; pulls only when the shipped images were asked for."""
    images = dict(standins)
    used = []
    for key, image in shipped.items():
        if want_shipped and not present(image):
            fetch(image)
        if want_shipped or present(image):
            images[key] = image
            used.append(key)
    return Choice(images, tuple(used))
