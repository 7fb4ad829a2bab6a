"""`sukverse up`, `serve NAME`, `migrate NAME`; the cohort operator (`operator`) and the
same reconciler without Kubernetes (`apply -f`, `get cohorts`, `delete -f`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from sukverse_common import db, machine_clients, tracing
from sukverse_common.app import freeze_startup_objects
from sukverse_common.events.bus import InMemoryBus
from sukverse_common.logs import configure_logging
from sukverse_common.settings import ServiceSettings
from sukverse_platform.registry import DEFAULT_PORT_BASE, SERVICES, ServiceSpec

log = structlog.get_logger("sukverse")
VERSION = importlib.metadata.version("sukverse")


def _settings(spec: ServiceSpec, **overrides: Any) -> ServiceSettings:
    return spec.settings(**{key: value for key, value in overrides.items() if value is not None})


async def _serve(
    specs: Sequence[ServiceSpec],
    overrides: dict[str, Any],
    *,
    port_base: int | None = None,
    port: int | None = None,
    per_service: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Start the given services, one shared in-process bus, until SIGINT or SIGTERM."""
    started = time.perf_counter()
    shared_bus = InMemoryBus() if len(specs) > 1 else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runners: list[web.AppRunner] = []
    try:
        planned: list[tuple[ServiceSpec, ServiceSettings, web.AppRunner]] = []
        for spec in specs:
            if port_base is not None:
                port = port_base + spec.default_port - DEFAULT_PORT_BASE
                overrides["auth_url"] = f"http://127.0.0.1:{port_base}"
                workshop_port = port_base + SERVICES["workshop"].default_port - DEFAULT_PORT_BASE
                overrides["workshop_url"] = f"http://127.0.0.1:{workshop_port}"
            own = (per_service or {}).get(spec.name, {})
            settings = _settings(spec, port=port, **{**overrides, **own})
            runner = web.AppRunner(
                spec.app(settings, bus=shared_bus), access_log=None, handle_signals=False
            )
            planned.append((spec, settings, runner))
        # The services' start-ups (migrations, keys, the first account's hash) wait on disk
        # and on threads: side by side, each overlaps the others' waits.
        outcomes = await asyncio.gather(
            *(runner.setup() for _, _, runner in planned), return_exceptions=True
        )
        runners += [
            runner for (_, _, runner), out in zip(planned, outcomes, strict=True) if out is None
        ]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for spec, settings, runner in planned:
            await web.TCPSite(runner, settings.host, settings.port).start()
            log.info(
                "service listening",
                service=spec.name,
                url=f"http://{settings.host}:{settings.port}",
            )
        if shared_bus is not None:
            await shared_bus.start()
        freeze_startup_objects()
        log.info(
            "ready",
            services=[spec.name for spec in specs],
            seconds=round(time.perf_counter() - started, 2),
        )
        await stop.wait()
        log.info("stopping")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def embedded_clients(data_dir: Path | None) -> dict[str, dict[str, Any]]:
    """The settings that give the embedded platform its machine clients: the secrets of the
    operator and of user_mgmt, kept in the data directory, unless the settings name them."""
    from sukverse_auth.settings import AuthSettings  # `up` alone needs these two
    from sukverse_user_mgmt.settings import UserMgmtSettings

    auth = AuthSettings() if data_dir is None else AuthSettings(data_dir=data_dir)
    clients: dict[str, Any] = machine_clients.load_or_create(auth.data_dir)
    user_mgmt = UserMgmtSettings()
    own: dict[str, dict[str, Any]] = {
        "auth": {"service_clients": {**clients, **auth.service_clients}},
    }
    if user_mgmt.auth_client_secret is None:
        own["user_mgmt"] = {"auth_client_secret": clients.get(user_mgmt.auth_client_id)}
    return own


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sukverse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run every service in one process (embedded mode)")
    up.add_argument("--data-dir", type=Path, help="where the SQLite files and keys live")
    up.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help="auth listens here, the other services on the next five ports",
    )
    serve = commands.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("--port", type=int)
    migrate = commands.add_parser("migrate", help="upgrade a service's database to the latest")
    migrate.add_argument("service", choices=sorted(SERVICES))
    operator = commands.add_parser(
        "operator", help="run the SukverseCohort operator (in a cluster, or with KUBECONFIG)"
    )
    operator.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); all namespaces without it",
    )
    operator.add_argument(
        "--liveness", help="serve Kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz"
    )
    operator.add_argument("--metrics", help="serve /metrics on HOST:PORT, e.g. 0.0.0.0:8081")
    for verb, text in (("apply", "apply cohorts from files"), ("delete", "delete cohorts")):
        files = commands.add_parser(verb, help=f"{text} without Kubernetes (the platform's APIs)")
        files.add_argument(
            "-f", "--filename", action="append", required=True, type=Path, help="a YAML file, or -"
        )
    get = commands.add_parser("get", help="list the cohorts applied without Kubernetes")
    get.add_argument("what", choices=["cohorts", "cohort", "sukversecohorts"])
    args = parser.parse_args(argv)
    if args.command not in {"up", "serve"}:
        gc.enable()  # a service resumes it when ready

    if args.command in {"operator", "apply", "delete", "get"}:
        return _cohorts(args)

    try:
        if args.command == "up":
            configure_logging(_settings(SERVICES["auth"]).log_level)
            tracing.configure("sukverse", VERSION)
            overrides = {"mode": "embedded", "data_dir": args.data_dir}
            asyncio.run(
                _serve(
                    list(SERVICES.values()),
                    overrides,
                    port_base=args.port_base,
                    per_service=embedded_clients(args.data_dir),
                )
            )
        elif args.command == "serve":
            spec = SERVICES[args.service]
            configure_logging(_settings(spec).log_level)
            tracing.configure(spec.name, VERSION)
            asyncio.run(_serve([spec], {}, port=args.port))
        else:
            spec = SERVICES[args.service]
            settings = _settings(spec)
            asyncio.run(db.upgrade(settings.effective_database_url, spec.migrations))
            print(f"{spec.name}: database at the latest migration")
    except ValidationError as exc:
        print(f"sukverse: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, ValueError) as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        print(f"sukverse: {exc}{cause}", file=sys.stderr)
        return 1
    finally:
        tracing.shutdown()
    return 0


def _cohorts(args: argparse.Namespace) -> int:
    """The operator's commands; the operator's package is loaded only for them."""
    from sukverse_operator import run
    from sukverse_operator.local import ApplyError
    from sukverse_operator.services import ServiceError
    from sukverse_operator.settings import OperatorSettings
    from sukverse_operator.spec import RosterError

    try:
        settings = OperatorSettings()
        # The commands a user reads print their own lines; their logs say only what is wrong,
        # unless a level is asked for.
        quiet = args.command != "operator" and "SUKVERSE_LOG_LEVEL" not in os.environ
        configure_logging("WARNING" if quiet else settings.log_level)
        if args.command == "operator":
            tracing.configure("operator", VERSION)
            try:
                asyncio.run(
                    run.operator(
                        settings,
                        namespaces=args.namespace,
                        liveness=args.liveness,
                        metrics=args.metrics,
                    )
                )
            finally:
                tracing.shutdown()
            return 0
        if args.command == "get":
            print(asyncio.run(run.get(settings)))
            return 0
        if args.command == "delete":
            for namespace, name, existed in asyncio.run(run.delete(settings, args.filename)):
                print(
                    f"sukversecohort.sukverse.io/{name} {'deleted' if existed else 'not found'}"
                    f" (namespace {namespace})"
                )
            return 0
        results = asyncio.run(run.apply(settings, args.filename))
    except ValidationError as exc:
        print(f"sukverse: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except (ApplyError, RosterError) as exc:
        print(f"sukverse: {exc}", file=sys.stderr)
        return 1
    except ServiceError as exc:
        print(f"sukverse: {exc.message}", file=sys.stderr)
        return 1
    failed = False
    for result in results:
        phase = result.status.get("phase", "")
        verb = "configured" if result.writes else "unchanged"
        print(f"sukversecohort.sukverse.io/{result.name} {verb} ({result.writes} writes): {phase}")
        if phase != "Ready":
            failed = True
            reason = next(
                (c["message"] for c in result.status.get("conditions", []) if c["type"] == "Ready"),
                "",
            )
            print(f"  {reason}", file=sys.stderr)
        if result.invitations is not None:
            print(f"  set-password tokens of the new accounts: {result.invitations}")
    return 1 if failed else 0
