"""`make bench`: what telemetry costs the gateway, measured on the native harness.

Three proxies, one uvicorn worker each, all calling the same fake upstream (its own process,
fixed latency):
  off      OTEL_SDK_DISABLED=true
  hook     this repository's in-process hook (the default image)
  builtin  the hook off, LiteLLM's own `otel` callback on
Hook and builtin export to the same collector -> ClickHouse engine (`--receiver sink`: to a
receiver that keeps nothing).

(a) The proxy's own cost. The proxies run on one core and everything else (load generator,
upstream, collector, ClickHouse adapter) on the other, so no mode faces competition the others
do not (`--no-pin` turns that off). Rounds are interleaved (off, hook, builtin, off, ...); each
ratio against `off` is the mean of per-round ratios with a 95 % bootstrap interval over rounds.
Then the deterministic figure: instructions per request under valgrind (callgrind) over a fixed
sequence of requests, per mode.
(b) The pipeline's cost: collector and ClickHouse adapter CPU per stored LLM call.
Then spans stored per request, freshness (response -> row queryable in `llm_calls`), the
collector's own ingest (durable pipeline against the former batch-processor one) and the
report's queries over 1 M synthetic LLM spans.

Prints tables; the last line is one JSON object. Figures, never assertions: this is a
benchmark, not a test. Modules: stats (pure statistics), procstat (/proc, cores), load, proxies,
rounds, pipeline, instructions, sink, render, cli.
"""
