"""Fixtures shared by every test tier, including the real servers that hack/ provisions."""

from __future__ import annotations

import asyncio
import http.client
import importlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from benchmarks.harness import Server, free_port, hack
from sukverse_common.app import build_bus
from sukverse_common.events import contracts
from sukverse_common.events.bus import Bus, each
from sukverse_common.events.contracts import EventData, topic_of
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.settings import ServiceSettings
from sukverse_platform.registry import DEFAULT_PORT_BASE, SERVICES

HACK = Path(__file__).resolve().parent / "hack"


# The operator's tests live under `operator/`, and pytest's importlib import mode names their
# module `operator.tests.test_plan`, registering the folder as a namespace package
# `operator` in place of the standard library's module: whatever imports `operator` after
# that (matplotlib does) gets the folder. Each collected module puts the standard one back.
_STDLIB_OPERATOR = sys.modules["operator"]


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if sys.modules.get("operator") is not _STDLIB_OPERATOR:
        sys.modules["operator"] = _STDLIB_OPERATOR


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set, never the developer's SUKVERSE_* variables."""
    for name in list(os.environ):
        if name.startswith("SUKVERSE_"):
            monkeypatch.delenv(name)


def discard(server: Server, session: pytest.Session) -> None:
    """Stop a server, and remove its data and logs unless something failed (then keep them)."""
    server.stop()
    if session.testsfailed == 0:
        shutil.rmtree(server.directory, ignore_errors=True)


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
    discard(server, session)


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
    yield from _prometheus(request)


@pytest.fixture(scope="module")
def module_prometheus(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """`prometheus` for a whole module."""
    yield from _prometheus(request)


def _prometheus(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
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


@dataclass(frozen=True)
class Jaeger:
    """A running Jaeger v2 (hack/jaeger.sh): traces go in over OTLP, come out of its query API."""

    otlp_endpoint: str  # the OTLP/HTTP base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it
    query_url: str  # its query API (/api/services, /api/traces/ID, /api/v3/...)
    directory: Path  # its config.yaml, jaeger.log and jaeger.pid


@pytest.fixture(scope="session")
def jaeger(request: pytest.FixtureRequest) -> Iterator[Jaeger]:
    """A real Jaeger v2 for the whole run, keeping traces in memory (hack/jaeger.sh)."""
    hack("jaeger.sh", "install")
    directory = _short_dir("jaeger")
    otlp_endpoint, query_url = hack("jaeger.sh", "start", str(directory)).split()
    yield Jaeger(otlp_endpoint, query_url, directory)
    hack("jaeger.sh", "stop", str(directory))
    if request.session.testsfailed == 0:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm that hack/kube.sh builds into the cache."""
    hack("kube.sh", "install")
    return Path(os.environ.get("SUKVERSE_CACHE", Path.home() / ".cache/sukverse")) / "bin/helm"


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


@pytest.fixture(scope="session")
def kube_nodes(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A control plane of its own whose workloads run: kube-scheduler, kwok's fake Nodes and the
    workload controllers (hack/kube.sh nodes), with the CloudNativePG, Strimzi and
    Prometheus-operator CRDs applied (hack/crds.sh). Its admin kubeconfig."""
    hack("kube.sh", "install")
    hack("crds.sh", "install")
    directory = _short_dir("kubenodes")
    path = Path(hack("kube.sh", "start", str(directory)))
    try:
        hack("kube.sh", "nodes", str(directory))
        hack("crds.sh", "apply", str(path))
    except BaseException:
        hack("kube.sh", "stop", str(directory))
        raise
    yield path
    hack("kube.sh", "stop", str(directory))
    if request.session.testsfailed == 0:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kube_nodes_namespace(kube_nodes: Path) -> Iterator[str]:
    """A namespace of one test's own on the `kube_nodes` control plane, deleted after it."""
    from benchmarks.cluster import kubectl

    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl(kube_nodes, "create", "namespace", name)
    yield name
    kubectl(kube_nodes, "delete", "namespace", name, "--wait=false", check=False)


def consumed_by(service: str) -> list[str]:
    """The topics the service's EventConsumer subscribes to, as its code declares them."""
    try:
        module = importlib.import_module(f"sukverse_{service}.events")
    except ModuleNotFoundError:
        return []
    consumer = getattr(module, "consumer", None)
    if consumer is None:
        return []
    assert consumer.name == service
    return list(consumer.topics)


def listened() -> dict[str, str]:
    """The topics every service's bus reads in no group, as the common kit declares them,
    each with the service that writes it."""
    from sukverse_common.events.contracts import TokensRevoked
    from sukverse_common.security import REVOCATION_TOPIC

    assert TokensRevoked.topic() == REVOCATION_TOPIC
    return {REVOCATION_TOPIC: TokensRevoked.service()}


def producers() -> set[str]:
    """The services whose code publishes events: those of the contracts."""
    return {
        c.service()
        for c in vars(contracts).values()
        if isinstance(c, type) and issubclass(c, EventData) and c is not EventData
    }


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


# -- identities: a real auth service for the tests of the other services -------------------

IDENTITY_ADMIN_EMAIL = "admin@example.com"
IDENTITY_ADMIN_PASSWORD = "a long admin passphrase for tests"
IDENTITY_PASSWORD = "correct horse battery staple"
# A machine client of the identity service, as the user management service calls it.
IDENTITY_CLIENT_ID = "user_mgmt"
IDENTITY_CLIENT_SECRET = "user-mgmt-client-secret-0123456789"
# The operator's machine client, whose tokens carry the `operator` role.
OPERATOR_CLIENT_ID = "operator"
OPERATOR_CLIENT_SECRET = "operator-client-secret-0123456789"
IDENTITY_SETTINGS = {
    "SUKVERSE_ADMIN_EMAIL": IDENTITY_ADMIN_EMAIL,
    "SUKVERSE_ADMIN_PASSWORD": IDENTITY_ADMIN_PASSWORD,
    "SUKVERSE_ARGON2_MEMORY_KIB": "8192",  # light hashing keeps the suite quick
    "SUKVERSE_ARGON2_TIME_COST": "1",
    "SUKVERSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
    "SUKVERSE_LOGIN_ADDRESS_LIMIT": "100000",
    "SUKVERSE_SERVICE_CLIENTS": json.dumps(
        {IDENTITY_CLIENT_ID: IDENTITY_CLIENT_SECRET, OPERATOR_CLIENT_ID: OPERATOR_CLIENT_SECRET}
    ),
}


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    email: str
    roles: tuple[str, ...]
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Identity:
    """The auth service as its own process; hands out real accounts with real tokens."""

    client_id = IDENTITY_CLIENT_ID
    client_secret = IDENTITY_CLIENT_SECRET

    def __init__(self, url: str) -> None:
        self.url = url
        self._accounts: dict[str, Account] = {}
        self._admin_token = self._login(IDENTITY_ADMIN_EMAIL, IDENTITY_ADMIN_PASSWORD)

    def _call(
        self, method: str, path: str, body: object, token: str | None = None, base: str = ""
    ) -> object:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            (base or self.url) + path,
            data=json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def _login(self, email: str, password: str) -> str:
        tokens = self._call("POST", "/auth/login", {"email": email, "password": password})
        assert isinstance(tokens, dict)
        return str(tokens["access_token"])

    def machine_token(self, client_id: str = IDENTITY_CLIENT_ID) -> str:
        """An access token of a machine client (client credentials): `user_mgmt` holds the
        `service` role, `operator` the operator's."""
        secrets = {
            IDENTITY_CLIENT_ID: IDENTITY_CLIENT_SECRET,
            OPERATOR_CLIENT_ID: OPERATOR_CLIENT_SECRET,
        }
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secrets[client_id],
            }
        ).encode()
        request = urllib.request.Request(
            self.url + "/auth/token",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["access_token"])

    def machine_headers(self, client_id: str = IDENTITY_CLIENT_ID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.machine_token(client_id)}"}

    def account(self, name: str, *roles: str) -> Account:
        """The account called `name` (created on first use) with the given roles
        (student when none are given); the same name gives the same account."""
        if name in self._accounts:
            return self._accounts[name]
        roles = roles or ("student",)
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        user = self._call(
            "POST",
            "/auth/register",
            {"email": email, "password": IDENTITY_PASSWORD, "full_name": name.title()},
        )
        assert isinstance(user, dict)
        if set(roles) != {"student"}:
            self._call(
                "PUT", f"/users/{user['id']}/roles", {"roles": list(roles)}, self._admin_token
            )
        account = Account(
            uuid.UUID(user["id"]), email, tuple(roles), self._login(email, IDENTITY_PASSWORD)
        )
        self._accounts[name] = account
        return account


class ServiceProcess:
    """One service run as `sukverse serve NAME` in a process of its own, logging to a file."""

    def __init__(self, name: str, directory: Path, settings: dict[str, str]) -> None:
        self.name = name
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"{name}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SUKVERSE_")},
            "SUKVERSE_DATA_DIR": str(directory),
            "SUKVERSE_LOG_LEVEL": "WARNING",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> None:
        """Run another `sukverse` command (such as `migrate`) with the same settings."""
        result = subprocess.run(
            [sys.executable, "-m", "sukverse_platform", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sukverse {' '.join(args)} failed: {result.stderr[-2000:]}")

    def start(self, timeout: float = 30.0) -> str:
        with self.log_path.open("ab") as log:
            serve = ["serve", self.name, "--port", str(self.port)]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sukverse_platform", *serve],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1):
                    return self.url
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} was not ready in {timeout:.0f} s; see {self.log_path}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def identity(request: pytest.FixtureRequest) -> Iterator[Identity]:
    """A real auth service in its own process for the whole run; other services verify
    its tokens through its JWKS at `identity.url`."""
    directory = _short_dir("auth")
    auth = ServiceProcess("auth", directory, IDENTITY_SETTINGS)
    try:
        yield Identity(auth.start())
    finally:
        auth.stop()
        if request.session.testsfailed == 0:
            shutil.rmtree(directory, ignore_errors=True)


class WorkshopService:
    """The workshop service as its own process, trusting `identity`'s tokens: workshops
    that exist, for a service under test that asks about them."""

    def __init__(self, url: str, identity: Identity) -> None:
        self.url = url
        self.identity = identity

    def create(self, title: str = "A workshop") -> uuid.UUID:
        token = self.identity._login(IDENTITY_ADMIN_EMAIL, IDENTITY_ADMIN_PASSWORD)
        body = {"title": title, "steps": [{"title": "Step", "substeps": [{"title": "Do"}]}]}
        workshop = self.identity._call("POST", "/workshops", body, token, base=self.url)
        assert isinstance(workshop, dict)
        return uuid.UUID(workshop["id"])


@pytest.fixture(scope="session")
def workshop_service(
    request: pytest.FixtureRequest, identity: Identity
) -> Iterator[WorkshopService]:
    """A real workshop service in its own process for the whole run (embedded, SQLite)."""
    directory = _short_dir("workshop")
    workshop = ServiceProcess("workshop", directory, {"SUKVERSE_AUTH_URL": identity.url})
    try:
        yield WorkshopService(workshop.start(), identity)
    finally:
        workshop.stop()
        if request.session.testsfailed == 0:
            shutil.rmtree(directory, ignore_errors=True)


def _launcher(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServiceProcess]]:
    directory = _short_dir("services")
    started: list[ServiceProcess] = []
    failed_before = request.session.testsfailed

    def start(name: str, settings: dict[str, str], *, migrate: bool = False) -> ServiceProcess:
        service = ServiceProcess(name, directory, settings)
        if migrate:
            service.command("migrate", name)
        started.append(service)
        service.start()
        return service

    yield start
    for service in reversed(started):
        service.stop()
    if request.session.testsfailed == failed_before:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def launch(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services as processes of their own: `launch(name, settings, migrate=False)`;
    all are stopped at the end of the test, and their logs kept if anything failed."""
    yield from _launcher(request)


@pytest.fixture(scope="module")
def module_launch(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServiceProcess]]:
    """`launch` for the services that a whole module's tests share."""
    yield from _launcher(request)


@pytest.fixture(scope="session")
def create_database(postgres_server: Server) -> Callable[[], str]:
    """`create_database()` makes a new PostgreSQL database on the session's server (left
    to the server's end, for the tests of a whole module); its URL."""
    return lambda: _create_database(postgres_server)


def _create_database(server: Server) -> str:

    async def create(name: str) -> None:
        admin = await asyncpg.connect(server.address)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    name = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(create(name))
    return server.address.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
async def new_database(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Create PostgreSQL databases on the session's server: `await new_database()` gives
    the URL of a new one; all are dropped at the end of the test."""
    server: Server = request.getfixturevalue("postgres_server")
    names: list[str] = []

    async def create() -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        admin = await asyncpg.connect(server.address)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        names.append(name)
        return server.address.rsplit("/", 1)[0] + f"/{name}"

    yield create
    admin = await asyncpg.connect(server.address)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- a service under test: its tier's bus and the events it publishes ---------------------
# Each service's tests define `settings` (its settings on the tier); these build on it.


@pytest.fixture
async def bus(settings: ServiceSettings) -> AsyncIterator[Bus]:
    """The tier's bus, shared by the app and the test; started once the app subscribed."""
    bus = build_bus(settings)
    yield bus
    await bus.stop()


@pytest.fixture
def published(bus: Bus, settings: ServiceSettings) -> list[CloudEvent]:
    """Every event the service publishes, on any of its topics."""
    events: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        events.append(event)

    topics = {
        c.topic()
        for c in vars(contracts).values()
        if isinstance(c, type) and issubclass(c, EventData) and c is not EventData
        if c.service() == settings.service_name
    }
    bus.subscribe("test", sorted(topics | {topic_of(settings.service_name)}), each(record))
    return events


# -- calling the services over HTTP, as a client does --------------------------------------


def call(
    method: str, url: str, body: Any = None, token: str | None = None, **headers: str
) -> tuple[int, Any]:
    """One JSON call: its status and decoded body, whatever the status."""
    sent = {"Content-Type": "application/json", **headers}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def ok(method: str, url: str, body: Any = None, token: str | None = None, **headers: str) -> Any:
    """One JSON call that must succeed (2xx): its decoded body."""
    status, answer = call(method, url, body, token, **headers)
    assert 200 <= status < 300, f"{method} {url}: {status} {answer}"
    return answer


# -- the embedded platform: `sukverse up` -------------------------------------------------


def free_port_base(count: int = 6) -> int:
    """A block of free ports below the ephemeral range (32768 and up on Linux), so that
    no outgoing connection takes one of them between two starts."""
    for _ in range(50):
        base = random.randint(20_000, 32_000 - count)
        try:
            sockets = []
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of ports")


class Platform:
    """`sukverse up` as its user runs it, in a process of its own on a block of free ports;
    its output goes to `log_path` (a pipe nobody read while it served would fill and stop
    it), and `interrupt` gives the output of the run it ends."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port_base = free_port_base()
        self.url = f"http://127.0.0.1:{self.port_base}"
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.log_path = data_dir.parent / "up.log"
        self._run_starts_at = 0

    def service_url(self, name: str) -> str:
        return (
            f"http://127.0.0.1:{self.port_base + SERVICES[name].default_port - DEFAULT_PORT_BASE}"
        )

    def output(self) -> str:
        """What the current (or last) run has written so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._run_starts_at)
            return log.read().decode(errors="replace")

    def start(self) -> None:
        env = {**os.environ, "SUKVERSE_DATA_DIR": str(self.data_dir), **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._run_starts_at = log.tell()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sukverse_platform",
                    "up",
                    "--port-base",
                    str(self.port_base),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        waiting = set(SERVICES)
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            for name in sorted(waiting):
                try:
                    with urllib.request.urlopen(f"{self.service_url(name)}/readyz", timeout=10):
                        waiting.discard(name)
                except (OSError, http.client.HTTPException):
                    pass  # not listening yet, not yet answering HTTP, or not ready
            if not waiting:
                return
            time.sleep(0.05)
        raise AssertionError(f"sukverse up did not get {sorted(waiting)} ready")

    def interrupt(self) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=20)
        self.process = None
        return code, self.output()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path / "data")
    yield platform
    if platform.process is not None:
        platform.process.kill()
        platform.process.wait()
