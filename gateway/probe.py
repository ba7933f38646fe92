"""The gateway's end-to-end test reading.

Every ``status.probe_interval_s`` the gateway records a reading of metric ``probe`` (value 1,
its device id = the gateway's id) through the same recorder, outbox and uplink as a
resident's reading. The cloud stores it like any other, and the alert service raises an
urgent technical alert when a home has had none stored for a while
(``[alerts] probe_silence_s``): the whole path, not just the broker connection, is proven
to work -- at night too, when no spot device measures anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from vitals.metrics import Metric
from vitals.observations import Observation

__all__ = ["ObservationSink", "send_probes"]

logger = logging.getLogger(__name__)

PROBE = Observation(Metric.PROBE, 1.0)


class ObservationSink(Protocol):
    def offer(self, device: str, observation: Observation, received: datetime) -> bool: ...


async def send_probes(
    sink: ObservationSink, gateway: str, every_s: float, clock: Callable[[], datetime]
) -> None:
    """Offer a probe now and every ``every_s`` seconds until cancelled."""
    while True:
        if not sink.offer(gateway, PROBE, clock()):
            logger.warning("probe not recorded: the recorder's queue is full")
        await asyncio.sleep(every_s)
