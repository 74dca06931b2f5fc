"""`make init` then `make up`'s preflight, on a fresh clone's files: the generated .env passes,
and placeholders left in it fail whatever their key is called."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def init(tmp_path: Path) -> Path:
    result = run([str(REPO / "scripts" / "init_env.py"), "--example",
                  str(REPO / ".env.example"), "--output", str(tmp_path / ".env")], REPO)
    assert result.returncode == 0, result.stderr
    assert "OPENROUTER_API_KEY" in result.stdout  # tells the user what is left to them
    return tmp_path / ".env"


def settings(env_file: Path) -> dict[str, object]:
    result = run(["-m", "scripts.verify", "settings", "--env-file", str(env_file), "--json"],
                 REPO)
    report = json.loads(result.stdout)
    return next(h for h in report["hops"] if h["name"] == "settings")


def test_generated_env_passes_settings_without_a_provider_key(tmp_path: Path) -> None:
    env_file = init(tmp_path)
    assert "OPENROUTER_API_KEY=\n" in env_file.read_text()
    hop = settings(env_file)
    # No warning either: an empty provider key is the documented default (verify-mock works).
    assert hop["state"] == "ok", hop


def test_generated_env_with_langfuse_enabled_passes(tmp_path: Path) -> None:
    env_file = init(tmp_path)
    text = env_file.read_text().replace("# COMPOSE_FILE=", "COMPOSE_FILE=")
    env_file.write_text(text)
    assert settings(env_file)["state"] == "ok"


def test_readme_reads_the_generated_master_key(tmp_path: Path) -> None:
    """The README's request takes the key from .env with a shell one-liner: it must give exactly
    the key `make init` wrote (a `# CHANGEME` left on the line once made it send that too)."""
    env_file = init(tmp_path)
    readme = (REPO / "README.md").read_text()
    match = re.search(r"\$\((grep \^LITELLM_MASTER_KEY[^)]*)\)", readme)
    assert match, "README no longer shows how to read the master key from .env"
    extracted = subprocess.run(["bash", "-c", match.group(1)], cwd=tmp_path, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    written = next(line.split("=", 1)[1] for line in env_file.read_text().splitlines()
                   if line.startswith("LITELLM_MASTER_KEY="))
    assert extracted == written
    assert re.fullmatch(r"sk-[0-9a-f]{48}", extracted), extracted


def test_placeholder_fails_whatever_the_key_name(tmp_path: Path) -> None:
    env_file = init(tmp_path)
    lines = [("LANGFUSE_SALT=CHANGEME" if line.startswith("LANGFUSE_SALT=") else line)
             for line in env_file.read_text().splitlines()]
    lines = [line.replace("# COMPOSE_FILE=", "COMPOSE_FILE=") for line in lines]
    env_file.write_text("\n".join(lines) + "\n")
    hop = settings(env_file)
    assert hop["state"] == "fail" and "LANGFUSE_SALT" in json.dumps(hop)
