"""The metrics CareWatch measures, with their UCUM units, LOINC codes and plausible ranges.

A metric's *unit* is the one unit every reading of that metric carries on the wire and in
storage (UCUM case-sensitive codes, as FHIR expects). Devices that send other units (°F, kPa,
lb, kg/L) are converted by the gateway before a reading is made.

The *range* is what is physically possible for a living person (or the device's own scale),
not what is clinically normal: a value outside it is a broken device or a decoding error and
is rejected at the wire, while a value inside it that is abnormal is for the alert rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BP_PANEL_LOINC",
    "Metric",
    "MetricInfo",
    "MetricKind",
]

BP_PANEL_LOINC = "85354-9"
"""LOINC 'Blood pressure panel with all children optional': the FHIR vital-signs BP panel."""


class MetricKind(StrEnum):
    """What a metric describes, which decides how rules treat it."""

    VITAL = "vital"
    """A physiological measurement of the resident."""
    DEVICE = "device"
    """A property of the device, not of the resident (battery)."""
    EVENT = "event"
    """Something that happened (a fall, a help-button press); its value is always 1."""


@dataclass(slots=True, frozen=True)
class MetricInfo:
    """Facts about one metric."""

    unit: str
    """UCUM code of the one unit this metric is carried in."""
    loinc: str | None
    """LOINC code of the observation, where one exists."""
    display: str
    kind: MetricKind
    minimum: float
    """Lowest physically possible value (inclusive)."""
    maximum: float
    """Highest physically possible value (inclusive)."""


class Metric(StrEnum):
    """Every quantity or event CareWatch carries. The value is the wire and storage name."""

    HEART_RATE = "heart_rate"
    RR_INTERVAL = "rr_interval"
    SPO2 = "spo2"
    PULSE_RATE = "pulse_rate"
    BODY_TEMPERATURE = "body_temperature"
    SYSTOLIC_BP = "systolic_bp"
    DIASTOLIC_BP = "diastolic_bp"
    MEAN_ARTERIAL_PRESSURE = "mean_arterial_pressure"
    BODY_WEIGHT = "body_weight"
    BODY_HEIGHT = "body_height"
    BMI = "bmi"
    BLOOD_GLUCOSE = "blood_glucose"
    RESPIRATORY_RATE = "respiratory_rate"
    BATTERY_LEVEL = "battery_level"
    FALL = "fall"
    HELP_BUTTON = "help_button"
    PROBE = "probe"
    """The gateway's scheduled end-to-end test reading (its device is the gateway itself):
    the alert service raises a technical alert when none has been stored for a while."""

    @property
    def info(self) -> MetricInfo:
        return _INFO[self]

    @property
    def unit(self) -> str:
        return _INFO[self].unit

    @property
    def loinc(self) -> str | None:
        return _INFO[self].loinc

    @property
    def display(self) -> str:
        return _INFO[self].display

    @property
    def kind(self) -> MetricKind:
        return _INFO[self].kind

    def in_range(self, value: float) -> bool:
        """True when ``value`` is physically possible for this metric (NaN never is)."""
        info = _INFO[self]
        return info.minimum <= value <= info.maximum


_V = MetricKind.VITAL

_INFO: dict[Metric, MetricInfo] = {
    Metric.HEART_RATE: MetricInfo("/min", "8867-4", "Heart rate", _V, 0, 300),
    # RR intervals come as uint16 in 1/1024 s: at most 64 s.
    Metric.RR_INTERVAL: MetricInfo("s", None, "RR interval", _V, 0, 64),
    # 2708-6 is the FHIR vital-signs code; 59408-5 (by pulse oximetry) is added in exports.
    Metric.SPO2: MetricInfo("%", "2708-6", "Oxygen saturation", _V, 0, 100),
    Metric.PULSE_RATE: MetricInfo("/min", "8889-8", "Pulse rate (oximetry)", _V, 0, 300),
    Metric.BODY_TEMPERATURE: MetricInfo("Cel", "8310-5", "Body temperature", _V, 20, 45),
    Metric.SYSTOLIC_BP: MetricInfo("mm[Hg]", "8480-6", "Systolic blood pressure", _V, 20, 320),
    Metric.DIASTOLIC_BP: MetricInfo("mm[Hg]", "8462-4", "Diastolic blood pressure", _V, 5, 250),
    Metric.MEAN_ARTERIAL_PRESSURE: MetricInfo(
        "mm[Hg]", "8478-0", "Mean blood pressure", _V, 10, 280
    ),
    # 0.005 kg resolution in a uint16 caps a SIG scale at 327.675 kg.
    Metric.BODY_WEIGHT: MetricInfo("kg", "29463-7", "Body weight", _V, 0.5, 400),
    Metric.BODY_HEIGHT: MetricInfo("m", "8302-2", "Body height", _V, 0.3, 2.8),
    Metric.BMI: MetricInfo("kg/m2", "39156-5", "Body mass index", _V, 5, 150),
    Metric.BLOOD_GLUCOSE: MetricInfo("mmol/L", "15074-8", "Blood glucose", _V, 0, 60),
    Metric.RESPIRATORY_RATE: MetricInfo("/min", "9279-1", "Respiratory rate", _V, 0, 100),
    Metric.BATTERY_LEVEL: MetricInfo("%", None, "Battery level", MetricKind.DEVICE, 0, 100),
    Metric.FALL: MetricInfo("{event}", None, "Fall detected", MetricKind.EVENT, 1, 1),
    Metric.HELP_BUTTON: MetricInfo("{event}", None, "Help button pressed", MetricKind.EVENT, 1, 1),
    Metric.PROBE: MetricInfo("{probe}", None, "End-to-end test reading", MetricKind.DEVICE, 1, 1),
}
