"""``python -m cloud <service> --config FILE``: run one of the cloud services.

Services: ``ingest`` (MQTT -> store). Exit statuses, as systemd reads them: 0 after a clean
stop (SIGTERM or SIGINT), 1 for a runtime failure (the supervisor restarts the service;
nothing is lost, unacknowledged messages stay with the broker), 2 for a configuration error
(bad settings or site files: restarting will not help; ``RestartPreventExitStatus=2``).

Logs go to stderr, one event per line, as ``key=value`` pairs or JSON (``[log] format``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import start_http_server

from cloud.errors import CloudError, RegistryError, SettingsError
from cloud.ingest import IngestMetrics, Ingestor
from cloud.registry import SiteFileRegistry
from cloud.settings import CloudSettings, LogSettings
from cloud.store import open_store
from vitals.logs import configure_logging as configure

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "configure_logging", "main"]

logger = logging.getLogger("cloud")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def configure_logging(settings: LogSettings) -> None:
    # paho logs every packet at DEBUG; keep it to warnings unless asked for DEBUG.
    configure(settings.level, settings.format, chatty=("cloud.ingest.mqtt.paho",))


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloud", description="Run one of the CareWatch cloud services."
    )
    services = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    ingest = services.add_parser("ingest", help="consume readings from MQTT into the store")
    ingest.add_argument(
        "--config", type=Path, default=None, help="settings file (TOML); CAREWATCH_* override it"
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
    try:
        return asyncio.run(_ingest(settings))
    except RegistryError as exc:
        logger.error("invalid device registry: %s", "; ".join(exc.errors) or exc)
        return EXIT_CONFIG
    except CloudError as exc:
        logger.error("ingest failed: %s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception:
        logger.exception("ingest crashed")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
