"""Decide whether this interpreter is the gateway, then start telemetry in it.

`sitecustomize` runs in every Python process that has the hook on PYTHONPATH. Only the
`litellm` CLI process and the uvicorn workers it spawns are the gateway. Spawned workers start
as `python -c ...`, so the decision travels to them in an inherited variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from .settings import Settings, TelemetryConfigError

ACTIVE_ENV = "LLM_OTEL_ACTIVE"  # "1": start telemetry here; "0": parent decided it is off


def _say(message: str) -> None:
    print(f"llm_otel: {message}", file=sys.stderr, flush=True)


def is_gateway_process(argv: list[str], env: dict[str, str] | os._Environ[str]) -> bool:
    decided = env.get(ACTIVE_ENV)
    if decided is not None:
        return decided == "1"
    program = os.path.basename(argv[0]) if argv else ""
    return program == "litellm"


def bootstrap() -> None:
    if not is_gateway_process(sys.argv, os.environ):
        return
    try:
        settings = Settings.from_env()
    except TelemetryConfigError as exc:
        os.environ[ACTIVE_ENV] = "0"  # workers stay quiet: the reason is printed once, here
        _say(f"telemetry OFF: {exc}. The gateway keeps serving without telemetry.")
        return
    if settings.disabled:
        os.environ[ACTIVE_ENV] = "0"
        _say("telemetry OFF: OTEL_SDK_DISABLED=true")
        return
    first = os.environ.get(ACTIVE_ENV) != "1"
    os.environ[ACTIVE_ENV] = "1"
    try:
        _start(settings)
    except Exception as exc:  # noqa: BLE001 - never take the gateway down with telemetry
        _say(f"telemetry OFF: {type(exc).__name__}: {exc}. The gateway keeps serving.")
        return
    if first:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "(SDK default)")
        _say(
            f"telemetry ON: {settings.protocol} -> {endpoint}; "
            f"message content {settings.capture.describe()}"
        )


def _start(settings: Settings) -> None:
    import wrapt

    from .providers import install_providers

    install_providers(settings)

    logger: list[object] = []

    def on_litellm(module: ModuleType) -> None:
        from .logger import make_logger

        if not settings.capture.anywhere:
            # Until the proxy's config is loaded (content_guard decides then): nothing leaks.
            module.turn_off_message_logging = True  # type: ignore[attr-defined]  # litellm's global
        logger.append(make_logger(settings.capture))
        module.logging_callback_manager.add_litellm_callback(logger[0])

    def on_proxy_server(module: ModuleType) -> None:
        from .fastapi_telemetry import turn_off

        if not turn_off(getattr(module, "app", None)):
            _say("warning: this FastAPI's own telemetry could not be turned off")
        wrapt.wrap_function_wrapper(module, "ProxyConfig.load_config", _after_config_load)

    async def _after_config_load(
        wrapped: Callable[..., Awaitable[Any]],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = await wrapped(*args, **kwargs)
        try:
            import litellm

            from .content_guard import guard

            others = list(guard(litellm, logger[0] if logger else None, settings.capture_content))
            if others and not settings.capture_content:
                _say(f"message content redacted for LiteLLM's loggers: {', '.join(others)}")
        except Exception as exc:  # noqa: BLE001 - the switch simply stays on
            _say(f"message content stays redacted: {type(exc).__name__}: {exc}")
        return result

    wrapt.register_post_import_hook(_guarded(on_litellm), "litellm")
    wrapt.register_post_import_hook(_guarded(on_proxy_server), "litellm.proxy.proxy_server")


def _guarded(hook: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    """An exception in a post-import hook would fail `import litellm`; report it instead."""

    def run(module: ModuleType) -> None:
        try:
            hook(module)
        except Exception as exc:  # noqa: BLE001
            _say(f"telemetry partly OFF: {hook.__name__} failed: {type(exc).__name__}: {exc}")

    return run
