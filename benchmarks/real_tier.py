"""The platform as the real tier runs it, for the reliability report: every service its own
`sukverse serve` process in cluster mode on a database of its own, the workshop service's on
a PostgreSQL server of its own (in a cluster each service has its CloudNativePG cluster) so
that it can go down alone, all on one Kafka broker; the servers from hack/, each on a fixed
port so that it can be stopped and started again where the services expect it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from benchmarks.harness import (
    Server,
    create_database,
    free_port,
    hack,
    process,
    rss_mb,
    sukverse,
    wait_ready,
)

SERVICES = ("auth", "user_mgmt", "workshop", "quiz", "analytics", "certificate")
ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for reliability"}
PASSWORD = "correct horse battery staple"
CLIENT_ID, CLIENT_SECRET = "user_mgmt", "user-mgmt-client-secret-0123456789"
PUBLIC_URL = "https://certificates.sukverse.test"


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def fds(self) -> int:
        return int(psutil.Process(self.process.pid).num_fds())


class Cluster:
    """The services as processes, each with a database of its own: the workshop service's
    on a PostgreSQL server of its own (in a cluster each service has its CloudNativePG
    cluster), the others sharing one; all on one Kafka broker."""

    def __init__(self, directory: Path, names: tuple[str, ...]) -> None:
        self.directory = directory
        self.names = names
        self.postgres = Server("postgres.sh", directory / "pg")
        self.workshop_postgres = Server("postgres.sh", directory / "pg-workshop")
        self.kafka = Server("kafka.sh", directory / "kafka")
        self.prefix = f"r{uuid.uuid4().hex[:8]}."
        self.services: dict[str, Service] = {}
        self.databases: dict[str, str] = {}
        self._stack = ExitStack()

    def __enter__(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        hack("postgres.sh", "install")
        hack("kafka.sh", "install")
        for server in (self.postgres, self.workshop_postgres, self.kafka):
            server.start()
            self._stack.callback(server.stop)
        bus = {
            "SUKVERSE_BUS": "kafka",
            "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": self.kafka.address,
            "SUKVERSE_KAFKA_TOPIC_PREFIX": self.prefix,
            "SUKVERSE_LOG_LEVEL": "WARNING",
            "SUKVERSE_DATA_DIR": str(self.directory),
        }
        for name in self.names:
            server = self.workshop_postgres if name == "workshop" else self.postgres
            self.databases[name] = asyncio.run(create_database(server.address, name))
        auth_url = self._launch(
            "auth",
            {
                **bus,
                "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
                "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
                # Accounts are made by the hundred here: light hashing, quick set-up.
                "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
                "SUKVERSE_ARGON2_TIME_COST": "1",
                "SUKVERSE_LOGIN_ADDRESS_LIMIT": "1000000",
                "SUKVERSE_SERVICE_CLIENTS": json.dumps({CLIENT_ID: CLIENT_SECRET}),
            },
        )
        cluster = {**bus, "SUKVERSE_MODE": "cluster", "SUKVERSE_AUTH_URL": auth_url}
        for name in self.names[1:]:
            own = {
                "user_mgmt": {
                    "SUKVERSE_AUTH_CLIENT_ID": CLIENT_ID,
                    "SUKVERSE_AUTH_CLIENT_SECRET": CLIENT_SECRET,
                },
                "certificate": {
                    "SUKVERSE_PUBLIC_BASE_URL": PUBLIC_URL,
                    "SUKVERSE_WORKSHOP_URL": self.url("workshop") if "workshop" in self else "",
                },
            }.get(name, {})
            self._launch(name, {**cluster, **own})

    def __contains__(self, name: str) -> bool:
        return name in self.services

    def url(self, name: str) -> str:
        return self.services[name].url

    def _launch(self, name: str, env: dict[str, str]) -> str:
        env = {**os.environ, **env, "SUKVERSE_DATABASE_URL": self.databases[name]}
        if name != "auth":
            subprocess.run(sukverse("migrate", name), env=env, check=True, capture_output=True)
        port = free_port()
        command = sukverse("serve", name, "--port", str(port))
        log = self.directory / f"{name}.log"
        proc = self._stack.enter_context(process(command, env=env, log=log))
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/readyz", proc, timeout=120, poll=0.05)
        self.services[name] = Service(name, url, proc)
        return url


class Api:
    """JSON calls to the services; a call that must answer `status`."""

    def __init__(self, http: aiohttp.ClientSession, cluster: Cluster) -> None:
        self.http, self.cluster = http, cluster

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        status: int | tuple[int, ...] = 200,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.cluster.url(service) + path
        async with self.http.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
            wanted = status if isinstance(status, tuple) else (status,)
            if response.status not in wanted:
                raise JourneyError(f"{method} {service}{path}: {response.status} {text[:300]}")
            return json.loads(text) if text and response.content_type.endswith("json") else text

    async def login(self, email: str, password: str) -> str:
        body = {"email": email, "password": password}
        return str((await self.call("auth", "POST", "/auth/login", body))["access_token"])

    async def student(self, n: int, tag: str) -> tuple[str, str]:
        """A new account; its id and an access token."""
        email = f"{tag}-{n}@example.com"
        body = {"email": email, "password": PASSWORD, "full_name": f"Student {n}"}
        user = await self.call("auth", "POST", "/auth/register", body, status=201)
        return user["id"], await self.login(email, PASSWORD)

    async def until(self, check: Callable[[], Awaitable[Any]], what: str) -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                found = await check()
            except JourneyError:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)


class JourneyError(Exception):
    """A call answered what the journey did not expect."""
