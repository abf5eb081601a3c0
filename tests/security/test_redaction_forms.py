"""Issue 16, finding 8: redaction ran after JSON encoding, so a password holding ``"`` or ``\\`` appeared escaped
(``pa\\"ss``) and was not recognised; and the bare base64 of ``user:password`` (a basic Authorization value without
its ``Basic`` prefix) reached logs and dead letters. Every form a configured secret takes on the way out is masked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import Answer, FakeAirflow

from .harness import ROUTES, SECRET, webhook_env

pytestmark = pytest.mark.integration
PASSWORD = 'op"pass\\word-9f8e7d'
BASIC = base64.b64encode(f"op-user:{PASSWORD}".encode()).decode()


def test_escaped_and_encoded_forms_of_a_secret_are_masked(airflow: FakeAirflow, tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    env = webhook_env(airflow.url, routes, AIRFLOW_PASSWORD=PASSWORD)
    with FunctionProcess("trigger_http", env, tmp_path) as fn:
        airflow.faults = [Answer(400, {"detail": f"rejected {PASSWORD} from {BASIC}"})]
        out = webhook_request(fn.url, {"order": 1}, "/shop", SECRET, "redact-1")
        reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=30)
        assert reply.status_code in (422, 502), reply.text
        written = fn.output() + reply.text
    for form in (PASSWORD, json.dumps(PASSWORD)[1:-1], BASIC, "pass\\\\word", 'op\\"pass'):
        assert form not in written, (form, written[-1500:])
    assert "rejected" in written  # the line is there, with the secret masked
