"""CareWatch's composition root: the ``carewatch`` command, and ``carewatch demo``, which
runs the broker, the cloud services, the simulated care home and its gateway together on
one machine (:mod:`carewatch.demo`)."""

from carewatch.demo import Demo, DemoOptions, Timeouts
from carewatch.errors import (
    BrokerUnavailableError,
    ChildExitedError,
    DemoError,
    DemoUsageError,
    StartTimeoutError,
)

__all__ = [
    "BrokerUnavailableError",
    "ChildExitedError",
    "Demo",
    "DemoError",
    "DemoOptions",
    "DemoUsageError",
    "StartTimeoutError",
    "Timeouts",
]
