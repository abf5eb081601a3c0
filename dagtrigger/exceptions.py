"""The errors this package raises: one base, ``DagtriggerError``, so callers decide on attributes, not on types.

``transient`` says whether trying again later can succeed (the event is then redelivered); ``key`` names the symptom
that docs/troubleshooting.md ("Error keys") explains once, with its fix. Messages stay short: what failed, where,
and the key; the fix text lives in the docs, not in every message. The builtin bases (``ValueError`` …) are kept so
code that caught those still does.
"""

from __future__ import annotations

from typing import ClassVar


class DagtriggerError(Exception):
    """Base of every dagtrigger error (like google-auth's ``GoogleAuthError`` with its ``retryable``)."""

    key: ClassVar[str] = "error"
    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return f"{self.message} [{self.key}]" if self.key else self.message


class ConfigError(DagtriggerError, ValueError):
    """A setting is missing or invalid; the message names the variable and shows a good value."""

    key = "config-invalid"


class BadEvent(DagtriggerError, ValueError):
    """The request is not an event we can handle; answered with a 4xx and this message, never retried.

    No key in the message: it goes back to the sender, and ``status`` already classifies it."""

    key = ""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class CannotVerifyNow(DagtriggerError, RuntimeError):
    """The sender cannot be verified right now (Google's token certificates unreachable): answered 503, so the
    sender retries; unlike ``BadEvent`` nothing is wrong with the request."""

    key = "cannot-verify-now"
    transient = True


class AirflowUnreachable(DagtriggerError, RuntimeError):
    """No HTTP answer from Airflow within the retry budget (connection refused, reset, timeout)."""

    key = "airflow-unreachable"
    transient = True


class CredentialsUnavailable(DagtriggerError, RuntimeError):
    """No token could be obtained (metadata server down, wrong password); transient from the event's view."""

    key = "no-credentials"
    transient = True


class TemplateError(DagtriggerError, ValueError):
    """A route's template could not be rendered for this event: a permanent failure for that event and route."""

    key = "template-failed"


class ManifestError(DagtriggerError, RuntimeError):
    """A route's manifest cannot be used for this event; ``transient`` says whether a redelivery could succeed."""

    key = "manifest-unusable"


class DeadLetterError(DagtriggerError, RuntimeError):
    """Base of the dead-letter store's errors; messages never contain credentials."""

    key = "dead-letter-store"
    transient = True


class DeadLetterWriteError(DeadLetterError):
    """A record could not be written (or marked): the event must not be acknowledged."""

    key = "dead-letter-write"


class DeadLetterReadError(DeadLetterError):
    """Records could not be listed or read."""

    key = "dead-letter-read"


class BadDeadLetter(DagtriggerError, ValueError):
    """A stored object is not a dead-letter record this code can read."""

    key = "dead-letter-invalid"


class ObjectUnreadable(DagtriggerError, LookupError):
    """``why``: the object (or that generation of it) does not exist or cannot be read."""

    key = "object-unreadable"


class PubSubUnreachable(DagtriggerError, RuntimeError):
    """``drain``: the dead-letter subscription cannot be pulled from or acknowledged (no answer, refused)."""

    key = "pubsub-unreachable"
    transient = True


class BatchError(DagtriggerError, ValueError):
    """This event cannot be placed in a batch window (unusable time, no group value): a permanent failure for it."""

    key = "batch-unplaceable"
