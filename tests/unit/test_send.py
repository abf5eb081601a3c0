"""``python -m dagtrigger send``: what goes on the wire (binary-mode CloudEvents, signed webhooks, ID tokens).

The receiving end here is a fake (a local server that records requests) and dagtrigger's own event parser; the real
function in front of real Airflow is tests/integration/test_send_real_airflow.py.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from dagtrigger import cli, events
from dagtrigger.exceptions import ConfigError
from dagtrigger.run_id import run_id_for
from dagtrigger.send import percent_encode, pubsub_event, storage_event, topic_path, webhook_request
from dagtrigger.signature import HEADER, SignedRequest, verify
from tests.support.fakes import Answer, FakeMetadataServer, FakeServer, Seen, free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "0123456789abcdef-webhook-secret"


def received(headers: dict[str, str], body: bytes) -> events.Event:
    """What a binding-conformant receiver makes of the request: ce-* headers percent-decoded, the body as data."""
    attrs = {k.lower()[3:]: unquote(v) for k, v in headers.items() if k.lower().startswith("ce-")}
    attrs["datacontenttype"] = headers["Content-Type"]
    return events.from_cloud_event(attrs, json.loads(body))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"),  # the binding's own example
        ('say "100%"', "say%20%22100%25%22"),
        ("objects/incoming/2026-11-24/orders.csv", "objects/incoming/2026-11-24/orders.csv"),
        ("été", "%C3%A9t%C3%A9"),
        ("tab\there", "tab%09here"),
    ],
)
def test_percent_encoding_follows_the_cloudevents_http_binding(value: str, encoded: str) -> None:
    assert percent_encode(value) == encoded
    assert unquote(encoded) == value


def test_storage_event_is_a_binary_mode_cloudevent_as_eventarc_sends_it() -> None:
    out = storage_event("http://127.0.0.1:8080", "landing", "incoming/été 1.csv", generation="1764000000000123")
    headers = dict(out.headers)
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == "//storage.googleapis.com/projects/_/buckets/landing"
    assert headers["ce-subject"] == "objects/incoming/%C3%A9t%C3%A9%201.csv"
    assert headers["ce-id"].isdigit() and headers["ce-time"].endswith("Z")
    assert headers["Content-Type"] == "application/json" and "ce-datacontenttype" not in headers
    assert all(v.isascii() for v in headers.values())
    data = json.loads(out.body)
    assert data["name"] == "incoming/été 1.csv" and data["bucket"] == "landing"
    assert data["generation"] == "1764000000000123" and data["size"] == "0" and data["metageneration"] == "1"
    assert data["contentType"] == "text/csv" and data["id"] == "landing/incoming/été 1.csv/1764000000000123"
    event = received(headers, out.body)
    assert event.storage is not None and event.storage.name == "incoming/été 1.csv"
    assert event.subject == "objects/incoming/été 1.csv"


def test_same_generation_gives_the_same_run_id_and_a_new_generation_a_new_one() -> None:
    def run_id(generation: str | None) -> str:
        out = storage_event("http://x", "b", "a.csv", generation=generation)
        return run_id_for(received(dict(out.headers), out.body))

    assert run_id("17") == run_id("17")
    assert run_id(None) != run_id("17")


def test_storage_options_reach_the_resource() -> None:
    out = storage_event(
        "http://x", "b", "data.bin", action="metadataUpdated", content_type="application/x-foo", size=42,
        metadata={"dagtrigger-ignore": "true"},
    )  # fmt: skip
    data = json.loads(out.body)
    assert out.headers["ce-type"] == "google.cloud.storage.object.v1.metadataUpdated"
    assert (data["contentType"], data["size"], data["metadata"]) == (
        "application/x-foo",
        "42",
        {"dagtrigger-ignore": "true"},
    )


def test_pubsub_event_carries_data_attributes_and_topic() -> None:
    out = pubsub_event("http://x", b'{"a":1}', {"origin": "erp"}, "projects/p1/topics/orders", ordering_key="k")
    headers = dict(out.headers)
    assert headers["ce-type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert headers["ce-source"] == "//pubsub.googleapis.com/projects/p1/topics/orders"
    body = json.loads(out.body)
    message = body["message"]
    assert base64.b64decode(message["data"]) == b'{"a":1}'
    assert message["messageId"] == message["message_id"] == headers["ce-id"]
    assert message["attributes"] == {"origin": "erp"} and message["orderingKey"] == "k"
    assert body["subscription"] == "projects/p1/subscriptions/eventarc-orders-sub"
    event = received(headers, out.body)
    assert event.message is not None and event.message.topic == "orders"
    assert event.message.attributes == {"origin": "erp"} and event.message.data == b'{"a":1}'


def test_pubsub_without_data_has_no_data_field() -> None:
    assert "data" not in json.loads(pubsub_event("http://x", None).body)["message"]


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("orders", ("local-project", "orders")), ("projects/p/topics/t", ("p", "t"))],
)
def test_topic_path(topic: str, expected: tuple[str, str]) -> None:
    assert topic_path(topic) == expected


@pytest.mark.parametrize("topic", ["", "projects/p/subscriptions/s", "a/b"])
def test_bad_topic_is_a_config_error(topic: str) -> None:
    with pytest.raises(ConfigError, match="--topic"):
        topic_path(topic)


def test_webhook_is_signed_over_the_exact_bytes_sent() -> None:
    out = webhook_request("http://127.0.0.1:8080/", {"table": "orders"}, "/dags/load", SECRET, "key-1")
    assert out.url == "http://127.0.0.1:8080/dags/load"
    assert out.headers["Idempotency-Key"] == "key-1" and out.headers["Content-Type"] == "application/json"
    signed = SignedRequest("POST", "/dags/load", "", "key-1", out.body)
    assert verify([SECRET], out.headers[HEADER], signed, tolerance_s=300) == SECRET  # raises if wrong
    assert json.loads(out.body) == {"table": "orders"}


def test_unsigned_webhook_has_no_signature_header() -> None:
    assert HEADER not in webhook_request("http://x", {"a": 1}).headers


# --------------------------------------------------------------------------- the command against a fake function


def function_fake(status: int = 200, body: Any = "OK") -> FakeServer:
    return FakeServer(lambda seen: Answer(status, body))


def test_send_storage_posts_once_and_exits_0_on_2xx(capsys: pytest.CaptureFixture[str]) -> None:
    with function_fake() as fake:
        code = cli.main(["send", "storage", "--url", fake.url, "--bucket", "b", "--name", "in/x.csv"])
        (seen,) = fake.seen
    out = capsys.readouterr()
    assert code == 0 and "HTTP 200" in out.out and "OK" in out.out
    assert (seen.method, seen.path) == ("POST", "/")
    assert seen.headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert json.loads(seen.body)["name"] == "in/x.csv"
    assert "gs://b/in/x.csv" in out.err


def test_send_prints_the_json_answer_and_exits_1_on_503(capsys: pytest.CaptureFixture[str]) -> None:
    with function_fake(503, {"outcome": "retry", "reason": "Airflow unreachable"}) as fake:
        code = cli.main(["send", "pubsub", "--url", fake.url, "--data", "hello", "--attribute", "k=v"])
    out = capsys.readouterr().out
    assert code == 1 and "HTTP 503" in out and '"outcome": "retry"' in out


def test_send_to_nothing_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["send", "webhook", "--url", f"http://127.0.0.1:{free_port()}", "--json", "{}"])
    assert code == 1 and "no answer" in capsys.readouterr().out


def test_send_webhook_with_secret_env_signs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_HOOK_SECRET", SECRET)
    with function_fake(200, {"outcome": "done"}) as fake:
        code = cli.main(
            ["send", "webhook", "--url", fake.url, "--json", '{"x": 1}', "--path", "/dags/d", "--secret-env",
             "MY_HOOK_SECRET", "--idempotency-key", "abc"]
        )  # fmt: skip
        (seen,) = fake.seen
    assert code == 0 and seen.path == "/dags/d" and seen.headers["Idempotency-Key"] == "abc"
    assert verify([SECRET], seen.headers[HEADER], SignedRequest("POST", "/dags/d", "", "abc", seen.body), 300)
    assert SECRET not in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "webhook", "--json", "{not json"],
        ["send", "webhook", "--json", "{}", "--secret-env", "DAGTRIGGER_TEST_UNSET_SECRET"],
        ["send", "pubsub", "--attribute", "novalue"],
        ["send", "pubsub", "--topic", "projects/p/subscriptions/s"],
    ],
)
def test_bad_options_exit_2_without_sending(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    os.environ.pop("DAGTRIGGER_TEST_UNSET_SECRET", None)
    with function_fake() as fake:
        assert cli.main([*argv, "--url", fake.url]) == 2
        assert not fake.seen
    assert "configuration error" in capsys.readouterr().err


def test_id_token_from_google_auth_is_sent_as_bearer_and_never_printed(tmp_path: Path) -> None:
    """google-auth for real, against a local metadata server (it reads GCE_METADATA_HOST at import: a subprocess)."""
    tokens: list[str] = []

    def function(seen: Seen) -> Answer:
        tokens.append(seen.headers.get("Authorization", ""))
        return Answer(200, "OK")

    with FakeMetadataServer() as metadata, FakeServer(function) as fake:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("GCE_METADATA", "GOOGLE_"))}
        (tmp_path / "gcloud").mkdir()
        result = subprocess.run(
            [sys.executable, "-m", "dagtrigger", "send", "pubsub", "--url", fake.url + "/", "--id-token",
             "--data", "{}"],
            cwd=ROOT, env={**clean, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **metadata.env()},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        fetches = metadata.id_token_fetches
    assert result.returncode == 0, result.stdout + result.stderr
    (authorization,) = tokens
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer" and token.count(".") == 2 and fetches == 1
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == fake.url  # the URL without its trailing slash
    assert token not in result.stdout + result.stderr and "with a Google ID token" in result.stderr
