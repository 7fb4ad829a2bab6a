"""Tracing is off unless the environment names an OTLP endpoint, and then costs nothing:
nothing of OpenTelemetry is imported and no event carries a trace context. (With tracing
on, tests/test_observability.py reads whole traces back from a real Jaeger.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sukverse_common import tracing
from sukverse_common.events.contracts import UserRegistered
from sukverse_common.events.envelope import CloudEvent


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_are_wanted_only_with_an_endpoint_and_the_sdk_on(
    environ: dict[str, str], wanted: bool
) -> None:
    assert tracing.wanted(environ) is wanted


def run_python(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_traced(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a process with tracing on, exporting to an endpoint nothing listens on: the
    spans are dropped at export, after the test."""
    return run_python(
        code,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_BSP_EXPORT_TIMEOUT="100",
        OTEL_EXPORTER_OTLP_TIMEOUT="0.1",
    )


def test_with_tracing_off_a_service_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    result = run_python(
        "import sys\n"
        "from sukverse_common import tracing\n"
        "from sukverse_workshop.app import create_app\n"
        "from sukverse_workshop.settings import WorkshopSettings\n"
        "assert tracing.configure('workshop', '0') is False\n"
        "create_app(WorkshopSettings())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n",
        SUKVERSE_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_unsupported_export_protocol_is_refused_with_the_reason() -> None:
    result = run_python(
        "from sukverse_common import tracing\ntracing.configure('workshop', '0')\n",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert result.returncode != 0
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported" in result.stderr
    assert "http/protobuf" in result.stderr


def test_with_tracing_on_an_event_written_in_a_span_carries_its_context() -> None:
    """The outbox's `create` span hands each event its W3C trace context, which the
    CloudEvent keeps as the distributed-tracing extension's attributes."""
    result = run_traced(
        "import uuid\n"
        "from sukverse_common import tracing\n"
        "from sukverse_common.events.contracts import UserRegistered\n"
        "from sukverse_common.events.envelope import CloudEvent\n"
        "assert tracing.configure('auth', '0')\n"
        "from datetime import UTC, datetime\n"
        "data = UserRegistered(user_id=uuid.uuid4(), email='a@example.com', full_name='A',"
        " roles=['student'], registered_at=datetime.now(UTC))\n"
        "with tracing.creating('sukverse.auth', count=1, system='kafka') as trace:\n"
        "    event = CloudEvent.wrap(data, subject='s', trace=trace)\n"
        "back = CloudEvent.from_json(event.to_bytes())\n"
        "print(back.__pydantic_extra__['traceparent'])\n"
        "print(tracing.carried(event.to_bytes().decode()) == trace)\n"
        "tracing.shutdown()\n",
    )
    assert result.returncode == 0, result.stderr
    traceparent, same = result.stdout.split()
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert len(trace_id) == 32 and int(trace_id, 16) and len(span_id) == 16
    assert same == "True"


def test_with_tracing_on_an_engine_is_traced_once_whatever_was_imported_first() -> None:
    """Tracing is configured before anything has imported SQLAlchemy's asyncio extension:
    the engine the kit makes still gets one tracer, so each statement runs its hooks once."""
    result = run_traced(
        "import sys\n"
        "from sukverse_common import tracing\n"
        "assert 'sqlalchemy.ext.asyncio' not in sys.modules\n"
        "assert tracing.configure('auth', '0')\n"
        "from sukverse_common.db import create_engine\n"
        "engine = create_engine('sqlite:///:memory:')\n"
        "print(len(engine.sync_engine.dispatch.before_cursor_execute))\n"
        "tracing.shutdown()\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


def test_with_tracing_on_a_statement_or_connection_is_a_span_only_inside_a_recording_one() -> None:
    """A statement or a connection taken in a kept trace is a span of it; one outside any
    trace starts none, and the pool's usage is not counted to a meter nothing exports."""
    result = run_traced(
        "import asyncio\n"
        "from sqlalchemy import text\n"
        "from sukverse_common import tracing\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "assert tracing.configure('auth', '0')\n"
        "spans = InMemorySpanExporter()\n"
        "trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(spans))\n"
        "from sukverse_common.db import create_engine\n"
        "async def main():\n"
        "    engine = create_engine('sqlite:///:memory:')\n"
        "    pool = engine.sync_engine.pool.dispatch\n"
        "    print(len(pool.checkout), len(pool.checkin))\n"
        "    async with engine.connect() as conn:\n"
        "        await conn.execute(text('SELECT 1'))\n"
        "    print([span.name for span in spans.get_finished_spans()])\n"
        "    with tracing.span('reconcile') as reconcile:\n"
        "        async with engine.connect() as conn:\n"
        "            await conn.execute(text('SELECT 2'))\n"
        "    await engine.dispose()\n"
        "    ids = reconcile.get_span_context()\n"
        "    for span in spans.get_finished_spans():\n"
        "        parent = span.parent and span.parent.span_id == ids.span_id\n"
        "        print(span.name, 'root' if span.parent is None else parent)\n"
        "asyncio.run(main())\n"
        "tracing.shutdown()\n",
    )
    assert result.returncode == 0, result.stderr
    usage, alone, *traced = result.stdout.splitlines()
    assert usage == "0 0"
    assert alone == "[]"
    assert sorted(traced) == ["SELECT :memory: True", "connect True", "reconcile root"]


def test_a_consumer_batch_is_one_process_span_per_kept_trace() -> None:
    """Three events of one kept trace are handled in one `process` span of it, an event of
    another in its own, one of a dropped trace in none, and one without a trace context in
    a trace of its own; each handler runs in its event's span, and a failure of the batch
    is recorded in every span."""
    result = run_traced(
        "import uuid\n"
        "from datetime import UTC, datetime\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "from sukverse_common import tracing\n"
        "from sukverse_common.events.contracts import UserRegistered\n"
        "from sukverse_common.events.envelope import CloudEvent\n"
        "assert tracing.configure('analytics', '0')\n"
        "spans = InMemorySpanExporter()\n"
        "trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(spans))\n"
        "data = UserRegistered(user_id=uuid.uuid4(), email='a@example.com', full_name='A',"
        " roles=['student'], registered_at=datetime.now(UTC))\n"
        "def event(flags, span_id):\n"
        "    parent = f'00-{span_id * 4}-{span_id * 2}-{flags}'\n"
        "    trace = None if flags is None else {'traceparent': parent}\n"
        "    return CloudEvent.wrap(data, subject='s', trace=trace)\n"
        "a, b, c = 'a1a2a3a4', 'b1b2b3b4', 'c1c2c3c4'\n"
        "batch = [event('01', a), event('01', b), event('01', a), event('00', c),"
        " event(None, a), event('01', a)]\n"
        "seen = []\n"
        "try:\n"
        "    with tracing.processing(batch, consumer='c', system='kafka') as contexts:\n"
        "        for within in contexts:\n"
        "            with within:\n"
        "                now = trace.get_current_span().get_span_context()\n"
        "                seen.append(format(now.span_id, '016x') if now.is_valid else None)\n"
        "        raise RuntimeError('the batch failed')\n"
        "except RuntimeError:\n"
        "    pass\n"
        "done = {format(s.context.span_id, '016x'): s for s in spans.get_finished_spans()}\n"
        "for n in (0, 1, 3, 4):\n"
        "    span = done.get(seen[n])\n"
        "    parent = format(span.parent.span_id, '016x') if span and span.parent else None\n"
        "    print(n, span and span.attributes.get('messaging.batch.message_count'),"
        " parent, span and span.status.status_code.name)\n"
        "print(seen[0] == seen[2] == seen[5], len(done))\n"
        "tracing.shutdown()\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "0 3 a1a2a3a4a1a2a3a4 ERROR",  # trace a's three events, under their creation
        "1 None b1b2b3b4b1b2b3b4 ERROR",  # trace b's one, with its own message id
        "3 None None None",  # the dropped trace's: no span
        "4 None None ERROR",  # no trace context: a trace of its own
        "True 3",
    ]


def test_with_tracing_off_an_event_carries_no_trace_context() -> None:
    data = UserRegistered(
        user_id=uuid.uuid4(),
        email="a@example.com",
        full_name="A",
        roles=["student"],
        registered_at=datetime.now(UTC),
    )
    with tracing.creating("sukverse.auth", count=1, system="in_process") as trace:
        event = CloudEvent.wrap(data, subject="s", trace=trace)
    assert trace is None
    assert b"traceparent" not in event.to_bytes()
    assert tracing.carried(event.to_bytes().decode()) is None


@pytest.mark.parametrize(
    ("header", "valid", "sampled"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True, True),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", True, False),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", True, True),
        # A later version may append fields; version 00 may not.
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", True, True),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", False, False),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False, False),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False, False),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False, False),
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", False, False),
        ("00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01", False, False),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1", False, False),
        ("00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01", False, False),
        ("garbage", False, False),
        ("", False, False),
    ],
)
def test_a_callers_traceparent_is_read_as_w3c_trace_context_says(
    header: str, valid: bool, sampled: bool
) -> None:
    parent = tracing._remote_parent({"traceparent": header, "tracestate": "vendor=1"})
    assert (parent is not None) is valid
    if parent is not None:
        assert parent.is_remote and parent.trace_flags.sampled is sampled
        assert format(parent.trace_id, "032x") == header.split("-")[1]
        assert parent.trace_state.get("vendor") == "1"
    assert tracing.sampled({"traceparent": header}) is (valid and sampled)
    if tracing._surely_dropped(header):  # the consumer's and the relay's one-look judgement
        assert not (valid and sampled)


def test_the_one_look_judgement_of_a_dropped_trace_agrees_with_the_whole_check() -> None:
    """Every flags byte, a few versions: what `_surely_dropped` calls dropped `sampled` never
    keeps, and every valid version-00 context of a dropped trace is judged so at one look."""
    ids = "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"
    for version in ("00", "01", "0f", "ff", "AB"):
        for bits in range(256):
            header = f"{version}-{ids}-{bits:02x}"
            for form in (header, header.upper(), f"{header}-extra"):
                if tracing._surely_dropped(form):
                    assert not tracing.sampled({"traceparent": form}), form
            if version == "00":
                assert tracing._surely_dropped(header) is (not bits & 1), header


def test_handling_an_event_of_a_dropped_trace_carries_only_its_trace_context_on() -> None:
    """The consumer's handling of an event whose trace was dropped makes no span, and the
    events it writes carry that trace's context (and none of the event's other extension
    attributes), so that their own consumers drop their work too."""
    result = run_traced(
        "import uuid\n"
        "from datetime import UTC, datetime\n"
        "from sukverse_common import tracing\n"
        "from sukverse_common.events.contracts import UserRegistered\n"
        "from sukverse_common.events.envelope import CloudEvent\n"
        "assert tracing.configure('analytics', '0')\n"
        "data = UserRegistered(user_id=uuid.uuid4(), email='a@example.com', full_name='A',"
        " roles=['student'], registered_at=datetime.now(UTC))\n"
        "parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00'\n"
        "event = CloudEvent.wrap(data, subject='s', trace={'traceparent': parent,"
        " 'tracestate': 'v=1'})\n"
        "event = CloudEvent.model_validate({**event.model_dump(), 'dlqreason': 'x'})\n"
        "with tracing.processing([event], consumer='c', system='kafka') as [within]:\n"
        "    with within as span, tracing.creating('sukverse.auth', count=1,"
        " system='kafka') as trace:\n"
        "        print(span, trace == {'traceparent': parent, 'tracestate': 'v=1'})\n"
        "with tracing.creating('sukverse.auth', count=1, system='kafka') as trace:\n"
        "    print(trace['traceparent'] != parent)\n"
        "tracing.shutdown()\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "True", "True"]


@pytest.mark.parametrize(
    ("value", "off"),
    [
        (None, {"aiokafka"}),
        ("", set()),
        ("sqlalchemy, aiohttp_client", {"sqlalchemy", "aiohttp-client"}),
        ("aiohttp-server,aiokafka", {"aiohttp-server", "aiokafka"}),
    ],
)
def test_instrumentations_are_turned_off_by_the_standard_variable(
    value: str | None, off: set[str]
) -> None:
    environ = {} if value is None else {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": value}
    assert tracing.disabled_instrumentations(environ) == off


def test_an_unknown_instrumentation_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="names redis: the instrumentations are"):
        tracing.disabled_instrumentations({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis"})


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_a_new_traces_fast_decision_is_the_ratio_samplers_own(rate: float) -> None:
    """A request that starts its trace is kept or dropped by the ratio sampler's rule
    applied directly; it must agree with the sampler, id by id."""
    import random

    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, TraceIdRatioBased

    for sampler in (TraceIdRatioBased(rate), ALWAYS_ON, ALWAYS_OFF):
        keeps = tracing._root_decision(sampler)
        ids = [random.getrandbits(128) or 1 for _ in range(20_000)]
        decided = [keeps(trace_id, "GET") for trace_id in ids]
        assert decided == [
            sampler.should_sample(None, trace_id, "GET").decision.is_sampled() for trace_id in ids
        ]
        kept = sum(decided) / len(ids)
        expected = {ALWAYS_ON: 1.0, ALWAYS_OFF: 0.0}.get(sampler, rate)
        assert abs(kept - expected) < 0.02, (sampler, kept)
