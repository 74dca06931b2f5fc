"""The real client apps (Open WebUI, Langflow) as the tests run them: installed from PyPI into a
cached virtual environment each, started on 127.0.0.1 with no network beyond the loopback.

Each app's environment is built once per machine from its frozen requirements
(`tests/support/apps/<app>.txt`) with `uv` (a few tens of seconds; pip takes minutes for
Open WebUI's ~260 packages) under `~/.cache/llm-gateway/apps/`, keyed by that file's hash.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.native_stack.paths import CACHE_DIR, venv_bin

REQUIREMENTS = Path(__file__).parent / "apps"
CACHE = CACHE_DIR / "apps"
INSTALL_TIMEOUT_S = 1800


class AppInstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class App:
    name: str  # the requirements file's stem and the cache directory's prefix
    version: str

    @property
    def requirements(self) -> Path:
        return REQUIREMENTS / f"{self.name}.txt"

    @property
    def home(self) -> Path:
        digest = hashlib.sha256(self.requirements.read_bytes()).hexdigest()[:12]
        return CACHE / f"{self.name}-{self.version}-{digest}"

    def bin(self, program: str) -> Path:
        return self.home / "bin" / program

    def install(self) -> Path:
        """The app's environment, built now if this machine has none for these requirements."""
        done = self.home / ".installed"
        if done.exists():
            return self.home
        uv = venv_bin("uv")
        if not uv.exists():
            raise AppInstallError(f"{uv} is missing: run `make venv`")
        shutil.rmtree(self.home, ignore_errors=True)  # an install cut short is started over
        self.home.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            [str(uv), "venv", "--quiet", "--python", sys.executable, str(self.home)],
            [
                str(uv),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(self.bin("python")),
                "--requirement",
                str(self.requirements),
            ],
        ]
        for argv in steps:
            run = subprocess.run(
                argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
            if run.returncode != 0:
                raise AppInstallError(
                    f"installing {self.name} {self.version} failed: {' '.join(argv)}\n"
                    f"{run.stderr[-3000:]}"
                )
        done.write_text(f"{self.name}=={self.version}\n")
        return self.home


OPEN_WEBUI = App("open-webui", "0.12.4")
LANGFLOW = App("langflow", "1.13.0")


def offline_env(home: Path, **settings: str) -> dict[str, str]:
    """A minimal environment for an app process: no inherited keys or proxies, its own home,
    and the switches that keep model hubs and telemetry from reaching out."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "true",
        "SCARF_NO_ANALYTICS": "true",
        "ANONYMIZED_TELEMETRY": "false",
        # LiteLLM inside an app would fetch its price list from GitHub at import.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        **settings,
    }
