"""One signal of each kind as OTLP/JSON, and the rows the clickhouse exporter must write for it."""

from __future__ import annotations

import time
from typing import Any

from llm_otel import contract

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def otlp_payloads(now_ns: int, tag: str) -> dict[str, dict[str, Any]]:
    """One span, one log record, and a gauge, a sum and a histogram, as OTLP/JSON."""
    resource = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": "litellm-proxy"}},
            {"key": "test.run", "value": {"stringValue": tag}},
        ]
    }
    start, end = now_ns - 250_000_000, now_ns
    traces = {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [
                    {
                        "scope": {"name": contract.SCOPE_NAME, "version": contract.SCOPE_VERSION},
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "name": "chat verify-mock",
                                "kind": 3,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(end),
                                "attributes": [
                                    {
                                        "key": contract.GEN_AI_OPERATION_NAME,
                                        "value": {"stringValue": "chat"},
                                    },
                                    {
                                        "key": contract.GEN_AI_REQUEST_MODEL,
                                        "value": {"stringValue": "verify-mock"},
                                    },
                                    {
                                        "key": contract.GEN_AI_USAGE_INPUT_TOKENS,
                                        "value": {"intValue": "12"},
                                    },
                                    {
                                        "key": contract.GEN_AI_USAGE_COST_AMOUNT,
                                        "value": {"doubleValue": 0.00012},
                                    },
                                    {
                                        "key": contract.GEN_AI_REQUEST_STREAM,
                                        "value": {"boolValue": False},
                                    },
                                    {
                                        "key": contract.GEN_AI_RESPONSE_FINISH_REASONS,
                                        "value": {
                                            "arrayValue": {"values": [{"stringValue": "stop"}]}
                                        },
                                    },
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": str(start + 1000),
                                        "name": "first_token",
                                        "attributes": [{"key": "n", "value": {"intValue": "1"}}],
                                    }
                                ],
                                "status": {"code": 2, "message": "upstream failed"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    logs = {
        "resourceLogs": [
            {
                "resource": resource,
                "scopeLogs": [
                    {
                        "scope": {"name": contract.SCOPE_NAME},
                        "logRecords": [
                            {
                                "timeUnixNano": str(end),
                                "observedTimeUnixNano": str(end),
                                "severityNumber": 9,
                                "severityText": "INFO",
                                "body": {"stringValue": "llm call finished"},
                                "attributes": [
                                    {
                                        "key": contract.LITELLM_CALL_ID,
                                        "value": {"stringValue": "call-1"},
                                    }
                                ],
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    point_attrs = [{"key": contract.GEN_AI_REQUEST_MODEL, "value": {"stringValue": "verify-mock"}}]
    metrics = {
        "resourceMetrics": [
            {
                "resource": resource,
                "scopeMetrics": [
                    {
                        "scope": {"name": contract.SCOPE_NAME},
                        "metrics": [
                            {
                                "name": "llm.in_flight",
                                "unit": "1",
                                "gauge": {
                                    "dataPoints": [
                                        {
                                            "attributes": point_attrs,
                                            "timeUnixNano": str(end),
                                            "asDouble": 3.5,
                                        }
                                    ]
                                },
                            },
                            {
                                "name": "llm.requests",
                                "unit": "1",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "attributes": point_attrs,
                                            "startTimeUnixNano": str(start),
                                            "timeUnixNano": str(end),
                                            "asInt": "42",
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "llm.duration",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {
                                            "attributes": point_attrs,
                                            "startTimeUnixNano": str(start),
                                            "timeUnixNano": str(end),
                                            "count": "3",
                                            "sum": 1.5,
                                            "bucketCounts": ["1", "1", "1"],
                                            "explicitBounds": [0.1, 1.0],
                                            "min": 0.05,
                                            "max": 1.2,
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    return {"traces": traces, "logs": logs, "metrics": metrics}


def check_rows(rows: dict[str, list[tuple[Any, ...]]]) -> None:
    (span,) = rows["traces"]
    assert span[:4] == ("chat verify-mock", "Client", "litellm-proxy", contract.SCOPE_NAME)
    assert span[4] == {
        contract.GEN_AI_OPERATION_NAME: "chat",
        contract.GEN_AI_REQUEST_MODEL: "verify-mock",
        contract.GEN_AI_USAGE_INPUT_TOKENS: "12",
        contract.GEN_AI_USAGE_COST_AMOUNT: "0.00012",
        contract.GEN_AI_REQUEST_STREAM: "false",
        contract.GEN_AI_RESPONSE_FINISH_REASONS: '["stop"]',
    }
    assert span[5] == 250_000_000  # Duration in ns
    assert span[6:10] == ("Error", "upstream failed", TRACE_ID, SPAN_ID)
    assert span[10] == ["first_token"] and span[11] == [{"n": "1"}]
    assert abs(span[12] - time.time_ns()) < 600 * 10**9
    assert rows["trace_id_ts"] == [(TRACE_ID,)]  # the exporter's materialized view ran
    assert rows["logs"] == [
        (
            "llm call finished",
            "INFO",
            9,
            "litellm-proxy",
            {contract.LITELLM_CALL_ID: "call-1"},
            TRACE_ID,
            SPAN_ID,
        )
    ]
    assert rows["gauge"] == [("llm.in_flight", 3.5, {contract.GEN_AI_REQUEST_MODEL: "verify-mock"})]
    assert rows["sum"] == [("llm.requests", 42.0, True, 2)]
    assert rows["histogram"] == [("llm.duration", 3, 1.5, [1, 1, 1], [0.1, 1.0], 0.05, 1.2)]
