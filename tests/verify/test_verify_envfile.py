"""The settings hop of `make verify` (scripts/verify): the strict .env parser and the checks
`make up` runs as --preflight. Real files in tmp_path, real sockets for the port checks."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.envfile.parser import load_env_file, parse_env_text
from scripts.envfile.spec import CONTRACT_DEFAULTS, KeySpec, enabled_overlays, load_key_spec
from scripts.native_stack.paths import REPO
from scripts.verify.__main__ import main
from scripts.verify.compose import compose_files
from scripts.verify.context import ROOT
from scripts.verify.hops import settings
from scripts.verify.results import Result, State, worst

SPEC = KeySpec(source="test", defaults=dict(CONTRACT_DEFAULTS))
PORT_KEYS = [k for k in CONTRACT_DEFAULTS if k.endswith("_PORT")]


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def good_values() -> dict[str, str]:
    values = dict(CONTRACT_DEFAULTS)
    values.update(
        LITELLM_MASTER_KEY="sk-" + "a1" * 20,
        OPENROUTER_API_KEY="sk-or-v1-" + "b2" * 20,
        CLICKHOUSE_ADMIN_PASSWORD="c3" * 12,
        CLICKHOUSE_WRITER_PASSWORD="d4" * 12,
        CLICKHOUSE_READER_PASSWORD="e5" * 12,
    )
    values.update(zip(PORT_KEYS, map(str, free_ports(len(PORT_KEYS))), strict=True))
    return values


def render(values: dict[str, str], extra: str = "") -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items()) + extra


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def evaluate_text(text: str, **kwargs: object) -> Result:
    return settings.evaluate(parse_env_text(text, Path(".env")), SPEC, **kwargs)  # type: ignore[arg-type]


def details(result: Result) -> str:
    return "\n".join(result.details)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port with a real listener on 127.0.0.1, like a service already running there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


# --- the parser ---------------------------------------------------------------------------------


def test_parser_reads_what_compose_reads() -> None:
    env = parse_env_text(
        "\ufeff# comment\n"
        "\n"
        "export A=1\n"
        "B = two words  # trailing comment\n"
        "C='single # not a comment'\n"
        'D="double \\" quote" # comment\n'
        "E=url#fragment\r\n"
    )
    assert env.problems == []
    assert env.values == {
        "A": "1",
        "B": "two words",
        "C": "single # not a comment",
        "D": 'double " quote',
        "E": "url#fragment",
    }
    assert env.lines == {"A": 3, "B": 4, "C": 5, "D": 6, "E": 7}


def test_missing_equals_is_reported_with_its_line_number() -> None:
    env = parse_env_text("A=1\nLITELLM_MASTER_KEY\nB=2\n")
    assert [(i.line, i.severity) for i in env.problems] == [(2, "error")]
    assert "no '=' in 'LITELLM_MASTER_KEY'" in env.problems[0].render()
    assert env.problems[0].render().startswith("line 2:")
    assert env.values == {"A": "1", "B": "2"}


def test_a_line_without_equals_is_never_echoed_if_it_may_be_a_secret() -> None:
    env = parse_env_text("sk-live-abcdef 0123456789\n")
    assert "sk-live" not in env.problems[0].render()
    assert "line 1" in env.problems[0].render()


def test_invalid_key_name() -> None:
    env = parse_env_text("1PORT=4000\nMY-KEY=x\n")
    assert [i.line for i in env.problems] == [1, 2]
    assert all("invalid key name" in i.message for i in env.problems)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("A='never closed", "unbalanced quotes"),
        ('A="never closed', "unbalanced quotes"),
        ('A="closed" trailing', "unexpected text after the closing"),
    ],
)
def test_quote_errors_fail_with_line_number(line: str, message: str) -> None:
    env = parse_env_text(f"X=1\n{line}\n")
    assert len(env.problems) == 1
    issue = env.problems[0]
    assert (issue.line, issue.severity, issue.key) == (2, "error", "A")
    assert message in issue.message
    assert "A" not in env.values  # a broken value is not guessed


def test_stray_trailing_quote_is_a_warning() -> None:
    env = parse_env_text("A=abc'\n")
    assert [(i.line, i.severity) for i in env.problems] == [(1, "warning")]
    assert env.values["A"] == "abc'"


def test_duplicate_keys_name_both_lines() -> None:
    env = parse_env_text("LITELLM_PORT=4000\nX=1\nLITELLM_PORT=4001\nX=1\n")
    by_key = {i.key: i for i in env.problems}
    assert by_key["LITELLM_PORT"].severity == "error"
    assert "lines 1 and 3" in by_key["LITELLM_PORT"].message
    assert by_key["X"].severity == "warning"  # same value twice: harmless but untidy
    assert env.values["LITELLM_PORT"] == "4001"  # last wins, like compose
    assert env.lines["LITELLM_PORT"] == 3


def test_missing_file(tmp_path: Path) -> None:
    env = load_env_file(tmp_path / ".env")
    result = settings.evaluate(env, SPEC)
    assert result.state is State.FAIL
    assert result.summary.endswith(".env not found")
    assert "make init" in result.hint


# --- the settings checks ------------------------------------------------------------------------


def test_good_env_passes() -> None:
    result = evaluate_text(render(good_values()))
    assert result.state is State.OK, result.details
    assert "7 ports distinct" in result.summary


def test_syntax_problems_fail_the_hop_with_line_numbers() -> None:
    result = evaluate_text(render(good_values(), "BROKEN LINE\nQ='open\n"))
    assert result.state is State.FAIL
    text = details(result)
    assert f"line {len(good_values()) + 1}: no '='" in text
    assert f"line {len(good_values()) + 2}: Q: unbalanced quotes" in text
    assert result.hint.startswith("edit line")


def test_missing_required_key() -> None:
    values = good_values()
    del values["CLICKHOUSE_READER_PASSWORD"]
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    assert "CLICKHOUSE_READER_PASSWORD is missing" in details(result)
    assert result.hint == "set CLICKHOUSE_READER_PASSWORD in .env (see .env.example)"


def test_empty_values() -> None:
    values = good_values()
    values["LITELLM_MASTER_KEY"] = ""
    values["OTEL_SERVICE_NAME"] = ""
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    text = details(result)
    line = list(values).index("LITELLM_MASTER_KEY") + 1
    assert f"✗ line {line}: LITELLM_MASTER_KEY is empty" in text
    assert "! line" in text and "OTEL_SERVICE_NAME is empty (its default applies)" in text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLICKHOUSE_ADMIN_PASSWORD", "CHANGEME"),
        ("CLICKHOUSE_WRITER_PASSWORD", "changeme"),
        ("LITELLM_MASTER_KEY", "sk-1234"),
        ("LITELLM_MASTER_KEY", "sk-CHANGEME"),
        ("CLICKHOUSE_READER_PASSWORD", "password"),
        ("CLICKHOUSE_READER_PASSWORD", "clickhouse"),
        ("CLICKHOUSE_ADMIN_PASSWORD", "admin"),
    ],
)
def test_placeholders_and_well_known_secrets_fail(key: str, value: str) -> None:
    values = good_values()
    values[key] = value
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    assert f"{key} is still a placeholder or a well-known default" in details(result)
    assert result.hint.startswith(f"set {key} in .env")
    assert value not in result.summary  # secrets are not echoed


def test_master_key_needs_the_sk_prefix() -> None:
    values = good_values()
    values["LITELLM_MASTER_KEY"] = "a-long-random-key-without-prefix"
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    assert "must start with 'sk-'" in details(result)
    assert "sk-$(openssl rand -hex 24)" in result.hint


def test_provider_key_placeholder_warns_unless_live() -> None:
    values = good_values()
    values["OPENROUTER_API_KEY"] = "CHANGEME"
    assert evaluate_text(render(values)).state is State.WARN
    assert evaluate_text(render(values), live=True).state is State.FAIL


@pytest.mark.parametrize("bad", ["abc", "0", "65536", "-1", "4000.5"])
def test_bad_port(bad: str) -> None:
    values = good_values()
    values["LITELLM_PORT"] = bad
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    line = list(values).index("LITELLM_PORT") + 1
    assert f"line {line}: LITELLM_PORT is not a port number 1-65535" in details(result)
    assert "LITELLM_PORT=4000" in result.hint


def test_ports_must_be_distinct() -> None:
    values = good_values()
    values["CLICKHOUSE_HTTP_PORT"] = values["LITELLM_PORT"]
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    assert f"LITELLM_PORT and CLICKHOUSE_HTTP_PORT all use port {values['LITELLM_PORT']}" in (
        details(result)
    )


def test_missing_port_is_only_a_warning_natively() -> None:
    values = good_values()
    del values["CLICKHOUSE_TCP_PORT"]  # the native harness has no ClickHouse TCP port
    assert evaluate_text(render(values)).state is State.FAIL
    assert evaluate_text(render(values), native=True).state is State.WARN


def test_bind_address_and_workers_are_validated() -> None:
    values = good_values()
    values["BIND_ADDRESS"] = "localhost:80"
    values["LITELLM_NUM_WORKERS"] = "0"
    text = details(evaluate_text(render(values)))
    assert "BIND_ADDRESS is not an IP address" in text
    assert "LITELLM_NUM_WORKERS must be a whole number >= 1" in text


def test_names_fixed_by_the_stack_fail_when_changed() -> None:
    values = good_values()
    values["CLICKHOUSE_READER_USER"] = "reader"
    result = evaluate_text(render(values))
    assert result.state is State.FAIL
    assert "otel-users.xml defines this user name as 'otel_reader'" in details(result)


def test_unknown_keys_are_listed_as_possible_typos() -> None:
    result = evaluate_text(render(good_values(), "LITELM_PORT=4000\nCOMPOSE_PROJECT_NAME=x\n"))
    assert result.state is State.OK
    assert "not in test (typo?): LITELM_PORT" in details(result)


# --- preflight: ports free on BIND_ADDRESS --------------------------------------------------------


def test_preflight_passes_on_free_ports() -> None:
    result = evaluate_text(render(good_values()), preflight=True, host="127.0.0.1")
    assert result.state is State.OK, result.details
    assert "ports free on 127.0.0.1" in result.summary


def test_preflight_fails_on_a_port_in_use(busy_port: int) -> None:
    values = good_values()
    values["LITELLM_PORT"] = str(busy_port)
    result = evaluate_text(render(values), preflight=True, host="127.0.0.1")
    assert result.state is State.FAIL
    assert f"LITELLM_PORT={busy_port} is already in use on 127.0.0.1" in details(result)
    assert f"ss -ltnp 'sport = :{busy_port}'" in result.hint
    # Without --preflight the same file passes: ports are only bound before `make up`.
    assert evaluate_text(render(values)).state is State.OK


def test_preflight_accepts_ports_of_the_running_stack(busy_port: int) -> None:
    values = good_values()
    values["LITELLM_PORT"] = str(busy_port)
    result = evaluate_text(
        render(values), preflight=True, host="127.0.0.1", owned_ports=[busy_port]
    )
    assert result.state is State.OK
    assert "in use by this stack" in details(result)


def test_preflight_function_and_cli(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    values = good_values()
    path = write_env(tmp_path, render(values))
    assert settings.preflight(path, root=tmp_path).state is State.OK
    assert main(["--preflight", "--native", "--env-file", str(path)]) == 0

    values["OTEL_COLLECTOR_METRICS_PORT"] = str(busy_port)
    write_env(tmp_path, render(values))
    assert settings.preflight(path, root=tmp_path).state is State.FAIL
    capsys.readouterr()
    assert main(["--preflight", "--native", "--json", "--env-file", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [h["name"] for h in doc["hops"]] == ["settings"]
    assert doc["hops"][0]["state"] == "fail"
    assert f"OTEL_COLLECTOR_METRICS_PORT={busy_port} is already in use" in "\n".join(
        doc["hops"][0]["details"]
    )


@pytest.mark.parametrize(
    ("engine", "compose", "state"),
    [
        ("20.10.24+dfsg1", "2.40.3", State.OK),  # Debian 12's engine, the oldest supported
        ("28.2.2", "v2.17.0", State.OK),  # the base files alone
        ("28.2.2", "2.16.0", State.FAIL),
        ("19.03.15", "2.40.3", State.FAIL),
        ("24.0.7", "2.12.2", State.FAIL),
        ("dev", "2.40.3", State.WARN),
    ],
)
def test_preflight_judges_engine_and_compose_versions(
    engine: str, compose: str, state: State
) -> None:
    findings = settings.check_engine(engine, compose)
    assert worst([State.OK, *(f.state for f in findings)]) is state, findings
    if state is State.FAIL:
        assert all(f.hint.startswith("upgrade") for f in findings if f.state is State.FAIL)


# Each overlay's own file, and the oldest Compose that reads it (COMPOSE_FEATURES: the first
# docker/compose release whose compose-go has the feature).
OVERLAY_MINIMUM = {
    "docker-compose.yml": (2, 17, 0),
    "langfuse/compose.yaml": (2, 17, 0),
    "agentops/compose.yaml": (2, 17, 0),
    "loadbalancer/compose.yaml": (2, 19, 0),  # ports: !reset []
    "grafana/compose.yaml": (2, 20, 0),  # depends_on required: false
    "clickhouse/external.yaml": (2, 24, 4),  # depends_on: !override
}


@pytest.mark.parametrize("overlay", sorted(OVERLAY_MINIMUM))
def test_each_overlay_names_the_compose_it_needs(overlay: str) -> None:
    files = compose_files(REPO, f"docker-compose.yml:{overlay}")
    minimum, reasons = settings.compose_minimum(files, REPO)
    assert minimum == OVERLAY_MINIMUM[overlay], reasons
    assert all(reason.startswith(overlay) for reason in reasons), reasons


def test_preflight_says_which_overlay_needs_a_newer_compose() -> None:
    files = compose_files(REPO, "docker-compose.yml:clickhouse/external.yaml")
    needs = settings.compose_minimum(files, REPO)
    findings = settings.check_engine("24.0.7", "v2.24.3", needs)
    assert [f.state for f in findings] == [State.FAIL]
    assert "older than 2.24.4: clickhouse/external.yaml uses the !override tag" in (
        findings[0].summary
    )
    assert settings.check_engine("24.0.7", "2.24.4", needs) == []
    # Without that overlay, the same Compose is fine.
    base = settings.compose_minimum(compose_files(REPO, None), REPO)
    assert settings.check_engine("24.0.7", "2.17.3", base) == []


# --- where the key list comes from --------------------------------------------------------------


def test_key_spec_from_env_example(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(
        "# header\nLITELLM_PORT=4000\nMY_SECRET=CHANGEME # CHANGEME\nNAME=x\n"
        "# OPTIONAL_IMAGE=\n# LANGFUSE_SECRET_KEY=CHANGEME\nLANGFUSE_PUBLIC_KEY=CHANGEME\n"
    )
    spec = load_key_spec(tmp_path)
    assert spec.source == ".env.example"
    assert spec.required() == ["LITELLM_PORT", "MY_SECRET"]  # overlay keys need the overlay
    assert spec.required(frozenset({"langfuse"})) == [
        "LITELLM_PORT",
        "MY_SECRET",
        "LANGFUSE_PUBLIC_KEY",
    ]
    assert "OPTIONAL_IMAGE" in spec.keys  # commented-out keys are known, never required
    assert spec.default("NAME") == "x"
    assert spec.default("MY_SECRET") is None  # an example secret is never a default


def test_key_spec_falls_back_to_the_contract(tmp_path: Path) -> None:
    spec = load_key_spec(tmp_path)
    assert spec.source == "built-in list"
    assert set(spec.required()) == {
        *PORT_KEYS,
        "LITELLM_MASTER_KEY",
        "CLICKHOUSE_ADMIN_PASSWORD",
        "CLICKHOUSE_WRITER_PASSWORD",
        "CLICKHOUSE_READER_PASSWORD",
    }


def test_repo_env_example_parses_cleanly_and_covers_the_contract() -> None:
    example = load_env_file(ROOT / ".env.example")
    assert [i for i in example.problems if i.severity == "error"] == []
    spec = load_key_spec(ROOT)
    assert set(load_key_spec(Path("/nonexistent")).required()) <= set(spec.required())
    # Copying the example without editing it must fail: its secrets are placeholders.
    result = settings.evaluate(example, spec)
    assert result.state is State.FAIL
    assert "LITELLM_MASTER_KEY is still a placeholder" in details(result)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml"], "CLICKHOUSE_URL is empty"),
        (["CLICKHOUSE_URL=https://ch.example:8443"], "still start its own ClickHouse"),
        (
            [
                "COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml:langfuse/compose.yaml",
                "CLICKHOUSE_URL=https://ch.example:8443",
            ],
            "the langfuse overlay reads the bundled ClickHouse",
        ),
        (
            [
                "COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml",
                "CLICKHOUSE_URL=ftp://ch.example",
            ],
            "is not an http(s) URL",
        ),
        (
            [
                "COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml",
                "CLICKHOUSE_URL=https://ch.example:8443",
                "CLICKHOUSE_CA_FILE=./no-such-ca.pem",
            ],
            "is not a file",
        ),
    ],
)
def test_external_clickhouse_settings_are_checked_together(
    lines: list[str], expected: str, tmp_path: Path
) -> None:
    env = parse_env_text("\n".join(lines) + "\n")
    overlays = enabled_overlays(env.values.get("COMPOSE_FILE"))
    [finding] = settings.check_clickhouse_endpoint(env, overlays, tmp_path)
    assert finding.state is State.FAIL and expected in finding.summary, finding


def test_external_clickhouse_with_a_ca_file_passes(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    env = parse_env_text(
        "COMPOSE_FILE=docker-compose.yml:clickhouse/external.yaml\n"
        "CLICKHOUSE_URL=https://ch.example:8443\nCLICKHOUSE_CA_FILE=./ca.pem\n"
    )
    overlays = enabled_overlays(env.values.get("COMPOSE_FILE"))
    assert settings.check_clickhouse_endpoint(env, overlays, tmp_path) == []


def test_external_clickhouse_url_forms(tmp_path: Path) -> None:
    from scripts.clickhouse_schema.endpoint import external_endpoint

    assert external_endpoint({}, tmp_path) is None
    cloud = external_endpoint({"CLICKHOUSE_URL": "https://abc.clickhouse.cloud"}, tmp_path)
    assert cloud is not None and (cloud.host, cloud.port, cloud.secure) == (
        "abc.clickhouse.cloud",
        8443,
        True,
    )
    assert cloud.client_options() == {"host": "abc.clickhouse.cloud", "port": 8443, "secure": True}
    # Several hosts, as the exporter accepts for failover: scripts talk to the first.
    pair = external_endpoint({"CLICKHOUSE_URL": "https://ch1:9443,ch2:9443"}, tmp_path)
    assert pair is not None and (pair.host, pair.port) == ("ch1", 9443)
    plain = external_endpoint({"CLICKHOUSE_URL": "http://10.0.0.5"}, tmp_path)
    assert plain is not None and (plain.port, plain.secure, plain.url) == (
        8123,
        False,
        "http://10.0.0.5:8123",
    )
