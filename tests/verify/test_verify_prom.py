"""The Prometheus text parser `make verify` reads the collector's own metrics with."""

from __future__ import annotations

import pytest

from scripts.verify.prom import PromParseError, metric_by_label, metric_sum, parse_prometheus_text

# --- Prometheus text (captured from otelcol 0.161 with an exporter pointed at a dead endpoint) ---

COLLECTOR_METRICS = r"""
# HELP otelcol_exporter_enqueue_size_bytes Number of bytes in the request added to the sending queue. Only available on detailed level. [Development]
# TYPE otelcol_exporter_enqueue_size_bytes histogram
otelcol_exporter_enqueue_size_bytes_bucket{exporter="otlphttp/dead",le="128"} 3
otelcol_exporter_enqueue_size_bytes_bucket{exporter="otlphttp/dead",le="+Inf"} 3
otelcol_exporter_enqueue_size_bytes_sum{exporter="otlphttp/dead"} 333
otelcol_exporter_enqueue_size_bytes_count{exporter="otlphttp/dead"} 3
# HELP otelcol_exporter_queue_capacity Fixed capacity of the retry queue (in batches). [Alpha]
# TYPE otelcol_exporter_queue_capacity gauge
otelcol_exporter_queue_capacity{data_type="traces",exporter="otlphttp/dead"} 1000
# HELP otelcol_exporter_queue_size Current size of the retry queue (in batches). [Alpha]
# TYPE otelcol_exporter_queue_size gauge
otelcol_exporter_queue_size{data_type="traces",exporter="otlphttp/dead"} 0
# HELP otelcol_exporter_send_failed_spans Number of spans in failed attempts to send to destination. At detailed telemetry level, includes attributes: error.type (semantic convention), error.permanent. [Alpha]
# TYPE otelcol_exporter_send_failed_spans counter
otelcol_exporter_send_failed_spans{error_permanent="false",error_type="_OTHER",exporter="otlphttp/dead",server_address="127.0.0.1",server_port="1",url_path="/v1/traces"} 3
# HELP otelcol_exporter_sent_spans Number of spans successfully sent to destination. [Alpha]
# TYPE otelcol_exporter_sent_spans counter
otelcol_exporter_sent_spans{exporter="debug"} 3
otelcol_exporter_sent_spans{exporter="otlphttp/dead",server_address="127.0.0.1",server_port="1",url_path="/v1/traces"} 0
# HELP otelcol_process_uptime Uptime of the process [Alpha]
# TYPE otelcol_process_uptime counter
otelcol_process_uptime 5.032206655
# HELP otelcol_receiver_accepted_spans Number of spans successfully pushed into the pipeline. [Alpha]
# TYPE otelcol_receiver_accepted_spans counter
otelcol_receiver_accepted_spans{receiver="otlp",transport="http"} 3
# HELP otelcol_receiver_refused_spans Number of spans that could not be pushed into the pipeline. [Alpha]
# TYPE otelcol_receiver_refused_spans counter
otelcol_receiver_refused_spans{receiver="otlp",transport="http"} 0
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_instance_id="a93a30ff-fdc3-4e94-8247-5bf464395aa2",service_name="otelcol",service_version="0.161.0"} 1
"""  # noqa: E501 - verbatim scrape


def test_prometheus_parser_on_real_collector_text() -> None:
    samples = parse_prometheus_text(COLLECTOR_METRICS)
    assert len(samples) == 13
    assert metric_sum(samples, "otelcol_receiver_accepted_spans") == 3
    assert metric_sum(samples, "otelcol_exporter_sent_spans") == 3  # summed over exporters
    assert metric_sum(samples, "otelcol_exporter_send_failed_spans") == 3
    assert metric_sum(samples, "otelcol_exporter_queue_size") == 0
    assert metric_sum(samples, "otelcol_process_uptime") == pytest.approx(5.032206655)
    assert metric_sum(samples, "otelcol_receiver_failed_spans") is None  # absent
    failed = metric_by_label(samples, "otelcol_exporter_send_failed_spans", "exporter")
    assert failed == {"otlphttp/dead": 3}
    bucket = next(s for s in samples if s.labels.get("le") == "+Inf")
    assert bucket.name == "otelcol_exporter_enqueue_size_bytes_bucket" and bucket.value == 3
    info = samples[-1]
    assert info.labels["service_version"] == "0.161.0"


def test_prometheus_parser_total_suffix_escapes_and_timestamps() -> None:
    text = (
        'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 7 1700000000000\n'
        'otelcol_receiver_accepted_spans_total{receiver="a\\"b,c}",transport="x\\\\y\\n"} 2\n'
        "otelcol_exporter_queue_size NaN\n"
        "otelcol_weird_gauge +Inf\n"
    )
    samples = parse_prometheus_text(text)
    assert metric_sum(samples, "otelcol_receiver_accepted_spans") == 9
    assert samples[1].labels == {"receiver": 'a"b,c}', "transport": "x\\y\n"}
    assert metric_sum(samples, "otelcol_exporter_queue_size") is None  # NaN is not a value
    assert metric_sum(samples, "otelcol_weird_gauge") == float("inf")


@pytest.mark.parametrize(
    "bad", ['metric{label="open 1\n', 'metric{="x"} 1\n', "metric\n", "{} 1\n"]
)
def test_prometheus_parser_rejects_garbage_with_line_number(bad: str) -> None:
    with pytest.raises(PromParseError, match=r"^line 2: "):
        parse_prometheus_text("# ok\n" + bad)
