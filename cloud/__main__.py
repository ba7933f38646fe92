"""``python -m cloud <service> --config FILE``: run one of the cloud services.

Services: ``ingest`` (MQTT -> store), ``alerts`` (MQTT -> rules -> alerts, notifications),
``api`` (the HTTP API and dashboard), and ``serve``: all three in one process, for small
sites and the demo (the API then acts on alerts in-process). ``python -m cloud.api
create-admin`` makes the first account. Exit statuses, as systemd reads them: 0 after a clean
stop (SIGTERM or SIGINT), 1 for a runtime failure (the supervisor restarts the service;
nothing is lost, unacknowledged messages stay with the broker), 2 for a configuration error
(bad settings or site files: restarting will not help; ``RestartPreventExitStatus=2``).

Logs go to stderr, one event per line, as ``key=value`` pairs or JSON (``[log] format``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server

from cloud.errors import CloudError, ConfigurationError, SettingsError
from cloud.ingest import IngestMetrics, Ingestor
from cloud.registry import SiteFileRegistry
from cloud.settings import CloudSettings, LogSettings
from cloud.store import open_store
from cloud.store.base import ReadingStore
from vitals.logs import configure_logging as configure
from vitals.wire import Status

if TYPE_CHECKING:
    from cloud.alerts.service import AlertService

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "configure_logging", "main"]

logger = logging.getLogger("cloud")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def configure_logging(settings: LogSettings) -> None:
    # paho logs every packet at DEBUG; urllib3 logs request paths (apprise URLs carry tokens
    # there): keep both to warnings unless asked for DEBUG.
    configure(settings.level, settings.format, chatty=("cloud.ingest.mqtt.paho", "urllib3"))


async def _api(settings: CloudSettings) -> int:
    from cloud.api.server import serve  # noqa: PLC0415

    await serve(settings.api, settings)
    return EXIT_OK


async def _ingest(settings: CloudSettings) -> int:
    registry = SiteFileRegistry(settings.registry.sites)
    if not settings.registry.sites:
        logger.warning("no site files configured: every device is unknown")
    metrics = IngestMetrics()
    server = None
    if settings.metrics.enabled:
        server, _thread = start_http_server(
            settings.metrics.port, settings.metrics.host, registry=metrics.registry
        )
        logger.info("metrics listening host=%s port=%d", settings.metrics.host, server.server_port)
    try:
        async with open_store(settings.store) as store:
            ingestor = Ingestor(settings, store=store, registry=registry, metrics=metrics)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, ingestor.stop)
            # Everything made so far lives as long as the process: keep the cyclic garbage
            # collector from walking it again and again (each reading makes many objects).
            gc.freeze()
            await ingestor.run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return EXIT_OK


def _metrics_server(settings: CloudSettings, registry: CollectorRegistry) -> Any:
    if not settings.metrics.enabled:
        return None
    server, _thread = start_http_server(
        settings.metrics.port, settings.metrics.host, registry=registry
    )
    logger.info("metrics listening host=%s port=%d", settings.metrics.host, server.server_port)
    return server


@contextlib.asynccontextmanager
async def _alert_service(
    settings: CloudSettings,
    store: ReadingStore,
    *,
    on_status: Callable[[Status, datetime], None] | None = None,
) -> AsyncIterator[AlertService]:
    """The alert service over ``store``, its ledger open; raises ConfigError for bad site
    or people files."""
    # Each service imports only what it runs: a restarted ingestor is back sooner.
    from cloud.alerts.ledger import SqliteLedger  # noqa: PLC0415
    from cloud.alerts.people import load_people  # noqa: PLC0415
    from cloud.alerts.service import AlertService  # noqa: PLC0415
    from cloud.alerts.sites import SiteMap, load_sites  # noqa: PLC0415
    from cloud.notify.dispatcher import Dispatcher  # noqa: PLC0415

    sites = load_sites(settings.registry.sites)
    escalation = load_people(settings.alerts.people, {s.id: s.timezone for s in sites})
    async with SqliteLedger(settings.alerts.ledger) as ledger:
        yield AlertService(
            settings,
            sites=SiteMap.of(sites, datetime.now(UTC)),
            escalation=escalation,
            ledger=ledger,
            store=store,
            dispatcher=Dispatcher(settings.notify),
            on_status=on_status,
        )


async def _alerts(settings: CloudSettings) -> int:
    async with open_store(settings.store) as store, _alert_service(settings, store) as service:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.stop)
        await service.run()
    return EXIT_OK


async def _serve(settings: CloudSettings) -> int:
    """Ingest, alerts and the API in one process (one store, one event loop)."""
    from cloud.api.devices import DeviceStatusBoard  # noqa: PLC0415
    from cloud.api.server import serve  # noqa: PLC0415

    board = DeviceStatusBoard()
    stop = asyncio.Event()
    metrics = IngestMetrics()
    server = _metrics_server(settings, metrics.registry)
    try:
        async with (
            open_store(settings.store) as store,
            _alert_service(
                settings, store, on_status=lambda status, at: board.update(status, received=at)
            ) as alerts,
        ):
            ingestor = Ingestor(
                settings,
                store=store,
                registry=SiteFileRegistry(settings.registry.sites),
                metrics=metrics,
            )

            def stopping() -> None:
                stop.set()
                ingestor.stop()
                alerts.stop()

            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stopping)
            async with asyncio.TaskGroup() as group:
                group.create_task(ingestor.run(), name="serve-ingest")
                group.create_task(alerts.run(), name="serve-alerts")
                group.create_task(
                    serve(settings.api, settings, devices=board, alerts=alerts, stop=stop),
                    name="serve-api",
                )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloud", description="Run one of the CareWatch cloud services."
    )
    services = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for name, text in (
        ("ingest", "consume readings from MQTT into the store"),
        ("alerts", "evaluate the alert rules, run the alert lifecycle, notify people"),
        ("api", "serve the HTTP API and the dashboard"),
        ("serve", "ingest, alerts and the API in one process (small sites, the demo)"),
    ):
        service = services.add_parser(name, help=text)
        service.add_argument(
            "--config",
            type=Path,
            default=None,
            help="settings file (TOML); CAREWATCH_* override it",
        )
    args = parser.parse_args(argv)  # bad usage: exit status 2, like a bad config
    try:
        settings = CloudSettings.load(args.config)
    except SettingsError as exc:
        print(f"carewatch: {exc}", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log)
    runs = {"ingest": _ingest, "alerts": _alerts, "serve": _serve, "api": _api}
    try:
        return asyncio.run(runs[args.service](settings))
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        return _exit_status(args.service, exc)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _exit_status(service: str, exc: Exception) -> int:
    """A failure as systemd should read it (task groups wrap errors: look inside)."""
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, ConfigurationError):
            errors = getattr(leaf, "errors", ()) or (str(leaf),)
            logger.error("%s: configuration refused: %s", service, "; ".join(errors))
            return EXIT_CONFIG
    for leaf in leaves:
        if isinstance(leaf, CloudError):
            logger.error("%s failed: %s", service, leaf)
            return EXIT_FAILURE
    logger.error("%s crashed", service, exc_info=exc)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
