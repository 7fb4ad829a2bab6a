"""Fixtures shared by every test tier, including the real servers that hack/ provisions."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

HACK = Path(__file__).resolve().parent / "hack"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set, never the developer's SUKVERSE_* variables."""
    for name in list(os.environ):
        if name.startswith("SUKVERSE_"):
            monkeypatch.delenv(name)


def hack(script: str, *args: str) -> str:
    """Run a hack/ script; its one line of stdout is the result. A failure fails loudly."""
    result = subprocess.run(
        ["bash", str(HACK / script), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"hack/{script} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A real server started by a hack/ script, which a fault test may stop and restart."""

    script: str
    directory: Path
    port: int
    address: str = ""

    def start(self) -> str:
        self.address = hack(self.script, "start", str(self.directory), str(self.port))
        return self.address

    def stop(self) -> None:
        hack(self.script, "stop", str(self.directory))

    def discard(self, session: pytest.Session) -> None:
        """Stop, and remove the data and logs unless something failed (then keep them)."""
        self.stop()
        if session.testsfailed == 0:
            shutil.rmtree(self.directory, ignore_errors=True)


def _short_dir(name: str) -> Path:
    # Unix socket paths are limited to 107 bytes, and pytest's are long.
    base = Path(os.environ.get("SUKVERSE_TEST_RUN_DIR", "/tmp/sukverse-test"))
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(exist_ok=True)
    return path


def _served(script: str, name: str, session: pytest.Session) -> Iterator[Server]:
    """Install, start, hand over, then stop and discard a hack/ server."""
    hack(script, "install")
    server = Server(script, _short_dir(name), free_port())
    server.start()
    yield server
    server.discard(session)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A throw-away PostgreSQL cluster for the whole run (hack/postgres.sh)."""
    yield from _served("postgres.sh", "pg", request.session)


@pytest.fixture
def private_postgres_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A PostgreSQL cluster of one test's own, for a test that stops and restarts it."""
    yield from _served("postgres.sh", "pg", request.session)


@pytest.fixture(scope="session")
def kafka_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A single-node KRaft Kafka broker for the whole run (hack/kafka.sh)."""
    yield from _served("kafka.sh", "kafka", request.session)


@pytest.fixture
def prometheus(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """Start a real Prometheus (hack/prometheus.sh) with a given configuration; its URL."""
    hack("prometheus.sh", "install")
    started: list[Path] = []

    def start(config: str) -> str:
        directory = _short_dir("prom")
        (directory / "prometheus.yml").write_text(config)
        started.append(directory)
        return hack(
            "prometheus.sh",
            "start",
            str(directory),
            str(free_port()),
            str(directory / "prometheus.yml"),
        )

    yield start
    for directory in started:
        hack("prometheus.sh", "stop", str(directory))
        if request.session.testsfailed == 0:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def kubeconfig(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A real kube-apiserver with etcd for the whole run (hack/kube.sh)."""
    hack("kube.sh", "install")
    directory = _short_dir("kube")
    path = Path(hack("kube.sh", "start", str(directory)))
    yield path
    hack("kube.sh", "stop", str(directory))
    if request.session.testsfailed == 0:
        shutil.rmtree(directory, ignore_errors=True)


TIERS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("real", id="real", marks=pytest.mark.real),
]


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    """Service tests run twice: embedded (SQLite, in-process bus) and real (PostgreSQL, Kafka)."""
    return str(request.param)


@pytest.fixture
async def database_url(tier: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Empty for the embedded tier (each service's SQLite file); a fresh PostgreSQL
    database, dropped afterwards, for the real tier."""
    if tier == "embedded":
        yield ""
        return
    server: Server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server.address)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server.address.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def bus_settings(tier: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Nothing for the embedded tier (the in-process bus); for the real tier, the Kafka
    broker with topics and groups under a prefix of this test's own."""
    if tier == "embedded":
        return {}
    server: Server = request.getfixturevalue("kafka_server")
    return {
        "bus": "kafka",
        "kafka_bootstrap_servers": server.address,
        "kafka_topic_prefix": f"t{uuid.uuid4().hex[:12]}.",
        "kafka_partitions": 1,
    }
