"""Webhook signatures: dagtrigger-v2 binds the whole request that picks a run; Standard Webhooks interoperate."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from dagtrigger.exceptions import BadEvent
from dagtrigger.signature import (
    HEADER,
    SignedRequest,
    sign,
    sign_standard,
    standard_headers,
    verify,
    verify_standard,
)

SECRET = "0123456789abcdef-webhook-secret"
REQUEST = SignedRequest("POST", "/shop/orders", "", "order-42", b'{"order": 42}')


def test_a_fresh_signature_verifies_and_names_its_secret() -> None:
    assert verify(["other-secret-0123456789", SECRET], sign(SECRET, REQUEST), REQUEST, 300) == SECRET


def test_rotation_accepts_any_listed_signature() -> None:
    old = sign("old-secret-old-secret", REQUEST, 1000).split(",")[1]
    header = f"{sign(SECRET, REQUEST, 1000)},{old}"
    assert verify(["old-secret-old-secret"], header, REQUEST, 300, now=1000) == "old-secret-old-secret"


@pytest.mark.parametrize(
    "changed",
    [
        replace(REQUEST, method="PUT"),
        replace(REQUEST, path="/shop/orders/"),
        replace(REQUEST, path="/shop/dags/other"),
        replace(REQUEST, query="x=1"),
        replace(REQUEST, idempotency_key="order-43"),
        replace(REQUEST, idempotency_key=""),
        replace(REQUEST, body=REQUEST.body + b" "),
    ],
)
def test_every_part_that_picks_a_run_is_covered(changed: SignedRequest) -> None:
    with pytest.raises(BadEvent, match="does not match") as info:
        verify([SECRET], sign(SECRET, REQUEST, 1000), changed, 300, now=1000)
    assert info.value.status == 401


@given(
    method=st.sampled_from(["POST", "PUT"]),
    path=st.text(min_size=1, max_size=40).map(lambda p: "/" + p),
    query=st.text(alphabet="abc=&%1", max_size=10),
    key=st.text(alphabet="abcdef-0123", max_size=12),
    body=st.binary(max_size=64),
)
def test_a_signature_verifies_only_its_own_request(method: str, path: str, query: str, key: str, body: bytes) -> None:
    mine = SignedRequest(method, path, query, key, body)
    header = sign(SECRET, mine, 1000)
    assert verify([SECRET], header, mine, 300, now=1000) == SECRET
    if mine != REQUEST:
        with pytest.raises(BadEvent):
            verify([SECRET], header, REQUEST, 300, now=1000)


@pytest.mark.parametrize(
    ("header", "now", "fragment"),
    [
        (None, 1000, "missing"),
        ("v2=" + "0" * 64, 1000, "malformed"),
        ("t=1000", 1000, "malformed"),
        ("t=1000,v1=" + "0" * 64, 1000, "v1 signatures covered only the body"),
        ("t=１０００,v2=" + "0" * 64, 1000, "malformed"),
        ("t=" + "9" * 400 + ",v2=" + "0" * 64, 1000, "ASCII digits"),
        ("t=1000,v2=" + "G" * 64, 1000, "malformed"),
        ("t=1000,v2=é", 1000, "malformed"),
        (sign(SECRET, REQUEST, 1000), 1000 + 301, "outside the 300 s tolerance"),
        (sign(SECRET, REQUEST, 1000), 1000 - 301, "outside the 300 s tolerance"),
        (sign("another-secret-1234", REQUEST, 1000), 1000, "does not match"),
    ],
)
def test_bad_signatures_are_401_with_a_reason(header: str | None, now: float, fragment: str) -> None:
    with pytest.raises(BadEvent) as info:
        verify([SECRET], header, REQUEST, 300, now=now)
    assert info.value.status == 401 and fragment in str(info.value)
    assert SECRET not in str(info.value)


STANDARD_SECRET = "whsec_" + base64.b64encode(b"a-32-byte-key-for-standard-hooks").decode()


def test_standard_webhooks_headers_interoperate_with_the_reference_library() -> None:
    body = b'{"type": "order.created"}'
    ours = sign_standard(STANDARD_SECRET, "msg_1", body)
    standardwebhooks.Webhook(STANDARD_SECRET).verify(body, ours)  # theirs accepts ours
    lib = standardwebhooks.Webhook(STANDARD_SECRET)
    import time
    from datetime import UTC, datetime

    t = int(time.time())
    theirs = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(t),
        "webhook-signature": lib.sign("msg_2", datetime.fromtimestamp(t, UTC), body.decode()),
    }
    values = standard_headers(theirs)
    assert values is not None
    assert verify_standard([STANDARD_SECRET], values, body, 300) == STANDARD_SECRET  # ours accepts theirs


def test_standard_webhooks_refuse_a_changed_id_or_body() -> None:
    body = b'{"a": 1}'
    headers = sign_standard(STANDARD_SECRET, "msg_1", body, 1000)
    for changed_headers, changed_body in (({**headers, "webhook-id": "msg_2"}, body), (headers, b'{"a": 2}')):
        values = standard_headers(changed_headers)
        assert values is not None
        with pytest.raises(BadEvent, match="does not match"):
            verify_standard([STANDARD_SECRET], values, changed_body, 300, now=1000)


def test_partial_standard_headers_are_401() -> None:
    with pytest.raises(BadEvent) as info:
        standard_headers({"webhook-id": "x"})
    assert info.value.status == 401


def test_header_name_is_stable() -> None:
    assert HEADER == "X-Dagtrigger-Signature"
