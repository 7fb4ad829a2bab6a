"""OpenTelemetry traces: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set, then configured by
the standard `OTEL_*` variables; the messaging spans of the outbox, the relay and the inbox.

A request's trace goes on through its events: the outbox write is a `create` span whose
context travels inside each CloudEvent (the distributed-tracing extension, `traceparent` and
`tracestate`, stored with the event in the outbox row), the relay's publish is a `send` span
in that trace, and each consumer's handling a `process` span in it too (the OpenTelemetry
messaging conventions). Nothing of OpenTelemetry is imported while tracing is off, and every
hook here then costs one test of a module global.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SUPPORTED_PROTOCOLS = ("http/protobuf",)

_tracer: Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    return bool(endpoint) and not disabled and exporter != "none"


def configure(service_name: str, version: str) -> bool:
    """Set up the tracer provider, the OTLP exporter and the instrumentations of aiohttp's
    server and client, SQLAlchemy and aiokafka, if the environment asks for traces.

    Call before any application is created: the aiohttp server's instrumentation replaces
    `web.Application` with a class that adds its middleware. `OTEL_SERVICE_NAME` and
    `OTEL_RESOURCE_ATTRIBUTES` win over the given name; the sampler, the exporter's endpoint,
    headers, timeout and compression come from their own `OTEL_*` variables."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in SUPPORTED_PROTOCOLS:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: traces are exported "
            f"as {', '.join(SUPPORTED_PROTOCOLS)} (OTLP over HTTP, port 4318 of a collector)"
        )
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, str] = {SERVICE_VERSION: version, "service.namespace": "sukverse"}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; what is given
    # here is merged over them, so a name set in the environment is left out above.
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AioHttpServerInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    AIOKafkaInstrumentor().instrument()
    # The instrumentation declares SQLAlchemy < 2.1 and, without skipping that check,
    # silently instruments nothing on 2.1; what it hooks (engine events) is unchanged.
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    _tracer = trace.get_tracer("sukverse")
    return True


def shutdown() -> None:
    """Export what is buffered, at exit."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    provider.shutdown()


def current_ids() -> tuple[str, str] | None:
    """The trace and span id of the current span, as hex, for log lines; None without one."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- messaging spans --------------------------------------------------------------------


def _messaging(operation: str, system: str, destination: str, **attributes: Any) -> dict[str, Any]:
    return {
        "messaging.system": system,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        **{key: value for key, value in attributes.items() if value is not None},
    }


@contextmanager
def creating(topic: str, *, count: int, system: str) -> Iterator[dict[str, str] | None]:
    """A `create` span for events written to the outbox; yields the trace context each
    event carries (its CloudEvents `traceparent` and `tracestate`), or None when off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import propagate, trace

    attributes = _messaging("create", system, topic, **{"messaging.batch.message_count": count})
    with _tracer.start_as_current_span(
        f"create {topic}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield {key: carrier[key] for key in (TRACEPARENT, TRACESTATE) if key in carrier} or None


def carried(payload: str | bytes) -> dict[str, str] | None:
    """The trace context an event's JSON carries, or None."""
    if _tracer is None:
        return None
    import orjson

    event = orjson.loads(payload)
    context = {key: event[key] for key in (TRACEPARENT, TRACESTATE) if key in event}
    return context or None


@contextmanager
def sending(
    topic: str, contexts: Iterable[Mapping[str, str] | None], *, system: str
) -> Iterator[list[Mapping[str, str] | None]]:
    """`send` spans for one publish: one in each trace that events of it came from (a publish
    of many requests' events appears in each of their traces), covering the publish. Yields,
    in the order given, the context each event should be sent with: its own trace's `send`
    span, or None."""
    given = list(contexts)
    if _tracer is None or not any(given):
        yield [None] * len(given)
        return
    from opentelemetry import propagate, trace

    spans: dict[str, tuple[Span, dict[str, str]]] = {}
    with ExitStack() as stack:
        for context in given:
            if not context or context[TRACEPARENT] in spans:
                continue
            parent = context[TRACEPARENT]
            count = sum(1 for other in given if other and other[TRACEPARENT] == parent)
            span = stack.enter_context(
                _tracer.start_as_current_span(
                    f"send {topic}",
                    context=propagate.extract(context),
                    kind=trace.SpanKind.PRODUCER,
                    attributes=_messaging(
                        "send", system, topic, **{"messaging.batch.message_count": count}
                    ),
                )
            )
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            spans[context[TRACEPARENT]] = (span, carrier)
        # Each span was made current in turn; the publish itself belongs to none of them.
        with _detached():
            yield [spans[context[TRACEPARENT]][1] if context else None for context in given]


@contextmanager
def _detached() -> Iterator[None]:
    from opentelemetry import context as otel_context

    token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


def processing(
    event_extra: Mapping[str, Any] | None,
    *,
    topic: str,
    consumer: str,
    event_id: str,
    event_type: str,
    system: str,
) -> AbstractContextManager[object]:
    """A `process` span for one event's handling, in the trace the event carries."""
    if _tracer is None:
        return nullcontext()
    from opentelemetry import propagate, trace

    extra = event_extra or {}
    carrier = {key: extra[key] for key in (TRACEPARENT, TRACESTATE) if key in extra}
    return _tracer.start_as_current_span(
        f"process {topic}",
        context=propagate.extract(carrier),
        kind=trace.SpanKind.CONSUMER,
        attributes=_messaging(
            "process",
            system,
            topic,
            **{
                "messaging.consumer.group.name": consumer,
                "messaging.message.id": event_id,
                "cloudevents.event_id": event_id,
                "cloudevents.event_type": event_type,
            },
        ),
    )


def span(name: str, **attributes: Any) -> AbstractContextManager[object]:
    """An internal span of our own (the operator's reconcile), or nothing when off."""
    if _tracer is None:
        return nullcontext()
    return _tracer.start_as_current_span(
        name, attributes={key: value for key, value in attributes.items() if value is not None}
    )
