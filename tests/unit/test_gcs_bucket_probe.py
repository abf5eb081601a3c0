"""google-cloud-storage 3.x (its OpenTelemetry "app-centric observability") fires a background ``GET /b/<bucket>`` on a
client's first object operation per bucket. That needs ``storage.buckets.get``, which the function's object-only roles
do not grant: every instance would write a denied ``storage.buckets.get`` (ERROR) into Cloud Audit Logs per bucket
(googleapis/google-cloud-python#17650), and the probe's retries run on in a thread after the operation returned. The
function turns it off for the process unless the operator set the library's switch themselves.

A real google-cloud-storage client against a fake Cloud Storage that stores uploads and refuses bucket reads (403),
as an object-only service account sees it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dagtrigger.batch.members import MembersStore
from devtools.fakes import Answer, FakeServer, Seen

SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"
BUCKET = "ops-members"


def _storage(seen: Seen) -> Answer:
    if seen.method == "POST" and seen.path.startswith(f"/upload/storage/v1/b/{BUCKET}/o"):
        return Answer(200, {"bucket": BUCKET, "name": "m/k.json", "generation": "1", "metageneration": "1"})
    if seen.method == "GET" and seen.path.split("?")[0] == f"/storage/v1/b/{BUCKET}":
        return Answer(403, {"error": {"code": 403, "message": "caller does not have storage.buckets.get access"}})
    return Answer(404, {"error": {"code": 404, "message": "not found"}})


@pytest.fixture
def client() -> Iterator[Any]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with FakeServer(_storage) as server:
        yield storage.Client(
            project="example-project", credentials=AnonymousCredentials(), client_options={"api_endpoint": server.url}
        )
        for thread in threading.enumerate():  # a probe started anyway ends against the 403 here, not in later tests
            if "_fetch_background" in thread.name:
                thread.join(10)


def _probed(client: Any) -> bool:
    """The library queued (or already finished) a bucket-metadata fetch for BUCKET."""
    cache = client._bucket_metadata_cache
    return BUCKET in cache._inflight_fetches or cache.get(BUCKET) is not None


@pytest.mark.parametrize(("given", "after"), [(None, "true"), ("false", "false"), ("1", "1")])
def test_the_function_sets_the_switch_at_start_up_unless_the_operator_did(given: str | None, after: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != SWITCH} | ({SWITCH: given} if given is not None else {})
    code = f"import os, dagtrigger.settings; print(os.environ.get({SWITCH!r}))"  # what main.py's settings import
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == after


def test_with_the_switch_an_object_write_does_not_probe_the_bucket(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the installed google-cloud-storage does with the value start-up sets (fails if the library renames it)."""
    monkeypatch.setenv(SWITCH, "true")
    uri = MembersStore(client).write(BUCKET, "m/k.json", {"key": "k", "late": False, "conf": {"name": "é.csv"}})
    assert uri == f"gs://{BUCKET}/m/k.json"
    assert not _probed(client)


def test_an_operator_who_wants_the_probe_keeps_it(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their own setting wins (and shows the check above can see a probe)."""
    monkeypatch.setenv(SWITCH, "false")
    MembersStore(client).write(BUCKET, "m/k.json", {"key": "k", "late": False, "conf": {}})
    assert _probed(client)
