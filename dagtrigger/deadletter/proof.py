"""What a replay checks before it trusts a stored Cloud Storage event: the object itself.

A storage dead letter carries no signature (Eventarc's and Pub/Sub's tokens authenticate the delivery, not the event
they carry, and would be credentials in the bucket), and anyone who can write the dead-letter bucket could plant one.
Cloud Storage is the authority on what the event described: the object must still exist at the recorded generation,
and every field the record states about it must be what Cloud Storage says now. So a planted record can only name an
object that really exists, as it is, which a real upload of it would have triggered anyway; metadata or sizes made up
in the record never reach a conf. Pub/Sub messages have no such authority: see docs/security.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..events import StorageObject
from ..exceptions import BadDeadLetter
from ..gcs import client_and_retry

READ_TIMEOUT_S = 30.0


def check_object(obj: StorageObject, client: Any = None) -> None:
    """Return if ``gs://bucket/name`` exists at the recorded generation with every recorded field unchanged; raise
    BadDeadLetter (the record is refused, not sent) otherwise, or when the object cannot be read now."""
    from google.api_core import exceptions as gexc

    where = f"gs://{obj.bucket}/{obj.name}#{obj.generation}"
    if not obj.generation.isdigit():
        raise BadDeadLetter(f"{where}: the recorded generation is not a number, so the object cannot be checked")
    client, retry = client_and_retry(client)
    try:
        blob = client.bucket(obj.bucket).get_blob(
            obj.name, generation=int(obj.generation), timeout=READ_TIMEOUT_S, retry=retry
        )
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise BadDeadLetter(
            f"{where} cannot be read to verify the record ({type(exc).__name__}): replay needs storage.objects.get "
            "on the bucket (roles/storage.objectViewer)"
        ) from None
    except Exception as exc:  # google-cloud-storage's errors, a network failure: refused now, try the replay again
        raise BadDeadLetter(f"{where} could not be read to verify the record: {type(exc).__name__}") from None
    if blob is None:
        raise BadDeadLetter(
            f"{where} does not exist: a storage record is replayed only while its object generation does "
            "(re-send a deleted or overwritten object with dagtrigger send)"
        )
    differing = differences(obj.resource, blob._properties)
    if differing:
        raise BadDeadLetter(
            f"{where}: the record's {', '.join(differing[:5])} differ from the object in Cloud Storage "
            "(changed since, or a planted record): not replayed"
        )


def differences(recorded: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """The keys whose recorded value is not Cloud Storage's (a key the object does not have counts as different).
    Scalars compare as text: the JSON API writes sizes and generations as strings, some senders as numbers."""
    return sorted(key for key, value in recorded.items() if not _same(value, live.get(key)))


def _same(recorded: Any, live: Any) -> bool:
    scalars = (str, int, float)
    if isinstance(recorded, scalars) and isinstance(live, scalars) and not isinstance(recorded, bool):
        return str(recorded) == str(live)
    return bool(recorded == live)
