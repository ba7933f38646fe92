"""Alert rules for CareWatch: NEWS2, thresholds, trends, missing data, events (pure, numpy).

Readings go into an :class:`AlertEngine` (state in numpy arrays across residents); the
engine's :meth:`~AlertEngine.evaluate` gives the :class:`Condition`\\s active at a given time,
and :func:`edges` what changed since the previous evaluation. No I/O and no clock here: the
ingestor feeds readings and statuses, the alert lifecycle consumes conditions.
"""

from cloud.alerts.config import (
    DEFAULT_WEIGHT_GAIN,
    Device,
    EngineConfig,
    EventConfig,
    News2Config,
    PresenceConfig,
    Resident,
    Roster,
    SmoothingConfig,
    TrendConfig,
    WeightGainRule,
)
from cloud.alerts.engine import AlertEngine, Condition, IngestReport, edges
from cloud.alerts.errors import AlertsError, ConfigError, InputError
from cloud.alerts.news2 import (
    Band,
    Consciousness,
    News2,
    News2Arrays,
    Parameter,
    SpO2Scale,
    clinical_response,
    score,
    score_arrays,
)
from cloud.alerts.rules import RuleResult, Subject
from cloud.alerts.state import METRICS, RuleState, Samples
from cloud.alerts.thresholds import DEFAULT_RULES, Direction, Level, Override, ThresholdRule

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_WEIGHT_GAIN",
    "METRICS",
    "AlertEngine",
    "AlertsError",
    "Band",
    "Condition",
    "ConfigError",
    "Consciousness",
    "Device",
    "Direction",
    "EngineConfig",
    "EventConfig",
    "IngestReport",
    "InputError",
    "Level",
    "News2",
    "News2Arrays",
    "News2Config",
    "Override",
    "Parameter",
    "PresenceConfig",
    "Resident",
    "Roster",
    "RuleResult",
    "RuleState",
    "Samples",
    "SmoothingConfig",
    "SpO2Scale",
    "Subject",
    "ThresholdRule",
    "TrendConfig",
    "WeightGainRule",
    "clinical_response",
    "edges",
    "score",
    "score_arrays",
]
