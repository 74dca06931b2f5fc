"""OpenTelemetry for the LiteLLM proxy: one GenAI span per client request for an LLM call.

Started by `sitecustomize` (see ../sitecustomize.py); configured only by standard `OTEL_*`
variables. Modules: `contract` (every attribute, metric and scope name the hook emits),
`settings` (read and validate the environment), `providers` (SDK set-up), `attributes`
(LiteLLM logging payload -> GenAI semantic-convention attributes), `attempts` (one record per
client request, whatever LiteLLM retried), `logger` (the LiteLLM callback that emits the span),
`health` (the hook's own metrics), `resilient_export` (holds spans through a collector outage),
`fastapi_telemetry` (turn FastAPI's own spans off),
`bootstrap` (decides whether this process is the gateway and wires it all).
"""

# The span contract's version (docs/CONTRACTS.md), sent as the instrumentation scope version:
# a minor bump adds a name, a major bump renames or removes one.
__version__ = "0.2.0"
