"""Hop 3: the gateway rejects anonymous calls and accepts the master key from .env."""

from __future__ import annotations

import httpx

from ..context import Context
from ..hop import Hop
from ..httpcheck import client, error_message, unreachable
from ..results import Result

MOCK_MODEL = "verify-mock"  # the keyless verification model (docs/CONTRACTS.md)
WHY = (
    "the master key is what `make verify`, dashboards and your apps use; "
    "a mismatch means every call gets 401"
)


def key_mismatch_hint(ctx: Context) -> str:
    if ctx.options.native:
        return (
            "restart the proxy so it reads LITELLM_MASTER_KEY from the same .env this script reads"
        )
    return (
        "docker compose exec litellm printenv LITELLM_MASTER_KEY   # compare with .env; "
        "after editing .env: docker compose up -d litellm"
    )


def key_rejected(resp: httpx.Response) -> bool:
    """401/403, or LiteLLM without a database: it looks a non-master key up in the database and
    answers 400 "No connected db." (tests/pipeline/test_faults.py pins this behaviour)."""
    if resp.status_code in (401, 403):
        return True
    return resp.status_code == 400 and "no connected db" in resp.text.lower()


def run(ctx: Context) -> Result:
    key = ctx.setting("LITELLM_MASTER_KEY")
    url = ctx.url("LITELLM_PORT", "/v1/models")
    with client(ctx) as http:
        try:
            anon = http.get(url)
            authed = http.get(url, headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            return unreachable(exc, url, "litellm", "LITELLM_PORT", ctx.options.http_timeout_s)
    if anon.is_success:
        return Result.fail(
            f"the gateway serves GET /v1/models without a key (HTTP {anon.status_code})",
            hint="set LITELLM_MASTER_KEY in .env, then: docker compose up -d litellm",
            why="anyone who can reach the port can spend your provider credit and read your logs",
        )
    if key_rejected(authed):
        return Result.fail(
            f"the master key from .env is rejected (HTTP {authed.status_code})",
            [f"GET {url} with Authorization: Bearer $LITELLM_MASTER_KEY", error_message(authed)],
            hint=key_mismatch_hint(ctx),
            why=WHY,
        )
    if authed.status_code != 200:
        return Result.fail(
            f"GET /v1/models with the master key answered HTTP {authed.status_code}",
            [error_message(authed)],
            hint="make logs s=litellm",
        )
    models = _model_ids(authed)
    wanted = [MOCK_MODEL]
    if ctx.options.live:
        wanted.append(ctx.setting("OPENROUTER_MODEL_NAME"))
    missing = [m for m in wanted if m not in models]
    details = [f"models: {', '.join(models) or '(none)'}"]
    if anon.status_code != 401:
        details.append(f"without a key: HTTP {anon.status_code} (LiteLLM normally answers 401)")
    if missing:
        return Result.fail(
            f"model {', '.join(missing)} not configured ({len(models)} models listed)",
            details,
            hint="check model_list in litellm/config.yaml, then: make logs s=litellm",
            why="the next hop calls verify-mock; without it nothing can be traced end to end",
        )
    summary = f"{anon.status_code} without key, 200 with master key"
    summary += f"; {len(models)} models incl. {MOCK_MODEL}"
    if anon.status_code != 401:
        return Result.warn(summary, details, hint="make logs s=litellm")
    return Result.ok(summary, details)


def _model_ids(resp: httpx.Response) -> list[str]:
    try:
        data = resp.json().get("data", [])
    except (ValueError, AttributeError):
        return []
    return [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]


HOP = Hop(name="auth", title="Auth (master key)", run=run, needs=("gateway",), why=WHY)
