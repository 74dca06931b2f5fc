"""Start OpenTelemetry inside the LiteLLM proxy process.

Python imports `sitecustomize` at interpreter start-up from any directory on PYTHONPATH, so this
runs *inside* the proxy (and inside each spawned uvicorn worker), which an init script run
before the proxy never could. It must stay cheap and must never break the interpreter: every
other Python process started with this PYTHONPATH (healthchecks, pip, tests) runs it too.
"""

try:
    from llm_otel.bootstrap import bootstrap

    bootstrap()
except Exception as exc:  # noqa: BLE001 - a telemetry bug must never stop the gateway
    import sys

    print(f"llm_otel: telemetry OFF: start-up hook failed: {exc!r}", file=sys.stderr)
