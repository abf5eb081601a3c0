"""The few named errors that cross module boundaries."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and shows a good value."""


class BadEvent(ValueError):
    """The request is not an event we can handle; answered with a 4xx and this message, never retried."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class AirflowUnreachable(RuntimeError):
    """No HTTP answer from Airflow within the retry budget (connection refused, reset, timeout)."""


class CredentialsUnavailable(RuntimeError):
    """No token could be obtained (metadata server down, wrong password); transient from the event's view."""
