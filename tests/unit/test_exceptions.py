"""One error base with ``transient`` and a symptom key; every key is explained in docs/troubleshooting.md."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import dagtrigger
from dagtrigger import outcome
from dagtrigger.exceptions import (
    AirflowUnreachable,
    BadEvent,
    ConfigError,
    DagtriggerError,
    DeadLetterWriteError,
    ManifestError,
    TemplateError,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"


def _error_types() -> list[type[BaseException]]:
    """Every exception class defined in the package (all modules imported, so none is missed)."""
    for module in pkgutil.walk_packages(dagtrigger.__path__, "dagtrigger."):
        if not module.name.endswith("__main__"):  # that one runs the command line
            importlib.import_module(module.name)
    found: list[type[BaseException]] = []
    todo: list[type[BaseException]] = [BaseException]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("dagtrigger"):
            found.append(cls)
    return found


def _documented_keys() -> set[str]:
    text = DOC.read_text(encoding="utf-8").split("## Error keys", 1)[1]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, flags=re.M))


def test_every_error_type_of_the_package_derives_from_the_base() -> None:
    types = _error_types()
    assert len(types) >= 10
    assert [t.__name__ for t in types if not issubclass(t, DagtriggerError)] == []


def test_every_key_has_one_row_in_the_troubleshooting_doc() -> None:
    raised = [t for t in _error_types() if issubclass(t, DagtriggerError) and not t.__subclasses__()]  # not bases
    keys = {t.key for t in raised if t.key}
    in_outcomes = {k for _, reason in outcome.STATUS_TABLE.values() for k in re.findall(r"\[([a-z0-9-]+)\]$", reason)}
    assert in_outcomes  # the 401/403/404/405 reasons carry keys
    assert (keys | in_outcomes) - _documented_keys() == set()


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (AirflowUnreachable("x"), True),
        (DeadLetterWriteError("x"), True),
        (ConfigError("x"), False),
        (TemplateError("x"), False),
        (ManifestError("x"), False),
        (ManifestError("x", transient=True), True),
    ],
)
def test_callers_decide_on_transient_not_on_the_type(error: DagtriggerError, transient: bool) -> None:
    assert error.transient is transient


def test_the_message_is_short_and_ends_with_its_key() -> None:
    error = AirflowUnreachable("POST http://airflow/api/v2/dags/d/dagRuns: ConnectTimeout after retries")
    assert str(error) == "POST http://airflow/api/v2/dags/d/dagRuns: ConnectTimeout after retries [airflow-unreachable]"
    assert error.message.endswith("after retries")
    assert isinstance(ConfigError("x"), ValueError) and isinstance(error, RuntimeError)  # old catches still work


def test_a_rejected_request_reads_as_its_reason_alone() -> None:
    # A 4xx reason goes back to the sender, whose status code already says what kind of error it is.
    assert str(BadEvent("message.data is not valid base64", 400)) == "message.data is not valid base64"
