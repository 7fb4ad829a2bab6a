"""The reconciler without Kubernetes: `sukverse apply -f`, `get cohorts`, `delete -f`.

A cohort applied from a file is kept under the data directory (`cohorts/<namespace>/`):
its last applied spec and its status, as a cluster keeps them on the resource, and the
new students' set-password tokens in a file only its owner can read. ConfigMaps in the same
file (or applied before) serve `studentsFrom`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sukverse_common.machine_clients import write_private
from sukverse_operator.reconcile import (
    Invitation,
    Invite,
    archive,
    desired_status,
    merged,
    reconcile,
)
from sukverse_operator.services import ServiceError, Services
from sukverse_operator.settings import OperatorSettings
from sukverse_operator.spec import (
    GROUP,
    KIND,
    VERSION,
    Cohort,
    RosterError,
    Student,
    parse_roster,
    roster,
)

API_VERSION = f"{GROUP}/{VERSION}"
PENDING_ROUNDS = 20
PENDING_DELAY_SECONDS = 0.25


class ApplyError(ValueError):
    """A file or resource that cannot be applied; says which and why."""


def read_documents(path: Path) -> list[dict[str, Any]]:
    """The resources of a YAML file (`-` for standard input), empty documents skipped."""
    try:
        text = path.read_text(encoding="utf-8") if str(path) != "-" else sys.stdin.read()
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise ApplyError(f"{path}: {exc}") from None
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            raise ApplyError(f"{path}: every document must be a Kubernetes resource with a kind")
    return documents


@dataclass(frozen=True)
class Store:
    """Where applied cohorts and ConfigMaps live: `<data dir>/cohorts/<namespace>/`."""

    root: Path

    def path(self, namespace: str, name: str, kind: str) -> Path:
        return self.root / namespace / f"{name}.{kind}.json"

    def load(self, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
        path = self.path(namespace, name, kind)
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def save(self, namespace: str, name: str, kind: str, value: dict[str, Any]) -> None:
        write_private(self.path(namespace, name, kind), json.dumps(value, indent=2) + "\n")

    def remove(self, namespace: str, name: str, kind: str) -> None:
        self.path(namespace, name, kind).unlink(missing_ok=True)

    def cohorts(self) -> list[dict[str, Any]]:
        return [
            json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(self.root.glob("*/*.cohort.json"))
        ]

    def add_invitations(self, cohort: Cohort, invitations: Sequence[Invitation]) -> Path:
        path = self.root / cohort.namespace / f"{cohort.name}.invitations.json"
        known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        for item in invitations:
            known[str(item.user_id)] = {
                "email": item.email,
                "token": item.token,
                "expiresAt": item.expires_at,
            }
        write_private(path, json.dumps(known, indent=2) + "\n")
        return path


def _namespace(document: dict[str, Any]) -> str:
    return str((document.get("metadata") or {}).get("namespace") or "default")


def _name(document: dict[str, Any]) -> str:
    name = (document.get("metadata") or {}).get("name")
    if not name:
        raise ApplyError(f"a {document.get('kind')} without metadata.name")
    return str(name)


@dataclass
class Result:
    namespace: str
    name: str
    writes: int
    status: dict[str, Any]
    invitations: Path | None


class LocalRunner:
    """Applies cohorts to the platform at the settings' URLs, keeping state in a Store."""

    def __init__(self, settings: OperatorSettings, services: Services) -> None:
        self.settings = settings
        self.services = services
        self.store = Store(settings.data_dir / "cohorts")

    def _csv(
        self, cohort: Cohort, config_maps: dict[tuple[str, str], dict[str, Any]]
    ) -> list[Student]:
        source = cohort.spec.students_from
        if source is None:
            return []
        ref = source.config_map_key_ref
        found = config_maps.get((cohort.namespace, ref.name)) or self.store.load(
            cohort.namespace, ref.name, "configmap"
        )
        if found is None:
            raise RosterError(
                f"ConfigMap {ref.name} (studentsFrom) is neither in the file nor applied"
            )
        data = found.get("data") or {}
        if ref.key not in data:
            raise RosterError(f"ConfigMap {ref.name} has no key {ref.key} (studentsFrom)")
        return parse_roster(str(data[ref.key]), source=f"ConfigMap {ref.name}")

    async def apply(self, documents: Iterable[dict[str, Any]]) -> list[Result]:
        documents = list(documents)
        config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        cohorts: list[Cohort] = []
        for document in documents:
            kind = document.get("kind")
            if kind == "ConfigMap" and document.get("apiVersion") == "v1":
                config_maps[(_namespace(document), _name(document))] = document
            elif kind == KIND and document.get("apiVersion") == API_VERSION:
                try:
                    cohorts.append(Cohort.from_body(document))
                except ValueError as exc:
                    raise ApplyError(f"{KIND} {_name(document)}: {exc}") from None
            else:
                raise ApplyError(
                    f"{document.get('apiVersion')}/{kind} {_name(document)}: only {API_VERSION} "
                    f"{KIND} and v1 ConfigMap can be applied without Kubernetes"
                )
        for (namespace, name), document in config_maps.items():
            self.store.save(namespace, name, "configmap", document)
        return [await self._apply(cohort, config_maps) for cohort in cohorts]

    async def _apply(
        self, cohort: Cohort, config_maps: dict[tuple[str, str], dict[str, Any]]
    ) -> Result:
        stored = self.store.load(cohort.namespace, cohort.name, "cohort") or {}
        generation = int(stored.get("generation") or 0)
        if stored.get("spec") != cohort.spec.model_dump(mode="json", by_alias=True):
            generation += 1
        cohort = cohort.model_copy(update={"generation": max(generation, 1)})
        previous = dict(stored.get("status") or {})
        invitations: list[Path] = []

        async def invite(items: list[Invitation]) -> None:
            invitations.append(self.store.add_invitations(cohort, items))

        before = sum(self.services.writes.values())
        students = roster(cohort.spec, self._csv(cohort, config_maps))
        wanted = await self._reconcile(cohort, students, invite)
        status = merged(previous, wanted) or {}
        status = {**previous, **status}
        self.store.save(
            cohort.namespace,
            cohort.name,
            "cohort",
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"namespace": cohort.namespace, "name": cohort.name},
                "generation": cohort.generation,
                "spec": cohort.spec.model_dump(mode="json", by_alias=True),
                "status": status,
            },
        )
        return Result(
            cohort.namespace,
            cohort.name,
            sum(self.services.writes.values()) - before,
            status,
            invitations[-1] if invitations else None,
        )

    async def _reconcile(
        self, cohort: Cohort, students: list[Student], invite: Invite
    ) -> dict[str, Any]:
        """The status a reconcile leaves; what is pending (analytics not yet told of a new
        workshop) is waited for a little, as the operator's retry would."""
        try:
            for _ in range(PENDING_ROUNDS):
                outcome = await reconcile(cohort, students, self.services, invite)
                if not outcome.pending:
                    break
                await asyncio.sleep(PENDING_DELAY_SECONDS)
        except ServiceError as exc:
            return desired_status(cohort, None, error=exc.message)
        return desired_status(cohort, outcome)

    async def delete(self, documents: Iterable[dict[str, Any]]) -> list[tuple[str, str, bool]]:
        deleted = []
        for document in documents:
            kind = document.get("kind")
            namespace, name = _namespace(document), _name(document)
            if kind == "ConfigMap":
                self.store.remove(namespace, name, "configmap")
                continue
            if kind != KIND:
                raise ApplyError(f"{kind} {name}: only {KIND} and ConfigMap can be deleted")
            stored = self.store.load(namespace, name, "cohort")
            if stored is None:
                deleted.append((namespace, name, False))
                continue
            cohort = Cohort.from_body(stored)
            await archive(cohort, self.services)
            self.store.remove(namespace, name, "cohort")
            deleted.append((namespace, name, True))
        return deleted


COLUMNS = (
    "NAMESPACE",
    "NAME",
    "READY",
    "PHASE",
    "ENROLLED",
    "COMPLETION",
    "AT-RISK",
    "CERTIFICATES",
)


def table(cohorts: Iterable[dict[str, Any]]) -> str:
    """Cohorts as `kubectl get cohorts` shows them."""
    rows = [COLUMNS]
    for cohort in cohorts:
        status = cohort.get("status") or {}
        ready = next(
            (c.get("status") for c in status.get("conditions", []) if c.get("type") == "Ready"),
            "",
        )
        rows.append(
            (
                cohort["metadata"]["namespace"],
                cohort["metadata"]["name"],
                str(ready),
                str(status.get("phase", "")),
                str(status.get("enrolled", "")),
                str(status.get("completionPercent", "")),
                str(status.get("atRisk", "")),
                str(status.get("certificatesIssued", "")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def client_session(settings: OperatorSettings) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.request_timeout_seconds),
        connector=aiohttp.TCPConnector(limit=settings.concurrency),
    )
