"""What the rules know, in numpy arrays across residents, devices and gateways.

:class:`RuleState` holds, for R residents, D devices and G gateways:

* per metric x resident (every :class:`vitals.Metric`; metric-major, so that a rule reads one
  contiguous row): the last valid value, its time and
  device, the *current* value (for continuous series the median of the last
  ``smoothing.samples`` valid readings within ``smoothing.window``: one artefact never becomes
  "the" heart rate), and when any reading of it was last seen, valid or not;
* for NEWS2, per continuous series the first smoothed value of each minute of the last
  ``news2.persistence`` (15 min), and the least abnormal of them by NEWS2 points
  (:attr:`RuleState.sustained`): the value the series has held throughout that time;
* ring buffers of the last ``ring_capacity`` (32) valid readings (time, value) for the series
  that need history: heart rate, pulse rate, SpO2, respiration rate (smoothing), temperature
  (personal baseline) and weight (gain over days), plus one of smoothed heart rates. A ring
  holds about 32 s of a 1 Hz series, 16 days of twice-daily temperatures and a month of daily
  weights. Memory is fixed whatever the history: about 8 KiB per resident with six devices,
  82 MB for 10,000 residents and 60,000 devices (measured), plus 1 KiB per resident for the
  NEWS2 minute values below (9.6 MB for 10,000, measured);
* the hysteresis latches of every threshold level (:mod:`cloud.alerts.latch`);
* nightly resting heart rates (a ring of ``night_capacity`` nights) with their baseline
  (median and MAD), recent mean and least-squares slope;
* the weight gain over each configured span and the weight slope; the temperature baseline
  and the rise over it;
* the last fall and help events (time, arrival, device) and the smoothed heart rate range
  since the fall (with a ring of the last smoothed heart rates, for a fall event that arrives
  after the heart rates measured after it);
* per device: last seen (any reading, valid or not, or a gateway status saying so), battery
  level and its latches, last valid reading and since when it reports no skin contact;
* per gateway: online or offline (from status and last will), since when, last activity;
* per-resident configuration: threshold limits (:class:`~cloud.alerts.thresholds.ThresholdTable`),
  SpO2 scale, oxygen, the last consciousness observation and its time, UTC offset.

**Incremental by design.** Everything that depends only on the readings (latches, medians,
baselines, slopes) is updated in :meth:`RuleState.ingest` for the series that received
readings; the rules then combine these arrays with ``now`` (freshness, silence, event ages).
A tick of the rules is thus elementwise work over residents, whatever the history.

Ingest is vectorised across residents: a batch is sorted by (metric, resident, time) and
applied in *rounds*, round k taking the k-th new reading of every series at once; there is
no loop over residents or readings. Readings flagged questionable or no-contact count for
presence (device seen, no-contact since) but never for clinical rules. A reading no newer
than the last one of its series (a duplicate, or one that arrives out of order) is counted in
``out_of_order`` and skipped by the clinical series: the store keeps everything, and a
restart refills in time order (:meth:`RuleState.refill`).

Times are float seconds since the Unix epoch (UTC); the engine converts datetimes.

(The class is ``RuleState`` rather than ``AlertState`` because :class:`vitals.wire.AlertState`
already names the alert lifecycle's open / acknowledged / snoozed / resolved states.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from cloud.alerts.config import EngineConfig
from cloud.alerts.errors import ConfigError, InputError
from cloud.alerts.latch import Latches, LatchParams, update_latches
from cloud.alerts.news2 import PARAMETERS, Parameter, score_arrays
from cloud.alerts.thresholds import Override, ThresholdTable
from cloud.alerts.trends import masked_mad, masked_mean, masked_median, masked_slope
from vitals.devices import DeviceKind
from vitals.metrics import Metric, MetricKind
from vitals.wire import Severity

__all__ = [
    "CONTINUOUS",
    "DEVICE_KINDS",
    "METRICS",
    "METRIC_INDEX",
    "RING_METRICS",
    "Ring",
    "RuleState",
    "Samples",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

METRICS: Final = tuple(Metric)
METRIC_INDEX: Final = {metric: index for index, metric in enumerate(METRICS)}
DEVICE_KINDS: Final = tuple(DeviceKind)
CONTINUOUS: Final = frozenset(
    {Metric.HEART_RATE, Metric.PULSE_RATE, Metric.SPO2, Metric.RESPIRATORY_RATE}
)
"""Series sampled about once a second, smoothed before NEWS2 uses them."""
RING_METRICS: Final = (*sorted(CONTINUOUS), Metric.BODY_TEMPERATURE, Metric.BODY_WEIGHT)

_HR: Final = METRIC_INDEX[Metric.HEART_RATE]
_TEMP: Final = METRIC_INDEX[Metric.BODY_TEMPERATURE]
_WEIGHT: Final = METRIC_INDEX[Metric.BODY_WEIGHT]
_BATTERY: Final = METRIC_INDEX[Metric.BATTERY_LEVEL]
_FALL: Final = METRIC_INDEX[Metric.FALL]
_HELP: Final = METRIC_INDEX[Metric.HELP_BUTTON]
_IS_VITAL: Final = np.array([m.kind is MetricKind.VITAL for m in METRICS], dtype=np.bool_)
_IS_CONTINUOUS: Final = np.array([m in CONTINUOUS for m in METRICS], dtype=np.bool_)
_RR_COLUMN: Final = PARAMETERS.index(Parameter.RESPIRATION_RATE)
_SPO2_COLUMN: Final = PARAMETERS.index(Parameter.SPO2)
_PULSE_COLUMN: Final = PARAMETERS.index(Parameter.PULSE)
_NEWS2_COLUMN: Final = {
    METRIC_INDEX[Metric.RESPIRATORY_RATE]: _RR_COLUMN,
    METRIC_INDEX[Metric.SPO2]: _SPO2_COLUMN,
    METRIC_INDEX[Metric.HEART_RATE]: _PULSE_COLUMN,
    METRIC_INDEX[Metric.PULSE_RATE]: _PULSE_COLUMN,
}
"""Continuous metric -> its NEWS2 parameter's column in ``score_arrays``."""
_NO_POINTS: Final = 99
_MINUTE: Final = 60.0
_DAY: Final = 86_400.0
_HOUR: Final = 3_600.0


@dataclass(slots=True, frozen=True, eq=False)
class Samples:
    """A batch of readings as arrays (one entry per reading)."""

    resident: IntArray
    """Resident index, -1 for a device-level reading (battery) or an unknown resident."""
    metric: IntArray
    """Index into :data:`METRICS`."""
    device: IntArray
    """Device index, -1 when unknown (history refills)."""
    time: FloatArray
    """Measurement time."""
    value: FloatArray
    valid: BoolArray
    """False for readings flagged questionable or no-contact."""
    no_contact: BoolArray
    arrival: FloatArray
    """When the reading reached the cloud (the gateway's activity; a late event's age)."""

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @classmethod
    def of(
        cls,
        resident: npt.ArrayLike,
        metric: npt.ArrayLike,
        time: npt.ArrayLike,
        value: npt.ArrayLike,
        *,
        device: npt.ArrayLike | None = None,
        valid: npt.ArrayLike | None = None,
        no_contact: npt.ArrayLike | None = None,
        arrival: npt.ArrayLike | None = None,
    ) -> Samples:
        """Build a batch, checking shapes; defaults: no device, valid, in contact, arrived
        when measured."""
        times = np.asarray(time, dtype=np.float64).ravel()
        n = times.shape[0]

        def column(
            values: npt.ArrayLike | None, dtype: type, default: object
        ) -> npt.NDArray[np.generic]:
            if values is None:
                return np.full(n, default, dtype=dtype)
            array: npt.NDArray[np.generic] = np.asarray(values, dtype=dtype).ravel()
            if array.shape != (n,):
                raise InputError(f"sample arrays differ in length: {array.shape[0]} != {n}")
            return array

        metrics = column(metric, np.int64, 0)
        if n and (metrics.min() < 0 or metrics.max() >= len(METRICS)):
            raise InputError("metric index out of range")
        return cls(
            resident=column(resident, np.int64, -1).astype(np.int64),
            metric=metrics.astype(np.int64),
            device=column(device, np.int64, -1).astype(np.int64),
            time=times,
            value=column(value, np.float64, np.nan).astype(np.float64),
            valid=column(valid, np.bool_, True).astype(np.bool_),
            no_contact=column(no_contact, np.bool_, False).astype(np.bool_),
            arrival=times.copy()
            if arrival is None
            else column(arrival, np.float64, np.nan).astype(np.float64),
        )


class Ring:
    """The last ``capacity`` (time, value) pairs of one series per row, oldest overwritten."""

    __slots__ = ("count", "head", "times", "values")

    def __init__(self, rows: int, capacity: int) -> None:
        self.times = np.full((rows, capacity), np.nan)
        self.values = np.full((rows, capacity), np.nan)
        self.head = np.zeros(rows, dtype=np.int64)
        self.count = np.zeros(rows, dtype=np.int64)

    @property
    def capacity(self) -> int:
        return int(self.times.shape[1])

    def append(self, rows: IntArray, times: FloatArray, values: FloatArray) -> None:
        """Add one pair to each of ``rows`` (which must not repeat)."""
        position = self.head[rows]
        self.times[rows, position] = times
        self.values[rows, position] = values
        self.head[rows] = (position + 1) % self.capacity
        self.count[rows] = np.minimum(self.count[rows] + 1, self.capacity)

    def recent(self, rows: IntArray, k: int | None = None) -> tuple[FloatArray, FloatArray]:
        """The last ``k`` pairs of each row, newest first, NaN where there are fewer."""
        k = self.capacity if k is None else min(k, self.capacity)
        back = np.arange(k)
        position = (self.head[rows][:, None] - 1 - back[None, :]) % self.capacity
        filled = back[None, :] < self.count[rows][:, None]
        index = (rows[:, None], position)
        return (
            np.where(filled, self.times[index], np.nan),
            np.where(filled, self.values[index], np.nan),
        )


def _ranks(sorted_keys: Sequence[IntArray]) -> IntArray:
    """Each entry's rank within its run of equal keys (the keys already sorted)."""
    n = sorted_keys[0].shape[0] if sorted_keys else 0
    starts = np.ones(n, dtype=np.bool_)
    if n > 1:
        changed = np.zeros(n - 1, dtype=np.bool_)
        for key in sorted_keys:
            changed |= key[1:] != key[:-1]
        starts[1:] = changed
    index = np.arange(n)
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def _rounds(keys: Sequence[IntArray], times: FloatArray) -> tuple[IntArray, IntArray]:
    """Sort by ``keys`` then time; return the order and each entry's rank within its key."""
    order = np.lexsort((times, *reversed(keys)))
    return order, _ranks([key[order] for key in keys])


def _constant(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


class RuleState:
    """The arrays the rules read. See the module docstring."""

    def __init__(
        self,
        *,
        n_residents: int,
        device_resident: npt.ArrayLike,
        device_gateway: npt.ArrayLike,
        device_kind: Sequence[DeviceKind],
        device_cadence: npt.ArrayLike,
        n_gateways: int,
        config: EngineConfig,
        start: float,
    ) -> None:
        self.config = config
        r = n_residents
        m = len(METRICS)
        self.n_residents = r
        self.thresholds = ThresholdTable(config.thresholds, r)
        table = self.thresholds
        columns = table.slot_column
        self.latches = Latches(r, len(table.slots))
        self.latch_params = LatchParams(
            table.sustain[columns],
            table.min_readings[columns],
            table.clear_sustain[columns],
            table.clear_readings[columns],
        )
        self.slots_by_metric = {
            METRIC_INDEX[metric]: slots for metric, slots in table.slots_by_metric.items()
        }

        # per metric x resident (metric-major: a rule reads one metric for all residents)
        self.last_value = np.full((m, r), np.nan)
        self.last_time = np.full((m, r), np.nan)
        self.last_device = np.full((m, r), -1, dtype=np.int64)
        self.current = np.full((m, r), np.nan)
        self.seen_time = np.full((m, r), np.nan)
        self.rings = {
            METRIC_INDEX[metric]: Ring(r, config.ring_capacity) for metric in RING_METRICS
        }
        # NEWS2 from continuous series: one smoothed value per minute, and the least abnormal
        # of them over the persistence window
        news2 = config.news2
        self.persistence = news2.persistence.total_seconds()
        self.persistence_minutes = max(
            1, math.ceil(news2.persistence_coverage * self.persistence / _MINUTE - 1e-9)
        )
        self.minutes = {
            METRIC_INDEX[metric]: Ring(r, math.ceil(self.persistence / _MINUTE) + 2)
            for metric in CONTINUOUS
        }
        self.sustained = np.full((m, r), np.nan)
        """For continuous metrics: the value NEWS2 scores (see :meth:`_sustain`); NaN while
        the series does not cover the persistence window."""

        # per-resident configuration
        self.scale_2 = np.zeros(r, dtype=np.bool_)
        self.spo2_scale = np.ones(r, dtype=np.int64)
        """1 or 2 (the NEWS2 SpO2 scale), kept beside ``scale_2``."""
        self.on_oxygen = np.zeros(r)
        """1.0 on oxygen, 0.0 on air, NaN unknown."""
        self.consciousness = np.full(r, np.nan)
        """ACVPU code of the last observation (0 alert .. 4 unresponsive), NaN none."""
        self.consciousness_time = np.full(r, np.nan)
        self.utc_offset = np.zeros(r)

        # events
        self.fall_time = np.full(r, np.nan)
        self.fall_arrival = np.full(r, np.nan)
        self.fall_device = np.full(r, -1, dtype=np.int64)
        self.help_time = np.full(r, np.nan)
        self.help_arrival = np.full(r, np.nan)
        self.help_device = np.full(r, -1, dtype=np.int64)
        self.smoothed_hr = Ring(r, config.ring_capacity)
        """The last smoothed heart rates, for a fall that reaches us after them."""
        self.after_fall_count = np.zeros(r, dtype=np.int64)
        self.after_fall_min = np.full(r, np.nan)
        self.after_fall_max = np.full(r, np.nan)

        # nightly resting heart rate
        self.night_day = np.full(r, np.nan)
        """Local day number of the night being accumulated, NaN when none."""
        self.night_sum = np.zeros(r)
        self.night_n = np.zeros(r, dtype=np.int64)
        self.night_first = np.full(r, np.nan)
        self.night_last = np.full(r, np.nan)
        self.nights = Ring(r, config.night_capacity)
        """Ring of (local day number, mean heart rate) per completed night."""
        self.night_recent = np.full(r, np.nan)
        self.night_baseline = np.full(r, np.nan)
        self.night_mad = np.full(r, np.nan)
        self.night_slope = np.full(r, np.nan)
        self.night_ended = np.full(r, np.nan)
        """UTC time at which the last completed night ended."""

        # weight and temperature trends
        gains = len(config.trends.weight_gain)
        self.weight_gain = np.full((r, gains), np.nan)
        self.weight_slope = np.full(r, np.nan)
        self.temperature_baseline = np.full(r, np.nan)
        self.temperature_mad = np.full(r, np.nan)

        # devices
        self.device_resident = np.asarray(device_resident, dtype=np.int64).ravel()
        d = self.device_resident.shape[0]
        self.n_devices = d
        self.device_gateway = np.asarray(device_gateway, dtype=np.int64).ravel()
        self.device_kind = np.array([DEVICE_KINDS.index(k) for k in device_kind], dtype=np.int64)
        self.device_cadence = np.asarray(device_cadence, dtype=np.float64).ravel()
        if not (
            self.device_gateway.shape == self.device_kind.shape == self.device_cadence.shape == (d,)
        ):
            raise InputError("device arrays differ in length")
        if d and (
            self.device_gateway.min() < 0
            or self.device_gateway.max() >= n_gateways
            or self.device_resident.max() >= r
        ):
            raise InputError("a device names a gateway or resident index out of range")
        self.has_wearable = np.zeros(r, dtype=np.bool_)
        wearable = (self.device_kind == DEVICE_KINDS.index(DeviceKind.WEARABLE)) & (
            self.device_resident >= 0
        )
        self.has_wearable[self.device_resident[wearable]] = True
        self.device_last_seen = np.full(d, float(start))
        self.device_last_valid = np.full(d, np.nan)
        self.device_no_contact_since = np.full(d, np.nan)
        self.battery = np.full(d, np.nan)
        self.battery_time = np.full(d, np.nan)
        presence = config.presence
        self.battery_trigger = np.array([presence.battery_warning, presence.battery_urgent])
        self.battery_clear = np.array(
            [presence.battery_warning_clear, presence.battery_urgent_clear]
        )
        if not (self.battery_clear > self.battery_trigger).all():
            raise ConfigError("battery clear levels must be above their triggers")
        self.battery_latches = Latches(d, 2)
        self.battery_params = LatchParams(
            np.zeros(2), np.ones(2, dtype=np.int64), np.zeros(2), np.ones(2, dtype=np.int64)
        )

        silence = np.fmax(
            presence.silent_factor * self.device_cadence, presence.silent_floor.total_seconds()
        )
        self.device_silence_limit = _constant(silence)
        """Seconds without a reading after which each device is silent."""
        pendant = self.device_kind == DEVICE_KINDS.index(DeviceKind.PENDANT)
        self.device_silent_rank = _constant(
            np.where(pendant, Severity.URGENT.rank, Severity.WARNING.rank).astype(np.int8)
        )
        """A silent fall pendant is urgent (falls go unseen), any other device a warning."""
        self.device_indices = _constant(np.arange(d, dtype=np.int64))

        # gateways
        self.n_gateways = n_gateways
        self.gateway_online = np.ones(n_gateways, dtype=np.bool_)
        self.gateway_since = np.full(n_gateways, float(start))
        self.gateway_activity = np.full(n_gateways, float(start))

        # read-only constants the rules hand out (never written, so safe to share)
        self.no_device = _constant(np.full(r, -1, dtype=np.int64))
        self.no_gateway_device = _constant(np.full(n_gateways, -1, dtype=np.int64))
        self.all_residents = _constant(np.ones(r, dtype=np.bool_))
        self.all_gateways = _constant(np.ones(n_gateways, dtype=np.bool_))
        self.all_devices = _constant(np.ones(d, dtype=np.bool_))
        self.device_kind.flags.writeable = False
        self.device_cadence.flags.writeable = False
        self.device_gateway.flags.writeable = False

        # counters
        self.out_of_order = 0
        self.ignored_quality = 0

        trends = config.trends
        if not (0 <= trends.night_start.total_seconds() < trends.night_end.total_seconds() <= _DAY):
            raise ConfigError("night_start must come before night_end within one day")

    # --- configuration ------------------------------------------------------------------

    def _check_resident(self, resident: int) -> None:
        if not 0 <= resident < self.n_residents:
            raise InputError(f"resident index {resident} out of range")

    def configure_resident(
        self,
        resident: int,
        *,
        scale_2: bool,
        on_oxygen: bool | None,
        utc_offset: float,
        overrides: Sequence[Override] = (),
    ) -> None:
        """Set a resident's record. Their threshold latches restart (new limits apply to the
        readings that follow)."""
        self._check_resident(resident)
        self.thresholds.configure(resident, scale_2=scale_2, overrides=overrides)
        self.latches.reset(resident)
        self.scale_2[resident] = scale_2
        self.spo2_scale[resident] = 2 if scale_2 else 1
        self.on_oxygen[resident] = np.nan if on_oxygen is None else float(on_oxygen)
        self.utc_offset[resident] = utc_offset

    def observe_consciousness(self, resident: int, code: int, time: float) -> None:
        """A staff observation of ACVPU (code 0 alert .. 4 unresponsive)."""
        self._check_resident(resident)
        if not 0 <= code <= 4:
            raise InputError(f"ACVPU code {code} is not 0-4")
        if not time < self.consciousness_time[resident]:  # keep the newest observation
            self.consciousness[resident] = code
            self.consciousness_time[resident] = time

    def set_oxygen(self, resident: int, on_oxygen: bool | None) -> None:
        self._check_resident(resident)
        self.on_oxygen[resident] = np.nan if on_oxygen is None else float(on_oxygen)

    def gateway_status(self, gateway: int, online: bool, time: float, arrival: float) -> None:
        """A gateway's status message (or its last will, ``online=False``)."""
        if not 0 <= gateway < self.n_gateways:
            raise InputError(f"gateway index {gateway} out of range")
        if bool(self.gateway_online[gateway]) != online:
            self.gateway_online[gateway] = online
            self.gateway_since[gateway] = time
        self.gateway_activity[gateway] = np.fmax(self.gateway_activity[gateway], arrival)

    def device_seen(self, devices: IntArray, times: FloatArray) -> None:
        """Devices reported seen (a gateway status's ``last_seen``)."""
        np.fmax.at(self.device_last_seen, devices, times)

    # --- ingest -------------------------------------------------------------------------

    def refill(
        self,
        resident: npt.ArrayLike,
        metric: npt.ArrayLike,
        time: npt.ArrayLike,
        value: npt.ArrayLike,
        *,
        device: npt.ArrayLike | None = None,
        valid: npt.ArrayLike | None = None,
    ) -> None:
        """Rebuild the state at start-up from stored history, in any order: the readings are
        applied in time order per series, exactly as if they had arrived live (arrival =
        measurement time, so old events are not re-raised)."""
        self.ingest(Samples.of(resident, metric, time, value, device=device, valid=valid))

    def ingest(self, samples: Samples) -> None:
        """Apply a batch of readings."""
        if len(samples) == 0:
            return
        s = samples
        if s.resident.max() >= self.n_residents or s.device.max() >= self.n_devices:
            raise InputError("a sample names a resident or device index out of range")
        is_vital = _IS_VITAL[s.metric]
        has_device = s.device >= 0
        if has_device.any():
            devices = s.device[has_device]
            np.fmax.at(self.device_last_seen, devices, s.time[has_device])
            np.fmax.at(self.gateway_activity, self.device_gateway[devices], s.arrival[has_device])
            contact = has_device & is_vital
            if contact.any():
                self._contact(
                    s.device[contact], s.time[contact], s.valid[contact], s.no_contact[contact]
                )
        has_resident = s.resident >= 0
        np.fmax.at(
            self.seen_time, (s.metric[has_resident], s.resident[has_resident]), s.time[has_resident]
        )
        for metric, times, arrivals, devices in (
            (_FALL, self.fall_time, self.fall_arrival, self.fall_device),
            (_HELP, self.help_time, self.help_arrival, self.help_device),
        ):
            event = has_resident & (s.metric == metric)
            if event.any():
                self._event(
                    residents=s.resident[event],
                    times=s.time[event],
                    arrivals=s.arrival[event],
                    devices=s.device[event],
                    event_time=times,
                    event_arrival=arrivals,
                    event_device=devices,
                    fall=metric == _FALL,
                )
        battery = has_device & (s.metric == _BATTERY)
        if battery.any():
            self.battery_readings(s.device[battery], s.time[battery], s.value[battery])
        clinical = has_resident & is_vital
        self.ignored_quality += int((clinical & ~s.valid).sum())
        clinical &= s.valid
        if clinical.any():
            self._vitals(
                s.resident[clinical],
                s.metric[clinical],
                s.time[clinical],
                s.value[clinical],
                s.device[clinical],
            )

    def _contact(
        self, devices: IntArray, times: FloatArray, valid: BoolArray, no_contact: BoolArray
    ) -> None:
        unique, inverse = np.unique(devices, return_inverse=True)
        batch_valid = np.full(unique.shape[0], np.nan)
        np.fmax.at(batch_valid, inverse[valid], times[valid])
        previous = self.device_last_valid[unique]
        newer_valid = batch_valid > np.nan_to_num(previous, nan=-np.inf)
        last_valid = np.fmax(previous, batch_valid)
        after = no_contact & (times > np.nan_to_num(last_valid, nan=-np.inf)[inverse])
        first_off = np.full(unique.shape[0], np.inf)
        np.minimum.at(first_off, inverse[after], times[after])
        first_off = np.where(np.isinf(first_off), np.nan, first_off)
        old = self.device_no_contact_since[unique]
        self.device_no_contact_since[unique] = np.where(
            newer_valid,
            np.where(old > batch_valid, np.fmin(old, first_off), first_off),
            np.where(np.isnan(old), first_off, old),
        )
        self.device_last_valid[unique] = last_valid

    def _event(
        self,
        *,
        residents: IntArray,
        times: FloatArray,
        arrivals: FloatArray,
        devices: IntArray,
        event_time: FloatArray,
        event_arrival: FloatArray,
        event_device: IntArray,
        fall: bool,
    ) -> None:
        order = np.lexsort((times, residents))
        residents, times = residents[order], times[order]
        arrivals, devices = arrivals[order], devices[order]
        last = np.ones(residents.shape[0], dtype=np.bool_)
        last[:-1] = residents[1:] != residents[:-1]
        residents, times = residents[last], times[last]
        arrivals, devices = arrivals[last], devices[last]
        newer = ~(times <= event_time[residents])
        residents, times = residents[newer], times[newer]
        event_time[residents] = times
        event_arrival[residents] = arrivals[newer]
        event_device[residents] = devices[newer]
        if fall:
            # Heart rates measured after the fall may have arrived before it did.
            times, rates = self.smoothed_hr.recent(residents)
            after = (
                times
                >= (event_time[residents] + self.config.events.settle.total_seconds())[:, None]
            )
            cells = np.where(after, rates, np.nan)
            count = after.sum(axis=1)
            self.after_fall_count[residents] = count
            self.after_fall_min[residents] = np.where(
                count > 0, np.fmin.reduce(cells, axis=1), np.nan
            )
            self.after_fall_max[residents] = np.where(
                count > 0, np.fmax.reduce(cells, axis=1), np.nan
            )

    def battery_readings(self, devices: IntArray, times: FloatArray, levels: FloatArray) -> None:
        """Battery levels of devices (from readings or a gateway status), in any order."""
        order, rank = _rounds([devices], times)
        devices, times, levels = devices[order], times[order], levels[order]
        columns = np.arange(2)
        for k in range(int(rank.max()) + 1 if rank.size else 0):
            pick = rank == k
            d, t, x = devices[pick], times[pick], levels[pick]
            fresh = ~(t <= self.battery_time[d])
            d, t, x = d[fresh], t[fresh], x[fresh]
            if d.size == 0:
                continue
            dt = t - self.battery_time[d]
            self.battery[d] = x
            self.battery_time[d] = t
            level = x[:, None]
            update_latches(
                self.battery_latches,
                d,
                columns,
                t=t,
                dt=dt,
                beyond=level < self.battery_trigger[None, :],
                within=level >= self.battery_clear[None, :],
                params=self.battery_params,
            )

    def _vitals(
        self,
        residents: IntArray,
        metrics: IntArray,
        times: FloatArray,
        values: FloatArray,
        devices: IntArray,
    ) -> None:
        order = np.lexsort((times, residents, metrics))
        residents, metrics = residents[order], metrics[order]
        times, values, devices = times[order], values[order], devices[order]
        same = (residents[1:] == residents[:-1]) & (metrics[1:] == metrics[:-1])
        repeat = np.zeros(residents.shape[0], dtype=np.bool_)
        repeat[1:] = same & (times[1:] <= times[:-1])
        stale = times <= self.last_time[metrics, residents]
        keep = ~repeat & ~stale
        self.out_of_order += int((~keep).sum())
        residents, metrics = residents[keep], metrics[keep]
        times, values, devices = times[keep], values[keep], devices[keep]
        rank = _ranks([metrics, residents])
        for k in range(int(rank.max()) + 1 if rank.size else 0):
            pick = rank == k
            round_metrics = metrics[pick]
            for metric in np.unique(round_metrics):
                sub = np.flatnonzero(pick)[round_metrics == metric]
                self._update(int(metric), residents[sub], times[sub], values[sub], devices[sub])

    def _update(
        self, metric: int, rows: IntArray, t: FloatArray, x: FloatArray, devices: IntArray
    ) -> None:
        dt = t - self.last_time[metric, rows]
        self.last_value[metric, rows] = x
        self.last_time[metric, rows] = t
        self.last_device[metric, rows] = devices
        ring = self.rings.get(metric)
        if ring is not None:
            ring.append(rows, t, x)
        if _IS_CONTINUOUS[metric] and ring is not None:
            smoothing = self.config.smoothing
            times, values = ring.recent(rows, smoothing.samples)
            window = times >= (t - smoothing.window.total_seconds())[:, None]
            current = masked_median(values, window)
            self._sustain(metric, rows, t, current)
        else:
            current = x
        self.current[metric, rows] = current
        slots = self.slots_by_metric.get(metric)
        if slots is not None:
            self._latch(slots, rows, t, dt, x)
        if metric == _HR:
            self.smoothed_hr.append(rows, t, current)
            self._night(rows, t, x)
            self._after_fall(rows, t, current)
        elif metric == _WEIGHT:
            self._weight(rows, t)
        elif metric == _TEMP:
            self._temperature(rows, t, x)

    def _sustain(self, metric: int, rows: IntArray, t: FloatArray, current: FloatArray) -> None:
        """Keep the first smoothed value of each minute, and set :attr:`sustained` to the least
        abnormal (by NEWS2 points, on the resident's scale) of those in the persistence window,
        the newest of them on a tie, once they cover ``persistence_coverage`` of its minutes.
        It is recomputed when a minute begins, so it costs one scoring per series and minute,
        not one per reading."""
        if self.persistence <= 0:
            self.sustained[metric, rows] = current
            return
        ring = self.minutes[metric]
        newest, _ = ring.recent(rows, 1)
        fresh = ~(np.floor(newest[:, 0] / _MINUTE) == np.floor(t / _MINUTE))  # NaN: fresh
        if not fresh.any():
            return
        rows, t, current = rows[fresh], t[fresh], current[fresh]
        ring.append(rows, t, current)
        times, values = ring.recent(rows)
        n, k = values.shape
        nothing = np.full(n * k, np.nan)
        flat = values.ravel()
        column = _NEWS2_COLUMN[metric]
        scores = score_arrays(
            respiration_rate=flat if column == _RR_COLUMN else nothing,
            spo2=flat if column == _SPO2_COLUMN else nothing,
            on_oxygen=np.repeat(self.on_oxygen[rows], k),
            systolic_bp=nothing,
            pulse=flat if column == _PULSE_COLUMN else nothing,
            consciousness=nothing,
            temperature=nothing,
            scale=np.repeat(self.spo2_scale[rows], k),
        )
        points = scores.columns[column].reshape(n, k).astype(np.int16)
        usable = (times >= (t - self.persistence)[:, None]) & (points >= 0)
        points = np.where(usable, points, np.int16(_NO_POINTS))
        least = points.min(axis=1)
        pick = np.argmax(usable & (points == least[:, None]), axis=1)  # newest first
        held = values[np.arange(n), pick]
        enough = usable.sum(axis=1) >= self.persistence_minutes
        self.sustained[metric, rows] = np.where(enough, held, np.nan)

    def _latch(
        self, slots: IntArray, rows: IntArray, t: FloatArray, dt: FloatArray, x: FloatArray
    ) -> None:
        table = self.thresholds
        columns = table.slot_column[slots]
        index = (rows[:, None], columns[None, :])
        trigger = table.trigger[index]
        clear = table.clear[index]
        high = table.high[columns][None, :]
        strict = table.strict[columns][None, :]
        value = x[:, None]
        beyond = np.where(
            high,
            np.where(strict, value > trigger, value >= trigger),
            np.where(strict, value < trigger, value <= trigger),
        )
        within = np.where(high, value <= clear, value >= clear) | np.isnan(trigger)
        update_latches(
            self.latches,
            rows,
            slots,
            t=t,
            dt=dt,
            beyond=beyond,
            within=within,
            params=self.latch_params.take(slots),
        )
        off = np.isnan(trigger)
        if off.any():
            self.latches.latched[slots[None, :], rows[:, None]] &= ~off

    def _night(self, rows: IntArray, t: FloatArray, x: FloatArray) -> None:
        trends = self.config.trends
        start = trends.night_start.total_seconds()
        end = trends.night_end.total_seconds()
        local = t + self.utc_offset[rows]
        day = np.floor(local / _DAY)
        clock = local - day * _DAY
        over = local >= self.night_day[rows] * _DAY + end
        if over.any():
            self._close_nights(rows[over])
        inside = (clock >= start) & (clock < end)
        if inside.any():
            night = rows[inside]
            fresh = np.isnan(self.night_day[night])
            self.night_day[night] = np.where(fresh, day[inside], self.night_day[night])
            self.night_first[night] = np.where(fresh, t[inside], self.night_first[night])
            self.night_sum[night] += x[inside]
            self.night_n[night] += 1
            self.night_last[night] = t[inside]

    def _close_nights(self, rows: IntArray) -> None:
        trends = self.config.trends
        covered = (self.night_n[rows] >= trends.night_min_readings) & (
            self.night_last[rows] - self.night_first[rows]
            >= trends.night_min_coverage.total_seconds()
        )
        good = rows[covered]
        if good.size:
            self.nights.append(
                good, self.night_day[good], self.night_sum[good] / self.night_n[good]
            )
            self._night_trend(good)
        self.night_day[rows] = np.nan
        self.night_sum[rows] = 0.0
        self.night_n[rows] = 0
        self.night_first[rows] = np.nan
        self.night_last[rows] = np.nan

    def _night_trend(self, rows: IntArray) -> None:
        trends = self.config.trends
        days, rates = self.nights.recent(rows)
        newest = days[:, 0]
        age = newest[:, None] - days
        recent = age < trends.night_recent
        baseline = (age >= trends.night_recent) & (
            age < trends.night_recent + trends.night_baseline
        )
        sloped = age < trends.night_slope_nights
        self.night_recent[rows] = masked_mean(rates, recent, minimum=min(2, trends.night_recent))
        median = masked_median(rates, baseline, minimum=5)
        self.night_baseline[rows] = median
        self.night_mad[rows] = masked_mad(rates, baseline, median, minimum=5)
        self.night_slope[rows] = masked_slope(days, rates, sloped, minimum=4)
        self.night_ended[rows] = (
            newest * _DAY + trends.night_end.total_seconds() - self.utc_offset[rows]
        )

    def _after_fall(self, rows: IntArray, t: FloatArray, current: FloatArray) -> None:
        settle = self.config.events.settle.total_seconds()
        after = t >= self.fall_time[rows] + settle
        if after.any():
            fallen = rows[after]
            self.after_fall_count[fallen] += 1
            self.after_fall_min[fallen] = np.fmin(self.after_fall_min[fallen], current[after])
            self.after_fall_max[fallen] = np.fmax(self.after_fall_max[fallen], current[after])

    def _weight(self, rows: IntArray, t: FloatArray) -> None:
        trends = self.config.trends
        times, weights = self.rings[_WEIGHT].recent(rows)
        age = t[:, None] - times
        current = masked_median(weights, age <= 12 * _HOUR)
        for column, rule in enumerate(trends.weight_gain):
            span = rule.span.total_seconds()
            earlier = (age >= span - 6 * _HOUR) & (age <= span + 18 * _HOUR)
            self.weight_gain[rows, column] = current - masked_median(weights, earlier)
        window = age <= trends.weight_slope_window.total_seconds()
        self.weight_slope[rows] = masked_slope(times / _DAY, weights, window, minimum=3)

    def _temperature(self, rows: IntArray, t: FloatArray, x: FloatArray) -> None:
        trends = self.config.trends
        times, temperatures = self.rings[_TEMP].recent(rows)
        age = t[:, None] - times
        baseline = (age >= trends.temperature_baseline_gap.total_seconds()) & (
            age <= trends.temperature_baseline.total_seconds()
        )
        median = masked_median(temperatures, baseline, minimum=trends.temperature_min_baseline)
        self.temperature_baseline[rows] = median
        self.temperature_mad[rows] = masked_mad(
            temperatures, baseline, median, minimum=trends.temperature_min_baseline
        )
