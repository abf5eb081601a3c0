"""JWT claims are read with google-auth's decoder (unverified: only to name the account or know when to renew)."""

from __future__ import annotations

import base64
import json

import pytest

from dagtrigger.airflow_auth import _jwt_expiry, jwt_claims


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _token(claims: object) -> str:
    return f"{_segment({'alg': 'HS512', 'typ': 'JWT'})}.{_segment(claims)}.c2lnbmF0dXJl"


def test_claims_of_a_jwt_without_verifying_it() -> None:
    token = _token({"email": "fn@p.iam.gserviceaccount.com", "exp": 1767225600})
    assert jwt_claims(token) == {"email": "fn@p.iam.gserviceaccount.com", "exp": 1767225600}
    assert _jwt_expiry(token) == 1767225600.0


@pytest.mark.parametrize("token", [None, "", "ya29.a0AfB_opaque-access-token", "a.b.c", "x.!!!.y", _token(["a list"])])
def test_anything_else_has_no_claims(token: object) -> None:
    assert jwt_claims(token) == {}


def test_a_jwt_without_exp_has_no_expiry() -> None:
    assert _jwt_expiry(_token({"sub": "op"})) is None
