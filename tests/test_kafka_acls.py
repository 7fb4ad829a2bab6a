"""The umbrella chart's Kafka wiring on a real broker: each service's bus signs in with
SCRAM-SHA-512 as its ConfigMap says (a wrong password or an unknown user is refused), and
the ACLs the chart renders for its KafkaUser, applied with Kafka's own AclCommand, are all
that its real traffic needs (its own topic, the topics it consumes as its own group, their
dead-letter topics, readiness) and all it gets: another topic or group is refused.

The broker is a private one (hack/kafka.sh with a SASL_PLAINTEXT listener and the
StandardAuthorizer); its PLAINTEXT listener stays a super user's, for the set-up and for
reading back what the services wrote."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from conftest import (
    Server,
    _short_dir,
    consumed_by,
    discard,
    free_port,
    hack,
    listened,
    producers,
)
from sukverse_analytics.settings import AnalyticsSettings
from sukverse_auth.settings import AuthSettings
from sukverse_certificate.settings import CertificateSettings
from sukverse_common.events import kafka as kafka_module
from sukverse_common.events.bus import Message, dead_letter_topic
from sukverse_common.events.contracts import topic_of
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.kafka import KafkaBus
from sukverse_common.settings import ServiceSettings
from sukverse_quiz.settings import QuizSettings
from sukverse_user_mgmt.settings import UserMgmtSettings
from sukverse_workshop.settings import WorkshopSettings

pytestmark = [pytest.mark.real, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
UMBRELLA = ROOT / "charts" / "sukverse"
RELEASE = "sukverse"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "auth": AuthSettings,
    "user_mgmt": UserMgmtSettings,
    "workshop": WorkshopSettings,
    "quiz": QuizSettings,
    "analytics": AnalyticsSettings,
    "certificate": CertificateSettings,
}
SERVICES = list(SETTINGS)
PASSWORD_FILE = "SUKVERSE_KAFKA_SASL_PASSWORD_FILE"
WITHIN = 30.0  # seconds any one wait on the broker may take
# AclCommand's `--topic NAME`, `--group NAME`, ... for a Strimzi ACL's resource type.
ACL_RESOURCE_FLAGS = {
    "topic": "--topic",
    "group": "--group",
    "transactionalId": "--transactional-id",
    "cluster": "--cluster",
}
# Runs Kafka's AclCommand once per line of standard input (its arguments tab-separated) in
# one JVM, a second for all of them instead of two each. AclCommand exits 1 on a failure.
ACL_BATCH = """\
import java.io.BufferedReader;
import java.io.InputStreamReader;

public class AclBatch {
    public static void main(String[] ignored) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) continue;
            System.out.println("#### " + line.replace('\\t', ' '));
            System.out.flush();
            org.apache.kafka.tools.AclCommand.main(line.split("\\t"));
        }
    }
}
"""
LISTED_RESOURCE = re.compile(
    r"Current ACLs for resource `ResourcePattern\(resourceType=(\w+), name=(.*), "
    r"patternType=(\w+)\)`:"
)
LISTED_ACL = re.compile(r"\(principal=(\S+), host=(\S+), operation=(\w+), permissionType=(\w+)\)")

Acl = tuple[str, str, str, str]  # principal, resource type, resource name, operation (lower)


def kafka_user(service: str) -> str:
    return f"{RELEASE}-{service.replace('_', '-')}"


def probe(subject: str) -> CloudEvent:
    return CloudEvent(
        source="/sukverse/test/kafka-acls",
        type="io.sukverse.test.probe.v1",
        subject=subject,
        data={"probe": subject},
    )


@dataclass
class AclBroker:
    """The private broker, the chart's KafkaUsers applied to it, and each service's settings
    as its ConfigMap and Deployment set them."""

    server: Server
    sasl: str
    passwords: dict[str, str]
    configmaps: dict[str, dict[str, str]]
    topics: dict[str, int]  # name: partitions, as the KafkaTopics have them
    rendered: set[Acl]
    listed: set[Acl]
    secrets: Path = field(init=False)

    def __post_init__(self) -> None:
        self.secrets = self.server.directory / "secrets"

    @property
    def plaintext(self) -> str:
        return self.server.address

    def settings(
        self, service: str, *, password: str | None = None, username: str | None = None
    ) -> ServiceSettings:
        """The service's own settings class, read from the environment its pod gets: the
        ConfigMap's variables and the KafkaUser's password in a mounted file, with this
        broker's SASL_PLAINTEXT listener for the cluster's TLS one."""
        secret = self.secrets / f"{service}-{uuid.uuid4().hex[:8]}"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(self.passwords[kafka_user(service)] if password is None else password)
        variables = {
            **self.configmaps[service],
            "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": self.sasl,
            "SUKVERSE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            PASSWORD_FILE: str(secret),
        }
        if username is not None:
            variables["SUKVERSE_KAFKA_SASL_USERNAME"] = username
        with pytest.MonkeyPatch.context() as env:
            for name, value in variables.items():
                env.setenv(name, value)
            return SETTINGS[service]()

    def bus(self, service: str, **options: str) -> KafkaBus:
        return KafkaBus.from_settings(self.settings(service, **options))


def kafka_libs() -> Path:
    cache = Path(os.environ.get("SUKVERSE_CACHE", Path.home() / ".cache/sukverse"))
    versions = (ROOT / "hack" / "versions.env").read_text()
    match = re.search(r"^KAFKA_VERSION=(\S+)", versions, re.MULTILINE)
    assert match, "hack/versions.env pins no KAFKA_VERSION"
    return cache / f"kafka-{match[1]}" / "libs"


def render_chart(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The umbrella chart with its defaults, by the real helm: the one in the cache when it
    is there (never building Kubernetes for it), else conftest's, which builds it."""
    cache = Path(os.environ.get("SUKVERSE_CACHE", Path.home() / ".cache/sukverse"))
    helm = cache / "bin" / "helm"
    if not helm.exists():
        helm = request.getfixturevalue("helm")
    result = subprocess.run(
        [str(helm), "template", RELEASE, str(UMBRELLA)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def kinds(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


async def create_topics(bootstrap: str, topics: dict[str, dict[str, Any]]) -> None:
    """The KafkaTopics' topics, as Strimzi's topic operator creates them, but with one replica
    and `min.insync.replicas` 1: this broker is a single node."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    spec["topicName"],
                    spec["partitions"],
                    1,
                    topic_configs={**spec.get("config", {}), "min.insync.replicas": "1"},
                )
                for spec in topics.values()
            ]
        )
        assert all(code == 0 for _, code, *_ in response.topic_errors), response
    finally:
        await admin.close()


def apply_acls(
    bootstrap: str, directory: Path, users: dict[str, dict[str, Any]]
) -> tuple[set[Acl], set[Acl]]:
    """Add each KafkaUser's ACLs with Kafka's AclCommand over the PLAINTEXT listener (the
    super user), as Strimzi's user operator does; what was rendered, and what the broker
    lists afterwards."""
    rendered: set[Acl] = set()
    commands: list[list[str]] = []
    for user, document in users.items():
        authorization = document["spec"]["authorization"]
        assert authorization["type"] == "simple", user
        for acl in authorization["acls"]:
            resource = acl["resource"]
            assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*", acl
            assert resource.get("patternType", "literal") == "literal", acl
            kind = resource["type"]
            target = [ACL_RESOURCE_FLAGS[kind]] + ([] if kind == "cluster" else [resource["name"]])
            operations = [arg for op in acl["operations"] for arg in ("--operation", op)]
            commands.append(
                [
                    *("--bootstrap-server", bootstrap, "--add"),
                    *("--allow-principal", f"User:{user}", "--allow-host", "*"),
                    *operations,
                    *target,
                    *("--resource-pattern-type", "literal"),
                ]
            )
            rendered |= {
                (f"User:{user}", kind.lower(), resource.get("name", "kafka-cluster"), op.lower())
                for op in acl["operations"]
            }
    commands.append(["--bootstrap-server", bootstrap, "--list"])
    (directory / "AclBatch.java").write_text(ACL_BATCH)
    result = subprocess.run(
        [
            *("java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
            *("-cp", f"{kafka_libs()}/*", str(directory / "AclBatch.java")),
        ],
        input="".join("\t".join(command) + "\n" for command in commands),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    (directory / "acls.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    listing = result.stdout.rsplit("#### ", 1)[-1]
    listed: set[Acl] = set()
    resource: tuple[str, str] | None = None
    for line in listing.splitlines():
        if found := LISTED_RESOURCE.search(line):
            assert found[3] == "LITERAL", line
            resource = (found[1].lower(), found[2])
        elif found := LISTED_ACL.search(line):
            assert resource is not None and found[2] == "*" and found[4] == "ALLOW", line
            listed.add((found[1], resource[0], resource[1], found[3].lower()))
    return rendered, listed


@pytest.fixture(scope="module")
def broker(request: pytest.FixtureRequest) -> Iterator[AclBroker]:
    """A broker of this module's own with a SCRAM-SHA-512 user per service, as the chart
    names its KafkaUsers, the chart's topics and exactly the chart's ACLs."""
    documents = render_chart(request)
    users = {d["metadata"]["name"]: d for d in kinds(documents, "KafkaUser").values()}
    assert set(users) == {kafka_user(s) for s in SERVICES}
    configmaps = {s: kinds(documents, "ConfigMap")[kafka_user(s)]["data"] for s in SERVICES}
    deployments = kinds(documents, "Deployment")
    for service in SERVICES:
        (container,) = deployments[kafka_user(service)]["spec"]["template"]["spec"]["containers"]
        assert PASSWORD_FILE in {e["name"] for e in container["env"]}, service
    topics = {t["spec"]["topicName"]: t["spec"] for t in kinds(documents, "KafkaTopic").values()}
    passwords = {user: secrets.token_urlsafe(24) for user in users}

    hack("kafka.sh", "install")
    server = Server("kafka.sh", _short_dir("kafka-acl"), free_port())
    sasl_port = free_port()
    while sasl_port == server.port:
        sasl_port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KAFKA_SASL_PORT", str(sasl_port))
        env.setenv("KAFKA_SCRAM_USERS", ",".join(f"{u}={p}" for u, p in passwords.items()))
        server.start()
    try:
        asyncio.run(create_topics(server.address, topics))
        rendered, listed = apply_acls(server.address, server.directory, users)
    except BaseException:
        server.stop()  # keeps the data and logs
        raise
    yield AclBroker(
        server=server,
        sasl=f"127.0.0.1:{sasl_port}",
        passwords=passwords,
        configmaps=configmaps,
        topics={name: spec["partitions"] for name, spec in topics.items()},
        rendered=rendered,
        listed=listed,
    )
    discard(server, request.session)


class BusLog:
    """What the Kafka bus logs, whatever structlog's configuration: its module's logger."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        if level.startswith("_"):
            raise AttributeError(level)

        def record(event: str, *args: Any, **fields: Any) -> None:
            self.records.append((level, event, fields))

        return record

    def errors(self, name: str) -> list[str]:
        """The `error` field of each record logged with the exception class `name`."""
        return [
            str(fields["error"])
            for _, _, fields in self.records
            if str(fields.get("error", "")).startswith(f"{name}(")
        ]

    def troubles(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every warning or error but a dead letter (a record some other test left)."""
        return [
            r
            for r in self.records
            if r[0] in ("warning", "error", "exception") and "dead-lettered" not in r[1]
        ]


@pytest.fixture
def bus_log(monkeypatch: pytest.MonkeyPatch) -> BusLog:
    log = BusLog()
    monkeypatch.setattr(kafka_module, "log", log)
    return log


class Inbox:
    """A handler that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def __call__(self, events: Sequence[CloudEvent]) -> None:
        self.events.extend(events)

    def subjects(self) -> set[str]:
        return {event.subject for event in self.events}


async def until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, within: float = WITHIN
) -> None:
    try:
        async with asyncio.timeout(within):
            while True:
                result = condition()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {within} s waiting for {what}")


@pytest.fixture
async def buses() -> AsyncIterator[Callable[[KafkaBus], Awaitable[KafkaBus]]]:
    """Start buses for a test, and stop every one of them after it."""
    started: list[KafkaBus] = []

    async def start(bus: KafkaBus) -> KafkaBus:
        started.append(bus)
        async with asyncio.timeout(WITHIN):
            await bus.start()
        return bus

    yield start
    await asyncio.gather(*(bus.stop() for bus in started))


async def read_all(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every record in a topic so far, read over the PLAINTEXT listener."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        every = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(every)
        await consumer.seek_to_beginning(*every)
        end = await consumer.end_offsets(every)
        records: list[Any] = []
        async with asyncio.timeout(WITHIN):
            while [tp for tp in every if await consumer.position(tp) < end[tp]]:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


def test_the_broker_holds_exactly_the_acls_the_chart_renders(broker: AclBroker) -> None:
    assert broker.listed == broker.rendered
    # Every service listens to auth's token revocations.
    assert {principal for principal, *_ in broker.listed} == {
        f"User:{kafka_user(s)}" for s in SERVICES
    }
    for service in SERVICES:
        settings = broker.settings(service)
        assert settings.service_name == service and settings.bus == "kafka"
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_sasl_username == kafka_user(service)
        assert settings.kafka_create_topics is False
        assert settings.kafka_topic_prefix == ""
        # The chart's own protocol, for which the test broker's SASL_PLAINTEXT stands in.
        assert broker.configmaps[service]["SUKVERSE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


async def test_a_service_signs_in_with_scram_and_its_consumer_receives_its_events(
    broker: AclBroker, buses: Callable[[KafkaBus], Awaitable[KafkaBus]], bus_log: BusLog
) -> None:
    workshop = await buses(broker.bus("workshop"))
    quiz = broker.bus("quiz")
    inbox = Inbox()
    quiz.subscribe("quiz", consumed_by("quiz"), inbox)
    assert consumed_by("quiz") == [topic_of("workshop")]
    await buses(quiz)
    assert await workshop.ready() and await quiz.ready()
    subject = f"signed-in-{uuid.uuid4()}"
    await workshop.publish([Message(topic_of("workshop"), subject, probe(subject))])
    await until(lambda: subject in inbox.subjects(), "quiz to receive the workshop's event")
    assert not bus_log.troubles()


@pytest.mark.parametrize(
    ("username", "password_of"),
    [
        pytest.param(None, None, id="wrong-password"),
        pytest.param(None, "quiz", id="another-services-password"),
        pytest.param(f"{RELEASE}-nobody", "workshop", id="unknown-user"),
    ],
)
async def test_a_wrong_password_is_refused(
    broker: AclBroker,
    caplog: pytest.LogCaptureFixture,
    username: str | None,
    password_of: str | None,
) -> None:
    """Workshop's bus does not start, for the broker's authentication failure; with its own
    password it starts (the other tests), so it is the credentials that are refused."""
    password = (
        "not-the-password" if password_of is None else broker.passwords[kafka_user(password_of)]
    )
    options = {"password": password} | ({"username": username} if username else {})
    bus = broker.bus("workshop", **options)
    caplog.set_level(logging.ERROR, logger="aiokafka")
    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            async with asyncio.timeout(WITHIN):
                await bus.start()
    finally:
        await bus.stop()
    refusals = [
        arg
        for record in caplog.records
        for arg in (record.args if isinstance(record.args, tuple) else ())
        if isinstance(arg, SaslAuthenticationFailed)
    ]
    assert refusals, [record.getMessage() for record in caplog.records]
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in str(refusals[0])


async def test_each_service_may_write_its_own_topic_and_its_consumed_topics_dlq_only(
    broker: AclBroker, buses: Callable[[KafkaBus], Awaitable[KafkaBus]]
) -> None:
    """Every service tries every topic of the platform: those its code writes (its own
    events, dead letters of what it consumes) are acknowledged, every other is refused."""
    allowed: dict[str, set[str]] = {}
    refused: dict[str, set[str]] = {}
    for service in SERVICES:
        bus = await buses(broker.bus(service))
        allowed[service], refused[service] = set(), set()
        for topic in sorted(broker.topics):
            subject = f"write-{service}-{uuid.uuid4()}"
            try:
                async with asyncio.timeout(WITHIN):
                    await bus.publish([Message(topic, subject, probe(subject))])
            except TopicAuthorizationFailedError:
                refused[service].add(topic)
            else:
                allowed[service].add(topic)
    for service in SERVICES:
        own = {topic_of(service)} if service in producers() else set()
        own |= {topic for topic, writer in listened().items() if writer == service}
        expected = own | {dead_letter_topic(t) for t in consumed_by(service)}
        assert allowed[service] == expected, service
        assert refused[service] == set(broker.topics) - expected, service


@pytest.mark.parametrize(
    ("service", "group", "producer", "error"),
    [
        pytest.param("quiz", "analytics", "workshop", GroupAuthorizationFailedError, id="group"),
        pytest.param("quiz", "quiz", "certificate", TopicAuthorizationFailedError, id="topic"),
        # Auth consumes nothing: the topic is refused before its group is ever asked for.
        pytest.param("auth", "auth", "workshop", TopicAuthorizationFailedError, id="no-consumer"),
    ],
)
async def test_a_consumer_is_refused_a_group_or_a_topic_not_its_own(
    broker: AclBroker,
    buses: Callable[[KafkaBus], Awaitable[KafkaBus]],
    bus_log: BusLog,
    service: str,
    group: str,
    producer: str,
    error: type[KafkaError],
) -> None:
    """The topic holds an event, which the refused consumer never gets."""
    writer = await buses(broker.bus(producer))
    subject = f"refused-{uuid.uuid4()}"
    await writer.publish([Message(topic_of(producer), subject, probe(subject))])
    bus = broker.bus(service)
    inbox = Inbox()
    bus.subscribe(group, [topic_of(producer)], inbox)
    await buses(bus)
    await until(lambda: bool(bus_log.errors(error.__name__)), f"{error.__name__} for {service}")
    assert subject not in inbox.subjects()


async def test_a_consumer_dead_letters_into_its_consumed_topics_dlq(
    broker: AclBroker, buses: Callable[[KafkaBus], Awaitable[KafkaBus]], bus_log: BusLog
) -> None:
    """Quiz publishes to `sukverse.workshop.dlq` with its bus, and its consumer moves a
    record that is not a CloudEvent there, as group `quiz`."""
    quiz = broker.bus("quiz")
    inbox = Inbox()
    quiz.subscribe("quiz", consumed_by("quiz"), inbox)
    await buses(quiz)
    dlq = dead_letter_topic(topic_of("workshop"))
    subject = f"dead-{uuid.uuid4()}"
    await quiz.publish([Message(dlq, subject, probe(subject))])

    garbage = f"not a CloudEvent {uuid.uuid4()}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=broker.plaintext)
    await producer.start()
    try:
        await producer.send_and_wait(topic_of("workshop"), garbage, key=b"garbage")
    finally:
        await producer.stop()

    async def dead_lettered() -> bool:
        records = await read_all(broker.plaintext, dlq, broker.topics[dlq])
        return any(
            record.value == garbage and ("dlqconsumer", b"quiz") in record.headers
            for record in records
        )

    await until(dead_lettered, "quiz's consumer to dead-letter the record")
    records = await read_all(broker.plaintext, dlq, broker.topics[dlq])
    assert subject in {r.key.decode() for r in records if r.key}
    assert not [r for r in bus_log.troubles() if "lost the broker" in r[1]]


async def test_every_service_runs_on_the_acls_of_its_kafka_user(
    broker: AclBroker, buses: Callable[[KafkaBus], Awaitable[KafkaBus]], bus_log: BusLog
) -> None:
    """Each service's bus starts with the subscriptions its EventConsumer declares and the
    common kit's listener, is ready, publishes its events, each consumer receives them and
    commits its offsets as its own group, and each listener hears auth's: the chart's ACLs
    miss nothing the code needs."""
    inboxes: dict[str, Inbox] = {}
    listeners: dict[str, Inbox] = {}
    unstarted: dict[str, KafkaBus] = {}
    for service in SERVICES:
        bus = unstarted[service] = broker.bus(service)
        if topics := consumed_by(service):
            inboxes[service] = Inbox()
            bus.subscribe(service, topics, inboxes[service])
        listeners[service] = Inbox()
        bus.listen(list(listened()), listeners[service], replay_seconds=60)
    started = dict(
        zip(unstarted, await asyncio.gather(*map(buses, unstarted.values())), strict=True)
    )
    for service, bus in started.items():
        assert await bus.ready(), service
    subjects: dict[str, str] = {}
    for service in sorted(producers()):
        subjects[service] = f"runs-{service}-{uuid.uuid4()}"
        event = probe(subjects[service])
        await started[service].publish([Message(topic_of(service), subjects[service], event)])
    for service, inbox in inboxes.items():
        wanted = {subjects[topic.removeprefix("sukverse.")] for topic in consumed_by(service)}
        await until(lambda i=inbox, w=wanted: w <= i.subjects(), f"{service} to get {wanted}")
    heard = {}
    for topic, writer in listened().items():
        heard[topic] = f"hears-{topic}-{uuid.uuid4()}"
        await started[writer].publish([Message(topic, heard[topic], probe(heard[topic]))])
    for service, inbox in listeners.items():
        wanted = set(heard.values())
        await until(lambda i=inbox, w=wanted: w <= i.subjects(), f"{service} to hear {wanted}")

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.plaintext)
    reader = AIOKafkaConsumer(bootstrap_servers=broker.plaintext)
    await admin.start()
    await reader.start()
    try:
        for service in inboxes:
            partitions = [
                TopicPartition(topic, p)
                for topic in consumed_by(service)
                for p in range(broker.topics[topic])
            ]
            end = await reader.end_offsets(partitions)

            async def committed(group: str = service, end: dict[Any, int] = end) -> bool:
                offsets = await admin.list_consumer_group_offsets(group)
                return all(
                    tp in offsets and offsets[tp].offset == last for tp, last in end.items() if last
                )

            await until(committed, f"{service} to commit its offsets")
    finally:
        await reader.stop()
        await admin.close()
    assert not bus_log.troubles(), bus_log.troubles()
