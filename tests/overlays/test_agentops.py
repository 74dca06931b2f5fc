"""The AgentOps overlay on the real collector, fed by the real proxy: each LLM span reaches an
AgentOps receiver that verifies the HS256 token and files it under the token's project, with
the attribute names AgentOps reads; ClickHouse's copy keeps the standard names; the token file
is re-read without a restart; a refusing or stalled AgentOps costs ClickHouse nothing."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_otel.contract import (
    GEN_AI_USAGE_COST_AMOUNT,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from scripts import agentops_token
from scripts.native_stack import collector as collector_support
from scripts.native_stack.harness import PROVIDER_MODEL, NativeStack, StackOptions
from scripts.native_stack.paths import COLLECTOR_CONFIGS, COLLECTOR_DIR
from tests.conftest import require_collector
from tests.doubles.fake_agentops import FakeAgentOps, FiledSpan
from tests.support.traceparent import traceparent

SECRET = secrets.token_hex(32)
AGENTOPS_CONFIG = COLLECTOR_DIR / "config.agentops.yaml"
# The AgentOps slot (third file) filled, as agentops/compose.yaml's mount does.
WITH_AGENTOPS = (*COLLECTOR_CONFIGS[:2], AGENTOPS_CONFIG, *COLLECTOR_CONFIGS[3:])


class AgentOpsStack(NativeStack):
    def __init__(self, workdir: Path, fake: FakeAgentOps, token_dir: Path) -> None:
        super().__init__(workdir, StackOptions())
        self.fake, self.token_dir = fake, token_dir

    def collector_env(self) -> dict[str, str]:
        return {
            **super().collector_env(),
            "AGENTOPS_OTLP_ENDPOINT": self.fake.endpoint,
            "AGENTOPS_TOKEN_FILE": str(self.token_dir / "token"),
        }


@pytest.fixture(scope="module")
def agentops() -> Iterator[FakeAgentOps]:
    with FakeAgentOps(SECRET) as fake:
        yield fake


@pytest.fixture(scope="module")
def agentops_stack(
    tmp_path_factory: pytest.TempPathFactory, agentops: FakeAgentOps
) -> Iterator[AgentOpsStack]:
    require_collector()
    token_dir = tmp_path_factory.mktemp("agentops-secrets")
    agentops_token.write_token(token_dir, agentops_token.mint(SECRET, "project-a", 30))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(collector_support, "COLLECTOR_CONFIGS", WITH_AGENTOPS)
        with AgentOpsStack(tmp_path_factory.mktemp("agentops"), agentops, token_dir) as running:
            yield running


def call(stack: NativeStack, content: str = "hi") -> str:
    trace_id = secrets.token_hex(16)
    response = stack.chat(PROVIDER_MODEL, content, headers={"traceparent": traceparent(trace_id)})
    assert response.status_code == 200, response.text
    return trace_id


def llm_in(trace_id: str) -> object:
    return lambda f: f.span.trace_id == trace_id and f.span.is_llm


def test_spans_filed_under_the_tokens_project_with_agentops_names(
    agentops_stack: AgentOpsStack, agentops: FakeAgentOps
) -> None:
    trace_id = call(agentops_stack, "[[cached=64]] [[reasoning=8]] hi")
    (filed,) = agentops.wait_for(llm_in(trace_id))
    assert filed.project_id == "project-a"
    a = filed.span.attributes
    assert a["gen_ai.usage.prompt_tokens"] == a[GEN_AI_USAGE_INPUT_TOKENS]
    assert a["gen_ai.usage.completion_tokens"] == a[GEN_AI_USAGE_OUTPUT_TOKENS]
    assert a["gen_ai.usage.total_cost"] == a[GEN_AI_USAGE_COST_AMOUNT]
    assert a["gen_ai.usage.cache_read_input_tokens"] == 64
    assert a["gen_ai.usage.reasoning_tokens"] == 8
    # ClickHouse's copy (the file exporter beside it) keeps the standard names only.
    stored = agentops_stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)[
        0
    ].attributes
    assert "gen_ai.usage.prompt_tokens" not in stored and "gen_ai.usage.total_cost" not in stored


def test_token_rotation_needs_no_restart(
    agentops_stack: AgentOpsStack, agentops: FakeAgentOps
) -> None:
    pid = (
        agentops_stack.collector.process.pid
        if agentops_stack.collector and agentops_stack.collector.process
        else None
    )
    agentops_token.write_token(
        agentops_stack.token_dir, agentops_token.mint(SECRET, "project-b", 30)
    )
    deadline = time.monotonic() + 30
    while True:  # the file watcher picks the new file up within moments
        trace_id = call(agentops_stack)
        filed: list[FiledSpan] = agentops.wait_for(llm_in(trace_id))
        if filed[0].project_id == "project-b" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert filed[0].project_id == "project-b"
    assert (
        agentops_stack.collector
        and agentops_stack.collector.process
        and agentops_stack.collector.process.pid == pid
    )


def test_a_token_signed_with_another_secret_is_refused(
    agentops_stack: AgentOpsStack, agentops: FakeAgentOps
) -> None:
    """Control: the receiver really verifies (and ClickHouse gets its copy regardless)."""
    before = len(agentops.rejected)
    agentops_token.write_token(
        agentops_stack.token_dir, agentops_token.mint(secrets.token_hex(32), "x", 30)
    )
    try:
        deadline = time.monotonic() + 20
        while len(agentops.rejected) == before and time.monotonic() < deadline:
            trace_id = call(agentops_stack)
            time.sleep(1)
        assert agentops.rejected[before:] and "InvalidSignatureError" in agentops.rejected
        agentops_stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)
    finally:
        agentops_token.write_token(
            agentops_stack.token_dir, agentops_token.mint(SECRET, "project-a", 30)
        )


def test_an_outage_at_agentops_costs_clickhouse_nothing(
    agentops_stack: AgentOpsStack, agentops: FakeAgentOps
) -> None:
    agentops.refusing = True
    agentops.stall_s = 15.0  # beyond the exporter's 10 s timeout
    try:
        delays = []
        for _ in range(4):
            started = time.monotonic()
            trace_id = call(agentops_stack)
            agentops_stack.wait_for_llm_spans(
                1, timeout=10, where=lambda s, t=trace_id: s.trace_id == t
            )
            delays.append(time.monotonic() - started)
        # Export delay (0.2 s here) + file flush: seconds, never the stalled exporter's timeout.
        assert max(delays) < 8, delays
    finally:
        agentops.stall_s, agentops.refusing = 0.0, False
    # And AgentOps gets the backlog once it answers again (its own queue retries).
    agentops.wait_for(llm_in(trace_id), timeout=60)


def test_minted_token_claims() -> None:
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    claims = agentops_token.claims_of(agentops_token.mint(SECRET, "proj", 10, now=now))
    assert claims["project_id"] == "proj" and claims["aud"] == "authenticated"
    assert claims["exp"] == int((now + dt.timedelta(days=10)).timestamp())


# ---- make verify: the AgentOps hop --------------------------------------------------------


@pytest.mark.parametrize(("days", "state"), [(30, "ok"), (3, "warn"), (-1, "fail")])
def test_hop_judges_the_token_expiry(tmp_path: Path, days: int, state: str) -> None:
    from scripts.verify.hops.agentops import token_state

    now = dt.datetime.now(dt.UTC)
    token = agentops_token.mint(SECRET, "p", 1, now=now + dt.timedelta(days=days - 1))
    got, what, hint = token_state(token, tmp_path / "token", now)
    assert got.value == state, what
    assert token not in what + hint and SECRET not in what + hint
    assert (hint == "") == (state == "ok")


def test_hop_without_a_token(tmp_path: Path) -> None:
    from scripts.verify.hops.agentops import token_state

    got, _, hint = token_state(None, tmp_path / "token", dt.datetime.now(dt.UTC))
    assert got.value == "fail" and "make agentops-token" in hint


def test_hop_against_the_running_collector(
    agentops_stack: AgentOpsStack, agentops: FakeAgentOps, tmp_path: Path
) -> None:
    """The hop reads the real collector's counters for the AgentOps exporter."""
    from scripts.envfile.parser import parse_env_text
    from scripts.envfile.spec import load_key_spec
    from scripts.native_stack.paths import REPO
    from scripts.verify.context import Context, Options
    from scripts.verify.hops import agentops as hop

    assert agentops_stack.collector is not None
    call(agentops_stack)
    agentops.wait_for(lambda f: True)
    env = (
        f"COMPOSE_FILE=docker-compose.yml:agentops/compose.yaml\n"
        f"OTEL_COLLECTOR_METRICS_PORT={agentops_stack.collector.ports.metrics}\n"
        f"AGENTOPS_TOKEN_DIR={agentops_stack.token_dir}\n"
    )
    ctx = Context(
        options=Options(native=True, native_reason="test", timeout_s=2, http_timeout_s=5),
        env=parse_env_text(env),
        spec=load_key_spec(REPO),
    )
    deadline = time.monotonic() + 20
    while True:  # the exporter's counters are scraped as they are (the batch flushes in 1 s)
        result = hop.run(ctx)
        if result.state.value == "ok" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.state.value == "ok", result
    assert "project project-a" in result.summary and "failed" in result.summary


# ---- the overlay, through compose's own loader ------------------------------------------------


def compose_model(tmp_path: Path, files: tuple[str, ...], **extra: str) -> dict[str, object]:
    from scripts.envfile.init import render
    from scripts.native_stack.compose_project import load_project
    from scripts.native_stack.paths import REPO

    text, _ = render((REPO / ".env.example").read_text())
    env_file = tmp_path / ".env"
    env_file.write_text(text + "".join(f"{k}={v}\n" for k, v in extra.items()))
    return load_project(env_file, files)


def test_overlay_fills_its_slot_and_mounts_the_token_directory(tmp_path: Path) -> None:
    model = compose_model(
        tmp_path,
        ("docker-compose.yml", "agentops/compose.yaml"),
        AGENTOPS_OTLP_ENDPOINT="http://agentops.internal:4318",
    )
    collector = model["services"]["otel-collector"]  # type: ignore[index]
    mounts = {v["target"]: v for v in collector["volumes"]}
    assert Path(mounts["/etc/otelcol/overlays/agentops.yaml"]["source"]) == AGENTOPS_CONFIG
    assert Path(mounts["/etc/otelcol/overlays/langfuse.yaml"]["source"]).name == "config.none.yaml"
    token_dir = mounts["/etc/otelcol/agentops"]
    assert token_dir["read_only"] is True and token_dir["source"].endswith("agentops/secrets")
    assert collector["environment"]["AGENTOPS_OTLP_ENDPOINT"] == "http://agentops.internal:4318"


def test_overlays_combine(tmp_path: Path) -> None:
    files = ("docker-compose.yml", "langfuse/compose.yaml", "agentops/compose.yaml")
    model = compose_model(tmp_path, files, AGENTOPS_OTLP_ENDPOINT="http://a:4318")
    mounts = {
        v["target"]: Path(v["source"]).name for v in model["services"]["otel-collector"]["volumes"]
    }  # type: ignore[index]
    assert mounts["/etc/otelcol/overlays/langfuse.yaml"] == "config.langfuse.yaml"
    assert mounts["/etc/otelcol/overlays/agentops.yaml"] == "config.agentops.yaml"


def test_overlay_refuses_a_missing_endpoint(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="AGENTOPS_OTLP_ENDPOINT"):
        compose_model(tmp_path, ("docker-compose.yml", "agentops/compose.yaml"))


def test_overlay_config_restates_the_base_extensions() -> None:
    import yaml

    base = yaml.safe_load(COLLECTOR_CONFIGS[0].read_text())["service"]
    overlay = yaml.safe_load(AGENTOPS_CONFIG.read_text())["service"]
    assert overlay["extensions"] == [*base["extensions"], "bearertokenauth/agentops"]
    pipeline = overlay["pipelines"]["traces/agentops"]
    # The base processors without dropping content, which arrives redacted when captured.
    content = base["pipelines"]["traces/content"]["processors"]
    redacted = [p for p in content if p not in ("filter/content-only", "transform/content-only")]
    assert pipeline["processors"] == [*redacted, "transform/agentops"]
    assert set(overlay["pipelines"]) == {"traces/agentops"}
