""".env.example: it documents every variable compose reads, marks its secrets, loads as a user's
.env, and every setting it offers takes effect: changed, it changes what runs.

Generic over the file's keys (set or shown commented out), so a setting added later is covered
without a new test. The proof for most keys is compose's own rendering (`docker compose config`,
through scripts/native_stack/compose-config) of a `make init` .env with every overlay on: the
setting, changed, changes the configuration compose would run. A few keys are read by a script
instead (`make schema`, `make agentops-token`); SCRIPT_READERS runs that script's code on the
.env. A key with neither effect fails the test, named.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from scripts import agentops_token
from scripts.clickhouse_schema.apply import cluster_files
from scripts.envfile.init import render
from scripts.envfile.parser import parse_line
from scripts.native_stack.paths import REPO
from tests.support.compose_loader import run_loader
from tests.support.compose_model import DEFAULT_PORTS, TEST_SECRETS, all_ports, published

ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_FILE = REPO / "docker-compose.yml"
# Two .env files cover every overlay: the external ClickHouse replaces the bundled one, which the
# Langfuse overlay needs, so it goes with the others that combine with it.
OVERLAY_SETS = {
    "bundled": "docker-compose.yml:langfuse/compose.yaml:grafana/compose.yaml:"
    "agentops/compose.yaml:loadbalancer/compose.yaml",
    "external": "docker-compose.yml:clickhouse/external.yaml:grafana/compose.yaml",
}
# What an overlay refuses to start without (`${VAR:?...}`), beyond what `make init` writes.
OVERLAY_REQUIRED = {
    "OPENROUTER_API_KEY": "sk-or-test-0123456789",
    "AGENTOPS_OTLP_ENDPOINT": "http://agentops.example.test:4318",
    "CLICKHOUSE_URL": "https://clickhouse.example.test:8443",
}
# Settings whose values are an enumeration: another valid member.
OTHER_VALUE = {
    "CLICKHOUSE_CLUSTER_FLAVOUR": "sharded",
    "AGENTOPS_JWT_SECRET_KEY": "another-secret-of-at-least-32-bytes-for-hs256",
}
COMMENTED = re.compile(r"^#\s?([A-Z][A-Z0-9_]*)=(.*)$")


def documented_settings() -> dict[str, str]:
    """KEY -> its example value, for every key .env.example sets or shows commented out."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        assignment, _ = parse_line(line)
        if assignment is not None:
            found[assignment.key] = assignment.value
        elif match := COMMENTED.match(line.strip()):
            found.setdefault(match.group(1), match.group(2).split(" #", 1)[0].strip())
    return found


def changed_value(key: str, example: str) -> str:
    """A valid value other than the example's (or the default's, for an empty example)."""
    if key in OTHER_VALUE:
        return OTHER_VALUE[key]
    if example.isdigit():
        return str(int(example) + 1)
    if re.fullmatch(r"\d+[kmg]", example):
        return "777m"
    if example in ("true", "false"):
        return "false" if example == "true" else "true"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", example):
        return "127.0.0.2"
    if "@" in example or key.endswith(("_EMAIL_TO", "_FROM")):
        return "probe@example.test"
    if example.startswith("http") or key.endswith(("_URL", "_ENDPOINT")):
        return "https://probe.example.test:8443/probe"
    if key.endswith("_IMAGE"):
        return "example.test/probe:1.0"
    if key.endswith(("_TAG", "_VERSION")):
        return "9.9.9"
    if key.endswith("_HOST"):
        return "smtp.example.test:587"
    if key.endswith(("_FILE", "_DIR")):
        return "./probe-path"
    return f"{example}-probe" if example else "probe-value"


@functools.cache
def make_init_env() -> dict[str, str]:
    """What `make init` writes from .env.example (secrets generated), plus what overlays need."""
    text, _ = render(ENV_EXAMPLE.read_text(encoding="utf-8"))
    values: dict[str, str] = {}
    for line in text.splitlines():
        assignment, _ = parse_line(line)
        if assignment is not None and assignment.value:
            values[assignment.key] = assignment.value
    return {**values, **OVERLAY_REQUIRED}


def rendered(tool: Path, tmp_path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """`docker compose config` of the repository with this .env."""
    env_file = tmp_path / "settings.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    result = run_loader(tool, ["--env-file", str(env_file)], cwd=REPO)
    assert result.returncode == 0, f"compose refused the .env:\n{result.stderr}"
    return json.loads(result.stdout)


# --- settings read by a script rather than by compose ------------------------------------------


def schema_files(env: Mapping[str, str], tmp_path: Path) -> dict[str, str]:
    """The statements `make schema` applies with this .env (the cluster form when set)."""
    out = tmp_path / "schema"
    out.mkdir(exist_ok=True)
    directory = cluster_files(env, out)
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.sql"))}


def cluster_schema_files(env: Mapping[str, str], tmp_path: Path) -> dict[str, str]:
    """The flavour only matters with a cluster named."""
    return schema_files({"CLICKHOUSE_CLUSTER": "probe", **env}, tmp_path)


def minted_token(env: Mapping[str, str], tmp_path: Path) -> str:
    """The token `make agentops-token` writes with this .env (at a fixed time)."""
    token_dir = tmp_path / "agentops"
    env_file = tmp_path / "agentops.env"
    values = {
        "AGENTOPS_JWT_SECRET_KEY": "a-secret-of-at-least-32-bytes-for-hs256",
        "AGENTOPS_PROJECT_ID": "project-for-the-proof",
        **env,
        "AGENTOPS_TOKEN_DIR": str(token_dir),
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        fixed = functools.partial(agentops_token.mint, now=agentops_token.dt.datetime(2026, 1, 1))
        patch.setattr(agentops_token, "mint", fixed)
        assert agentops_token.main(["mint", "--env-file", str(env_file)]) == 0
    return (token_dir / "token").read_text(encoding="utf-8")


SCRIPT_READERS: dict[str, Callable[[Mapping[str, str], Path], object]] = {
    "CLICKHOUSE_CLUSTER": schema_files,
    "CLICKHOUSE_CLUSTER_FLAVOUR": cluster_schema_files,
    "AGENTOPS_JWT_SECRET_KEY": minted_token,
    "AGENTOPS_PROJECT_ID": minted_token,
}


def takes_effect(
    tool: Path, workdir: Path, key: str, example: str, baselines: Mapping[str, dict[str, Any]]
) -> bool:
    changed = changed_value(key, example)
    workdir.mkdir()
    for name, overlays in OVERLAY_SETS.items():
        env = {**make_init_env(), "COMPOSE_FILE": overlays, key: changed}
        if rendered(tool, workdir, env) != baselines[name]:
            return True
    reader = SCRIPT_READERS.get(key)
    return reader is not None and reader(make_init_env(), workdir) != reader(
        {**make_init_env(), key: changed}, workdir
    )


def test_every_documented_setting_takes_effect(compose_config: Path, tmp_path: Path) -> None:
    settings = documented_settings()
    assert {"BIND_ADDRESS", "LITELLM_MASTER_KEY", "CLICKHOUSE_CLUSTER"} <= set(settings)
    settings.pop("COMPOSE_FILE")  # proven by the next test
    baselines = {
        name: rendered(compose_config, tmp_path, {**make_init_env(), "COMPOSE_FILE": overlays})
        for name, overlays in OVERLAY_SETS.items()
    }

    def inert(key: str) -> bool:
        workdir = tmp_path / key
        return not takes_effect(compose_config, workdir, key, settings[key], baselines)

    with ThreadPoolExecutor(4) as pool:  # the loader is a process per .env
        no_effect = dict(zip(settings, pool.map(inert, settings), strict=True))
    inert_keys = [key for key, inert_key in no_effect.items() if inert_key]
    assert not inert_keys, (
        f".env.example offers settings that change nothing: {inert_keys} (remove them, or make "
        "them take effect; a script that reads one belongs in SCRIPT_READERS)"
    )


def test_each_compose_file_example_adds_its_overlay(compose_config: Path, tmp_path: Path) -> None:
    examples = re.findall(
        r"^# (?:Overlays combine, e\.g\. )?COMPOSE_FILE=(\S+)$",
        ENV_EXAMPLE.read_text(encoding="utf-8"),
        re.M,
    )
    assert len(examples) >= 5, examples
    base = {**make_init_env(), "COMPOSE_FILE": "docker-compose.yml"}
    plain = rendered(compose_config, tmp_path, base)
    for example in examples:
        loaded = rendered(compose_config, tmp_path, {**base, "COMPOSE_FILE": example})
        assert loaded != plain, f"COMPOSE_FILE={example} changes nothing"
        # Overlays add to the stack; only the external ClickHouse one replaces a service.
        kept = set(plain["services"]) - {"clickhouse"}
        assert set(loaded["services"]) >= kept, example


def test_changed_values_differ_from_the_examples() -> None:
    # Else a setting could "change nothing" only because the probe value equals the example.
    for key, example in documented_settings().items():
        assert changed_value(key, example) != example, key


# --- what .env.example says ----------------------------------------------------------------------


def env_example_lines() -> dict[str, str]:
    """KEY -> full line for every active (uncommented) assignment in .env.example."""
    lines: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            assert match.group(1) not in lines, f"{match.group(1)} is set twice"
            lines[match.group(1)] = line
    return lines


def interpolated_keys(*compose_files: Path) -> set[str]:
    """Every variable the compose files interpolate (`${NAME}`, `${NAME:-x}`, `${NAME:?x}`)."""
    keys: set[str] = set()
    for path in compose_files:
        # Comments may show the syntax (`${VAR:-pinned}`); only YAML itself counts.
        text = "\n".join(
            line.split(" #", 1)[0]
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.lstrip().startswith("#")
        )
        keys |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    return keys


def test_env_example_documents_every_variable_compose_reads() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))
    files = {name for overlays in OVERLAY_SETS.values() for name in overlays.split(":")}
    keys = interpolated_keys(*(REPO / name for name in sorted(files)))
    assert {"LITELLM_MASTER_KEY", "CLICKHOUSE_ADMIN_PASSWORD", "BIND_ADDRESS"} <= keys
    missing = keys - documented
    assert not missing, f".env.example does not mention {sorted(missing)}"


def test_env_example_secrets_are_literally_changeme() -> None:
    lines = env_example_lines()
    for key in TEST_SECRETS.keys() | {"OPENROUTER_API_KEY"}:
        assert re.fullmatch(rf"{key}=CHANGEME\s+# CHANGEME", lines[key]), lines[key]
    for key, line in lines.items():
        if "CHANGEME" in line:
            assert line.endswith("# CHANGEME"), f"{key}: mark the placeholder with # CHANGEME"


def test_env_example_documents_the_overlay_and_leaves_pins_in_compose() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert re.search(r"^# COMPOSE_FILE=docker-compose\.yml:langfuse/compose\.yaml$", text, re.M)
    lines = env_example_lines()
    assert not [k for k in lines if k.endswith("_IMAGE") or k.endswith("_IMAGE_TAG")], (
        "image pins belong in docker-compose.yml"
    )


def test_env_example_loads_like_a_users_env(compose_config: Path, tmp_path: Path) -> None:
    """The documented first run: copy .env.example to .env, replace CHANGEME, `docker compose`."""
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"^(LITELLM_MASTER_KEY)=CHANGEME", r"\1=sk-replaced", text, flags=re.M)
    text = re.sub(r"^([A-Z_]+)=CHANGEME", r"\1=replaced-secret", text, flags=re.M)
    (tmp_path / ".env").write_text(text, encoding="utf-8")
    result = run_loader(compose_config, [], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert {p["host_ip"] for _, p in all_ports(loaded)} == {"127.0.0.1"}
    for service, expected in DEFAULT_PORTS.items():
        assert published(loaded, service) == expected, service
    env = loaded["services"]["litellm"]["environment"]
    assert env["LITELLM_MASTER_KEY"] == "sk-replaced"
    assert "CHANGEME" not in result.stdout

    # The same file with the placeholders left in still loads: catching them is the verify
    # script's job, and the inline `# CHANGEME` must not leak into the values.
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    raw = run_loader(compose_config, [], cwd=tmp_path)
    assert raw.returncode == 0, raw.stderr
    clickhouse_env = json.loads(raw.stdout)["services"]["clickhouse"]["environment"]
    assert clickhouse_env["CLICKHOUSE_ADMIN_PASSWORD"] == "CHANGEME"
