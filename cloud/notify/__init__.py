"""Notifications to people (staff, family) through apprise, rate limited per recipient.

The alert lifecycle hands :class:`Message`\\s to a :class:`Dispatcher` (``submit``, never
blocking); its ``run()`` delivers them through each recipient's apprise URLs, at most
``burst`` at once and ``rate`` per ``period_s`` per recipient, with a reserve for critical
alerts, folding what the limit holds back into one digest, retrying failures with capped,
jittered backoff. The pacing logic is pure (:class:`Mailbox`, :class:`TokenBucket`, times
passed in); the I/O is in the dispatcher and :class:`AppriseChannel`. :func:`check_urls`
refuses unusable URLs at configuration time.
"""

from cloud.notify.channel import AppriseChannel, Channel
from cloud.notify.clock import Clock, SystemClock
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.errors import DeliveryError, DispatcherStateError, MessageError, NotifyError
from cloud.notify.mailbox import Admission, Mailbox
from cloud.notify.message import (
    Delivery,
    Held,
    Message,
    compose_digest,
    compose_single,
)
from cloud.notify.metrics import NotifyMetrics
from cloud.notify.ratelimit import RateLimit, TokenBucket
from cloud.notify.settings import AppriseUrls, NotifySettings
from cloud.notify.urls import APPRISE_LOGGER, check_urls, scheme_of, silence_apprise_logs

__all__ = [
    "APPRISE_LOGGER",
    "Admission",
    "AppriseChannel",
    "AppriseUrls",
    "Channel",
    "Clock",
    "Delivery",
    "DeliveryError",
    "Dispatcher",
    "DispatcherStateError",
    "Held",
    "Mailbox",
    "Message",
    "MessageError",
    "NotifyError",
    "NotifyMetrics",
    "NotifySettings",
    "RateLimit",
    "SystemClock",
    "TokenBucket",
    "check_urls",
    "compose_digest",
    "compose_single",
    "scheme_of",
    "silence_apprise_logs",
]
