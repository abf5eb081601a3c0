"""The three Pub/Sub REST calls a drain needs: ``pull``, ``modifyAckDeadline`` and ``acknowledge``.

Over google-auth's ``AuthorizedSession`` (the credentials refresh themselves), with the Airflow client's retry policy
as a value (5xx, 429, resets; within a time budget), not google-cloud-pubsub: its streaming pull, flow control and
lease management serve long-running subscribers, and would add grpcio and protobuf to the function's image for three
POSTs. ``PUBSUB_EMULATOR_HOST`` (host:port) points it at a local server without credentials, as Google's client
libraries do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..airflow import NoRedirectSession, retry_policy
from ..clock import SYSTEM_CLOCK, Clock
from ..exceptions import PubSubUnreachable
from ..redaction import redact
from .unwrap import NotCarried, Pulled

API = "https://pubsub.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/pubsub"
SUBSCRIPTION = re.compile(r"projects/[a-z0-9][-a-z0-9.:]{0,99}/subscriptions/[A-Za-z][-_.~+%A-Za-z0-9]{2,254}")
TOPIC = re.compile(r"projects/[a-z0-9][-a-z0-9.:]{0,99}/topics/[A-Za-z][-_.~+%A-Za-z0-9]{2,254}")
MAX_ACK_IDS = 1000  # per acknowledge / modifyAckDeadline request (the REST API's request size stays small)
MAX_DEADLINE_S = 600  # the longest ack deadline Pub/Sub allows
HINTS = {
    401: "the Pub/Sub credentials were refused",
    403: "grant roles/pubsub.subscriber on the subscription to whoever runs the drain",
    404: "no such subscription: check the name (projects/P/subscriptions/S)",
}


def check_name(name: str, what: str = "subscription") -> str:
    """``name`` when it is a full ``projects/P/subscriptions/S`` (or ``…/topics/T``) path; ValueError otherwise."""
    pattern = SUBSCRIPTION if what == "subscription" else TOPIC
    if not pattern.fullmatch(name):
        raise ValueError(f"{name[:120]!r} is not a {what} path such as projects/my-proj/{what}s/NAME")
    return name


class Subscriber:
    """Pulls from, extends and acknowledges messages of one subscription. ``calls`` counts every HTTP attempt."""

    def __init__(
        self,
        subscription: str,
        session: requests.Session,
        base_url: str = API,
        timeout_s: float = 30.0,
    ) -> None:
        self.subscription = check_name(subscription)
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.calls = 0

    @classmethod
    def from_env(
        cls, subscription: str, budget_s: float = 60.0, timeout_s: float = 30.0, clock: Clock = SYSTEM_CLOCK
    ) -> Subscriber:
        """Against ``PUBSUB_EMULATOR_HOST`` when set (no credentials), else pubsub.googleapis.com with the
        application default credentials."""
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST", "").strip()
        session: requests.Session
        if emulator:
            session, base = NoRedirectSession(), f"http://{emulator}"
        else:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError
            from google.auth.transport.requests import AuthorizedSession

            try:
                credentials, _ = google.auth.default(scopes=[SCOPE])
            except DefaultCredentialsError as exc:
                raise PubSubUnreachable(f"no Google credentials for Pub/Sub: {exc}") from None
            session, base = AuthorizedSession(credentials), API  # type: ignore[no-untyped-call]
        adapter = HTTPAdapter(max_retries=retry_policy(budget_s, attempts=5, clock=clock))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return cls(subscription, session, base, timeout_s)

    def _post(self, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/v1/{self.subscription}:{verb}"
        try:
            response = self.session.post(url, json=body, timeout=self.timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            self.calls += 1
            raise PubSubUnreachable(
                f"{verb} {self.subscription}: {type(exc).__name__}: {redact(str(exc))[:200]}"
            ) from None
        retries = getattr(response.raw, "retries", None)
        self.calls += 1 + len(getattr(retries, "history", ()) or ())
        if response.status_code != 200:
            hint = HINTS.get(response.status_code, "")
            detail = " ".join(redact(response.text).split())[:200]
            raise PubSubUnreachable(
                f"{verb} {self.subscription}: Pub/Sub answered {response.status_code}: {detail}"
                + (f"; {hint}" if hint else "")
            )
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            raise PubSubUnreachable(f"{verb} {self.subscription}: the answer is not JSON") from None
        return answer if isinstance(answer, dict) else {}

    def pull(self, max_messages: int) -> tuple[list[Pulled], list[tuple[str, str]]]:
        """Up to ``max_messages`` (1-1000) messages, answered at once even when there are none (a drain takes what is
        there now; an empty answer can be early, so callers stop after more than one). Also returns (ack id,
        reason) for received messages that cannot even be read as messages."""
        answer = self._post("pull", {"maxMessages": max(1, min(max_messages, 1000)), "returnImmediately": True})
        messages, unreadable = [], []
        for received in answer.get("receivedMessages") or []:
            try:
                messages.append(Pulled.from_rest(received))
            except NotCarried as exc:
                ack_id = received.get("ackId") if isinstance(received, dict) else None
                if isinstance(ack_id, str) and ack_id:
                    unreadable.append((ack_id, str(exc)))
        return messages, unreadable

    def modify_deadline(self, ack_ids: Sequence[str], seconds: int) -> None:
        """Hold messages for ``seconds`` more (0: give them back now, to be delivered again)."""
        seconds = max(0, min(seconds, MAX_DEADLINE_S))
        for start in range(0, len(ack_ids), MAX_ACK_IDS):
            chunk = list(ack_ids[start : start + MAX_ACK_IDS])
            self._post("modifyAckDeadline", {"ackIds": chunk, "ackDeadlineSeconds": seconds})

    def acknowledge(self, ack_ids: Sequence[str]) -> None:
        """Remove messages from the subscription for good."""
        for start in range(0, len(ack_ids), MAX_ACK_IDS):
            self._post("acknowledge", {"ackIds": list(ack_ids[start : start + MAX_ACK_IDS])})
