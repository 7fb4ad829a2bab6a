"""A real Jaeger v2 (hack/jaeger.sh) takes a trace as OTLP/JSON over HTTP and serves it back
from its query API; it listens on loopback only."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import psutil
import pytest

from conftest import Jaeger

pytestmark = pytest.mark.real


def attribute(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def span(
    trace_id: str, span_id: str, parent_id: str, name: str, kind: int, start: int, end: int
) -> dict[str, Any]:
    """One OTLP/JSON span: ids in hex, times as strings of nanoseconds."""
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [attribute("sukverse.test", name)],
        "status": {"code": 1},
    }


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for_trace(query_url: str, trace_id: str, spans: int, timeout: float = 30.0) -> Any:
    """The trace as GET /api/traces/ID returns it, once it holds `spans` spans."""
    deadline = time.monotonic() + timeout
    last = "nothing"
    while True:
        try:
            traces = get_json(f"{query_url}/api/traces/{trace_id}")["data"]
            if traces and len(traces[0]["spans"]) >= spans:
                return traces[0]
            last = f"{traces!r}"
        except urllib.error.HTTPError as error:  # 404 until the batch is stored
            last = f"HTTP {error.code}"
        if time.monotonic() > deadline:
            pytest.fail(f"trace {trace_id} not in Jaeger after {timeout:.0f} s: {last}")
        time.sleep(0.1)


def test_jaeger_stores_an_otlp_trace_and_serves_it_back(jaeger: Jaeger) -> None:
    service = f"sukverse-test-{uuid.uuid4().hex[:8]}"
    trace_id, parent_id, child_id = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    start = time.time_ns()
    spans = [
        span(trace_id, parent_id, "", "GET /courses", 2, start, start + 9_000_000),
        span(
            trace_id, child_id, parent_id, "SELECT courses", 3, start + 1_000_000, start + 5_000_000
        ),
    ]
    resource = {"attributes": [attribute("service.name", service)]}
    scope = {"name": "tests.test_jaeger"}
    body = {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]
    }
    request = urllib.request.Request(
        f"{jaeger.otlp_endpoint}/v1/traces",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        # No spans rejected: an empty or absent partialSuccess.
        assert not json.load(response).get("partialSuccess", {}).get("rejectedSpans")

    trace = wait_for_trace(jaeger.query_url, trace_id, spans=2)
    assert trace["traceID"] == trace_id
    by_name = {s["operationName"]: s for s in trace["spans"]}
    assert set(by_name) == {"GET /courses", "SELECT courses"}
    parent, child = by_name["GET /courses"], by_name["SELECT courses"]
    assert (parent["spanID"], child["spanID"]) == (parent_id, child_id)
    assert parent["references"] == []
    assert child["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent_id}
    ]
    assert child["startTime"] == (start + 1_000_000) // 1000  # microseconds
    assert child["duration"] == 4000
    for s in (parent, child):
        assert trace["processes"][s["processID"]]["serviceName"] == service

    assert service in get_json(f"{jaeger.query_url}/api/services")["data"]


def test_jaeger_listens_on_loopback_only(jaeger: Jaeger) -> None:
    pid = int((jaeger.directory / "jaeger.pid").read_text())
    sockets = psutil.Process(pid).net_connections(kind="inet")
    listening = [
        c for c in sockets if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM
    ]
    assert listening
    assert all(ipaddress.ip_address(c.laddr.ip).is_loopback for c in listening), listening
    # OTLP over HTTP and gRPC, the query API over HTTP and gRPC: nothing else.
    ports = {c.laddr.port for c in listening}
    assert len(ports) == 4, listening
    for url in (jaeger.otlp_endpoint, jaeger.query_url):
        assert int(url.rsplit(":", 1)[1]) in ports
