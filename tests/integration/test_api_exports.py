"""The export endpoints against the real API, store and databases: the FHIR Bundle of one
resident (validated by fhir.resources' own R4B models), the research CSV (no names, no ids,
keyed with the configured key), who may ask for which, and the ``research_key`` setting."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

import pytest
import pytest_asyncio
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from cloud.api import Role, User
from cloud.api.audit import AuditAction, AuditQuery
from cloud.api.routes.exports import MAX_EXPORT_READINGS
from cloud.errors import SettingsError
from cloud.exchange import COLUMNS, Pseudonymiser
from cloud.settings import CloudSettings
from tests.integration.test_api_support import (
    HOME,
    OTHER,
    SITE_FILES,
    T0,
    Client,
    World,
    api_world,
    reading,
)
from vitals.metrics import Metric

pytestmark = pytest.mark.integration
in_module_loop = pytest.mark.asyncio(loop_scope="module")

KEY = "a research key of the test study"
NAMES = ("Alice Example", "Bob Example", "Carol Example", "Dan Example", "Alice", "Bob", "Carol")
IDS = (HOME, OTHER, "r01", "r02", "r03", "a-r01-hr", "a-r02-hr", "a-r03-temp", "a-bp", "gw-a")


class Who(StrEnum):
    ANONYMOUS = "anonymous"
    ADMIN = "admin"
    STAFF = "staff"
    ADMIN_OTHER = "admin_other_site"
    STAFF_OTHER = "staff_other_site"
    FAMILY = "family_linked"
    FAMILY_OTHER = "family_of_another_resident"
    FAMILY_REVOKED = "family_revoked_link"


_KINDS: Mapping[Who, tuple[Role, str, str | None, bool]] = {
    Who.STAFF: (Role.STAFF, HOME, None, False),
    Who.ADMIN_OTHER: (Role.ADMIN, OTHER, None, False),
    Who.STAFF_OTHER: (Role.STAFF, OTHER, None, False),
    Who.FAMILY: (Role.FAMILY, HOME, "r01", False),
    Who.FAMILY_OTHER: (Role.FAMILY, HOME, "r02", False),
    Who.FAMILY_REVOKED: (Role.FAMILY, HOME, "r01", True),
}


@dataclass
class Exports:
    world: World
    clients: dict[Who, Client] = field(default_factory=dict)
    users: dict[Who, User] = field(default_factory=dict)


READINGS = [
    # r01: two heart rates, one SpO2, one blood pressure measurement, a battery level
    reading(HOME, "r01", Metric.HEART_RATE, 72, T0 - timedelta(hours=2), device="a-r01-hr"),
    reading(HOME, "r01", Metric.HEART_RATE, 75, T0 - timedelta(hours=1), device="a-r01-hr"),
    reading(HOME, "r01", Metric.SPO2, 95, T0 - timedelta(minutes=50), device="a-r01-hr"),
    reading(HOME, "r01", Metric.SYSTOLIC_BP, 128, T0 - timedelta(minutes=30), device="a-bp"),
    reading(HOME, "r01", Metric.DIASTOLIC_BP, 84, T0 - timedelta(minutes=30), device="a-bp"),
    reading(HOME, "r01", Metric.BATTERY_LEVEL, 80, T0 - timedelta(minutes=20), device="a-r01-hr"),
    # r01 two days ago: outside the default day
    reading(HOME, "r01", Metric.HEART_RATE, 61, T0 - timedelta(days=2), device="a-r01-hr"),
    # r02 and r03 of the same home, r01 of the other home
    reading(HOME, "r02", Metric.HEART_RATE, 64, T0 - timedelta(hours=3), device="a-r02-hr"),
    reading(
        HOME, "r03", Metric.BODY_TEMPERATURE, 37.2, T0 - timedelta(hours=4), device="a-r03-temp"
    ),
    reading(OTHER, "r01", Metric.HEART_RATE, 99, T0 - timedelta(hours=1), device="b-r01-hr"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exports(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Exports]:
    folder: Path = tmp_path_factory.mktemp("api-exports")
    async with api_world(folder, research_key=KEY) as world:
        found = Exports(world)
        assert world.admin is not None
        found.users[Who.ADMIN] = world.admin
        for who, (role, site, resident, revoked) in _KINDS.items():
            user = await world.user(role, (site,))
            if resident is not None:
                await world.link(user, resident, revoked=revoked)
            found.users[who] = user
        for who, user in found.users.items():
            found.clients[who] = await world.logged_in(user)
        found.clients[Who.ANONYMOUS] = await world.client()
        await world.store.write(READINGS)
        yield found


FHIR_R01 = f"/sites/{HOME}/residents/r01/fhir"
RESEARCH = f"/sites/{HOME}/research.csv"


# -- FHIR ---------------------------------------------------------------------------------------


def _bundle(text: str) -> Bundle:
    return Bundle.model_validate_json(text)


@in_module_loop
async def test_fhir_export_is_a_bundle_the_fhir_models_accept(exports: Exports) -> None:
    response = await exports.clients[Who.STAFF].get(FHIR_R01)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json; fhirVersion=4.0"
    assert "attachment" in response.headers["content-disposition"]
    bundle = _bundle(response.text)
    assert bundle.type == "collection"
    assert bundle.timestamp == T0
    resources = [entry.resource for entry in bundle.entry or ()]
    patient = resources[0]
    assert isinstance(patient, Patient)
    assert patient.id == "r01"
    assert [name.text for name in patient.name or ()] == ["Alice Example"]
    observations = [r for r in resources[1:] if isinstance(r, Observation)]
    assert len(observations) == len(resources) - 1
    codes = sorted(
        coding.code for o in observations for coding in (o.code.coding or ())[:1] if coding.code
    )
    # heart rate twice, SpO2, one blood pressure panel; no battery, nothing of two days ago
    assert codes == ["2708-6", "85354-9", "8867-4", "8867-4"]
    for entry in bundle.entry or ():
        assert str(entry.fullUrl).startswith(exports.world.url)


@in_module_loop
async def test_fhir_export_holds_only_the_range_asked_for(exports: Exports) -> None:
    start = (T0 - timedelta(days=3)).isoformat()
    end = (T0 - timedelta(days=1)).isoformat()

    response = await exports.clients[Who.STAFF].get(FHIR_R01, start=start, end=end)

    assert response.status_code == 200, response.text
    observations = [
        e.resource
        for e in _bundle(response.text).entry or ()
        if isinstance(e.resource, Observation)
    ]
    assert len(observations) == 1
    assert observations[0].valueQuantity is not None
    assert float(observations[0].valueQuantity.value or 0) == 61.0


@in_module_loop
async def test_fhir_export_for_the_linked_family_holds_only_their_relative(
    exports: Exports,
) -> None:
    response = await exports.clients[Who.FAMILY].get(FHIR_R01)

    assert response.status_code == 200, response.text
    bundle = _bundle(response.text)
    assert "Bob Example" not in response.text
    values = set()
    for entry in bundle.entry or ():
        resource = entry.resource
        if isinstance(resource, Observation):
            quantities = [resource.valueQuantity] + [
                part.valueQuantity for part in resource.component or ()
            ]
            values |= {float(q.value) for q in quantities if q is not None and q.value is not None}
    # r01's own readings of the day; not r02's 64, not the other home's r01's 99
    assert values == {72.0, 75.0, 95.0, 128.0, 84.0}
    assert len(bundle.entry or ()) == 5


@in_module_loop
@pytest.mark.parametrize(
    "query",
    [
        {"start": "2024-03-01T10:00:00Z", "end": "2024-03-01T09:00:00Z"},
        {"start": "2020-01-01T00:00:00Z", "end": "2024-03-01T00:00:00Z"},
        {"start": "2024-03-01T10:00:00"},
    ],
    ids=["start-after-end", "too-long", "naive"],
)
async def test_fhir_export_refuses_bad_ranges(exports: Exports, query: dict[str, str]) -> None:
    response = await exports.clients[Who.STAFF].get(FHIR_R01, **query)

    assert response.status_code == 422, response.text


async def test_an_export_of_more_than_the_limit_is_refused_not_cut(tmp_path: Path) -> None:
    async with api_world(tmp_path) as world:
        start = T0 - timedelta(hours=1)
        many = [
            reading(HOME, "r02", Metric.HEART_RATE, 70, start + timedelta(microseconds=10 * i))
            for i in range(MAX_EXPORT_READINGS + 1)
        ]
        for first in range(0, len(many), 50_000):
            await world.store.write(many[first : first + 50_000])
        staff = await world.logged_in(await world.user(Role.STAFF))

        response = await staff.get(f"/sites/{HOME}/residents/r02/fhir")

        assert response.status_code == 422
        assert "narrow" in response.json()["detail"]


# -- research --------------------------------------------------------------------------------


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@in_module_loop
async def test_research_export_has_pseudonyms_and_no_names_or_ids(exports: Exports) -> None:
    response = await exports.clients[Who.ADMIN].get(RESEARCH)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = response.text
    assert text.splitlines()[0] == ",".join(COLUMNS)
    for name in NAMES:
        assert name not in text
    for identifier in IDS:
        assert identifier not in text
    # the names of the site files, to be sure the list above is the right one
    assert all(name in SITE_FILES[HOME] or name in SITE_FILES[OTHER] for name in NAMES)
    rows = _rows(text)
    pseudonyms = Pseudonymiser(KEY.encode())
    # HOME's readings of the last day but the battery level: r01 x5, r02, r03
    assert len(rows) == 7
    assert {row["site"] for row in rows} == {pseudonyms.site(HOME)}
    assert {row["resident"] for row in rows} == {
        pseudonyms.resident(HOME, resident) for resident in ("r01", "r02", "r03")
    }
    assert {row["metric"] for row in rows} == {
        "heart_rate",
        "spo2",
        "systolic_bp",
        "diastolic_bp",
        "body_temperature",
    }


@in_module_loop
async def test_research_export_is_audited(exports: Exports) -> None:
    admin = exports.users[Who.ADMIN]
    response = await exports.clients[Who.ADMIN].get(RESEARCH)
    assert response.status_code == 200

    entries = await exports.world.audit.query(AuditQuery(limit=1000, user_id=admin.id, site=HOME))

    assert any(
        entry.event.target == "research.csv" and entry.event.action is AuditAction.READ
        for entry in entries
    )


async def test_research_export_is_off_without_a_key(tmp_path: Path) -> None:
    async with api_world(tmp_path) as world:
        assert world.admin is not None
        admin = await world.logged_in(world.admin)

        response = await admin.get(RESEARCH)

        assert response.status_code == 503
        assert "CAREWATCH_API__RESEARCH_KEY" in response.json()["detail"]


# -- who may -------------------------------------------------------------------------------------

FHIR_EXPECT = {
    Who.ANONYMOUS: 401,
    Who.ADMIN: 200,
    Who.STAFF: 200,
    Who.ADMIN_OTHER: 403,
    Who.STAFF_OTHER: 403,
    Who.FAMILY: 200,
    Who.FAMILY_OTHER: 403,
    Who.FAMILY_REVOKED: 403,
}
RESEARCH_EXPECT = {
    Who.ANONYMOUS: 401,
    Who.ADMIN: 200,
    Who.STAFF: 403,
    Who.ADMIN_OTHER: 403,
    Who.STAFF_OTHER: 403,
    Who.FAMILY: 403,
    Who.FAMILY_OTHER: 403,
    Who.FAMILY_REVOKED: 403,
}
CASES = [
    ("fhir", FHIR_R01, FHIR_EXPECT),
    (
        "fhir-missing-resident",
        f"/sites/{HOME}/residents/r99/fhir",
        {**dict.fromkeys(Who, 403), Who.ANONYMOUS: 401, Who.ADMIN: 404, Who.STAFF: 404},
    ),
    (
        "fhir-unknown-site",
        "/sites/nowhere/residents/r01/fhir",
        {**dict.fromkeys(Who, 403), Who.ANONYMOUS: 401},
    ),
    ("research", RESEARCH, RESEARCH_EXPECT),
    (
        "research-other-site",
        f"/sites/{OTHER}/research.csv",
        {**dict.fromkeys(Who, 403), Who.ANONYMOUS: 401, Who.ADMIN_OTHER: 200},
    ),
    (
        "research-unknown-site",
        "/sites/nowhere/research.csv",
        {**dict.fromkeys(Who, 403), Who.ANONYMOUS: 401},
    ),
]


@in_module_loop
@pytest.mark.parametrize(
    ("path", "expect", "who"),
    [
        pytest.param(path, expect, who, id=f"{name}-{who.value}")
        for name, path, expect in CASES
        for who in Who
    ],
)
async def test_access(exports: Exports, path: str, expect: Mapping[Who, int], who: Who) -> None:
    response = await exports.clients[who].get(path)

    assert response.status_code == expect[who], response.text
    if expect[who] != 200:
        assert "Example" not in response.text
        assert "heart_rate" not in response.text


# -- the setting --------------------------------------------------------------------------------


@pytest.mark.parametrize("demo", ["false", "true"])
@pytest.mark.parametrize("key", ["fifteen bytes..", "changeme", "secret", ""])
def test_short_or_placeholder_research_keys_are_refused(
    monkeypatch: pytest.MonkeyPatch, key: str, demo: str
) -> None:
    monkeypatch.setenv("CAREWATCH_DEMO", demo)
    monkeypatch.setenv("CAREWATCH_API__RESEARCH_KEY", key)

    with pytest.raises(SettingsError, match="research_key"):
        CloudSettings.load(None)


def test_research_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_API__RESEARCH_KEY", KEY)

    settings = CloudSettings.load(None)

    assert settings.api.research_key is not None
    assert settings.api.research_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    assert CloudSettings.load(None).api.research_key == settings.api.research_key
