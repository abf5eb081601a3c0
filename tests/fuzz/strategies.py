"""Hypothesis strategies for what reaches the function: CloudEvents (binary and structured), Pub/Sub push envelopes
and webhooks — mostly *almost* right (one field of the wrong type, missing, huge or garbled), because inputs that
are almost right go deepest into the parsers.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from dagtrigger.signature import SignedRequest, sign

STORAGE_TYPES = (
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.storage.object.v1.deleted",
    "google.cloud.storage.object.v1.archived",
    "google.cloud.storage.object.v1.metadataUpdated",
)
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
EVENT_TYPES = (*STORAGE_TYPES, PUBSUB_TYPE, "com.example.unknown.v1", "")
NOTIFICATION_TYPES = ("OBJECT_FINALIZE", "OBJECT_DELETE", "OBJECT_ARCHIVE", "OBJECT_METADATA_UPDATE", "OBJECT_X")

# HTTP header values: printable ASCII, some Latin-1, and the usual traps.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60) | st.sampled_from(
    ["", " ", "%", "%zz", "%C3%A9t%C3%A9", "caf\u00e9", "x" * 2100, "null", "0", "-1", "1.0", "{}", "[]"]
)
times = st.sampled_from(
    [
        "2026-11-24T10:00:00.123Z",
        "2026-11-24T10:00:00+05:00",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "yesterday",
    ]
) | st.datetimes().map(lambda d: d.isoformat())
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# A field that is usually a sensible string and sometimes anything JSON can hold.
loose_text = st.text(min_size=1, max_size=120) | st.text(max_size=3000) | json_values
numeric_text = st.integers(min_value=0, max_value=2**63).map(str) | st.integers(min_value=-(2**64), max_value=2**64)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


message_data = (
    st.binary(max_size=200).map(_b64)
    | json_values.map(lambda v: _b64(json.dumps(v).encode()))
    | st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
    | st.sampled_from(["", "!!!not base64!!!", "YWJj", "YWJ", "=", "\u00e9\u00e9"])
    | json_values
)

storage_object = st.fixed_dictionaries(
    {},
    optional={
        "bucket": st.just("landing") | loose_text,
        "name": st.text(min_size=1, max_size=300) | loose_text,
        "generation": numeric_text | json_values,
        "metageneration": numeric_text | json_values,
        "contentType": st.sampled_from(["text/csv", "application/json"]) | json_values,
        "size": numeric_text | json_values,
        "metadata": st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4) | json_values,
        "kind": st.just("storage#object"),
    },
)

notification_attributes = st.fixed_dictionaries(
    {},
    optional={
        "eventType": st.sampled_from(NOTIFICATION_TYPES) | st.text(max_size=20),
        "bucketId": loose_text,
        "objectId": loose_text,
        "objectGeneration": numeric_text | json_values,
        "payloadFormat": st.sampled_from(["JSON_API_V1", "NONE", "bogus"]),
        "eventTime": times,
    },
)

pubsub_message = st.fixed_dictionaries(
    {},
    optional={
        "data": message_data,
        "messageId": numeric_text | loose_text,
        "message_id": numeric_text | loose_text,
        "attributes": st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4)
        | notification_attributes
        | json_values,
        "publishTime": times | json_values,
        "orderingKey": loose_text,
    },
)

pubsub_envelope = st.fixed_dictionaries(
    {},
    optional={
        "message": pubsub_message | json_values,
        "subscription": st.just("projects/p/subscriptions/s") | loose_text,
        "deliveryAttempt": st.integers(min_value=-5, max_value=10**12) | json_values,
    },
)


def encoded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A JSON document as bytes, or that document cut short, or not JSON at all."""
    as_json = values.map(lambda v: json.dumps(v).encode())
    return (
        as_json
        | as_json.map(lambda b: b[: max(1, len(b) // 2)])
        | st.binary(max_size=300)
        | st.sampled_from([b"", b"null", b"{", b"\xff\xfe{}", b"[]", b'"text"', b"{}" * 3])
    )


def body_for(ce_type: str) -> st.SearchStrategy[bytes]:
    if ce_type in STORAGE_TYPES:
        return encoded(storage_object)
    if ce_type == PUBSUB_TYPE:
        return encoded(pubsub_envelope)
    return encoded(json_values)


_SOURCES = ("//storage.googleapis.com/projects/_/buckets/landing", "//pubsub.googleapis.com/projects/p/topics/t")
_CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream", "")


@st.composite
def binary_cloud_events(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Binary content mode, as Eventarc POSTs it: attributes in ``ce-`` headers, the data as the body.

    Four times in five the required attributes are sound, so the request gets past functions-framework and the
    fuzzing reaches our parsers; otherwise any of them may be missing or garbled."""
    ce_type = draw(st.sampled_from(EVENT_TYPES) | header_text)
    sound = draw(st.integers(0, 4)) > 0
    candidates = {
        "ce-id": st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
        if sound
        else header_text | st.integers(min_value=0).map(str),
        "ce-source": st.sampled_from(_SOURCES) | (st.just("s") if sound else header_text),
        "ce-specversion": st.sampled_from(["1.0", "1.0", "0.3"])
        if sound
        else st.sampled_from(["1.0", "0.3", "2.0"]) | header_text,
        "ce-type": st.just(ce_type or "t") if sound else st.just(ce_type),
        "ce-subject": st.just("objects/a/b.csv") | header_text,
        "ce-time": times | header_text,
        "ce-bucket": st.just("landing") | header_text,
    }
    required = ("ce-id", "ce-source", "ce-specversion", "ce-type")
    headers = {
        name: draw(value)
        for name, value in candidates.items()
        if (sound and name in required) or draw(st.integers(0, 9)) > 0
    }
    content_type = draw(st.sampled_from(_CONTENT_TYPES) | header_text)
    if content_type:
        headers["Content-Type"] = content_type
    return headers, draw(body_for(ce_type))


@st.composite
def structured_cloud_events(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Structured content mode: the whole event as one JSON document (``application/cloudevents+json``); four
    times in five with sound required attributes, so the data reaches our parsers."""
    ce_type = draw(st.sampled_from(EVENT_TYPES) | st.text(max_size=30))
    data = draw(
        storage_object if ce_type in STORAGE_TYPES else pubsub_envelope if ce_type == PUBSUB_TYPE else json_values
    )
    loose = {
        "specversion": st.sampled_from(["1.0", "0.3", "2.0"]) | json_values,
        "id": st.text(min_size=1, max_size=40) | json_values,
        "source": st.text(min_size=1, max_size=40) | json_values,
        "type": st.just(ce_type) | json_values,
    }
    sound = {
        "specversion": st.just("1.0"),
        "id": st.text(min_size=1, max_size=40),
        "source": st.text(min_size=1, max_size=40),
        "type": st.just(ce_type or "t"),
    }
    optional = {
        "time": times | json_values,
        "datacontenttype": st.sampled_from(["application/json", "text/plain"]) | json_values,
        "data": st.just(data) | json_values,
        "data_base64": message_data,
    }
    if draw(st.integers(0, 4)) > 0:
        document = draw(st.fixed_dictionaries(sound, optional=optional))
        return {"Content-Type": "application/cloudevents+json"}, json.dumps(document).encode()
    document = draw(st.fixed_dictionaries({}, optional={**loose, **optional}))
    return {"Content-Type": "application/cloudevents+json"}, draw(encoded(st.just(document)))


@st.composite
def valid_storage_events(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Well-formed uploads with any object name, metadata and ids: these must all be 200 (a run, or ignored)."""
    name = draw(st.text(min_size=1, max_size=400).filter(lambda n: not n.endswith("/")))
    generation = str(draw(st.integers(min_value=1, max_value=2**63)))
    data = {
        "bucket": draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{1,60}[a-z0-9]", fullmatch=True)),
        "name": name,
        "generation": generation,
        "metageneration": "1",
        "size": str(draw(st.integers(min_value=0, max_value=2**40))),
        "metadata": draw(st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=5)),
    }
    headers = {
        "ce-id": draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60)),
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "ce-specversion": "1.0",
        "ce-type": STORAGE_TYPES[0],
        "ce-subject": "objects/" + "".join(c if " " <= c <= "~" and c != "%" else "_" for c in name),
        "Content-Type": "application/json",
    }
    return headers, json.dumps(data).encode()


@st.composite
def valid_pubsub_events(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Well-formed messages with any bytes as data and any attributes: always 200."""
    message_id = str(draw(st.integers(min_value=1, max_value=10**18)))
    message: dict[str, Any] = {
        "data": _b64(draw(st.binary(max_size=500))),
        "messageId": message_id,
        "attributes": draw(st.dictionaries(st.text(min_size=1, max_size=30), st.text(max_size=60), max_size=5)),
        "publishTime": "2026-11-24T10:00:00.123Z",
    }
    headers = {
        "ce-id": message_id,
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/orders",
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_TYPE,
        "Content-Type": "application/json",
    }
    return headers, json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


def signature_for(secret: str, body: bytes, path: str = "/", key: str = "") -> st.SearchStrategy[str | None]:
    """Mostly a valid ``X-Dagtrigger-Signature`` for this request; sometimes missing, malformed, stale, for another
    body or path, or an old body-only v1 signature."""
    request = SignedRequest("POST", path, "", key, body)
    return st.sampled_from(
        [
            sign(secret, request),
            sign(secret, request),
            sign(secret, request),
            None,
            "",
            "t=,v2=",
            "v2=deadbeef",
            "t=1,v1=" + "0" * 64,
            sign(secret, request, timestamp=1),
            sign(secret, replace(request, body=body + b" ")),
            sign(secret, replace(request, path=path + "x")),
            sign("another-secret-another-secret", request),
            sign(secret, request) + ",v2=" + "0" * 64,
        ]
    )


_path_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%")
webhook_paths = st.sampled_from(["/", "/hooks/orders", "/dags/dagtrigger_example", "/dags/other_dag", "/dags/"]) | (
    st.text(_path_chars, max_size=40).map(lambda p: "/" + p.lstrip("/"))
)
webhook_bodies = encoded(json_values | st.dictionaries(st.text(max_size=12), json_values, max_size=6))
push_bodies = encoded(pubsub_envelope.map(lambda e: {**e, "subscription": e.get("subscription", "projects/p/s")}))
idempotency_keys = st.none() | header_text | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
