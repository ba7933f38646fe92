"""``python -m cloud.api``: run the HTTP API, or create its first administrator.

``serve --config FILE``
    Run the API (the ``[api]`` section of the cloud settings file, with its ``[store]`` and
    ``demo``). Refuses to start without an enabled administrator unless ``demo = true``.
``create-admin --config FILE --username NAME --site SITE [--site ...] [--password-stdin]``
    Create the first administrator (refused when one exists: they create the others). The
    password is asked twice on the terminal, or read from the first line of stdin.

Exit statuses, as for ``python -m cloud``: 0 after a clean stop, 1 for a runtime failure,
2 for a configuration problem (bad settings or site files, no administrator, a refused
password) that restarting will not fix.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cloud.api.accounts import SqliteAccountStore, create_first_admin
from cloud.api.clock import SystemClock
from cloud.api.errors import AccountError, ApiError, DirectoryError, NoAdminError
from cloud.api.passwords import Passwords
from cloud.api.server import serve
from cloud.api.settings import ApiSettings, load_api_config
from cloud.errors import CloudError, SettingsError
from vitals.logs import configure_logging

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "main"]

logger = logging.getLogger("cloud.api")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("Password for the new administrator: ")
    second = getpass.getpass("Again: ")
    if first != second:
        print("carewatch: the two passwords differ", file=sys.stderr)
        return None
    return first


async def _create_admin(
    settings: ApiSettings, username: str, sites: list[str], password: str
) -> int:
    async with SqliteAccountStore(settings.database) as accounts:
        user = await create_first_admin(
            accounts,
            Passwords(settings.passwords),
            username=username,
            password=password,
            sites=sites,
            now=SystemClock().now(),
        )
    print(f"created administrator id={user.id} username={user.username}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloud.api", description="The CareWatch HTTP API."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("serve", help="run the HTTP API")
    run.add_argument("--config", type=Path, required=True, help="settings file (TOML)")
    admin = commands.add_parser("create-admin", help="create the first administrator")
    admin.add_argument("--config", type=Path, required=True, help="settings file (TOML)")
    admin.add_argument("--username", required=True)
    admin.add_argument("--site", action="append", required=True, dest="sites")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    args = parser.parse_args(argv)
    try:
        api, cloud = load_api_config(args.config)
    except SettingsError as exc:
        print(f"carewatch: {exc}", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(cloud.log.level, cloud.log.format)

    if args.command == "create-admin":
        password = _read_password(args.password_stdin)
        if password is None:
            return EXIT_CONFIG
        try:
            return asyncio.run(_create_admin(api, args.username, args.sites, password))
        except AccountError as exc:
            print(f"carewatch: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except ApiError as exc:
            print(f"carewatch: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    try:
        asyncio.run(serve(api, cloud))
    except (DirectoryError, NoAdminError) as exc:
        errors = getattr(exc, "errors", ())
        logger.error("cannot start: %s", "; ".join(errors) or exc)
        return EXIT_CONFIG
    except CloudError as exc:
        logger.error("api failed: %s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception:
        logger.exception("api crashed")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
