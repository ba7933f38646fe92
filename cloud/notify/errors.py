"""The errors ``cloud.notify`` raises: one root, subclasses that carry what went wrong.

None of them ever carries an apprise URL or a message body: URLs hold secrets (tokens,
passwords) and bodies hold health data. A channel is named by its URL scheme only.
"""

from __future__ import annotations

from cloud.errors import CloudError

__all__ = ["DeliveryError", "DispatcherStateError", "MessageError", "NotifyError"]


class NotifyError(CloudError):
    """Root of the notification errors."""


class MessageError(NotifyError, ValueError):
    """A :class:`~cloud.notify.message.Message` that cannot be sent as given (no URL, a naive
    creation time, an empty recipient id); the message names the field."""


class DeliveryError(NotifyError):
    """One attempt to deliver to one channel failed.

    ``scheme`` is the URL scheme (``"ntfy"``), ``reason`` a short fixed word (``"failed"``,
    ``"timeout"``, ``"invalid_url"``, ``"exception:TypeName"``). ``permanent`` says that
    trying again cannot help (the URL itself is unusable)."""

    def __init__(self, scheme: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"{scheme}: {reason}")
        self.scheme = scheme
        self.reason = reason
        self.permanent = permanent


class DispatcherStateError(NotifyError, RuntimeError):
    """The dispatcher was used out of order (``run()`` twice at once)."""
