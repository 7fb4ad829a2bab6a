"""observability/otel-collector.yaml, run for real: the Jaeger v2 binary (an OpenTelemetry
Collector distribution) runs that very file as a plain collector, its listeners moved to free
loopback ports and its exporter aimed at a second Jaeger (the `jaeger` fixture) through
TRACES_BACKEND_ENDPOINT. A trace sent to it as OTLP/JSON arrives at that Jaeger without its
credentials, query strings cut off URLs, the cluster's name added and everything else intact."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from conftest import Jaeger, free_port

pytestmark = pytest.mark.real

CONFIG = Path(__file__).resolve().parents[1] / "observability" / "otel-collector.yaml"
JAEGER = Path(os.environ.get("SUKVERSE_CACHE", Path.home() / ".cache/sukverse")) / "bin/jaeger"
CLUSTER = "sukverse-test-cluster"

# Secrets that the span carries; none may reach the backend, in any form.
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"
SESSION = "session=7f3a9c0d2b-secret-session"
QUERY_TOKEN = "qs-token-5b1e0c"
CLIENT_SECRET = "client-secret-9d8c7b"
SECRETS = (BEARER, SESSION, QUERY_TOKEN, CLIENT_SECRET, "c2VjcmV0LXBheWxvYWQ")


@dataclass(frozen=True)
class Collector:
    otlp_http: str  # base URL of the OTLP/HTTP receiver
    health: str  # the health check's URL
    metrics: str  # the collector's own Prometheus metrics
    process: subprocess.Popen[bytes]
    log: Path


def loopback_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's configuration with its listen addresses (each on 0.0.0.0, as in a pod)
    moved to free ports on 127.0.0.1; nothing else changes. Also the ports chosen."""
    ports = {name: free_port() for name in ("grpc", "http", "health", "metrics")}
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    protocols["grpc"]["endpoint"] = f"127.0.0.1:{ports['grpc']}"
    protocols["http"]["endpoint"] = f"127.0.0.1:{ports['http']}"
    health = config["extensions"]["healthcheckv2"]
    assert health["endpoint"] == "0.0.0.0:13133"
    health["endpoint"] = f"127.0.0.1:{ports['health']}"
    [reader] = config["service"]["telemetry"]["metrics"]["readers"]
    prometheus = reader["pull"]["exporter"]["prometheus"]
    assert f"{prometheus['host']}:{prometheus['port']}" == "0.0.0.0:8888"
    prometheus.update(host="127.0.0.1", port=ports["metrics"])
    return config, ports


def answers(url: str, body: bytes | None = None) -> bool:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def collector(jaeger: Jaeger, tmp_path: Path) -> Iterator[Collector]:
    """The collector, ready: its health check answers and its OTLP/HTTP receiver takes an
    empty export. Stopped (SIGTERM, then SIGKILL) at the end."""
    config, ports = loopback_config(yaml.safe_load(CONFIG.read_text()))
    path = tmp_path / "otel-collector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    environment = {
        **os.environ,
        "TRACES_BACKEND_ENDPOINT": jaeger.otlp_endpoint,
        "K8S_CLUSTER_NAME": CLUSTER,
    }
    log = tmp_path / "collector.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(JAEGER), "--config", str(path)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    collector = Collector(
        otlp_http=f"http://127.0.0.1:{ports['http']}",
        health=f"http://127.0.0.1:{ports['health']}/",
        metrics=f"http://127.0.0.1:{ports['metrics']}/metrics",
        process=process,
        log=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not (
            answers(collector.health) and answers(f"{collector.otlp_http}/v1/traces", b"{}")
        ):
            if process.poll() is not None:
                pytest.fail(f"the collector exited ({process.returncode}):\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the collector was not ready in 30 s:\n{log.read_text()}")
            time.sleep(0.05)
        yield collector
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def value(attribute: Any) -> dict[str, Any]:
    if isinstance(attribute, list):
        return {"arrayValue": {"values": [value(item) for item in attribute]}}
    if isinstance(attribute, int):
        return {"intValue": str(attribute)}
    return {"stringValue": attribute}


def attributes(**pairs: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": value(v)} for key, v in pairs.items()]


def post_trace(otlp_http: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{otlp_http}/v1/traces",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert not json.load(response).get("partialSuccess", {}).get("rejectedSpans")


def wait_for_trace(query_url: str, trace_id: str, spans: int, timeout: float = 30.0) -> Any:
    """The trace as the backend's GET /api/traces/ID returns it, once it holds `spans` spans."""
    deadline = time.monotonic() + timeout
    last = "nothing"
    while True:
        try:
            with urllib.request.urlopen(f"{query_url}/api/traces/{trace_id}", timeout=5) as r:
                traces = json.load(r)["data"]
            if traces and len(traces[0]["spans"]) >= spans:
                return traces[0]
            last = repr(traces)
        except urllib.error.HTTPError as error:  # 404 until both batches are through
            last = f"HTTP {error.code}"
        if time.monotonic() > deadline:
            pytest.fail(f"trace {trace_id} not in the backend after {timeout:.0f} s: {last}")
        time.sleep(0.1)


def test_collector_redacts_secrets_and_forwards_the_rest(
    collector: Collector, jaeger: Jaeger
) -> None:
    service = f"sukverse-collector-test-{uuid.uuid4().hex[:8]}"
    trace_id, server_id, client_id = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    start = time.time_ns()
    server_span = {
        "traceId": trace_id,
        "spanId": server_id,
        "name": "GET /courses/{id}",
        "kind": 2,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 9_000_000),
        "attributes": attributes(
            **{
                "http.request.method": "GET",
                "url.full": f"https://sukverse.example:8443/courses/42?access_token={QUERY_TOKEN}"
                "&page=2#syllabus",
                "url.scheme": "https",
                "url.path": "/courses/42",
                "url.query": f"access_token={QUERY_TOKEN}&page=2",
                "http.target": f"/courses/42?access_token={QUERY_TOKEN}&page=2",
                "http.route": "/courses/{id}",
                "http.response.status_code": 200,
                "http.request.header.authorization": [BEARER],
                "http.request.header.cookie": [SESSION],
                "http.response.header.set_cookie": [SESSION],
                "http.request.header.x-api-key": [CLIENT_SECRET],
                "http.request.header.user-agent": ["sukverse-tests/1.0"],
                "http.request.header.x-request-id": ["req-123"],
                "oauth.client_secret": CLIENT_SECRET,
                "sukverse.test": "server",
            }
        ),
        "status": {"code": 1},
    }
    client_span = {
        "traceId": trace_id,
        "spanId": client_id,
        "parentSpanId": server_id,
        "name": "GET",
        "kind": 3,
        "startTimeUnixNano": str(start + 1_000_000),
        "endTimeUnixNano": str(start + 5_000_000),
        "attributes": attributes(
            **{
                "url.full": "http://auth:8080/.well-known/jwks.json",
                "k8s.cluster.name": "set-by-the-service",
                "sukverse.test": "client",
            }
        ),
    }
    resource = {
        "attributes": attributes(**{"service.name": service, "k8s.namespace.name": "sukverse-test"})
    }
    scope = {"name": "tests.test_otel_collector"}
    body = {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [{"scope": scope, "spans": [server_span, client_span]}],
            }
        ]
    }
    post_trace(collector.otlp_http, body)

    trace = wait_for_trace(jaeger.query_url, trace_id, spans=2)
    assert not [s for s in SECRETS if s in json.dumps(trace)], json.dumps(trace, indent=1)
    by_id = {s["spanID"]: s for s in trace["spans"]}
    assert set(by_id) == {server_id, client_id}
    server = {t["key"]: t["value"] for t in by_id[server_id]["tags"]}
    client = {t["key"]: t["value"] for t in by_id[client_id]["tags"]}

    # Exactly what was sent, less the credentials, the query strings (url.query gone, cut
    # off url.full and http.target) and no scratch attribute left behind; plus the cluster's
    # name where the span had none, and Jaeger's own tags from the span's fields.
    assert server == {
        "http.request.method": "GET",
        "url.full": "https://sukverse.example:8443/courses/42",
        "url.scheme": "https",
        "url.path": "/courses/42",
        "http.target": "/courses/42",
        "http.route": "/courses/{id}",
        "http.response.status_code": 200,
        "http.request.header.user-agent": '["sukverse-tests/1.0"]',
        "http.request.header.x-request-id": '["req-123"]',
        "sukverse.test": "server",
        "k8s.cluster.name": CLUSTER,
        "span.kind": "server",
        "otel.scope.name": "tests.test_otel_collector",
        "otel.status_code": "OK",
    }
    # A span that names its cluster itself keeps that name, and a URL without a query
    # string is left as it is.
    assert client == {
        "url.full": "http://auth:8080/.well-known/jwks.json",
        "k8s.cluster.name": "set-by-the-service",
        "sukverse.test": "client",
        "span.kind": "client",
        "otel.scope.name": "tests.test_otel_collector",
    }
    assert by_id[client_id]["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": server_id}
    ]
    for span in by_id.values():
        process = trace["processes"][span["processID"]]
        assert process["serviceName"] == service
        assert {"key": "k8s.namespace.name", "type": "string", "value": "sukverse-test"} in (
            process["tags"]
        )


def test_collector_listens_on_loopback_only_where_the_test_put_it(collector: Collector) -> None:
    sockets = psutil.Process(collector.process.pid).net_connections(kind="inet")
    listening = [
        c for c in sockets if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM
    ]
    assert all(ipaddress.ip_address(c.laddr.ip).is_loopback for c in listening), listening
    # OTLP over gRPC and HTTP, the health check and the metrics: the file's four listeners.
    assert len({c.laddr.port for c in listening}) == 4, listening
    with urllib.request.urlopen(collector.metrics, timeout=5) as response:
        assert b"otelcol_process_uptime" in response.read()
