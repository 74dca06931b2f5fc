"""OpenTelemetry for the LiteLLM proxy: one GenAI span and GenAI metrics per LLM call.

Started by `sitecustomize` (see ../sitecustomize.py); configured only by standard `OTEL_*`
variables. Modules: `settings` (read and validate the environment), `providers` (SDK set-up),
`attributes` (LiteLLM logging payload -> GenAI semantic-convention attributes), `logger`
(the LiteLLM callback that emits spans and metrics), `fastapi_noise` (trim FastAPI's own
spans), `bootstrap` (decides whether this process is the gateway and wires it all).
"""

SCOPE_NAME = "llm_otel"
