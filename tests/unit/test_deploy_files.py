"""Every file shipped in deploy/ parses and agrees with the others and with the code.

No Docker engine or Kubernetes cluster runs here, so compose, the Dockerfile and the
manifests are checked statically: files that are mounted or generated exist (or are the
per-installation files the README says to generate, each ignored by git), every service runs a
real command with a configuration that loads with the real settings classes and the
environment the service gets, names agree across files (ports, accounts, secrets, config maps,
the dashboard's datasource and measurement), and the broker's settings agree in all three
Mosquitto configurations. The provisioning script is tested in-process here (its files) and as
a program against the real broker in tests/integration/test_deploy_acl.py.
"""

from __future__ import annotations

import base64
import configparser
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import stat
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr

import gateway.__main__ as gateway_main
from cloud.settings import CloudSettings
from cloud.store.base import StoredReading
from cloud.store.lineprotocol import MEASUREMENT, LineEncoder
from gateway.homeassistant import default_node_id as gateway_node_id
from gateway.settings import GatewaySettings
from tests.harness import password_file_line, skip_or_fail
from vitals import topics
from vitals.metrics import Metric

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
MOSQUITTO = DEPLOY / "mosquitto"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "vitals.json"
CLOUD_SERVICES = {"ingest", "alerts", "api"}

SURVIVAL_SETTINGS = (
    "persistence",
    "autosave_interval",
    "autosave_on_changes",
    "max_inflight_messages",
    "max_queued_messages",
    "max_queued_bytes",
    "max_packet_size",
    "persistent_client_expiration",
    "queue_qos0_messages",
    "per_listener_settings",
    "allow_anonymous",
    "max_keepalive",
)
"""mosquitto.conf settings that must be the same wherever the broker runs."""


@pytest.fixture(scope="module")
def yaml() -> ModuleType:
    try:
        return importlib.import_module("yaml")
    except ImportError:
        skip_or_fail("PyYAML is not installed (pip install pyyaml): the YAML files go unchecked")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CAREWATCH_"):
            monkeypatch.delenv(name)


def provision_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("carewatch_provision", MOSQUITTO / "provision.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


provision = provision_module()


def gitignored(folder: Path) -> list[str]:
    lines = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(folder: Path, relative: str) -> bool:
    """Whether ``relative`` (inside ``folder``) is matched by ``folder/.gitignore``."""
    for pattern in gitignored(folder):
        if pattern.endswith("/") and (relative + "/").startswith(pattern):
            return True
        if PurePosixPath(relative).match(pattern) or relative == pattern:
            return True
    return False


def mosquitto_conf(path: Path) -> dict[str, list[str]]:
    """Settings -> their values in file order (listener options follow their listener)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value.strip())
    return settings


def walk(settings: Any, dotted: list[str]) -> Any:
    value = settings
    for part in dotted:
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# -- every file parses --------------------------------------------------------------------------


def test_every_shipped_file_parses(yaml: ModuleType) -> None:
    checked: dict[str, int] = {}
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        suffix = path.suffix or path.name
        text = path.read_text(encoding="utf-8")
        if suffix == ".yaml":
            assert [doc for doc in yaml.safe_load_all(text) if doc is not None], path
        elif suffix == ".json":
            json.loads(text)
        elif suffix == ".toml":
            tomllib.loads(text)
        elif suffix == ".conf":
            assert mosquitto_conf(path), path
        elif suffix == ".service":
            unit = configparser.ConfigParser(strict=False, interpolation=None)
            unit.optionxform = str  # type: ignore[assignment,method-assign]
            unit.read_string(text)
            assert unit.sections() == ["Unit", "Service", "Install"]
        elif suffix == ".py":
            compile(text, str(path), "exec")
        checked[suffix] = checked.get(suffix, 0) + 1
    assert checked[".yaml"] >= 10
    assert checked[".json"] >= 1
    assert checked[".toml"] >= 3
    assert checked[".conf"] == 3


# -- Mosquitto --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [COMPOSE_DIR / "mosquitto" / "mosquitto.conf", K8S / "mosquitto" / "mosquitto.conf"],
    ids=["compose", "k8s"],
)
def test_every_broker_configuration_has_the_same_settings(path: Path) -> None:
    reference = mosquitto_conf(MOSQUITTO / "mosquitto.conf")
    other = mosquitto_conf(path)
    for key in SURVIVAL_SETTINGS:
        assert other.get(key) == reference.get(key), key
        assert len(reference[key]) == 1, key
    # Both listeners, the TLS one with its files.
    assert [port.split()[0] for port in other["listener"]] == ["8883", "1883"]
    assert {"cafile", "certfile", "keyfile"} <= set(other)


def test_the_readme_table_matches_the_configuration() -> None:
    conf = mosquitto_conf(MOSQUITTO / "mosquitto.conf")
    readme = (MOSQUITTO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", readme, flags=re.MULTILINE)
    assert len(rows) >= 7
    units = {"GiB": 2**30, "MiB": 2**20}
    for key, value in rows:
        number, _, unit = value.partition(" ")
        expected = str(int(number) * units[unit]) if unit in units else value
        assert conf[key] == [expected], key


def test_provision_matches_the_project_vocabulary() -> None:
    assert provision.ID_PATTERN == topics.ID_PATTERN
    assert provision.PREFIX == topics.PREFIX
    assert provision.default_node_id("home-0001", "gw-0001") == gateway_node_id(
        "home-0001", "gw-0001"
    )
    rules = provision.gateway_rules("home-0001", "gw-0001")
    assert rules == (
        f"topic write {topics.readings('home-0001', 'gw-0001')}",
        f"topic write {topics.status('home-0001', 'gw-0001')}",
    )
    ingest = provision.SERVICE_RULES["ingest"]
    assert f"topic read {topics.READINGS_FILTER}" in ingest
    assert f"topic write {topics.PREFIX}/+/deadletter" in ingest
    assert f"topic read {topics.STATUS_FILTER}" in provision.SERVICE_RULES["alerts"]


def test_acl_example_is_what_provision_writes() -> None:
    text = (MOSQUITTO / "acl.example").read_text(encoding="utf-8")
    acl = provision.AclFile.parse(text)
    assert acl.render() == text  # untouched files are written back byte for byte
    blocks = {block.user: block.rules for block in acl.blocks}
    assert blocks == {
        "ingest": provision.SERVICE_RULES["ingest"],
        "alerts": provision.SERVICE_RULES["alerts"],
        "api": provision.SERVICE_RULES["api"],
        "gw-0001": provision.gateway_rules("home-0001", "gw-0001"),
        "gw-0002": provision.gateway_rules("home-0001", "gw-0002", homeassistant=True),
    }


def test_password_lines_are_mosquittos_format() -> None:
    salt = bytes(range(12))
    line = provision.password_line("gw-0001", "a-long-password-0123", salt=salt)
    assert line == password_file_line("gw-0001", "a-long-password-0123", salt=salt)
    assert re.fullmatch(r"gw-0001:\$7\$101\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}", line)


def run_provision(tmp_path: Path, *args: str, stdin: str | None = None) -> int:
    """provision.main in-process with the builtin hasher on files in ``tmp_path``."""
    argv = ["--acl", str(tmp_path / "acl"), "--passwd", str(tmp_path / "passwd")]
    argv += ["--hasher", "builtin", *args]
    if stdin is None:
        return int(provision.main(argv))
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return int(provision.main([*argv, "--password-stdin"]))
    finally:
        sys.stdin = saved


def test_provision_adds_updates_and_removes_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_provision(tmp_path, "add-service", "ingest") == 0
    generated = capsys.readouterr().out.strip()
    assert len(generated) >= 32  # printed once, on stdout alone
    password = "a-given-password-0123456789"
    args = ("add-gateway", "--site", "home-0001", "--gateway", "gw-0001")
    assert run_provision(tmp_path, *args, stdin=password + "\n") == 0
    assert capsys.readouterr().out == ""  # a given password is not echoed
    assert stat.S_IMODE((tmp_path / "passwd").stat().st_mode) == 0o600
    (tmp_path / "acl").chmod(0o640)
    # Again, with Home Assistant: the block is replaced in place, the mode kept.
    assert run_provision(tmp_path, *args, "--homeassistant", stdin=password + "\n") == 0
    acl = provision.AclFile.parse((tmp_path / "acl").read_text(encoding="utf-8"))
    assert [block.user for block in acl.blocks] == ["ingest", "gw-0001"]
    assert acl.blocks[1].rules == provision.gateway_rules(
        "home-0001", "gw-0001", homeassistant=True
    )
    assert stat.S_IMODE((tmp_path / "acl").stat().st_mode) == 0o640
    lines = (tmp_path / "passwd").read_text(encoding="utf-8").splitlines()
    assert [line.split(":")[0] for line in lines] == ["ingest", "gw-0001"]
    salt_and_hash = lines[1].split("$")
    salt = base64.b64decode(salt_and_hash[3])
    assert lines[1] == provision.password_line("gw-0001", password, salt=salt)
    assert run_provision(tmp_path, "check") == 0
    assert run_provision(tmp_path, "list") == 0
    assert "gw-0001\tgateway site=home-0001\tpassword" in capsys.readouterr().out
    assert run_provision(tmp_path, "remove", "gw-0001") == 0
    assert "gw-0001" not in (tmp_path / "acl").read_text(encoding="utf-8")
    assert "gw-0001" not in (tmp_path / "passwd").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("add-gateway", "--site", "home-0002", "--gateway", "gw-0001"), None, "exists already"),
        (("add-gateway", "--site", "home-0001", "--gateway", "ingest"), None, "service account"),
        (("add-gateway", "--site", "home/1", "--gateway", "gw-0009"), None, "invalid site"),
        (("add-gateway", "--site", "home-0001", "--gateway", "gw+"), None, "invalid gateway"),
        (
            ("add-gateway", "--site", "h", "--gateway", "g", "--homeassistant", "--ha-prefix", "#"),
            None,
            "discovery prefix",
        ),
        (("add-gateway", "--site", "home-0001", "--gateway", "gw-0009"), "short\n", "shorter"),
        (("remove", "gw-0404"), None, "no account"),
    ],
)
def test_provision_refuses(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    stdin: str | None,
    message: str,
) -> None:
    existing = ("add-gateway", "--site", "home-0001", "--gateway", "gw-0001")
    assert run_provision(tmp_path, *existing) == 0
    before = (tmp_path / "acl").read_text(encoding="utf-8")
    capsys.readouterr()
    assert run_provision(tmp_path, *args, stdin=stdin) == 1
    assert message in capsys.readouterr().err
    assert (tmp_path / "acl").read_text(encoding="utf-8") == before


def test_provision_check_finds_accounts_without_a_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "acl").write_text((MOSQUITTO / "acl.example").read_text(encoding="utf-8"))
    (tmp_path / "passwd").write_text(password_file_line("stranger", "x" * 20) + "\n")
    assert run_provision(tmp_path, "check") == 1
    problems = capsys.readouterr().err.splitlines()
    assert "ingest: no password" in problems
    assert "stranger: no ACL block" in problems


# -- the gateway --------------------------------------------------------------------------------


def test_the_gateway_example_loads() -> None:
    settings = GatewaySettings.load(DEPLOY / "gateway" / "gateway.toml")
    assert settings.mqtt.tls
    assert settings.ble.devices
    assert not settings.homeassistant.enabled


def test_the_systemd_unit_runs_the_gateway_with_its_config(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "gateway" / "carewatch-gateway.service", encoding="utf-8")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[1:3] == ["-m", "gateway"]
    assert argv[3:] == ["--config", "/etc/carewatch/gateway.toml"]
    # The gateway's own command line takes these arguments (a missing file is a config error,
    # exit 2 -- not argparse's usage error, which would raise SystemExit).
    assert gateway_main.main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert service["RestartPreventExitStatus"] == str(gateway_main.EXIT_CONFIG)
    outbox = GatewaySettings.load(DEPLOY / "gateway" / "gateway.toml").outbox.path
    assert outbox.parent == Path("/var/lib") / service["StateDirectory"]
    assert service["KillSignal"] == "SIGTERM"


# -- the cloud image ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_dockerfile_builds_the_cloud_image_from_the_repository() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copied = set()
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                copied.add(source)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= copied
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    assert any(k == "RUN" and "pip install '.[cloud]'" in rest for k, rest in instructions)
    assert ("USER", "carewatch") in instructions
    ignored = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert not copied & set(ignored)


# -- docker compose -----------------------------------------------------------------------------


def compose_file(yaml: ModuleType) -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if operator == ":-":
            return argument or ""
        raise AssertionError(f"{name} is required ({argument})")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def compose_variables() -> set[str]:
    text = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
    return set(re.findall(r"\$\{(\w+)", text))


def dotenv_example() -> dict[str, str]:
    pairs = {}
    for line in (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def filled_env() -> dict[str, str]:
    """The .env an operator writes: every variable of the example, set."""
    return {
        name: value or f"secret-{name.lower().replace('_', '-')}-0123456789"
        for name, value in dotenv_example().items()
    }


def cloud_command(service: Mapping[str, Any]) -> tuple[str, str] | None:
    command = service.get("command")
    if not isinstance(command, list) or command[:3] != ["python", "-m", "cloud"]:
        return None
    assert len(command) == 6, command
    assert command[4] == "--config"
    return command[3], command[5]


def bind_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the compose folder) of the bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = source
    return mounts


def test_compose_has_the_central_services(yaml: ModuleType) -> None:
    services = compose_file(yaml)["services"]
    assert set(services) == {
        "mosquitto",
        "influxdb",
        "cloud-ingest-1",
        "cloud-ingest-2",
        "cloud-alerts",
        "cloud-api",
        "grafana",
    }
    commands = {name: cloud_command(service) for name, service in services.items()}
    assert {c[0] for c in commands.values() if c is not None} == CLOUD_SERVICES
    build = services["cloud-api"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == (
        DEPLOY / "docker" / "Dockerfile"
    )
    images = {s["image"] for n, s in services.items() if commands[n] is not None}
    assert len(images) == 1


def test_compose_mounts_files_that_exist_or_are_generated(yaml: ModuleType) -> None:
    generated = []
    for name, service in compose_file(yaml)["services"].items():
        for target, source in bind_mounts(service).items():
            path = (COMPOSE_DIR / source).resolve()
            relative = os.path.relpath(path, COMPOSE_DIR)
            if not path.exists():
                assert is_ignored(COMPOSE_DIR, relative), f"{name}: {source} -> {target}"
                generated.append(relative)
    assert sorted(generated) == ["mosquitto/acl", "mosquitto/certs", "mosquitto/passwd"]
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for relative in generated:
        assert relative in readme  # the README says how to make it


def test_the_env_example_lists_every_variable(yaml: ModuleType) -> None:
    assert compose_variables() == set(dotenv_example())
    for value in dotenv_example().values():
        assert value in ("", "latest")  # no secret shipped


def test_the_broker_in_compose_reads_what_is_mounted(yaml: ModuleType) -> None:
    service = compose_file(yaml)["services"]["mosquitto"]
    mounts = bind_mounts(service)
    conf_source = mounts["/mosquitto/config/mosquitto.conf"]
    conf = mosquitto_conf(COMPOSE_DIR / conf_source)
    for key in ("password_file", "acl_file", "cafile", "certfile", "keyfile"):
        (path,) = conf[key]
        assert any(path == t or path.startswith(t.rstrip("/") + "/") for t in mounts), key
    named = {v.split(":")[1] for v in service["volumes"] if not v.startswith(".")}
    assert conf["persistence_location"] == ["/mosquitto/data/"]
    assert "/mosquitto/data" in named
    assert service["ports"] == ["8883:8883"]  # TLS only; 1883 stays on the network


def service_environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: interpolate(str(value), env)
        for name, value in (service.get("environment") or {}).items()
    }


def test_every_cloud_service_loads_its_configuration(
    yaml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = filled_env()
    client_ids = []
    for name, service in compose_file(yaml)["services"].items():
        command = cloud_command(service)
        if command is None:
            continue
        kind, config = command
        mounts = bind_mounts(service)
        assert config in mounts, f"{name}: {config} is not mounted"
        environment = service_environment(service, env)
        with monkeypatch.context() as patch:
            for key, value in environment.items():
                assert key.startswith("CAREWATCH_"), key
                patch.setenv(key, value)
            settings = CloudSettings.load(COMPOSE_DIR / mounts[config])
        for key, value in environment.items():  # each variable reached its setting
            dotted = key.removeprefix("CAREWATCH_").lower().split("__")
            assert walk(settings, dotted) == value, key
        for site_folder in settings.registry.sites:
            assert str(site_folder) in mounts
        if kind == "ingest":
            client_ids.append(settings.mqtt.client_id)
            assert settings.mqtt.share_group == "ingest"
            assert settings.mqtt.password is not None
            assert settings.metrics.host == "0.0.0.0"
        if kind == "alerts":
            assert settings.alerts.mqtt is not None
            assert settings.alerts.mqtt.username == "alerts"
            assert settings.alerts.mqtt.password is not None
        if kind == "api":
            assert service["ports"] == [f"127.0.0.1:{settings.api.port}:{settings.api.port}"]
        if kind != "ingest":
            assert settings.store.username == "carewatch_read"
    assert sorted(client_ids) == ["carewatch-ingest-1", "carewatch-ingest-2"]


def test_influxdb_and_grafana_agree_with_the_services(yaml: ModuleType) -> None:
    services = compose_file(yaml)["services"]
    influx = service_environment(services["influxdb"], filled_env())
    cloud = CloudSettings.load(COMPOSE_DIR / "config" / "cloud.toml")
    assert cloud.store.url.host == "influxdb"
    assert cloud.store.url.port == 8086
    assert influx["INFLUXDB_DB"] == cloud.store.database
    assert influx["INFLUXDB_WRITE_USER"] == cloud.store.username
    assert influx["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    read_user = influx["INFLUXDB_READ_USER"]
    for name in ("cloud-alerts", "cloud-api"):
        assert services[name]["environment"]["CAREWATCH_STORE__USERNAME"] == read_user

    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load(
        (provisioning / "datasources" / "influxdb.yaml").read_text(encoding="utf-8")
    )["datasources"]
    assert datasource["type"] == "influxdb"
    assert datasource["url"] == str(cloud.store.url).rstrip("/")
    assert datasource["user"] == read_user
    assert datasource["jsonData"]["dbName"] == cloud.store.database
    assert datasource["jsonData"]["version"] == "InfluxQL"
    secret = datasource["secureJsonData"]["password"].removeprefix("$")
    assert secret in services["grafana"]["environment"]
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "carewatch.yaml").read_text(encoding="utf-8")
    )["providers"]
    mounts = bind_mounts(services["grafana"])
    dashboards = COMPOSE_DIR / mounts[provider["options"]["path"]]
    assert (dashboards / DASHBOARD.name).resolve() == DASHBOARD
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert {ref["uid"] for ref in datasource_refs(dashboard)} == {datasource["uid"]}


# -- the Grafana dashboard ----------------------------------------------------------------------


def datasource_refs(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def stored_schema() -> tuple[set[str], set[str]]:
    """The tag keys and field keys the store writes, read off a real line."""
    reading = StoredReading(
        site="s",
        resident="r",
        device="d",
        metric=Metric.BODY_WEIGHT,
        user=1,
        time_ns=1,
        value=70.0,
        seq=1,
        gateway="g",
        flags=(),
        received_ns=1,
    )
    line = LineEncoder().line(reading)
    series, fields, _ = line.split(" ")
    tags = {pair.split("=")[0] for pair in series.split(",")[1:]}
    field_keys = {pair.split("=")[0] for pair in fields.split(",")}
    return tags, field_keys


def test_the_dashboard_queries_the_vitals_measurement_with_influxql() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    tags, fields = stored_schema()
    assert "value" in fields
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"site", "resident", "metric"}
    for name, variable in variables.items():
        assert variable["query"].startswith(
            f'SHOW TAG VALUES FROM "{MEASUREMENT}" WITH KEY = "{name}"'
        )
        assert name in tags
    assert variables["resident"]["multi"]
    assert variables["metric"]["multi"]
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids)
    queries = [t for p in panels for t in p.get("targets", [])]
    assert len(queries) >= 4
    for target in queries:
        query = target["query"]
        assert target["rawQuery"] is True
        assert query.startswith("SELECT ")
        assert f'FROM "{MEASUREMENT}" WHERE ' in query
        assert "$timeFilter" in query
        assert '"site" =~ /^$site$/' in query  # never across sites
        for tag in re.findall(r'"(\w+)" =~', query) + re.findall(r'GROUP BY .*?"(\w+)"', query):
            assert tag in tags, tag
        for field in re.findall(r'\w+\("(\w+)"\)', query):
            assert field in fields, field
    # Per resident: a repeated row, and in it a panel repeated per metric.
    rows = [p for p in panels if p["type"] == "row"]
    assert any(row.get("repeat") == "resident" for row in rows)
    per_metric = [p for p in panels if p.get("repeat") == "metric"]
    assert len(per_metric) == 1
    assert '"resident" =~ /^$resident$/' in per_metric[0]["targets"][0]["query"]
    assert '"metric" =~ /^$metric$/' in per_metric[0]["targets"][0]["query"]


# -- Kubernetes ---------------------------------------------------------------------------------


def k8s_documents(yaml: ModuleType) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    documents: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / resource).read_text(encoding="utf-8")):
            if document is not None:
                assert {"apiVersion", "kind", "metadata"} <= set(document), resource
                documents.append(document)
    return documents


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def workloads(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_kind(documents, "Deployment") | by_kind(documents, "StatefulSet")


def test_the_kustomization_refers_to_files_that_exist_or_are_generated(
    yaml: ModuleType,
) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["namespace"] == "carewatch"
    for generator in kustomization["configMapGenerator"]:
        for file in generator["files"]:
            assert (K8S / file).is_file(), file
    generated = []
    for generator in kustomization["secretGenerator"]:
        for file in generator.get("files", []) + generator.get("envs", []):
            if not (K8S / file).exists():
                assert is_ignored(K8S, file), file
                generated.append(file)
    assert sorted(generated) == [
        "secrets/carewatch.env",
        "secrets/mosquitto/acl",
        "secrets/mosquitto/passwd",
    ]
    assert (K8S / "secrets" / "carewatch.env.example").is_file()


def test_every_manifest_parses_and_names_what_exists(yaml: ModuleType) -> None:
    documents = k8s_documents(yaml)
    kinds = {d["kind"] for d in documents}
    assert {"Namespace", "Deployment", "StatefulSet", "Service"} <= kinds
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    config_maps = {g["name"] for g in kustomization["configMapGenerator"]} | {"carewatch-sites"}
    secrets = {g["name"] for g in kustomization["secretGenerator"]} | {"mosquitto-tls"}
    claims = set(by_kind(documents, "PersistentVolumeClaim"))
    secret_keys = {
        line.split("=")[0]
        for line in (K8S / "secrets" / "carewatch.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "carewatch-sites" in readme
    assert "mosquitto-tls" in readme
    for name, workload in workloads(documents).items():
        spec = workload["spec"]
        template = spec["template"]
        assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "carewatch"
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, name
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, name
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
        claim_templates = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claim_templates, name
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                check = container.get(probe, {})
                for action in ("httpGet", "tcpSocket"):
                    if action in check:
                        assert check[action]["port"] in ports, f"{name} {probe}"
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == "carewatch-secrets"
                    assert ref["key"] in secret_keys, ref["key"]
    pods = [w["spec"]["template"] for w in workloads(documents).values()]
    for service_name, service in by_kind(documents, "Service").items():
        selector = service["spec"]["selector"]
        matching = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        assert matching, service_name
        names = {
            port["name"] for p in matching for c in p["spec"]["containers"] for port in c["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, service_name


def k8s_cloud_settings(
    container: Mapping[str, Any], pod_name: str, monkeypatch: pytest.MonkeyPatch
) -> CloudSettings:
    """The settings a cloud container gets: the ConfigMap's file, and its environment with
    the pod's name and made-up secrets filled in."""
    with monkeypatch.context() as patch:
        for variable in container.get("env", []):
            source = variable.get("valueFrom", {})
            if "fieldRef" in source:
                assert source["fieldRef"]["fieldPath"] == "metadata.name"
                value = pod_name
            elif "secretKeyRef" in source:
                value = f"secret-{source['secretKeyRef']['key']}-0123456789"
            else:
                value = variable["value"]
            patch.setenv(variable["name"], value)
        return CloudSettings.load(K8S / "config" / "cloud.toml")


def test_the_cloud_workloads_run_real_commands_with_loading_settings(
    yaml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = k8s_documents(yaml)
    found = {}
    for workload in workloads(documents).values():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        args = container.get("args", [])
        if args[:3] != ["python", "-m", "cloud"]:
            continue
        assert container["image"] == "carewatch-cloud"
        kind, flag, config = args[3:]
        assert flag == "--config"
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[config]["subPath"] == Path(config).name
        found[kind] = (workload, container)
    assert set(found) == CLOUD_SERVICES

    ingest, container = found["ingest"]
    assert ingest["kind"] == "StatefulSet"  # stable pod names: stable MQTT client ids
    replicas = ingest["spec"]["replicas"]
    assert replicas == 3
    client_ids = set()
    for ordinal in range(replicas):
        pod_name = f"{ingest['metadata']['name']}-{ordinal}"
        settings = k8s_cloud_settings(container, pod_name, monkeypatch)
        client_ids.add(settings.mqtt.client_id)
        assert settings.mqtt.share_group == "ingest"
        assert settings.mqtt.password is not None
    assert len(client_ids) == replicas
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics.port
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"

    alerts, container = found["alerts"]
    assert alerts["spec"]["replicas"] == 1
    assert alerts["spec"]["strategy"]["type"] == "Recreate"
    settings = k8s_cloud_settings(container, "alerts", monkeypatch)
    assert settings.alerts.mqtt is not None
    assert settings.alerts.mqtt.password is not None
    assert settings.store.username == "carewatch_read"

    api, container = found["api"]
    assert api["spec"]["replicas"] == 1
    settings = k8s_cloud_settings(container, "api", monkeypatch)
    assert {p["containerPort"] for p in container["ports"]} == {settings.api.port}


def test_k8s_and_compose_share_one_cloud_configuration() -> None:
    compose = tomllib.loads((COMPOSE_DIR / "config" / "cloud.toml").read_text(encoding="utf-8"))
    k8s = tomllib.loads((K8S / "config" / "cloud.toml").read_text(encoding="utf-8"))
    for data in (compose, k8s):
        del data["mqtt"]["client_id"]  # set per replica from the environment
    assert compose == k8s


def test_the_broker_on_k8s_reads_what_is_mounted(yaml: ModuleType) -> None:
    broker = by_kind(k8s_documents(yaml), "Deployment")["mosquitto"]
    assert broker["spec"]["replicas"] == 1
    assert broker["spec"]["strategy"]["type"] == "Recreate"
    (container,) = broker["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    conf = mosquitto_conf(K8S / "mosquitto" / "mosquitto.conf")
    for key in (
        "password_file",
        "acl_file",
        "cafile",
        "certfile",
        "keyfile",
        "persistence_location",
    ):
        (path,) = conf[key]
        assert str(PurePosixPath(path).parent) in mounts or path.rstrip("/") in mounts, key
    assert container["args"][-1] == "/mosquitto/config/mosquitto.conf"
    volumes = {v["name"]: v for v in broker["spec"]["template"]["spec"]["volumes"]}
    tls_paths = {item["path"] for item in volumes["tls"]["secret"]["items"]}
    assert {PurePosixPath(conf[k][0]).name for k in ("cafile", "certfile", "keyfile")} == tls_paths
