"""FHIR R4 export: vital-signs Observations, the BP panel, the Patient, quality flags, and a
Bundle that the library validates and reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from cloud.exchange import (
    BP_METRICS,
    EXPORTED_METRICS,
    ExchangeValueError,
    PatientIdentifier,
    PatientRef,
    fhir_id,
    vital_signs_bundle,
)
from cloud.exchange.fhir import (
    DATA_ABSENT_REASON_SYSTEM,
    LOINC_SYSTEM,
    MEASUREMENT_STATUS_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    UCUM_SYSTEM,
)
from cloud.store.base import StoredReading, ns_from_datetime, storage_time_ns
from vitals.metrics import BP_PANEL_LOINC, Metric
from vitals.wire import Quality

BASE = "https://carewatch.example/fhir"
STAMP = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2024, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)
PATIENT = PatientRef(site="oak-house", id="r01")

# A value inside every exported metric's range, with its expected exported quantity.
VALUES: dict[Metric, float] = {
    Metric.HEART_RATE: 72.0,
    Metric.PULSE_RATE: 70.0,
    Metric.SPO2: 96.0,
    Metric.BODY_TEMPERATURE: 36.6,
    Metric.RESPIRATORY_RATE: 15.0,
    Metric.BODY_WEIGHT: 58.5,
    Metric.BODY_HEIGHT: 1.6,
    Metric.BMI: 22.9,
    Metric.BLOOD_GLUCOSE: 6.2,
    Metric.SYSTOLIC_BP: 134.0,
    Metric.DIASTOLIC_BP: 76.0,
    Metric.MEAN_ARTERIAL_PRESSURE: 95.0,
}
EXPECTED_UNIT: dict[Metric, tuple[str, Decimal]] = {
    Metric.HEART_RATE: ("/min", Decimal("72.0")),
    Metric.PULSE_RATE: ("/min", Decimal("70.0")),
    Metric.SPO2: ("%", Decimal("96.0")),
    Metric.BODY_TEMPERATURE: ("Cel", Decimal("36.6")),
    Metric.RESPIRATORY_RATE: ("/min", Decimal("15.0")),
    Metric.BODY_WEIGHT: ("kg", Decimal("58.5")),
    Metric.BODY_HEIGHT: ("cm", Decimal("160")),  # the R4 profile wants cm or [in_i], not m
    Metric.BMI: ("kg/m2", Decimal("22.9")),
    Metric.BLOOD_GLUCOSE: ("mmol/L", Decimal("6.2")),
}
PROFILES: dict[Metric, str | None] = {
    Metric.HEART_RATE: "heartrate",
    Metric.PULSE_RATE: "heartrate",
    Metric.SPO2: "oxygensat",
    Metric.BODY_TEMPERATURE: "bodytemp",
    Metric.RESPIRATORY_RATE: "resprate",
    Metric.BODY_WEIGHT: "bodyweight",
    Metric.BODY_HEIGHT: "bodyheight",
    Metric.BMI: "bmi",
    Metric.BLOOD_GLUCOSE: None,
}


def reading(
    metric: Metric,
    value: float | None = None,
    *,
    device: str = "r01-dev",
    at: datetime = T0,
    seq: int = 1,
    flags: tuple[Quality, ...] = (),
    user: int | None = None,
    resident: str = "r01",
    site: str = "oak-house",
) -> StoredReading:
    measured = ns_from_datetime(at)
    return StoredReading(
        site=site,
        resident=resident,
        device=device,
        metric=metric,
        user=user,
        time_ns=storage_time_ns(measured, seq),
        value=VALUES.get(metric, 1.0) if value is None else value,
        seq=seq,
        gateway="oak-house-gw1",
        flags=flags,
        received_ns=measured + 1_000_000,
    )


def bundle_of(*readings: StoredReading, patient: PatientRef = PATIENT) -> Bundle:
    return vital_signs_bundle(
        patient, readings, bundle_id="export-1", timestamp=STAMP, base_url=BASE
    )


def observations(bundle: Bundle) -> list[Observation]:
    found = [entry.resource for entry in bundle.entry or ()]
    return [resource for resource in found if isinstance(resource, Observation)]


def only_observation(bundle: Bundle) -> Observation:
    found = observations(bundle)
    assert len(found) == 1, found
    return found[0]


def codes(observation: Observation) -> list[tuple[str | None, str | None]]:
    assert observation.code.coding is not None
    return [(coding.system, coding.code) for coding in observation.code.coding]


def category_codes(observation: Observation) -> list[tuple[str | None, str | None]]:
    return [
        (coding.system, coding.code)
        for concept in observation.category or ()
        for coding in concept.coding or ()
    ]


@pytest.mark.parametrize("metric", sorted(EXPORTED_METRICS - BP_METRICS))
def test_every_single_metric_has_its_loinc_code_and_ucum_quantity(metric: Metric) -> None:
    observation = only_observation(bundle_of(reading(metric)))

    assert metric.loinc is not None
    assert (LOINC_SYSTEM, metric.loinc) in codes(observation)
    quantity = observation.valueQuantity
    assert quantity is not None
    unit, value = EXPECTED_UNIT[metric]
    assert (quantity.system, quantity.code, quantity.unit) == (UCUM_SYSTEM, unit, unit)
    assert quantity.value == value
    assert observation.status == "final"
    assert observation.effectiveDateTime == T0
    profile = PROFILES[metric]
    if profile is None:
        assert observation.meta is None
        assert category_codes(observation) == [(OBSERVATION_CATEGORY_SYSTEM, "laboratory")]
    else:
        assert observation.meta is not None
        assert observation.meta.profile == [f"http://hl7.org/fhir/StructureDefinition/{profile}"]
        assert category_codes(observation) == [(OBSERVATION_CATEGORY_SYSTEM, "vital-signs")]


def test_the_vital_signs_profiles_own_codes_are_present() -> None:
    # The R4 heart rate profile requires 8867-4 and the oxygen saturation one 2708-6.
    pulse = only_observation(bundle_of(reading(Metric.PULSE_RATE)))
    spo2 = only_observation(bundle_of(reading(Metric.SPO2)))

    assert codes(pulse) == [(LOINC_SYSTEM, "8889-8"), (LOINC_SYSTEM, "8867-4")]
    assert codes(spo2) == [(LOINC_SYSTEM, "2708-6"), (LOINC_SYSTEM, "59408-5")]


def test_stored_floats_are_exported_exactly() -> None:
    value = 0.1 + 0.2  # 0.30000000000000004: repr() reads back as the same float
    observation = only_observation(bundle_of(reading(Metric.BLOOD_GLUCOSE, value)))

    assert observation.valueQuantity is not None
    assert observation.valueQuantity.value is not None
    assert float(observation.valueQuantity.value) == value


@pytest.mark.parametrize(
    "metric",
    [Metric.RR_INTERVAL, Metric.BATTERY_LEVEL, Metric.FALL, Metric.HELP_BUTTON],
)
def test_non_vital_metrics_are_left_out(metric: Metric) -> None:
    bundle = bundle_of(reading(metric), reading(Metric.HEART_RATE, seq=2))

    assert metric not in EXPORTED_METRICS
    assert [codes(o) for o in observations(bundle)] == [[(LOINC_SYSTEM, "8867-4")]]


def component_values(observation: Observation) -> dict[str, Decimal | str]:
    values: dict[str, Decimal | str] = {}
    for component in observation.component or ():
        assert component.code.coding is not None
        (coding,) = component.code.coding
        assert coding.system == LOINC_SYSTEM
        assert coding.code is not None
        if component.valueQuantity is not None:
            quantity = component.valueQuantity
            assert (quantity.system, quantity.code) == (UCUM_SYSTEM, "mm[Hg]")
            assert quantity.value is not None
            values[coding.code] = quantity.value
        else:
            absent = component.dataAbsentReason
            assert absent is not None
            assert absent.coding is not None
            assert absent.coding[0].system == DATA_ABSENT_REASON_SYSTEM
            assert absent.coding[0].code is not None
            values[coding.code] = absent.coding[0].code
    return values


def test_blood_pressure_is_one_panel_with_components() -> None:
    bundle = bundle_of(
        reading(Metric.SYSTOLIC_BP, 134, device="r01-bp", seq=10, user=1),
        reading(Metric.DIASTOLIC_BP, 76, device="r01-bp", seq=11, user=1),
        reading(Metric.MEAN_ARTERIAL_PRESSURE, 95, device="r01-bp", seq=12, user=1),
        reading(Metric.PULSE_RATE, 64, device="r01-bp", seq=13, user=1),
    )

    found = observations(bundle)
    panels = [o for o in found if codes(o) == [(LOINC_SYSTEM, BP_PANEL_LOINC)]]
    assert len(panels) == 1
    assert len(found) == 2  # the panel and the cuff's pulse rate
    panel = panels[0]
    assert panel.valueQuantity is None
    assert panel.meta is not None
    assert panel.meta.profile == ["http://hl7.org/fhir/StructureDefinition/bp"]
    assert category_codes(panel) == [(OBSERVATION_CATEGORY_SYSTEM, "vital-signs")]
    assert component_values(panel) == {
        "8480-6": Decimal("134.0"),
        "8462-4": Decimal("76.0"),
        "8478-0": Decimal("95.0"),
    }
    assert panel.effectiveDateTime == T0
    assert panel.device is not None
    assert panel.device.display == "r01-bp"


def test_pressures_pair_by_device_and_time() -> None:
    later = T0 + timedelta(hours=10)
    bundle = bundle_of(
        reading(Metric.DIASTOLIC_BP, 80, device="r01-bp", at=later, seq=21),
        reading(Metric.SYSTOLIC_BP, 120, device="r01-bp", seq=10),
        reading(Metric.SYSTOLIC_BP, 140, device="r01-bp", at=later, seq=20),
        reading(Metric.DIASTOLIC_BP, 70, device="r01-bp", seq=11),
        # another cuff at the same time: its own panel, without a mean
        reading(Metric.SYSTOLIC_BP, 150, device="r01-bp2", seq=30),
        reading(Metric.DIASTOLIC_BP, 90, device="r01-bp2", seq=31),
    )

    panels = [(o.effectiveDateTime, o.device, component_values(o)) for o in observations(bundle)]
    summary = [(at, device.display if device else None, values) for at, device, values in panels]
    assert summary == [
        (T0, "r01-bp", {"8480-6": Decimal("120.0"), "8462-4": Decimal("70.0")}),
        (T0, "r01-bp2", {"8480-6": Decimal("150.0"), "8462-4": Decimal("90.0")}),
        (later, "r01-bp", {"8480-6": Decimal("140.0"), "8462-4": Decimal("80.0")}),
    ]


def test_an_unpaired_pressure_keeps_its_value_and_marks_the_other_absent() -> None:
    panel = only_observation(bundle_of(reading(Metric.SYSTOLIC_BP, 128, device="r01-bp")))

    assert component_values(panel) == {"8480-6": Decimal("128.0"), "8462-4": "unknown"}


def test_a_repeated_pressure_at_one_time_starts_a_second_panel() -> None:
    bundle = bundle_of(
        reading(Metric.SYSTOLIC_BP, 120, device="r01-bp", seq=1),
        reading(Metric.DIASTOLIC_BP, 70, device="r01-bp", seq=2),
        reading(Metric.SYSTOLIC_BP, 122, device="r01-bp", seq=3),
        reading(Metric.DIASTOLIC_BP, 72, device="r01-bp", seq=4),
    )

    values = sorted((component_values(o) for o in observations(bundle)), key=lambda v: v["8480-6"])
    assert values == [
        {"8480-6": Decimal("120.0"), "8462-4": Decimal("70.0")},
        {"8480-6": Decimal("122.0"), "8462-4": Decimal("72.0")},
    ]


def every_metric_readings() -> list[StoredReading]:
    found = [
        reading(metric, device=f"r01-{index}", seq=index, at=T0 + timedelta(minutes=index))
        for index, metric in enumerate(Metric)
    ]
    found += [
        reading(Metric.SYSTOLIC_BP, 131, device="r01-bp", seq=100, flags=(Quality.MOVEMENT,)),
        reading(Metric.DIASTOLIC_BP, 79, device="r01-bp", seq=101, flags=(Quality.MOVEMENT,)),
    ]
    return found


def test_a_bundle_validates_and_round_trips_through_the_library() -> None:
    patient = PatientRef(
        site="oak-house",
        id="r01",
        display_name="Margaret Holloway",
        identifiers=(PatientIdentifier("https://fhir.nhs.uk/Id/nhs-number", "9434765919"),),
    )
    bundle = bundle_of(*every_metric_readings(), patient=patient)

    text = bundle.model_dump_json()
    assert Bundle.model_validate_json(text) == bundle
    assert Bundle.model_validate(json.loads(text)) == bundle
    data = json.loads(text)
    assert data["resourceType"] == "Bundle"
    assert data["type"] == "collection"
    assert data["id"] == "export-1"
    assert data["timestamp"] == "2024-03-01T12:00:00Z"
    # Patient first, then 9 single Observations, one panel for the systolic, diastolic and
    # mean pressures of the loop (each from its own device and time) and one for the pair;
    # RR interval, battery and events are left out.
    kinds = [entry["resource"]["resourceType"] for entry in data["entry"]]
    assert kinds == ["Patient"] + ["Observation"] * 13
    for entry in data["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{BASE}/{resource['resourceType']}/{resource['id']}"
        if resource["resourceType"] == "Observation":
            assert resource["subject"] == {"reference": "Patient/r01"}
            assert resource["status"] == "final"


def test_the_patient_has_its_id_identifiers_and_name_only_when_given() -> None:
    named = PatientRef(
        site="oak-house",
        id="r01",
        display_name="Margaret Holloway",
        identifiers=(PatientIdentifier("https://fhir.nhs.uk/Id/nhs-number", "9434765919"),),
    )
    for ref, name in ((named, "Margaret Holloway"), (PATIENT, None)):
        bundle = bundle_of(reading(Metric.HEART_RATE), patient=ref)
        assert bundle.entry is not None
        patient = bundle.entry[0].resource
        assert isinstance(patient, Patient)
        assert patient.id == "r01"
        assert bundle.entry[0].fullUrl == f"{BASE}/Patient/r01"
        if name is None:
            assert patient.name is None
            assert "Margaret" not in bundle.model_dump_json()
        else:
            assert patient.name is not None
            assert [n.text for n in patient.name] == [name]
        assert patient.identifier is not None
        identifiers = [(i.system, i.value) for i in patient.identifier]
        assert identifiers[0] == (f"{BASE}/sites/oak-house/residents", "r01")
        assert identifiers[1:] == [(i.system, i.value) for i in ref.identifiers]


def test_an_underscore_in_an_id_becomes_a_dot_in_the_fhir_id() -> None:
    bundle = bundle_of(
        reading(Metric.HEART_RATE, resident="room_12"),
        patient=PatientRef(site="oak-house", id="room_12"),
    )

    assert fhir_id("room_12") == "room.12"
    assert bundle.entry is not None
    assert bundle.entry[0].resource is not None
    assert bundle.entry[0].resource.id == "room.12"
    subject = only_observation(bundle).subject
    assert subject is not None
    assert subject.reference == "Patient/room.12"


def test_the_device_is_referenced_by_its_id() -> None:
    observation = only_observation(bundle_of(reading(Metric.HEART_RATE, device="r01-hr")))

    device = observation.device
    assert device is not None
    assert device.display == "r01-hr"
    assert device.type == "Device"
    assert device.identifier is not None
    assert (device.identifier.system, device.identifier.value) == (
        f"{BASE}/sites/oak-house/devices",
        "r01-hr",
    )


def interpretation_codes(observation: Observation) -> list[tuple[str | None, str | None]]:
    return [
        (coding.system, coding.code)
        for concept in observation.interpretation or ()
        for coding in concept.coding or ()
    ]


@pytest.mark.parametrize("flag", [Quality.QUESTIONABLE, Quality.NO_CONTACT])
def test_a_questionable_reading_stays_final_with_a_questionable_interpretation(
    flag: Quality,
) -> None:
    observation = only_observation(bundle_of(reading(Metric.SPO2, flags=(flag,))))

    assert observation.status == "final"
    assert interpretation_codes(observation) == [(MEASUREMENT_STATUS_SYSTEM, "questionable")]
    assert observation.note is not None
    assert len(observation.note) == 1


def test_movement_and_irregular_pulse_are_notes_on_the_panel() -> None:
    flags = (Quality.MOVEMENT, Quality.IRREGULAR_PULSE, Quality.DEVICE_TIME)
    panel = only_observation(
        bundle_of(
            reading(Metric.SYSTOLIC_BP, 150, device="r01-bp", seq=1, flags=flags),
            reading(Metric.DIASTOLIC_BP, 95, device="r01-bp", seq=2, flags=flags),
        )
    )

    assert panel.interpretation is None
    assert panel.note is not None
    texts = [note.text for note in panel.note]
    assert len(texts) == 2  # one note per flag, not per reading; device_time is no note
    assert "movement" in str(texts[0])
    assert "irregular pulse" in str(texts[1])


def test_an_unflagged_or_late_reading_has_no_interpretation_or_note() -> None:
    for flags in ((), (Quality.LATE, Quality.DEVICE_TIME)):
        observation = only_observation(bundle_of(reading(Metric.HEART_RATE, flags=flags)))
        assert observation.interpretation is None
        assert observation.note is None


def test_the_bundle_is_the_same_whatever_the_order_of_the_readings() -> None:
    readings = every_metric_readings()

    first = bundle_of(*readings).model_dump_json()
    again = bundle_of(*reversed(readings)).model_dump_json()

    assert first == again
    times = [o.effectiveDateTime for o in observations(Bundle.model_validate_json(first))]
    assert times == sorted(times)  # type: ignore[type-var]


def test_observation_ids_are_distinct_and_stable() -> None:
    readings = every_metric_readings()

    ids = [o.id for o in observations(bundle_of(*readings))]

    assert len(set(ids)) == len(ids)
    assert ids == [o.id for o in observations(bundle_of(*readings))]


def test_a_reading_of_another_resident_or_site_is_refused() -> None:
    others = (reading(Metric.HEART_RATE, resident="r02"), reading(Metric.HEART_RATE, site="elm"))
    for other in others:
        with pytest.raises(ExchangeValueError, match="is not oak-house/r01's"):
            bundle_of(reading(Metric.SPO2), other)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"timestamp": datetime(2024, 3, 1, 12, 0)}, "naive"),
        ({"base_url": "carewatch.example/fhir"}, "base_url"),
        ({"base_url": "ftp://carewatch.example/fhir"}, "base_url"),
        ({"base_url": "https://carewatch.example/fhir?x=1"}, "base_url"),
        ({"base_url": "https://carewatch.example/my fhir"}, "base_url"),
        ({"bundle_id": "export 1"}, "bundle id"),
        ({"bundle_id": "x" * 65}, "bundle id"),
    ],
)
def test_bad_arguments_are_refused(changes: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {
        "bundle_id": "export-1",
        "timestamp": STAMP,
        "base_url": BASE,
        **changes,
    }
    with pytest.raises(ExchangeValueError, match=match):
        vital_signs_bundle(PATIENT, [reading(Metric.HEART_RATE)], **arguments)  # type: ignore[arg-type]


def test_a_trailing_slash_on_the_base_url_is_dropped() -> None:
    bundle = vital_signs_bundle(
        PATIENT, [], bundle_id="export-1", timestamp=STAMP, base_url=BASE + "/"
    )

    assert bundle.entry is not None
    assert [entry.fullUrl for entry in bundle.entry] == [f"{BASE}/Patient/r01"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: PatientRef(site="oak-house", id="r 01"),
        lambda: PatientRef(site="oak/house", id="r01"),
        lambda: PatientRef(site="oak-house", id="r01", display_name="  "),
        lambda: PatientIdentifier("", "9434765919"),
        lambda: PatientIdentifier("nhs number", "9434765919"),
        lambda: PatientIdentifier("https://fhir.nhs.uk/Id/nhs-number", " "),
    ],
)
def test_bad_patient_references_are_refused(make: object) -> None:
    assert callable(make)
    with pytest.raises(ExchangeValueError):
        make()
