"""``python -m gateway --config FILE``: run the home gateway.

Exit statuses, as systemd reads them: 0 after a clean stop (SIGTERM or SIGINT), 1 for a
runtime failure (``Restart=on-failure`` restarts it; nothing is lost, the outbox is on disk),
2 for a configuration error (restarting will not help: ``RestartPreventExitStatus=2``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.app import run_gateway
from gateway.errors import GatewayError, SettingsError
from gateway.settings import GatewaySettings
from vitals.logs import configure_logging

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "main"]

logger = logging.getLogger("gateway")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

_CHATTY = ("bumble", "bleak", "aiomqtt", "paho")


async def _run(settings: GatewaySettings) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await run_gateway(settings)
    except asyncio.CancelledError:
        if task.cancelling():
            logger.info("gateway stopped")
            return
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", type=Path, default=None, help="settings file (TOML); CAREWATCH_* override it"
    )
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings.load(args.config)
    except SettingsError as exc:
        print(f"carewatch gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log.level, settings.log.format, chatty=_CHATTY)
    try:
        asyncio.run(_run(settings))
    except GatewayError as exc:
        logger.error("gateway failed: %s", exc)
        return EXIT_FAILURE
    except Exception:
        logger.exception("gateway failed")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
