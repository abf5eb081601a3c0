"""``check`` with batched routes: it warns where it can see Airflow 2's allow_trigger_in_future set to True."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagtrigger.check import Status, Symptom, run_check
from tests.support.fakes import Answer, FakeServer, Seen

from .test_check import airflow_like

ROUTES = """
routes:
  - name: exports
    dag_id: example_dag
    batch: {window: 60, members: gs://ops-bucket/batches}
"""
OPTION = "/api/v1/config/section/scheduler/option/allow_trigger_in_future"


def config_answer(value: str | None) -> Answer:
    """As Airflow 2.11 answers: the option as JSON, or 403 when [webserver] expose_config is off."""
    if value is None:
        return Answer(403, {"title": "Forbidden", "detail": "Your Airflow administrator chose not to expose it"})
    option = {"key": "allow_trigger_in_future", "value": value}
    return Answer(200, {"sections": [{"name": "scheduler", "options": [option]}]})


@pytest.mark.parametrize(
    ("version", "value", "status"),
    [("v1", "True", Status.WARN), ("v1", "False", Status.OK), ("v1", None, Status.OK), ("v2", "True", Status.OK)],
)
def test_batch_start_step(tmp_path: Path, version: str, value: str | None, status: Status) -> None:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    base = airflow_like(version)

    def handle(seen: Seen) -> Answer:
        return config_answer(value) if seen.path.split("?")[0] == OPTION else base(seen)

    with FakeServer(handle) as fake:
        env = {"AIRFLOW_URI": fake.url, "ROUTES_FILE": str(tmp_path / "routes.yaml"), "AIRFLOW_AUTH": "none"}
        report = run_check(env, timeout_s=2)
        asked = [s.path for s in fake.seen if s.path.startswith(OPTION)]
    step = next(s for s in report.steps if s.name == "batch runs wait for their window")
    assert step.status is status, report.render()
    assert len(asked) == (1 if version == "v1" else 0)
    if status is Status.WARN:
        assert step.symptom is Symptom.TRIGGER_IN_FUTURE and "allow_trigger_in_future = False" in step.fix
