"""Entry points: the operator in a cluster, and the same reconciler from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import structlog

from sukverse_operator.local import LocalRunner, Result, client_session, read_documents, table
from sukverse_operator.reconcile import figures_status
from sukverse_operator.services import ServiceError, Services
from sukverse_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from sukverse_operator.handlers import Runtime

log = structlog.get_logger("sukverse.operator")


async def operator(
    settings: OperatorSettings,
    *,
    namespaces: Sequence[str],
    liveness: str | None,
    metrics: str | None = None,
) -> None:
    """Run the operator until stopped: every namespace, or only those given.

    Replicas elect one of them through Kopf's peering: each starts with a random priority,
    the highest works and the others wait, taking over when its keep-alive lapses.
    `metrics` is HOST:PORT to serve Prometheus' `/metrics` on.

    Kopf and the Kubernetes client (seconds to import) load here only, not for the
    commands that run without a cluster."""
    import kopf

    from sukverse_operator import kube
    from sukverse_operator.handlers import PEERING, Runtime, registry
    from sukverse_operator.metrics import serve

    api = await kube.api_client()
    try:
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(client_session(settings))
            runtime = Runtime(settings, Services(settings, session), api)
            if metrics is not None:
                host, _, port = metrics.rpartition(":")
                await stack.enter_async_context(serve(runtime.metrics, host, int(port)))
                lister = asyncio.create_task(
                    _list_phases(runtime, namespaces), name="cohort-phases"
                )
                stack.callback(lister.cancel)
            await kopf.operator(
                registry=registry(runtime),
                clusterwide=not namespaces,
                namespaces=list(namespaces),
                standalone=False,
                peering_name=PEERING,
                priority=secrets.randbelow(2**31),
                liveness_endpoint=liveness,
            )
    finally:
        await api.close()


async def _list_phases(runtime: Runtime, namespaces: Sequence[str]) -> None:
    """Every `sync_interval_seconds`, the cohorts' phases from the API server into the
    metrics: a replica standing by reports them as the leader does."""
    from sukverse_operator import kube

    while True:
        try:
            runtime.metrics.observe_phases(await kube.cohort_phases(runtime.api, namespaces))
        except Exception as exc:  # the next round tries again; reconciling goes on
            log.warning("cohort phases not listed", error=repr(exc))
        await asyncio.sleep(runtime.settings.sync_interval_seconds)


async def apply(settings: OperatorSettings, files: Sequence[Path]) -> list[Result]:
    documents = [document for path in files for document in read_documents(path)]
    async with client_session(settings) as session:
        return await LocalRunner(settings, Services(settings, session)).apply(documents)


async def delete(settings: OperatorSettings, files: Sequence[Path]) -> list[tuple[str, str, bool]]:
    documents = [document for path in files for document in read_documents(path)]
    async with client_session(settings) as session:
        return await LocalRunner(settings, Services(settings, session)).delete(documents)


async def get(settings: OperatorSettings) -> str:
    """The applied cohorts as a table, their figures read from analytics as the timer would."""
    async with client_session(settings) as session:
        runner = LocalRunner(settings, Services(settings, session))
        cohorts = runner.store.cohorts()
        for cohort in cohorts:
            status = cohort.setdefault("status", {})
            workshop_id = status.get("workshopId")
            if not workshop_id:
                continue
            # Without an answer, the table shows the figures last recorded.
            with contextlib.suppress(ServiceError, aiohttp.ClientError):
                status.update(figures_status(await runner.services.figures(workshop_id)))
        return table(cohorts)
