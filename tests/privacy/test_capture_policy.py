"""Which calls carry content (issue #26): everywhere, none, or named apps and keys only; read
from the environment the gateway container gets."""

from __future__ import annotations

import pytest

from llm_otel import contract
from llm_otel.attributes import from_payload
from llm_otel.capture import CapturePolicy
from llm_otel.settings import Settings

PAYLOAD = {
    "call_type": "acompletion",
    "model": "m",
    "status": "success",
    "messages": [{"role": "user", "content": "the prompt"}],
    "request_tags": ["app:crm"],
    "metadata": {"user_api_key_alias": "team-key", "user_api_key_hash": "h4sh"},
}


def _captured(policy: CapturePolicy | bool, **changes: object) -> bool:
    call = from_payload({**PAYLOAD, **changes}, None, capture_content=policy)
    assert call is not None
    return contract.GEN_AI_INPUT_MESSAGES in call.attributes


def test_settings_read_the_apps_and_keys() -> None:
    settings = Settings.from_env(
        {"LLM_OTEL_CAPTURE_CONTENT_APPS": " crm, ,support ", "LLM_OTEL_CAPTURE_CONTENT_KEYS": "k1"}
    )
    assert settings.capture == CapturePolicy(
        False, frozenset({"crm", "support"}), frozenset({"k1"})
    )
    assert settings.capture.describe() == "captured only for app crm, app support, key k1"
    assert Settings.from_env({}).capture.describe() == "not captured"
    assert not Settings.from_env({}).capture.anywhere
    # Only a policy naming apps or keys costs a look at each call.
    assert settings.capture.selective
    assert not CapturePolicy(everywhere=True, apps=frozenset({"crm"})).selective
    assert not CapturePolicy().selective


@pytest.mark.parametrize(
    ("policy", "changes", "captured"),
    [
        (False, {}, False),
        (True, {}, True),
        (CapturePolicy(), {}, False),
        (CapturePolicy(apps=frozenset({"crm"})), {}, True),
        (CapturePolicy(apps=frozenset({"crm"})), {"request_tags": ["app:billing"]}, False),
        (CapturePolicy(apps=frozenset({"crm"})), {"request_tags": []}, False),
        (CapturePolicy(keys=frozenset({"team-key"})), {"request_tags": []}, True),
        (CapturePolicy(keys=frozenset({"h4sh"})), {"request_tags": []}, True),
        (CapturePolicy(keys=frozenset({"other"})), {}, False),
        (CapturePolicy(everywhere=True), {"request_tags": []}, True),
    ],
)
def test_content_only_where_the_policy_allows(
    policy: CapturePolicy | bool, changes: dict[str, object], captured: bool
) -> None:
    assert _captured(policy, **changes) is captured
