"""google-auth for real: the function process gets its token from a local metadata server (GCE_METADATA_HOST).

Airflow here is a fake (a local server answering like Airflow), because the point is what reaches the wire:
the Authorization header, how often a token is fetched, and that no token is ever logged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow, FakeMetadataServer
from tests.unit.samples import storage_attrs, storage_data

pytestmark = pytest.mark.integration


@pytest.fixture
def metadata() -> Iterator[FakeMetadataServer]:
    with FakeMetadataServer() as server:
        yield server


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow("v2") as fake:
        yield fake


def start(tmp_path: Path, airflow: FakeAirflow, metadata: FakeMetadataServer, **env: str) -> FunctionProcess:
    base = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "example_dag",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "2",
        **metadata.env(),
    }
    return FunctionProcess("trigger_event", {**base, **env}, tmp_path)


def event(n: int) -> tuple[dict[str, str], dict[str, str]]:
    name = f"incoming/file-{n}.csv"
    return storage_attrs(name=name, id=f"evt-{n}", datacontenttype="application/json"), storage_data(name=name)


def test_access_token_from_metadata_server_is_sent_fetched_once_and_never_logged(
    tmp_path: Path, airflow: FakeAirflow, metadata: FakeMetadataServer
) -> None:
    with start(tmp_path, airflow, metadata) as function:
        for n in range(25):
            response = function.send_event(*event(n))
            assert response.status_code == 200, response.text
        output = function.output()
    posts = airflow.server.requests_to("/dagRuns")
    assert len(posts) == 25 and len(airflow.runs) == 25
    token = metadata.token(1)
    assert {p.headers.get("Authorization") for p in posts} == {f"Bearer {token}"}
    assert metadata.token_fetches == 1
    assert token not in output and "ya29." not in output


def test_id_token_mode_sends_an_oidc_token_for_the_audience(
    tmp_path: Path, airflow: FakeAirflow, metadata: FakeMetadataServer
) -> None:
    audience = "https://airflow.example.com"
    with start(tmp_path, airflow, metadata, AIRFLOW_AUTH="id-token", AIRFLOW_AUDIENCE=audience) as function:
        for n in range(5):
            assert function.send_event(*event(n)).status_code == 200
        output = function.output()
    header = airflow.server.requests_to("/dagRuns")[0].headers["Authorization"]
    jwt = header.removeprefix("Bearer ")
    claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    assert claims["aud"] == audience
    assert metadata.id_token_fetches == 1
    assert jwt not in output


def test_metadata_server_failing_to_issue_a_token_means_redeliver(
    tmp_path: Path, airflow: FakeAirflow, metadata: FakeMetadataServer
) -> None:
    metadata.fail_tokens = True
    with start(tmp_path, airflow, metadata) as function:
        response = function.send_event(*event(1))
        assert response.status_code == 503
        assert response.json()["outcome"] == "retry"
        metadata.fail_tokens = False
        assert function.send_event(*event(1)).status_code == 200
        logs = function.logs()
    assert len(airflow.runs) == 1
    warning = next(entry for entry in logs if entry.get("outcome") == "retry")
    assert warning["severity"] == "WARNING" and "token" in warning["message"]
