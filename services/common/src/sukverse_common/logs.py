"""JSON log lines with request and trace ids, and no secrets."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from sukverse_common import tracing

SECRET_KEYS = frozenset(
    {
        "password",
        "new_password",
        "password_hash",
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
        "secret",
        "authorization",
        "cookie",
    }
)
REDACTED = "[redacted]"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def add_request_id(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Stamp every line logged while a request is handled with its id."""
    current = request_id.get()
    if current is not None:
        event.setdefault("request_id", current)
    return event


def add_trace_ids(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Stamp a line logged inside a traced span with its trace and span ids."""
    ids = tracing.current_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret, however deep."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: REDACTED if str(k).lower() in SECRET_KEYS else scrub(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        return value

    for key in list(event):
        event[key] = REDACTED if key.lower() in SECRET_KEYS else scrub(event[key])
    return event


class StdoutLogger:
    """Writes each line to the current `sys.stdout`, so loggers cached on first use keep
    working when stdout is replaced (a test's capture, a redirect)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        stream = sys.stdout
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = err = critical = exception = fatal = msg


class RefusedRequests(logging.Filter):
    """aiohttp logs a request it could not parse and answered 4xx (a NUL in a header, a
    malformed request line) as an error with a traceback. It is the client's error: one INFO
    line with the status and the parser's reason, never the offending bytes (a header can
    hold a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            reason = str(error.message).strip().splitlines()[0].rstrip(":") if error.message else ""
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "malformed request refused: %d %s", (error.code, reason[:200])
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and the standard library through one JSON renderer on stdout."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=StdoutLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's own access log is replaced by the access-log middleware.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, RefusedRequests) for f in server.filters):
        server.addFilter(RefusedRequests())
