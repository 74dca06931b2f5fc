"""A LiteLLM internal the hook reads that goes missing is reported once and counted, and the
payload the real proxy sends today has every one of them (tests/hook/test_gateway_spans.py
covers the latter through `no touchpoint missing`)."""

from __future__ import annotations

import logging

import pytest

from llm_otel.touchpoints import PAYLOAD_KEYS, Touchpoints


def test_a_missing_key_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    touchpoints = Touchpoints()
    payload = {key: 1 for key in PAYLOAD_KEYS if key != "startTime"}
    with caplog.at_level(logging.ERROR, logger="llm_otel"):
        for _ in range(3):
            touchpoints.check_payload(payload)
    assert touchpoints.missing == {"standard_logging_object.startTime": 3}
    assert [r.getMessage() for r in caplog.records].count(
        caplog.records[0].getMessage()
    ) == 1 and "startTime" in caplog.records[0].getMessage()


def test_a_complete_payload_reports_nothing() -> None:
    touchpoints = Touchpoints()
    touchpoints.check_payload({key: 1 for key in PAYLOAD_KEYS})
    assert not touchpoints.missing
