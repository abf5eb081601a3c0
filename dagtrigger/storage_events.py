"""The one vocabulary of Cloud Storage object events: actions, their CloudEvent types and notification names.

Settings, routing, event parsing, ``send`` and the accounting tools all read these names from here, so a new action
(or a typo) cannot be known to one stage and unknown to the next.
"""

from __future__ import annotations

from collections.abc import Mapping

FINALIZED = "finalized"
# The suffixes of the CloudEvent types Eventarc delivers; STORAGE_EVENT_TYPES and a route's ``actions`` name these.
ACTIONS = (FINALIZED, "deleted", "archived", "metadataUpdated")
DEFAULT_ACTIONS = (FINALIZED,)  # what the function and a route take when they name none
TYPE_PREFIX = "google.cloud.storage.object.v1."


def cloud_event_type(action: str) -> str:
    return TYPE_PREFIX + action


# CloudEvent type → action.
TYPES: Mapping[str, str] = {cloud_event_type(action): action for action in ACTIONS}

# Cloud Storage Pub/Sub notifications (attribute eventType) → the action of the same change.
NOTIFICATION_ACTIONS: Mapping[str, str] = {
    "OBJECT_FINALIZE": FINALIZED,
    "OBJECT_DELETE": "deleted",
    "OBJECT_ARCHIVE": "archived",
    "OBJECT_METADATA_UPDATE": "metadataUpdated",
}

# (bucket, channel) pairs the routing file declares: Cloud Storage notifications for that bucket are relayed only
# through that topic (``projects/P/topics/T``, by Eventarc) or push subscription (``projects/P/subscriptions/S``).
Channels = frozenset[tuple[str, str]]
NO_CHANNELS: Channels = frozenset()
