"""``carewatch``: the project's command line (the console script of the same name).

``carewatch demo [--site FILE] [--port 8080] [--broker mqtt://HOST:PORT]
[--influx http://HOST:8086 --influx-db NAME] [--speed 1] [--data DIR] [--keep]``
runs the whole CareWatch on this machine (see :mod:`carewatch.demo`).

Exit statuses: 0 after Ctrl-C or SIGTERM (everything stopped), 1 when a part failed while
starting or running (its log's tail is shown), 2 for bad arguments or a machine the demo
cannot run on (a port in use, no usable broker), with a message saying what to change.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from carewatch.demo import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Demo, DemoOptions
from firmware_sim.site import SEEDS_DIR, find_site

__all__ = ["main"]

logger = logging.getLogger("carewatch")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _mqtt_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: expected mqtt://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise argparse.ArgumentTypeError(f"{text!r}: expected mqtt://HOST[:PORT] and nothing else")
    try:
        port = parts.port or 1883
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: bad port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"mqtt://{host}:{port}"


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: expected http://HOST:PORT")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: bad port") from None
    return text.rstrip("/")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < speed <= 1000:
        raise argparse.ArgumentTypeError("the speed must be above 0 and at most 1000")
    return speed


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="carewatch", description="CareWatch: remote monitoring of vital signs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the whole CareWatch on this machine with a simulated care home",
        description="Start a broker, the cloud services (ingest, alerts, API and dashboard), "
        "the simulated care home and its gateway, all on 127.0.0.1; print the dashboard's "
        "address and the demo's logins; stop everything on Ctrl-C.",
    )
    demo.add_argument(
        "--site",
        default=str(SEEDS_DIR / "oak-house.toml"),
        help="the care home: a site file, or a name in seeds/ (default: oak-house)",
    )
    demo.add_argument(
        "--port", type=_port, default=8080, help="the dashboard's port (default: 8080; 0: any)"
    )
    demo.add_argument(
        "--broker",
        type=_mqtt_url,
        metavar="mqtt://HOST:PORT",
        help="use this MQTT v5 broker (e.g. a real Mosquitto) instead of the embedded one",
    )
    demo.add_argument(
        "--influx",
        type=_http_url,
        metavar="http://HOST:8086",
        help="store readings in this InfluxDB instead of the embedded store",
    )
    demo.add_argument(
        "--influx-db", default="carewatch", help="the InfluxDB database (default: carewatch)"
    )
    demo.add_argument(
        "--speed", type=_speed, default=1.0, help="simulated seconds per second (default: 1)"
    )
    demo.add_argument(
        "--data",
        type=Path,
        help="folder for the services' files and logs, kept (default: a temporary folder)",
    )
    demo.add_argument("--keep", action="store_true", help="keep the temporary data folder at exit")
    demo.add_argument(
        "--family-of",
        default="r05",
        help="the resident the demo's family login follows (default: r05)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)  # the demo's INFO lines go to demo.log only
    console.setFormatter(logging.Formatter("carewatch: %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    site = find_site(args.site).resolve()
    if not site.is_file():
        print(f"carewatch demo: no site file {site}", file=sys.stderr)
        return EXIT_USAGE
    options = DemoOptions(
        site=site,
        port=args.port,
        broker=args.broker,
        influx=args.influx,
        influx_db=args.influx_db,
        speed=args.speed,
        data=args.data,
        keep=args.keep,
        family_of=args.family_of,
    )
    try:
        return asyncio.run(Demo(options, sys.stdout).run())
    except KeyboardInterrupt:  # before the demo's own handlers were in place
        return EXIT_OK
    except Exception:
        logger.exception("the demo crashed")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
