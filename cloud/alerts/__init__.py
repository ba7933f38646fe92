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
from cloud.alerts.errors import (
    AlertNotFoundError,
    AlertsError,
    ConfigError,
    InputError,
    InvalidTransitionError,
    LedgerError,
    NotLoadedError,
    SnoozeTooLongError,
)
from cloud.alerts.escalation import Ladder, QuietHours, Recipient, Role, SiteEscalation, Step
from cloud.alerts.ledger import (
    AlertAction,
    AlertLedger,
    AlertRecord,
    AuditRecord,
    SqliteLedger,
)
from cloud.alerts.lifecycle import Change, Lifecycle, LifecycleConfig, Notification
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
    "AlertAction",
    "AlertEngine",
    "AlertLedger",
    "AlertNotFoundError",
    "AlertRecord",
    "AlertsError",
    "AuditRecord",
    "Band",
    "Change",
    "Condition",
    "ConfigError",
    "Consciousness",
    "Device",
    "Direction",
    "EngineConfig",
    "EventConfig",
    "IngestReport",
    "InputError",
    "InvalidTransitionError",
    "Ladder",
    "LedgerError",
    "Level",
    "Lifecycle",
    "LifecycleConfig",
    "News2",
    "News2Arrays",
    "News2Config",
    "NotLoadedError",
    "Notification",
    "Override",
    "Parameter",
    "PresenceConfig",
    "QuietHours",
    "Recipient",
    "Resident",
    "Role",
    "Roster",
    "RuleResult",
    "RuleState",
    "Samples",
    "SiteEscalation",
    "SmoothingConfig",
    "SnoozeTooLongError",
    "SpO2Scale",
    "SqliteLedger",
    "Step",
    "Subject",
    "ThresholdRule",
    "TrendConfig",
    "WeightGainRule",
    "clinical_response",
    "edges",
    "score",
    "score_arrays",
]
