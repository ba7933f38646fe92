"""Health-record exchange: FHIR R4 export and pseudonymised research export (pure).

:func:`vital_signs_bundle` turns one resident's stored readings into a FHIR R4 ``collection``
Bundle (Patient + vital-signs Observations); :func:`research_csv` turns readings into a CSV
in which sites, residents and devices are keyed pseudonyms. Neither does I/O: the API reads
the store and the registry and sends what these return.
"""

from cloud.exchange.errors import ExchangeError, ExchangeKeyError, ExchangeValueError
from cloud.exchange.fhir import (
    BP_METRICS,
    EXPORTED_METRICS,
    FHIR_VERSION,
    PatientIdentifier,
    PatientRef,
    fhir_id,
    vital_signs_bundle,
)
from cloud.exchange.research import (
    COLUMNS,
    MIN_KEY_BYTES,
    PSEUDONYM_HEX,
    Pseudonymiser,
    ResearchOptions,
    research_csv,
    write_research_csv,
)

__all__ = [
    "BP_METRICS",
    "COLUMNS",
    "EXPORTED_METRICS",
    "FHIR_VERSION",
    "MIN_KEY_BYTES",
    "PSEUDONYM_HEX",
    "ExchangeError",
    "ExchangeKeyError",
    "ExchangeValueError",
    "PatientIdentifier",
    "PatientRef",
    "Pseudonymiser",
    "ResearchOptions",
    "fhir_id",
    "research_csv",
    "vital_signs_bundle",
    "write_research_csv",
]
