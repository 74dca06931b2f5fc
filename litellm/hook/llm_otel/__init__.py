"""OpenTelemetry for the LiteLLM proxy: one GenAI span and GenAI metrics per LLM call.

Started by `sitecustomize` (see ../sitecustomize.py); configured only by standard `OTEL_*`
variables. Modules: `contract` (every attribute, metric and scope name the hook emits),
`settings` (read and validate the environment), `providers` (SDK set-up), `attributes`
(LiteLLM logging payload -> GenAI semantic-convention attributes), `logger` (the LiteLLM
callback that emits spans and metrics), `fastapi_noise` (trim FastAPI's own spans),
`bootstrap` (decides whether this process is the gateway and wires it all).
"""

# The span contract's version (docs/CONTRACTS.md), sent as the instrumentation scope version:
# a minor bump adds a name, a major bump renames or removes one.
__version__ = "0.2.0"
