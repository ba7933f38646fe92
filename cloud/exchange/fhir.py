"""FHIR R4 export of one resident's vital signs: a Bundle of the Patient and its Observations.

Pure: readings and the resident's reference in, a validated ``fhir.resources`` Bundle out (the
library validates every model as it is built). No I/O and no clock: the caller passes the
bundle's id and timestamp.

FHIR version
------------
fhir.resources 8 builds FHIR R5 by default. It ships no R4 (4.0.1) subpackage, only ``R4B``
(4.3.0) and ``STU3``, so the models come from ``fhir.resources.R4B``. R4B changed no element
of the resources and data types used here (Bundle, Patient, Observation, Quantity,
CodeableConcept, Reference, Identifier, Annotation, Meta) from R4, so the JSON is valid R4 and
follows the R4 vital signs profiles (``http://hl7.org/fhir/StructureDefinition/heartrate``,
``.../bp`` ...). Serve it as ``application/fhir+json; fhirVersion=4.0``.

Bundle type
-----------
``collection``: the export is a set of resources put together for exchange, not the answer
of a FHIR search (a ``searchset`` carries ``search.mode`` per entry, a total and a ``self``
link with the query that produced it, none of which exists here). Every entry has a
``fullUrl`` under ``base_url``; Observations refer to the Patient with the relative reference
``Patient/<id>``, which resolves against the entries' ``fullUrl`` base.

What is exported
----------------
* Vital signs (category ``vital-signs``, the R4 profile in ``meta.profile``): heart rate,
  pulse rate, SpO2, body temperature, respiratory rate, body weight, body height, BMI, and
  blood pressure as ONE panel per measurement (below). Body height is stored in metres but the
  R4 body height profile binds its unit to cm or [in_i], so it is exported in cm (exact
  decimal scaling). SpO2 carries 59408-5 (by pulse oximetry) beside 2708-6, and pulse rate
  carries 8867-4 (heart rate, which the R4 heart rate profile requires) beside its own 8889-8.
* Blood glucose (LOINC 15074-8, mmol/L) with category ``laboratory``: a point-of-care test is
  not a vital sign, but it is clinically needed for diabetic residents.
* Left out: RR intervals (one per heartbeat, no LOINC code, raw material for HRV rather than a
  clinical observation), battery level (a property of the device, not of the resident), falls
  and help-button presses (device events: a fall is recorded clinically once staff have
  confirmed it, through the alert lifecycle, not as an unconfirmed Observation). See
  :data:`EXPORTED_METRICS`.

Blood pressure
--------------
Systolic, diastolic and mean arterial pressure readings of one device, user index and
measurement time (to the microsecond) make one Observation coded 85354-9 with components
8480-6, 8462-4 and, when present, 8478-0. The profile requires both systolic and diastolic
components: a missing one gets ``dataAbsentReason`` ``unknown`` instead of a value, so no
reading is ever dropped. If one measurement time holds two readings of the same pressure
(a device repeating its timestamp), they go to two panels, in ``seq`` order. The cuff's pulse
rate is a heart-rate Observation of its own (the bp profile has no pulse component).

Quality flags
-------------
``status`` is always ``final``: a device result is complete when sent, and FHIR's status is
workflow state (preliminary, amended, entered-in-error), not quality. As the HL7 Personal
Health Device IG (R4) does, a measurement the device called questionable (``questionable``)
or taken without skin contact (``no_contact``) gets the ``interpretation`` coding
``questionable`` of ``http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status``, and every
clinically relevant flag (those two, ``movement``, ``irregular_pulse``) a human-readable
``note``. ``late`` (sent from the gateway's outbox) and ``device_time`` (the time source) say
how the reading travelled, not what was measured, and are not exported.

Identifiers
-----------
``Patient.id`` is the resident id with ``_`` written as ``.``: FHIR ids allow letters, digits,
``-`` and ``.``, CareWatch ids letters, digits, ``-`` and ``_``, so the mapping is one-to-one.
Resident ids are unique per site only; the Patient also carries the verbatim id as an
identifier in the site's system ``<base_url>/sites/<site>/residents`` (devices likewise in
``.../devices``), beside the caller's own identifiers (an NHS number, say). Observation ids
are UUIDs derived from the stored reading's key, so exporting the same readings again gives
the same ids (a receiver can upsert).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from pydantic import ValidationError

from cloud.exchange.errors import ExchangeValueError
from cloud.store.base import StoredReading
from vitals.metrics import BP_PANEL_LOINC, Metric
from vitals.topics import ID_PATTERN
from vitals.wire import Quality

__all__ = [
    "BP_METRICS",
    "DATA_ABSENT_REASON_SYSTEM",
    "EXPORTED_METRICS",
    "FHIR_VERSION",
    "LOINC_SYSTEM",
    "MEASUREMENT_STATUS_SYSTEM",
    "OBSERVATION_CATEGORY_SYSTEM",
    "UCUM_SYSTEM",
    "PatientIdentifier",
    "PatientRef",
    "fhir_id",
    "vital_signs_bundle",
]

FHIR_VERSION = "4.0"
"""The ``fhirVersion`` mime-type parameter to serve the bundle with (see the module doc)."""
LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MEASUREMENT_STATUS_SYSTEM = "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status"
_PROFILE = "http://hl7.org/fhir/StructureDefinition/"

_ID = re.compile(ID_PATTERN)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_MICROSECOND_NS = 1_000
"""Stored timestamps carry ``seq % 1000`` below the microsecond: cut it to compare times."""


@dataclass(slots=True, frozen=True)
class PatientIdentifier:
    """A business identifier of the resident elsewhere (e.g. an NHS number)."""

    system: str
    """The URI of the identifier's namespace (``https://fhir.nhs.uk/Id/nhs-number``)."""
    value: str

    def __post_init__(self) -> None:
        if not _URI.fullmatch(self.system):
            raise ExchangeValueError(
                f"patient identifier system {self.system!r} is not an absolute URI"
            )
        if not self.value.strip():
            raise ExchangeValueError(f"patient identifier of {self.system} has no value")


@dataclass(slots=True, frozen=True)
class PatientRef:
    """What the FHIR Patient of an export holds: the resident's id at its site, optionally
    a display name (from the registry; the only place names live) and other identifiers."""

    site: str
    id: str
    """The resident id (``r01``): the Patient's id, ``_`` written as ``.``."""
    display_name: str | None = None
    """Exported as ``Patient.name.text`` when given, never anywhere else."""
    identifiers: tuple[PatientIdentifier, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.site, str) or not _ID.fullmatch(self.site):
            raise ExchangeValueError(f"site {self.site!r} is not a CareWatch id")
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ExchangeValueError(f"resident {self.id!r} is not a CareWatch id")
        if self.display_name is not None and not self.display_name.strip():
            raise ExchangeValueError(f"resident {self.id}: a display name cannot be blank")


@dataclass(slots=True, frozen=True)
class _Code:
    code: str
    display: str


@dataclass(slots=True, frozen=True)
class _Export:
    """How one metric becomes an Observation."""

    profile: str | None
    category: str
    codes: tuple[_Code, ...]
    """LOINC codings; the metric's own code first."""
    unit: str
    """UCUM code of the exported value."""
    scale: Decimal = Decimal(1)
    """Multiplier from the metric's unit to ``unit``."""


_VITAL = "vital-signs"
_CATEGORY_DISPLAY = {_VITAL: "Vital Signs", "laboratory": "Laboratory"}


def _own(metric: Metric) -> _Code:
    loinc = metric.loinc
    if loinc is None:  # pragma: no cover - the table below only names coded metrics
        raise AssertionError(f"{metric} has no LOINC code")
    return _Code(loinc, metric.display)


_EXPORTS: dict[Metric, _Export] = {
    Metric.HEART_RATE: _Export("heartrate", _VITAL, (_own(Metric.HEART_RATE),), "/min"),
    Metric.PULSE_RATE: _Export(
        "heartrate",
        _VITAL,
        (_own(Metric.PULSE_RATE), _Code("8867-4", "Heart rate")),
        "/min",
    ),
    Metric.SPO2: _Export(
        "oxygensat",
        _VITAL,
        (
            _own(Metric.SPO2),
            _Code("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
        "%",
    ),
    Metric.BODY_TEMPERATURE: _Export("bodytemp", _VITAL, (_own(Metric.BODY_TEMPERATURE),), "Cel"),
    Metric.RESPIRATORY_RATE: _Export("resprate", _VITAL, (_own(Metric.RESPIRATORY_RATE),), "/min"),
    Metric.BODY_WEIGHT: _Export("bodyweight", _VITAL, (_own(Metric.BODY_WEIGHT),), "kg"),
    Metric.BODY_HEIGHT: _Export(
        "bodyheight", _VITAL, (_own(Metric.BODY_HEIGHT),), "cm", Decimal(100)
    ),
    Metric.BMI: _Export("bmi", _VITAL, (_own(Metric.BMI),), "kg/m2"),
    Metric.BLOOD_GLUCOSE: _Export(None, "laboratory", (_own(Metric.BLOOD_GLUCOSE),), "mmol/L"),
}

BP_METRICS: frozenset[Metric] = frozenset(
    {Metric.SYSTOLIC_BP, Metric.DIASTOLIC_BP, Metric.MEAN_ARTERIAL_PRESSURE}
)
"""Metrics exported as components of one blood pressure panel."""
EXPORTED_METRICS: frozenset[Metric] = frozenset(_EXPORTS) | BP_METRICS
"""Metrics the FHIR export carries; readings of any other metric are left out."""

_BP_COMPONENTS = (Metric.SYSTOLIC_BP, Metric.DIASTOLIC_BP, Metric.MEAN_ARTERIAL_PRESSURE)
_BP_REQUIRED = (Metric.SYSTOLIC_BP, Metric.DIASTOLIC_BP)

_QUESTIONABLE = frozenset({Quality.QUESTIONABLE, Quality.NO_CONTACT})
_NOTES: dict[Quality, str] = {
    Quality.QUESTIONABLE: "The device flagged this measurement as questionable.",
    Quality.NO_CONTACT: "The sensor reported no contact with the skin during this measurement.",
    Quality.MOVEMENT: "The device detected body movement during this measurement.",
    Quality.IRREGULAR_PULSE: "The device detected an irregular pulse during this measurement.",
}


def fhir_id(carewatch_id: str) -> str:
    """The FHIR resource id of a CareWatch id (``_`` becomes ``.``; one-to-one)."""
    if not _ID.fullmatch(carewatch_id):
        raise ExchangeValueError(f"{carewatch_id!r} is not a CareWatch id")
    return carewatch_id.replace("_", ".")


def vital_signs_bundle(
    patient: PatientRef,
    readings: Sequence[StoredReading],
    *,
    bundle_id: str,
    timestamp: datetime,
    base_url: str,
) -> Bundle:
    """A ``collection`` Bundle of ``patient``'s Patient resource and the Observations of
    ``readings`` (see the module docstring for what is exported and how).

    ``bundle_id`` must be a FHIR id (letters, digits, ``-``, ``.``; at most 64), ``timestamp``
    (when the bundle was assembled) timezone-aware, ``base_url`` the absolute http(s) URL
    under which the entries' ``fullUrl``\\ s are written. Every reading must belong to
    ``patient`` (same site and resident): a reading of anyone else is refused with
    :class:`~cloud.exchange.errors.ExchangeValueError`, never exported into this record.
    Entries are in a stable order (Patient first, then by measurement time and code), so the
    same readings in any order give the same bundle.
    """
    base = _base_url(base_url)
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise ExchangeValueError("timestamp is naive: give a time zone")
    if not isinstance(bundle_id, str) or not _FHIR_ID.fullmatch(bundle_id):
        raise ExchangeValueError(f"bundle id {bundle_id!r} is not a FHIR id")
    for reading in readings:
        if reading.site != patient.site or reading.resident != patient.id:
            raise ExchangeValueError(
                f"a reading of {reading.site}/{reading.resident} (device {reading.device}) "
                f"is not {patient.site}/{patient.id}'s"
            )
    context = _Context(patient, base)
    try:
        observations = sorted(_observations(context, readings), key=lambda item: item[0])
        entries = [BundleEntry(fullUrl=context.patient_url, resource=_patient(context))]
        entries += [
            BundleEntry(fullUrl=f"{base}/Observation/{observation.id}", resource=observation)
            for _, observation in observations
        ]
        return Bundle(
            id=bundle_id,
            type="collection",
            timestamp=timestamp.astimezone(UTC),
            entry=entries,
        )
    except ValidationError as exc:
        raise ExchangeValueError(f"FHIR model refused the export: {_first_problem(exc)}") from exc


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.netloc
        or parts.query
        or parts.fragment
        or any(char.isspace() for char in value)
    ):
        raise ExchangeValueError(
            f"base_url {value!r} must be an absolute http(s) URL without query or fragment"
        )
    return value.rstrip("/")


def _first_problem(exc: ValidationError) -> str:
    # Without the input: a value the model refused could be a health value.
    errors = exc.errors(include_input=False, include_url=False)
    if not errors:  # pragma: no cover - pydantic always names at least one
        return "invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


@dataclass(slots=True, frozen=True)
class _Context:
    patient: PatientRef
    base: str

    @property
    def patient_fhir_id(self) -> str:
        return fhir_id(self.patient.id)

    @property
    def patient_url(self) -> str:
        return f"{self.base}/Patient/{self.patient_fhir_id}"

    @property
    def namespace(self) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base}/Observation")

    def system(self, what: str) -> str:
        return f"{self.base}/sites/{self.patient.site}/{what}"


def _patient(context: _Context) -> Patient:
    ref = context.patient
    identifiers = [Identifier(system=context.system("residents"), value=ref.id)]
    identifiers += [Identifier(system=i.system, value=i.value) for i in ref.identifiers]
    names = [HumanName(text=ref.display_name)] if ref.display_name is not None else None
    return Patient(id=context.patient_fhir_id, identifier=identifiers, name=names)


def _observations(
    context: _Context, readings: Iterable[StoredReading]
) -> Iterator[tuple[tuple[int, str, str, str], Observation]]:
    pressures: list[StoredReading] = []
    for reading in readings:
        if reading.metric in BP_METRICS:
            pressures.append(reading)
        elif reading.metric in _EXPORTS:
            observation = _single(context, reading)
            yield _order(reading, _EXPORTS[reading.metric].codes[0].code, observation)
    for panel in _panels(pressures):
        observation = _panel(context, panel)
        yield _order(panel[0], BP_PANEL_LOINC, observation)


def _order(
    reading: StoredReading, code: str, observation: Observation
) -> tuple[tuple[int, str, str, str], Observation]:
    key = (reading.time_ns // _MICROSECOND_NS, code, reading.device, str(observation.id))
    return key, observation


def _user_order(reading: StoredReading) -> tuple[bool, int]:
    return reading.user is not None, reading.user or 0


def _panels(readings: list[StoredReading]) -> Iterator[list[StoredReading]]:
    """Blood pressure readings grouped by (device, user, measurement time), one panel per
    measurement; a pressure that repeats within a group starts the next panel."""

    def measurement(reading: StoredReading) -> tuple[str, tuple[bool, int], int]:
        return reading.device, _user_order(reading), reading.time_ns // _MICROSECOND_NS

    readings.sort(key=lambda r: (*measurement(r), r.seq))
    for _, group in itertools.groupby(readings, key=measurement):
        panel: list[StoredReading] = []
        for reading in group:
            if any(other.metric is reading.metric for other in panel):
                yield panel
                panel = []
            panel.append(reading)
        if panel:
            yield panel


def _subject(context: _Context) -> Reference:
    return Reference(reference=f"Patient/{context.patient_fhir_id}")


def _device(context: _Context, device: str) -> Reference:
    return Reference(
        type="Device",
        identifier=Identifier(system=context.system("devices"), value=device),
        display=device,
    )


def _category(name: str) -> list[CodeableConcept]:
    display = _CATEGORY_DISPLAY[name]
    coding = Coding(system=OBSERVATION_CATEGORY_SYSTEM, code=name, display=display)
    return [CodeableConcept(coding=[coding], text=display)]


def _concept(codes: Sequence[_Code], text: str) -> CodeableConcept:
    codings = [Coding(system=LOINC_SYSTEM, code=c.code, display=c.display) for c in codes]
    return CodeableConcept(coding=codings, text=text)


def _quantity(value: float, unit: str, scale: Decimal = Decimal(1)) -> Quantity:
    # repr() is the shortest decimal that reads back as the same float: the stored value,
    # exactly, then scaled in decimal (1.6 m is 160.0 cm, not 160.00000000000003).
    amount = Decimal(repr(value)) * scale
    return Quantity(value=amount, unit=unit, system=UCUM_SYSTEM, code=unit)


def _interpretation(flags: Iterable[Quality]) -> list[CodeableConcept] | None:
    if not any(flag in _QUESTIONABLE for flag in flags):
        return None
    coding = Coding(system=MEASUREMENT_STATUS_SYSTEM, code="questionable", display="Questionable")
    return [CodeableConcept(coding=[coding], text="Questionable")]


def _notes(flags: Iterable[Quality]) -> list[Annotation] | None:
    notes = [Annotation(text=_NOTES[flag]) for flag in dict.fromkeys(flags) if flag in _NOTES]
    return notes or None


def _observation_id(context: _Context, *parts: object) -> str:
    return str(uuid.uuid5(context.namespace, "|".join(str(part) for part in parts)))


def _single(context: _Context, reading: StoredReading) -> Observation:
    spec = _EXPORTS[reading.metric]
    metric = reading.metric
    return Observation(
        id=_observation_id(context, *reading.key),
        meta=Meta(profile=[_PROFILE + spec.profile]) if spec.profile else None,
        status="final",
        category=_category(spec.category),
        code=_concept(spec.codes, metric.display),
        subject=_subject(context),
        effectiveDateTime=reading.time,
        valueQuantity=_quantity(reading.value, spec.unit, spec.scale),
        device=_device(context, reading.device),
        interpretation=_interpretation(reading.flags),
        note=_notes(reading.flags),
    )


def _panel(context: _Context, panel: Sequence[StoredReading]) -> Observation:
    first = panel[0]
    by_metric = {reading.metric: reading for reading in panel}
    components: list[ObservationComponent] = []
    for metric in _BP_COMPONENTS:
        code = _concept((_own(metric),), metric.display)
        found = by_metric.get(metric)
        if found is not None:
            quantity = _quantity(found.value, metric.unit)
            components.append(ObservationComponent(code=code, valueQuantity=quantity))
        elif metric in _BP_REQUIRED:
            absent = Coding(system=DATA_ABSENT_REASON_SYSTEM, code="unknown", display="Unknown")
            components.append(
                ObservationComponent(
                    code=code, dataAbsentReason=CodeableConcept(coding=[absent], text="Unknown")
                )
            )
    flags = [flag for reading in panel for flag in reading.flags]
    start_ns = min(reading.time_ns for reading in panel)
    return Observation(
        id=_observation_id(
            context, "bp", first.site, first.resident, first.device, first.user, start_ns
        ),
        meta=Meta(profile=[_PROFILE + "bp"]),
        status="final",
        category=_category(_VITAL),
        code=_concept((_Code(BP_PANEL_LOINC, "Blood pressure panel"),), "Blood pressure"),
        subject=_subject(context),
        effectiveDateTime=first.time,
        component=components,
        device=_device(context, first.device),
        interpretation=_interpretation(flags),
        note=_notes(flags),
    )
