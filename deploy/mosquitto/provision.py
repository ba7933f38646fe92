#!/usr/bin/env python3
"""Provision CareWatch accounts on Mosquitto: one ACL block and one password per account.

Standard library only (it runs on the broker host, where CareWatch is not installed)::

    provision.py [--acl FILE] [--passwd FILE] [--hasher H] COMMAND ...

    add-gateway --site S --gateway G [--homeassistant [--ha-node-id N] [--ha-prefix P]]
                [--password-stdin]
        The gateway's account (user name = gateway id): it may publish its readings and its
        status under its own site and gateway, nothing else; with ``--homeassistant`` also its
        Home Assistant state topics and discovery configs (see gateway/homeassistant.py).
    add-service {ingest,alerts,api} [--password-stdin]
        A cloud service's account (one account per service; its processes share it).
    remove USER
        Delete the account's ACL block and password.
    list
        Every account in the ACL file, what it is, and whether it has a password.
    check
        Exit 1 when an ACL account has no password or a password has no ACL block.

The password is read from the first line of stdin with ``--password-stdin``; otherwise a
random one is generated and printed on stdout (the only thing printed there), once. It is
hashed by ``mosquitto_passwd`` (Debian's ``mosquitto`` package), fed on stdin so it never
shows in a process list, or, without that program (``--hasher builtin``), here: the same
``$7$`` PBKDF2-SHA512 line Mosquitto 2 writes and reads. Both files are replaced atomically
(a temporary file renamed over the old one), keeping their mode (new files: 0600); Mosquitto
reads them at start and on SIGHUP (``systemctl reload mosquitto``).

Exit statuses: 0 done, 1 refused or failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_ACL",
    "DEFAULT_HA_PREFIX",
    "DEFAULT_PASSWD",
    "ID_PATTERN",
    "PREFIX",
    "SERVICE_RULES",
    "AclBlock",
    "AclFile",
    "PasswordFile",
    "ProvisionError",
    "default_node_id",
    "gateway_rules",
    "main",
    "password_line",
]

PREFIX = "carewatch/v1"
"""The topic prefix of CareWatch (vitals.topics.PREFIX)."""
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
"""Site and gateway identifiers (vitals.topics.ID_PATTERN): never a level separator or a
wildcard, so they are safe inside topic names and ACL lines."""
DEFAULT_ACL = Path("/etc/mosquitto/acl")
DEFAULT_PASSWD = Path("/etc/mosquitto/passwd")
DEFAULT_HA_PREFIX = "homeassistant"
PBKDF2_ITERATIONS = 101
"""What mosquitto_passwd 2.0 uses; the passwords generated here are 192 random bits, so the
iteration count is not what protects them."""

_ID_RE = re.compile(ID_PATTERN)
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
_USER_LINE = re.compile(r"^user\s+(\S.*?)\s*$")

SERVICE_RULES: dict[str, tuple[str, ...]] = {
    # The ingestors: readings in (a $share/<group>/ subscription is checked against the plain
    # filter), dead letters out.
    "ingest": (
        f"topic read {PREFIX}/+/+/readings",
        f"topic write {PREFIX}/+/deadletter",
    ),
    # The alert engine: readings and gateway status in, alerts out.
    "alerts": (
        f"topic read {PREFIX}/+/+/readings",
        f"topic read {PREFIX}/+/+/status",
        f"topic write {PREFIX}/+/alerts",
    ),
    # The HTTP API's live view: alerts and gateway status in, nothing out.
    "api": (
        f"topic read {PREFIX}/+/alerts",
        f"topic read {PREFIX}/+/+/status",
    ),
}
"""The cloud services' accounts and their rules."""

_SERVICE_TITLES = {
    "ingest": "The ingestors (one account for the group; each process has its own client id).",
    "alerts": "The alert engine.",
    "api": "The HTTP API (live view of alerts and gateway status).",
}


class ProvisionError(Exception):
    """A refused or failed provisioning step; the message says why."""


def check_id(value: str, what: str) -> str:
    if _ID_RE.fullmatch(value) is None:
        raise ProvisionError(
            f"invalid {what} {value!r}: expected 1-64 characters of letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return value


def default_node_id(site: str, gateway: str) -> str:
    """The Home Assistant node id a gateway uses unless configured otherwise (the same rule
    as ``gateway.homeassistant.default_node_id``)."""
    return f"carewatch_{check_id(site, 'site')}_{check_id(gateway, 'gateway')}"


def gateway_rules(
    site: str,
    gateway: str,
    *,
    homeassistant: bool = False,
    ha_prefix: str = DEFAULT_HA_PREFIX,
    ha_node_id: str | None = None,
) -> tuple[str, ...]:
    """The ACL rules of one gateway: write its own readings and status, and with
    ``homeassistant`` its HA state topics and its discovery configs; no read at all."""
    base = f"{PREFIX}/{check_id(site, 'site')}/{check_id(gateway, 'gateway')}"
    rules = [f"topic write {base}/readings", f"topic write {base}/status"]
    if homeassistant:
        if _PREFIX_RE.fullmatch(ha_prefix) is None:
            raise ProvisionError(f"invalid Home Assistant discovery prefix {ha_prefix!r}")
        node = check_id(ha_node_id, "node id") if ha_node_id else default_node_id(site, gateway)
        rules += [f"topic write {base}/ha/#", f"topic write {ha_prefix}/+/{node}/+/config"]
    return tuple(rules)


# -- the ACL file ---------------------------------------------------------------------------


@dataclass(slots=True)
class AclBlock:
    """One account's block: the comment lines above it, ``user NAME``, and its rules."""

    user: str
    lead: list[str] = field(default_factory=list)
    """Comment and blank lines just above the ``user`` line."""
    body: list[str] = field(default_factory=list)
    """Every line after the ``user`` line up to the next block's lead."""

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(
            line.strip() for line in self.body if line.strip() and not line.lstrip().startswith("#")
        )

    def lines(self) -> list[str]:
        return [*self.lead, f"user {self.user}", *self.body]


@dataclass(slots=True)
class AclFile:
    """A Mosquitto ACL file as lines, split into account blocks; what this script does not
    touch is written back unchanged."""

    header: list[str] = field(default_factory=list)
    """Lines before the first account (comments, rules for anonymous clients, patterns)."""
    blocks: list[AclBlock] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> AclFile:
        acl = cls()
        current: list[str] = acl.header
        for line in text.splitlines():
            match = _USER_LINE.match(line.strip())
            if match is None:
                current.append(line)
                continue
            # The run of comments and blank lines just above belongs to the new block.
            cut = len(current)
            while cut > 0 and (
                not current[cut - 1].strip() or current[cut - 1].lstrip()[:1] == "#"
            ):
                cut -= 1
            lead = current[cut:]
            del current[cut:]
            block = AclBlock(match.group(1), lead)
            acl.blocks.append(block)
            current = block.body
        return acl

    def render(self) -> str:
        lines = list(self.header)
        for block in self.blocks:
            lines += block.lines()
        return "\n".join(lines) + "\n" if lines else ""

    def find(self, user: str) -> AclBlock | None:
        return next((block for block in self.blocks if block.user == user), None)

    def put(self, user: str, title: str, rules: Sequence[str]) -> bool:
        """Set ``user``'s rules (a new block at the end, or the old one replaced in place).
        Returns whether anything changed."""
        old = self.find(user)
        if old is not None and old.rules == tuple(rules):
            return False
        trailing: list[str] = []
        if old is not None:
            # Keep what followed the rules (blank lines before the next block's lead).
            body = old.body
            end = len(body)
            while end > 0 and not body[end - 1].strip():
                end -= 1
            trailing = body[end:]
            old.body = [*rules, *trailing]
            return True
        existing = self.render().splitlines()
        separator = [""] if existing and existing[-1].strip() else []
        self.blocks.append(AclBlock(user, [*separator, f"# {title}"], list(rules)))
        return True

    def remove(self, user: str) -> bool:
        block = self.find(user)
        if block is None:
            return False
        self.blocks.remove(block)
        return True


# -- the password file ----------------------------------------------------------------------


def password_line(
    username: str, password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """One line of a Mosquitto 2 password file: ``user:$7$<iterations>$<salt>$<hash>``
    (PBKDF2-SHA512 over a 12-byte salt, base64), as ``mosquitto_passwd`` writes it."""
    check_username(username)
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (
        f"{username}:$7${iterations}${base64.b64encode(salt).decode()}"
        f"${base64.b64encode(digest).decode()}"
    )


def check_username(username: str) -> str:
    if not username or ":" in username or any(ch.isspace() for ch in username):
        raise ProvisionError(f"invalid Mosquitto user name {username!r}")
    return username


def check_password(password: str) -> str:
    if len(password) < 16:
        raise ProvisionError("the password is shorter than 16 characters")
    if any(ch in "\r\n" for ch in password):
        raise ProvisionError("the password contains a line break")
    return password


@dataclass(slots=True)
class PasswordFile:
    """A Mosquitto password file as ``user:hash`` lines; other lines are kept."""

    lines: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> PasswordFile:
        return cls(text.splitlines())

    def users(self) -> list[str]:
        return [line.split(":", 1)[0] for line in self.lines if ":" in line]

    def set(self, line: str) -> None:
        user = line.split(":", 1)[0]
        self.remove(user)
        self.lines.append(line)

    def remove(self, user: str) -> bool:
        kept = [line for line in self.lines if line.split(":", 1)[0] != user or ":" not in line]
        changed = len(kept) != len(self.lines)
        self.lines = kept
        return changed

    def render(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ProvisionError(f"cannot read {path}: {exc}") from exc


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by a file holding ``text``: a reader sees the old file or the new
    one, never half of it. The mode of the old file is kept (a new one gets 0600)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    except OSError as exc:
        raise ProvisionError(f"cannot read {path}: {exc}") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(name, mode)
            os.replace(name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc}") from exc


# -- hashing --------------------------------------------------------------------------------


def find_mosquitto_passwd() -> Path | None:
    found = shutil.which("mosquitto_passwd")
    if found is not None:
        return Path(found)
    for folder in ("/usr/bin", "/usr/local/bin", "/usr/sbin"):
        candidate = Path(folder) / "mosquitto_passwd"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _hash_with_mosquitto_passwd(binary: Path, username: str, password: str) -> str:
    """The password line as ``mosquitto_passwd`` makes it, in a scratch file: it asks for
    the password twice on stdin, so it never appears in a command line."""
    with tempfile.TemporaryDirectory(prefix="carewatch-passwd-") as folder:
        scratch = Path(folder) / "passwd"
        scratch.touch(mode=0o600)
        try:
            result = subprocess.run(
                [str(binary), str(scratch), username],
                input=f"{password}\n{password}\n",
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProvisionError(f"{binary} failed: {exc}") from exc
        lines = [line for line in scratch.read_text(encoding="utf-8").splitlines() if line]
        if result.returncode != 0 or len(lines) != 1 or not lines[0].startswith(f"{username}:"):
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ProvisionError(
                f"{binary} failed (exit {result.returncode}): {detail[-1] if detail else '?'}"
            )
        return lines[0]


def hash_password(hasher: str, username: str, password: str) -> str:
    check_username(username)
    if hasher in ("auto", "mosquitto_passwd"):
        binary = find_mosquitto_passwd()
        if binary is not None:
            return _hash_with_mosquitto_passwd(binary, username, password)
        if hasher == "mosquitto_passwd":
            raise ProvisionError("mosquitto_passwd not found (Debian package 'mosquitto')")
    return password_line(username, password)


# -- commands -------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Files:
    acl: Path
    passwd: Path
    hasher: str


def _kind(block: AclBlock) -> str:
    if block.user in SERVICE_RULES:
        return "service"
    gateway_rule = re.compile(
        rf"topic write {re.escape(PREFIX)}/({ID_PATTERN})/{re.escape(block.user)}/readings"
    )
    for rule in block.rules:
        match = gateway_rule.fullmatch(rule)
        if match is not None:
            return f"gateway site={match.group(1)}"
    return "other"


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The password and whether it was generated (and so must be shown)."""
    if from_stdin:
        line = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        return check_password(line), False
    return secrets.token_urlsafe(24), True


def _set_account(files: Files, user: str, title: str, rules: Sequence[str], stdin: bool) -> None:
    acl = AclFile.parse(_read(files.acl))
    passwords = PasswordFile.parse(_read(files.passwd))
    password, generated = _password(stdin)
    passwords.set(hash_password(files.hasher, user, password))
    acl.put(user, title, rules)
    # Password first: an ACL block without a password lets nobody in, the reverse would
    # let the account in with no rights at all (also harmless, but confusing).
    _write_atomically(files.passwd, passwords.render())
    _write_atomically(files.acl, acl.render())
    print(f"provisioned {user} in {files.acl} and {files.passwd}", file=sys.stderr)
    if generated:
        print(password)


def add_gateway(files: Files, args: argparse.Namespace) -> int:
    site = check_id(args.site, "site")
    gateway = check_id(args.gateway, "gateway")
    if gateway in SERVICE_RULES:
        raise ProvisionError(f"{gateway!r} is a service account's name: choose another id")
    existing = AclFile.parse(_read(files.acl)).find(gateway)
    if existing is not None and _kind(existing) != f"gateway site={site}":
        raise ProvisionError(
            f"account {gateway!r} exists already ({_kind(existing)}): gateway ids are user names"
            " and must be unique across sites; remove it first if it is to move"
        )
    rules = gateway_rules(
        site,
        gateway,
        homeassistant=args.homeassistant,
        ha_prefix=args.ha_prefix,
        ha_node_id=args.ha_node_id,
    )
    _set_account(files, gateway, f"Gateway {gateway} of site {site}.", rules, args.password_stdin)
    return 0


def add_service(files: Files, args: argparse.Namespace) -> int:
    name: str = args.name
    _set_account(files, name, _SERVICE_TITLES[name], SERVICE_RULES[name], args.password_stdin)
    return 0


def remove(files: Files, args: argparse.Namespace) -> int:
    user = check_username(args.user)
    acl = AclFile.parse(_read(files.acl))
    passwords = PasswordFile.parse(_read(files.passwd))
    in_acl = acl.remove(user)
    in_passwd = passwords.remove(user)
    if not (in_acl or in_passwd):
        raise ProvisionError(f"no account {user!r} in {files.acl} or {files.passwd}")
    # Password first: from then on the account cannot log in.
    if in_passwd:
        _write_atomically(files.passwd, passwords.render())
    if in_acl:
        _write_atomically(files.acl, acl.render())
    print(f"removed {user}", file=sys.stderr)
    return 0


def _accounts(files: Files) -> Iterator[tuple[str, str, bool]]:
    acl = AclFile.parse(_read(files.acl))
    users = set(PasswordFile.parse(_read(files.passwd)).users())
    for block in acl.blocks:
        yield block.user, _kind(block), block.user in users
    for user in sorted(users - {block.user for block in acl.blocks}):
        yield user, "no ACL block", True


def list_accounts(files: Files, args: argparse.Namespace) -> int:
    for user, kind, has_password in _accounts(files):
        print(f"{user}\t{kind}\t{'password' if has_password else 'NO PASSWORD'}")
    return 0


def check(files: Files, args: argparse.Namespace) -> int:
    problems = [
        f"{user}: {'no ACL block' if kind == 'no ACL block' else 'no password'}"
        for user, kind, has_password in _accounts(files)
        if kind == "no ACL block" or not has_password
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision.py",
        description="Provision CareWatch accounts on Mosquitto (ACL blocks and passwords).",
    )
    parser.add_argument("--acl", type=Path, default=DEFAULT_ACL, help="the acl_file")
    parser.add_argument("--passwd", type=Path, default=DEFAULT_PASSWD, help="the password_file")
    parser.add_argument(
        "--hasher",
        choices=("auto", "mosquitto_passwd", "builtin"),
        default="auto",
        help="who hashes passwords (auto: mosquitto_passwd when installed, else builtin)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gateway = commands.add_parser("add-gateway", help="add or update a gateway's account")
    gateway.add_argument("--site", required=True)
    gateway.add_argument("--gateway", required=True, help="the gateway id, also its user name")
    gateway.add_argument(
        "--homeassistant",
        action="store_true",
        help="also allow its Home Assistant discovery configs and state topics",
    )
    gateway.add_argument("--ha-prefix", default=DEFAULT_HA_PREFIX, help="HA discovery prefix")
    gateway.add_argument(
        "--ha-node-id", default=None, help="HA node id (default carewatch_<site>_<gateway>)"
    )
    gateway.add_argument("--password-stdin", action="store_true")
    gateway.set_defaults(run=add_gateway)

    service = commands.add_parser("add-service", help="add or update a cloud service's account")
    service.add_argument("name", choices=sorted(SERVICE_RULES))
    service.add_argument("--password-stdin", action="store_true")
    service.set_defaults(run=add_service)

    removal = commands.add_parser("remove", help="remove an account")
    removal.add_argument("user")
    removal.set_defaults(run=remove)

    listing = commands.add_parser("list", help="list the accounts")
    listing.set_defaults(run=list_accounts)
    checking = commands.add_parser("check", help="every account has a block and a password")
    checking.set_defaults(run=check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    files = Files(acl=args.acl, passwd=args.passwd, hasher=args.hasher)
    try:
        status: int = args.run(files, args)
    except ProvisionError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
