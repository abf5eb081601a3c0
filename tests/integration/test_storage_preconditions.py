"""Dead-letter updates under generation preconditions, against an emulator that honours them (fake-gcs-server).

gcp-storage-emulator ignores ``ifGenerationMatch`` (shown below), so it can only prove the store's preconditions by
injected 412s. fake-gcs-server answers 412 like Cloud Storage: two function instances updating one record at the
same time (two stores, two storage clients, no shared lock) must lose no update.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from google.api_core import exceptions as gexc

from dagtrigger.deadletter import DeadLetter, DeadLetterStore, DeadLetterWriteError
from devtools.storage_emulator import StorageEmulator, storage_emulator

pytestmark = pytest.mark.integration

BUCKET = "preconditions"
WRITES_PER_INSTANCE = 15
REDELIVERIES = 10


@pytest.fixture(scope="module")
def fake_gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(preconditions=True) as gcs:
        gcs.create_bucket(BUCKET)
        yield gcs


def _record(n: int) -> DeadLetter:
    return DeadLetter(
        event_id=f"e{n}",
        event_type="google.cloud.storage.object.v1.finalized",
        event_time=None,
        dag_id="dagtrigger_example",
        route="default",
        run_id="gcs__one-run",
        reason=f"failure {n}",
        status=404,
        attempts=1,
        first_seen="2026-11-30T10:00:00.000Z",
        recorded_at=f"2026-11-30T10:00:{n % 60:02d}.000Z",
        transport="cloudevent",
        raw={"id": f"e{n}"},
    )


@pytest.mark.parametrize("preconditions", [True, False], ids=["fake-gcs-server", "gcp-storage-emulator"])
def test_create_if_absent_is_refused_the_second_time(preconditions: bool) -> None:
    with storage_emulator(preconditions=preconditions) as gcs:
        gcs.create_bucket(BUCKET)
        blob = gcs.client().bucket(BUCKET).blob("once.json")
        blob.upload_from_string(b"first", if_generation_match=0)
        if preconditions:
            with pytest.raises(gexc.PreconditionFailed):
                blob.upload_from_string(b"second", if_generation_match=0)
        else:  # what the default emulator does: the second create-if-absent overwrites
            blob.upload_from_string(b"second", if_generation_match=0)
            assert blob.download_as_bytes() == b"second"


def test_two_instances_updating_one_record_lose_no_update(fake_gcs: StorageEmulator) -> None:
    """Each instance records the same (DAG, run id) failing again and again; every write is a read-modify-write
    (``attempts`` + 1) under ``ifGenerationMatch``. A write that keeps losing the race for its whole time budget
    gives up with DeadLetterWriteError, which leaves the event unacknowledged: the platform redelivers it, as done
    here (none are needed now). One object, and its attempts count every write exactly once: no update lost, none
    counted twice."""
    uri = f"gs://{BUCKET}/race"
    stores = [DeadLetterStore(uri, fake_gcs.client()) for _ in range(2)]
    barrier = threading.Barrier(len(stores))
    names: list[str] = []
    errors: list[BaseException] = []
    redelivered = [0]

    def instance(store: DeadLetterStore, first: int) -> None:
        barrier.wait(timeout=10)
        for n in range(first, first + WRITES_PER_INSTANCE):
            for _ in range(REDELIVERIES):
                try:
                    names.append(store.write(_record(n)))
                    break
                except DeadLetterWriteError:  # lost races for the whole budget: not acked, redelivered
                    redelivered[0] += 1
                except BaseException as exc:  # anything else fails the test below
                    errors.append(exc)
                    break

    threads = [threading.Thread(target=instance, args=(s, i * 100)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert fake_gcs.objects(BUCKET, "race/") == [names[0]]
    assert set(names) == {names[0]}
    final = stores[0].read(names[0])
    assert len(names) == 2 * WRITES_PER_INSTANCE, (len(names), redelivered)
    assert final.attempts == 2 * WRITES_PER_INSTANCE, (final, redelivered)  # no read-modify-write was lost


def test_many_instances_recording_one_failure_at_once_all_land(fake_gcs: StorageEmulator) -> None:
    """Twelve instances record the same (DAG, run id) at the same instant (a poison event delivered to all of them):
    eleven lose the first race and the last loses up to eleven. Each write keeps trying with jittered waits within its
    budget, so none is given up (each would have cost a redelivery: they gave up after 5 lost races)."""
    uri = f"gs://{BUCKET}/crowd"
    stores = [DeadLetterStore(uri, fake_gcs.client()) for _ in range(12)]
    barrier = threading.Barrier(len(stores))
    names: list[str] = []
    errors: list[BaseException] = []

    def instance(store: DeadLetterStore, n: int) -> None:
        barrier.wait(timeout=10)
        try:
            names.append(store.write(_record(n)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=instance, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, [str(e) for e in errors[:3]]
    assert len(names) == len(stores) and len(set(names)) == 1
    assert stores[0].read(names[0]).attempts == len(stores)
