"""Kopf's handlers: thin adapters that hand a cohort to the one reconciler.

Create, update and resume reconcile in full; a timer copies the figures from analytics into
the status (and reconciles in full now and then, to repair drift); delete archives the
workshop behind the finalizer `sukverse.io/cohort`. An edit of a roster ConfigMap is recorded
on the cohorts that name it, as a digest in an annotation, which makes it their update.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
import structlog
from kubernetes_asyncio import client

from sukverse_common import tracing
from sukverse_operator import kube
from sukverse_operator.metrics import OperatorMetrics
from sukverse_operator.reconcile import (
    Invitation,
    archive,
    desired_status,
    figures_status,
    merged,
    now,
    reconcile,
)
from sukverse_operator.services import RefusedError, ServiceError, Services
from sukverse_operator.settings import OperatorSettings
from sukverse_operator.spec import (
    FINALIZER,
    GROUP,
    PLURAL,
    VERSION,
    Cohort,
    RosterError,
    roster,
)

log = structlog.get_logger("sukverse.operator")
PENDING_RETRY_SECONDS = 2.0
# The Kopf peering the replicas elect their leader through; the chart creates it by this name.
PEERING = "sukverse-operator"


def digest(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's diff base with the spec replaced by its digest.

    Kopf keeps the last handled state to tell a real change from noise; by default that is
    the whole spec in one annotation, and all annotations together may hold 256 KiB, which a
    cohort of a few thousand students exceeds. The reconciler is level-based and reads no
    diff, so a digest tells all it needs: whether the spec changed."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        essence: Any = super().build(body=body, extra_fields=extra_fields)
        if "spec" in essence:
            essence["spec"] = {"sha256": digest(essence["spec"])}
        return essence  # type: ignore[no-any-return]


@dataclass
class Runtime:
    """What the handlers share: settings, the services' client, the Kubernetes client."""

    settings: OperatorSettings
    services: Services
    api: client.ApiClient
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    full_at: dict[str, float] = field(default_factory=dict)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    async def reconcile(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """One full reconcile, as a trace of its own (its calls to the services join it)."""
        meta = body.get("metadata") or {}
        with tracing.span(
            "reconcile SukverseCohort",
            **{"k8s.namespace.name": meta.get("namespace"), "sukverse.cohort": meta.get("name")},
        ):
            await self._reconcile(body, patch)

    async def _reconcile(self, body: kopf.Body, patch: kopf.Patch) -> None:
        cohort = Cohort.from_body(dict(body))
        async with self.lock(cohort.key):
            self.full_at[cohort.key] = time.monotonic()
            previous = dict(body.get("status") or {})
            try:
                csv_students = await kube.students_from(self.api, cohort)
            except RosterError as exc:
                wanted = desired_status(cohort, None, error=str(exc), reason="RosterInvalid")
                self._set(body, patch, previous, wanted)
                self._failed(cohort, wanted, "RosterInvalid")
                raise kopf.PermanentError(str(exc)) from None
            students = roster(cohort.spec, csv_students)

            async def invite(invitations: list[Invitation]) -> None:
                await kube.write_invitations(self.api, cohort, dict(body), invitations)

            try:
                outcome = await reconcile(cohort, students, self.services, invite)
            except ServiceError as exc:
                reason = "ChangeRefused" if isinstance(exc, RefusedError) else "ServiceUnavailable"
                wanted = desired_status(cohort, None, error=exc.message, reason=reason)
                self._set(body, patch, previous, wanted)
                self._failed(cohort, wanted, reason)
                if isinstance(exc, RefusedError):
                    raise kopf.PermanentError(exc.message) from None
                raise kopf.TemporaryError(
                    exc.message, delay=self.settings.retry_delay_seconds
                ) from None
            except Exception:
                self.metrics.failed(cohort.key, "Degraded", "Unexpected", self._elapsed(cohort))
                raise
            wanted = desired_status(cohort, outcome)
            if self._set(body, patch, previous, wanted) and outcome.refusals:
                kopf.warn(body, reason="ChangeRefused", message="; ".join(outcome.refusals))
            self.metrics.reconciled(cohort.key, wanted["phase"], self._elapsed(cohort))
            log.info(
                "reconciled",
                cohort=cohort.key,
                writes=outcome.writes,
                phase=wanted["phase"],
                seconds=round(time.monotonic() - self.full_at[cohort.key], 3),
            )
            if outcome.pending:
                raise kopf.TemporaryError("; ".join(outcome.pending), delay=PENDING_RETRY_SECONDS)

    def _elapsed(self, cohort: Cohort) -> float:
        return time.monotonic() - self.full_at[cohort.key]

    def _failed(self, cohort: Cohort, wanted: dict[str, Any], reason: str) -> None:
        self.metrics.failed(cohort.key, wanted["phase"], reason, self._elapsed(cohort))

    def _set(
        self, body: kopf.Body, patch: kopf.Patch, previous: dict[str, Any], wanted: dict[str, Any]
    ) -> bool:
        """Patch the status only where it changes; whether it did."""
        change = merged(previous, wanted)
        if change is None:
            return False
        patch.status.update(change)
        return True

    async def sync(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """The timer: the figures from analytics, and now and then (`resync_interval`) a
        full run that repairs drift. A change of the spec and a failed run are the update
        handler's and Kopf's retries, so the timer never runs beside them on purpose."""
        status = dict(body.get("status") or {})
        uid = str(body["metadata"]["uid"])
        due = time.monotonic() - self.full_at.get(uid, 0.0) > self.settings.resync_interval_seconds
        if due and not self.lock(uid).locked():
            # A failure is already in the status; the timer comes back.
            with contextlib.suppress(kopf.TemporaryError, kopf.PermanentError):
                await self.reconcile(body, patch)
            return
        workshop_id = status.get("workshopId")
        if not workshop_id:
            return
        try:
            figures = await self.services.figures(workshop_id)
        except ServiceError as exc:
            log.warning("figures not read", cohort=uid, reason=exc.message)
            return
        wanted = figures_status(figures)
        if any(status.get(k) != v for k, v in wanted.items()):
            patch.status.update({**wanted, "lastSyncTime": now()})

    async def delete(self, body: kopf.Body) -> None:
        cohort = Cohort.from_body(dict(body))
        async with self.lock(cohort.key):
            try:
                await archive(cohort, self.services)
            except RefusedError as exc:
                if exc.status != 404:
                    raise kopf.TemporaryError(
                        exc.message, delay=self.settings.retry_delay_seconds
                    ) from None
            except ServiceError as exc:
                raise kopf.TemporaryError(
                    f"the workshop is archived once the services answer: {exc.message}",
                    delay=self.settings.retry_delay_seconds,
                ) from None
        self.locks.pop(cohort.key, None)
        self.full_at.pop(cohort.key, None)
        self.metrics.forget(cohort.key)

    async def roster_changed(self, body: kopf.Body, cohorts: list[tuple[str, str, str]]) -> None:
        """Record the roster's digest on each cohort reading it (`(name, key, digest)`)."""
        namespace = str(body["metadata"]["namespace"])
        data = dict(body.get("data") or {})
        api = client.CustomObjectsApi(self.api)
        for name, key, recorded in cohorts:
            current = digest(data.get(key))
            if current == recorded:
                continue
            await api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": {"annotations": {kube.ROSTER_ANNOTATION: current}}},
                _content_type=kube.MERGE_PATCH,  # type: ignore[call-arg]  # a kwargs option the stubs omit
            )


def registry(runtime: Runtime) -> kopf.OperatorRegistry:
    """The handlers, registered on a registry of their own (nothing at import time)."""
    handlers = kopf.OperatorRegistry()
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(id="login", registry=handlers)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """The credentials the Kubernetes client finds: in-cluster, else the kubeconfig."""
        return await kopf.login_via_async_client(**kwargs)

    @kopf.on.startup(id="configure", registry=handlers)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.diffbase_storage = DigestDiffBaseStorage(
            prefix="operator.sukverse.io", key="last-handled-digest"
        )
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="operator.sukverse.io"
        )
        settings.peering.mandatory = True
        # A watch that goes silent is restarted instead of waiting forever: the server ends
        # each watch after 5 minutes, and Kopf's inactivity timeout (70 s, past the API
        # server's 60 s bookmarks) restarts one that stalls sooner.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 30
        settings.posting.level = logging.WARNING  # only what goes wrong becomes an Event
        settings.batching.worker_limit = runtime.settings.concurrency

    @kopf.on.create(*resource, id="reconcile", registry=handlers)
    @kopf.on.update(*resource, id="reconcile", registry=handlers)
    @kopf.on.resume(*resource, id="reconcile", registry=handlers)
    async def changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await runtime.reconcile(body, patch)

    @kopf.timer(
        *resource,
        interval=runtime.settings.sync_interval_seconds,
        initial_delay=runtime.settings.sync_interval_seconds,
        id="figures",
        registry=handlers,
    )
    async def figures(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await runtime.sync(body, patch)

    @kopf.on.delete(*resource, id="archive", registry=handlers)
    async def deleted(body: kopf.Body, **_: Any) -> None:
        await runtime.delete(body)

    # Handler ids are fixed: they name the progress annotations and the index keyword.
    @kopf.index(*resource, id="rosters", registry=handlers)
    def rosters(
        namespace: str | None,
        name: str,
        spec: kopf.Spec,
        annotations: kopf.Annotations,
        **_: Any,
    ) -> dict[tuple[str | None, str], tuple[str, str, str]] | None:
        ref = (spec.get("studentsFrom") or {}).get("configMapKeyRef")
        if not ref:
            return None
        recorded = annotations.get(kube.ROSTER_ANNOTATION, "")
        return {(namespace, ref["name"]): (name, ref.get("key", "students.csv"), recorded)}

    @kopf.on.event("", "v1", "configmaps", id="roster-edited", registry=handlers)
    async def roster_edited(
        body: kopf.Body,
        namespace: str | None,
        name: str,
        type: str,
        **kwargs: Any,
    ) -> None:
        # The index arrives as a keyword named after its function.
        index: kopf.Index[tuple[str | None, str], tuple[str, str, str]] = kwargs["rosters"]
        readers = index.get((namespace, name))
        if readers and type != "DELETED":
            await runtime.roster_changed(body, list(readers))

    return handlers
