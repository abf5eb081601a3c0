"""Pub/Sub push is authenticated as Pub/Sub does it: the subscription's OIDC token, verified with google-auth.

A local certificate endpoint (PUSH_CERTS_URL) stands in for https://www.googleapis.com/oauth2/v1/certs; the tokens
are real RS256 JWTs signed with google-auth's signer, verified by the function's real google-auth code.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import Answer, FakeAirflow, FakeServer
from tests.support.oidc import ATTACKER_PRIVATE, AUDIENCE, GOOGLE_PUBLIC, PUSHER, token

pytestmark = pytest.mark.integration  # starts real function processes

ENVELOPE = {
    "message": {"messageId": "9001", "data": base64.b64encode(b'{"table": "orders"}').decode(), "attributes": {}},
    "subscription": "projects/my-project/subscriptions/orders-push",
}


@pytest.fixture(scope="module")
def served_push(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionProcess, FakeAirflow]]:
    with (
        FakeServer(lambda seen: Answer(200, {"k1": GOOGLE_PUBLIC})) as certs,
        FakeAirflow("v2") as airflow,
    ):
        env = {
            "AIRFLOW_URI": airflow.url,
            "AIRFLOW_API_VERSION": "v2",
            "AIRFLOW_AUTH": "none",
            "DAG_ID": "orders",
            "PUSH_AUDIENCE": AUDIENCE,
            "PUSH_SERVICE_ACCOUNTS": PUSHER,
            "PUSH_CERTS_URL": certs.url + "/oauth2/v1/certs",
        }
        with FunctionProcess("trigger_push", env, tmp_path_factory.mktemp("push"), signature="http") as fn:
            yield fn, airflow
        # Cached: one fetch, plus at most one per token naming an unknown key (the foreign-key case).
        assert len(certs.seen) <= 3, len(certs.seen)


@pytest.fixture()
def push(served_push: tuple[FunctionProcess, FakeAirflow]) -> tuple[FunctionProcess, FakeAirflow]:
    served_push[1].runs.clear()
    return served_push


def _post(fn: FunctionProcess, bearer: str | None, body: object = ENVELOPE) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return fn.post("/", data=json.dumps(body), headers={**headers, "Content-Type": "application/json"}).status_code


def test_a_valid_push_token_triggers_once(push: tuple[FunctionProcess, FakeAirflow]) -> None:
    fn, airflow = push
    assert _post(fn, token()) == 200
    assert _post(fn, token()) == 200  # redelivery: same message id, same run
    assert len(airflow.runs) == 1


@pytest.mark.parametrize(
    ("bearer", "status"),
    [
        (None, 401),
        ("not-a-jwt", 401),
        (token(private=ATTACKER_PRIVATE), 401),  # signed by someone else
        (token(aud="https://another-function.run.app"), 401),
        (token(exp=int(time.time()) - 600, iat=int(time.time()) - 4000), 401),
        (token(iss="https://evil.example.com"), 401),
        (token(email="someone-else@my-project.iam.gserviceaccount.com"), 403),
        (token(email_verified=False), 403),
    ],
    ids=["missing", "garbage", "foreign-key", "audience", "expired", "issuer", "other-account", "unverified"],
)
def test_forged_or_foreign_push_tokens_are_refused(
    push: tuple[FunctionProcess, FakeAirflow], bearer: str | None, status: int
) -> None:
    fn, airflow = push
    assert _post(fn, bearer) == status
    assert airflow.runs == {}


def test_trigger_push_will_not_start_without_its_settings(tmp_path: Path) -> None:
    env = {"AIRFLOW_URI": "http://127.0.0.1:9", "AIRFLOW_AUTH": "none", "DAG_ID": "orders"}
    with pytest.raises(RuntimeError, match="PUSH_AUDIENCE"):
        FunctionProcess("trigger_push", env, tmp_path, signature="http").start()
