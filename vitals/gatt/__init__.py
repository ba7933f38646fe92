"""Pure decoders and their exact inverse encoders for Bluetooth SIG GATT characteristics.

``decode(uuid, data)`` turns the payload of a supported characteristic into a frozen dataclass
that is faithful to the wire (values in the unit that was sent, plus a unit field, with
properties for the clinical unit); ``encode(value)`` is its exact inverse, with the flags
derived from which optional fields are set. No I/O. Every malformed payload raises
:class:`DecodeError`; every value a characteristic cannot carry raises :class:`EncodeError`.

Supported: Heart Rate Measurement (0x2A37), Temperature Measurement (0x2A1C), Blood Pressure
Measurement (0x2A35), PLX Spot-Check (0x2A5E) and Continuous (0x2A5F) Measurement, Weight
Measurement (0x2A9D), Glucose Measurement (0x2A18), Battery Level (0x2A19), and the CareWatch
pendant's vendor Pendant Event (``vitals.gatt.pendant``) and the wearable's vendor Respiratory
Rate (``vitals.gatt.respiration``). Each module's
docstring gives the layout and how it treats reserved bits and unknown codes.
"""

from vitals.gatt.battery import BatteryLevel, decode_battery_level, encode_battery_level
from vitals.gatt.blood_pressure import (
    MMHG_PER_KPA,
    BloodPressureMeasurement,
    BloodPressureStatus,
    PressureUnit,
    PulseRateRange,
    decode_blood_pressure,
    encode_blood_pressure,
)
from vitals.gatt.byteio import UNKNOWN_USER, Buffer
from vitals.gatt.date_time import decode_date_time, encode_date_time
from vitals.gatt.dispatch import (
    CHARACTERISTIC_NAMES,
    Measurement,
    characteristic_name,
    characteristic_uuid,
    decode,
    encode,
)
from vitals.gatt.errors import (
    DecodeError,
    EncodeError,
    GattError,
    InvalidUUIDError,
    UnknownCharacteristicError,
)
from vitals.gatt.glucose import (
    GLUCOSE_MOLAR_MASS,
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseSensorStatus,
    GlucoseType,
    SampleLocation,
    decode_glucose,
    encode_glucose,
)
from vitals.gatt.heart_rate import HeartRateMeasurement, decode_heart_rate, encode_heart_rate
from vitals.gatt.ieee11073 import (
    Special,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_float_special,
    encode_sfloat,
    encode_sfloat_special,
    float_special,
    sfloat_special,
)
from vitals.gatt.pendant import (
    PENDANT_EVENT_CHARACTERISTIC,
    PENDANT_SERVICE,
    PendantEvent,
    PendantEventType,
    decode_pendant_event,
    encode_pendant_event,
)
from vitals.gatt.plx import (
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    SpO2PR,
    decode_plx_continuous,
    decode_plx_spot_check,
    encode_plx_continuous,
    encode_plx_spot_check,
)
from vitals.gatt.respiration import (
    RESPIRATORY_RATE_CHARACTERISTIC,
    WEARABLE_EXTENSION_SERVICE,
    RespiratoryRate,
    decode_respiratory_rate,
    encode_respiratory_rate,
)
from vitals.gatt.temperature import (
    TemperatureMeasurement,
    TemperatureType,
    TemperatureUnit,
    decode_temperature,
    encode_temperature,
)
from vitals.gatt.uuids import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    DEVICE_INFORMATION_SERVICE,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_SERVICE,
    HEALTH_THERMOMETER_SERVICE,
    HEART_RATE_MEASUREMENT,
    HEART_RATE_SERVICE,
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_SPOT_CHECK_MEASUREMENT,
    PULSE_OXIMETER_SERVICE,
    TEMPERATURE_MEASUREMENT,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_SERVICE,
    UUIDLike,
    uuid16_from,
    uuid16_to_str,
    uuid_to_str,
)
from vitals.gatt.weight import (
    KG_PER_LB,
    METRES_PER_INCH,
    UnitSystem,
    WeightMeasurement,
    decode_weight,
    encode_weight,
)

__all__ = [
    "BATTERY_LEVEL",
    "BATTERY_SERVICE",
    "BLOOD_PRESSURE_MEASUREMENT",
    "BLOOD_PRESSURE_SERVICE",
    "CHARACTERISTIC_NAMES",
    "DEVICE_INFORMATION_SERVICE",
    "GLUCOSE_MEASUREMENT",
    "GLUCOSE_MOLAR_MASS",
    "GLUCOSE_SERVICE",
    "HEALTH_THERMOMETER_SERVICE",
    "HEART_RATE_MEASUREMENT",
    "HEART_RATE_SERVICE",
    "KG_PER_LB",
    "METRES_PER_INCH",
    "MMHG_PER_KPA",
    "PENDANT_EVENT_CHARACTERISTIC",
    "PENDANT_SERVICE",
    "PLX_CONTINUOUS_MEASUREMENT",
    "PLX_SPOT_CHECK_MEASUREMENT",
    "PULSE_OXIMETER_SERVICE",
    "RESPIRATORY_RATE_CHARACTERISTIC",
    "TEMPERATURE_MEASUREMENT",
    "UNKNOWN_USER",
    "WEARABLE_EXTENSION_SERVICE",
    "WEIGHT_MEASUREMENT",
    "WEIGHT_SCALE_SERVICE",
    "BatteryLevel",
    "BloodPressureMeasurement",
    "BloodPressureStatus",
    "Buffer",
    "DecodeError",
    "EncodeError",
    "GattError",
    "GlucoseConcentrationUnit",
    "GlucoseMeasurement",
    "GlucoseSensorStatus",
    "GlucoseType",
    "HeartRateMeasurement",
    "InvalidUUIDError",
    "Measurement",
    "PendantEvent",
    "PendantEventType",
    "PlxContinuousMeasurement",
    "PlxDeviceSensorStatus",
    "PlxMeasurementStatus",
    "PlxSpotCheckMeasurement",
    "PressureUnit",
    "PulseRateRange",
    "RespiratoryRate",
    "SampleLocation",
    "SpO2PR",
    "Special",
    "TemperatureMeasurement",
    "TemperatureType",
    "TemperatureUnit",
    "UUIDLike",
    "UnitSystem",
    "UnknownCharacteristicError",
    "WeightMeasurement",
    "characteristic_name",
    "characteristic_uuid",
    "decode",
    "decode_battery_level",
    "decode_blood_pressure",
    "decode_date_time",
    "decode_float",
    "decode_glucose",
    "decode_heart_rate",
    "decode_pendant_event",
    "decode_plx_continuous",
    "decode_plx_spot_check",
    "decode_respiratory_rate",
    "decode_sfloat",
    "decode_temperature",
    "decode_weight",
    "encode",
    "encode_battery_level",
    "encode_blood_pressure",
    "encode_date_time",
    "encode_float",
    "encode_float_special",
    "encode_glucose",
    "encode_heart_rate",
    "encode_pendant_event",
    "encode_plx_continuous",
    "encode_plx_spot_check",
    "encode_respiratory_rate",
    "encode_sfloat",
    "encode_sfloat_special",
    "encode_temperature",
    "encode_weight",
    "float_special",
    "sfloat_special",
    "uuid16_from",
    "uuid16_to_str",
    "uuid_to_str",
]
