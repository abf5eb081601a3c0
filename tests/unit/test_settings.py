from __future__ import annotations

import base64

import pytest

from dagtrigger.exceptions import ConfigError
from dagtrigger.settings import Secret, normalize_airflow_uri, settings_from_env

BASE = {"AIRFLOW_URI": "https://example.composer.googleusercontent.com", "DAG_ID": "ingest"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://x.composer.googleusercontent.com/", "https://x.composer.googleusercontent.com"),
        ("https://x.composer.googleusercontent.com/home", "https://x.composer.googleusercontent.com"),
        (" http://127.0.0.1:8080/api/v1/ ", "http://127.0.0.1:8080"),
        ("https://host/airflow/home", "https://host/airflow"),
    ],
)
def test_airflow_uri_is_normalised(raw: str, expected: str) -> None:
    assert normalize_airflow_uri(raw) == expected


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DAG_ID": "x"}, "AIRFLOW_URI"),
        ({**BASE, "AIRFLOW_URI": "ftp://host"}, "AIRFLOW_URI"),
        ({**BASE, "AIRFLOW_URI": "https://user:pw@host"}, "AIRFLOW_URI"),
        ({**BASE, "DAG_ID": ""}, "DAG_ID"),
        ({**BASE, "DAG_ID": "bad dag/id"}, "DAG_ID"),
        ({**BASE, "AIRFLOW_API_VERSION": "v3"}, "AIRFLOW_API_VERSION"),
        ({**BASE, "AIRFLOW_AUTH": "magic"}, "AIRFLOW_AUTH"),
        ({**BASE, "AIRFLOW_AUTH": "basic", "AIRFLOW_USERNAME": "u"}, "AIRFLOW_PASSWORD"),
        ({**BASE, "AIRFLOW_AUTH": "bearer"}, "AIRFLOW_TOKEN"),
        ({**BASE, "AIRFLOW_TIMEOUT_SECONDS": "soon"}, "AIRFLOW_TIMEOUT_SECONDS"),
        ({**BASE, "AIRFLOW_TIMEOUT_SECONDS": "0"}, "AIRFLOW_TIMEOUT_SECONDS"),
        ({**BASE, "STORAGE_EVENT_TYPES": "finalized,created"}, "STORAGE_EVENT_TYPES"),
    ],
)
def test_bad_settings_fail_with_the_variable_name(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_env(env)
    assert names in str(info.value)


def test_errors_show_an_example_but_never_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_env({**BASE, "AIRFLOW_URI": "https://user:hunter22@host"})
    assert "hunter22" not in str(info.value)
    assert "example: AIRFLOW_URI=https://" in str(info.value)


def test_defaults() -> None:
    settings = settings_from_env(BASE)
    assert settings.auth == "google"
    assert settings.api_version == "auto"
    assert settings.storage_actions == frozenset({"finalized"})
    assert settings.audience == BASE["AIRFLOW_URI"]
    assert 0 < settings.timeout_s <= 60 and 0 < settings.retry_budget_s <= 60


def test_secrets_do_not_show_in_repr() -> None:
    settings = settings_from_env(
        {**BASE, "AIRFLOW_AUTH": "basic", "AIRFLOW_USERNAME": "op", "AIRFLOW_PASSWORD": "s3cret-pass"}
    )
    assert "s3cret-pass" not in repr(settings)
    assert settings.password == "s3cret-pass"
    assert settings.secrets() == ("s3cret-pass", base64.b64encode(b"op:s3cret-pass").decode())  # and the header's form
    assert repr(Secret("abc")) == "Secret('***')"


def test_a_bad_dead_letter_bucket_gets_the_message_replay_gives() -> None:
    """One rule, one message: the function's start-up and `dagtrigger replay` name the same problem."""
    from dagtrigger.gcs import parse_location

    with pytest.raises(ValueError) as replayed:
        parse_location("gs://ab/dead-letters")
    with pytest.raises(ConfigError) as started:
        settings_from_env({"AIRFLOW_URI": "http://airflow", "DAG_ID": "d", "DEAD_LETTER_URI": "gs://ab/dead-letters"})
    assert str(replayed.value) in str(started.value)
    assert "3-63 lowercase letters" in str(started.value)
