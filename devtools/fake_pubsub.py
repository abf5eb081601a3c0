"""A FAKE Pub/Sub REST server on 127.0.0.1: the three subscription calls ``dagtrigger drain`` makes, with Pub/Sub's
delivery rules that matter to it. Not Google's emulator, and not Pub/Sub: a fake, for tests.

What it keeps of Pub/Sub: ``pull`` hands out up to ``maxMessages`` messages that are neither acknowledged nor
outstanding, each with a new ack id per delivery; a message not acknowledged before its ack deadline
(``ack_deadline_s``, or what ``modifyAckDeadline`` set; 0 gives it back at once) is delivered again; ``acknowledge``
with a stale ack id does nothing. Its time is its own (``advance``), so no test waits for a deadline.
``publish_dead_letter`` writes a message the way Pub/Sub's dead lettering forwards one: a new message id and publish
time, the original data and attributes plus the ``CloudPubSubDeadLetter*`` ones. ``faults`` answers the next
requests instead (503, resets).
"""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from devtools.fakes import Answer, FakeServer, Seen, ServedFake


@dataclass
class _Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: str
    ordering_key: str = ""
    acked: bool = False
    deadline: float = 0.0  # fake time after which it may be delivered again
    ack_id: str = ""
    deliveries: int = 0


@dataclass
class _Subscription:
    ack_deadline_s: float
    messages: list[_Message] = field(default_factory=list)


class FakePubSub(ServedFake):
    """Subscriptions by full name (``projects/P/subscriptions/S``)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.subscriptions: dict[str, _Subscription] = {}
        self.faults: list[Answer] = []
        self._ids = itertools.count(4_000_000_000_000_001)
        self._lock = threading.Lock()
        self.server = FakeServer(self._answer)

    # -- test side

    def create_subscription(self, name: str, ack_deadline_s: float = 10.0) -> None:
        with self._lock:
            self.subscriptions[name] = _Subscription(ack_deadline_s)

    def publish(
        self, subscription: str, data: bytes, attributes: dict[str, str], publish_time: str = "2026-12-05T20:00:00Z"
    ) -> str:
        with self._lock:
            message_id = str(next(self._ids))
            self.subscriptions[subscription].messages.append(_Message(message_id, data, dict(attributes), publish_time))
            return message_id

    def publish_dead_letter(
        self,
        subscription: str,
        data: bytes,
        attributes: dict[str, str],
        source: str = "projects/acct-proj/subscriptions/eventarc-us-central1-trigger-sub-001",
        attempts: int = 100,
        published: str = "2026-12-05T08:00:00.123Z",
    ) -> str:
        """A message as Pub/Sub forwards it to a dead-letter topic from ``source`` (projects/P/subscriptions/S)."""
        project, _, sub = source.removeprefix("projects/").partition("/subscriptions/")
        forwarded = {
            **attributes,
            "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts),
            "CloudPubSubDeadLetterSourceSubscription": sub,
            "CloudPubSubDeadLetterSourceSubscriptionProject": project,
            "CloudPubSubDeadLetterSourceTopicPublishTime": published,
        }
        return self.publish(subscription, data, forwarded)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def remaining(self, subscription: str) -> list[str]:
        """Message ids not acknowledged."""
        with self._lock:
            return [m.message_id for m in self.subscriptions[subscription].messages if not m.acked]

    def deliveries(self, subscription: str) -> dict[str, int]:
        with self._lock:
            return {m.message_id: m.deliveries for m in self.subscriptions[subscription].messages}

    # -- server side

    def _answer(self, seen: Seen) -> Answer:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        path = unquote(urlsplit(seen.path).path)
        name, _, verb = path.removeprefix("/v1/").rpartition(":")
        if seen.method != "POST" or not path.startswith("/v1/"):
            return Answer(404, {"error": {"code": 404, "message": "Not found"}})
        with self._lock:
            subscription = self.subscriptions.get(name)
            if subscription is None:
                return Answer(404, {"error": {"code": 404, "message": f"Resource not found (resource={name})."}})
            body = seen.json() if seen.body else {}
            if verb == "pull":
                return Answer(200, self._pull(subscription, int(body.get("maxMessages", 1))))
            if verb == "acknowledge":
                for message in self._by_ack_id(subscription, body.get("ackIds", [])):
                    message.acked = True
                return Answer(200, {})
            if verb == "modifyAckDeadline":
                seconds = float(body.get("ackDeadlineSeconds", 0))
                for message in self._by_ack_id(subscription, body.get("ackIds", [])):
                    message.deadline = self.now + seconds
                return Answer(200, {})
        return Answer(400, {"error": {"code": 400, "message": f"unknown method {verb!r}"}})

    def _pull(self, subscription: _Subscription, limit: int) -> dict[str, Any]:
        handed: list[dict[str, Any]] = []
        for message in subscription.messages:
            if len(handed) >= min(limit, 1000):
                break
            if message.acked or message.deadline > self.now:
                continue
            message.deliveries += 1
            message.ack_id = f"ack-{message.message_id}-{message.deliveries}"
            message.deadline = self.now + subscription.ack_deadline_s
            wire = {
                "data": base64.b64encode(message.data).decode("ascii"),
                "attributes": message.attributes,
                "messageId": message.message_id,
                "publishTime": message.publish_time,
            }
            if message.ordering_key:
                wire["orderingKey"] = message.ordering_key
            handed.append({"ackId": message.ack_id, "message": wire})
        return {"receivedMessages": handed} if handed else {}

    @staticmethod
    def _by_ack_id(subscription: _Subscription, ack_ids: list[str]) -> list[_Message]:
        wanted = set(ack_ids)
        return [m for m in subscription.messages if m.ack_id in wanted and not m.acked]
