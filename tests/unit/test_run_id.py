"""One Pub/Sub message, one run, whatever the transport — proven on Google's own sample payloads.

Eventarc delivers a message as a CloudEvent whose source names the topic; a push subscription POSTs the same
``{"subscription", "message"}`` object with only its own subscription name. The run id is keyed on what both carry:
the project and the message id. The payloads are copies of Google's (tests/fixtures/google/PROVENANCE.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from dagtrigger import events
from dagtrigger.run_id import RUN_ID_MAX, RUN_ID_PATTERN, run_id_for

from .samples import pubsub_event, storage_event

GOOGLE = Path(__file__).resolve().parents[1] / "fixtures" / "google"


def sample(name: str) -> dict[str, Any]:
    value = json.loads((GOOGLE / name).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def eventarc(cloud_event: dict[str, Any]) -> events.Event:
    """A structured CloudEvent as the functions-framework hands it over: attributes, then ``data``."""
    attributes = {k: v for k, v in cloud_event.items() if k != "data"}
    return events.from_cloud_event(attributes, cloud_event["data"])


def push(body: dict[str, Any], subscription: str | None = None) -> events.Event:
    if subscription is not None:
        body = {**copy.deepcopy(body), "subscription": subscription}
    return events.from_push_envelope(body)


def test_eventarc_and_push_deliveries_of_one_message_make_one_run_id() -> None:
    # google-cloudevents: the structured CloudEvent (topic my-topic in test-project) and the bare
    # MessagePublishedData a push subscription posts, both for message "message-id" of test-project.
    via_eventarc = eventarc(sample("cloudevents-structured-pubsub.json"))
    via_push = push(sample("cloudevents-binary-pubsub-simple.json"))
    assert via_eventarc.message is not None and via_push.message is not None
    assert via_eventarc.message.topic == "my-topic" and via_push.message.topic is None  # what differed before
    assert run_id_for(via_eventarc) == run_id_for(via_push)
    assert run_id_for(via_push).startswith("pubsub__test-project__message-id__")


def test_the_subscription_does_not_matter() -> None:
    # Eventarc reads the topic through a subscription of its own; a user's push subscription has another name.
    body = sample("cloudevents-binary-pubsub-simple.json")
    ids = {
        run_id_for(push(body)),
        run_id_for(push(body, "projects/test-project/subscriptions/eventarc-us-central1-trigger-sub-042")),
        run_id_for(push(body, "projects/test-project/subscriptions/dagtrigger-push")),
    }
    assert len(ids) == 1


def test_conformance_events_match_their_push_form() -> None:
    # functions-framework-conformance: the CloudEvents Eventarc sends; their data, posted by a push subscription.
    for name in ("conformance-pubsub-text-cloudevent.json", "conformance-pubsub-binary-cloudevent.json"):
        cloud_event = sample(name)
        via_push = push(cloud_event["data"], "projects/sample-project/subscriptions/dagtrigger-push")
        run_id = run_id_for(eventarc(cloud_event))
        assert run_id == run_id_for(via_push)
        assert RUN_ID_PATTERN.match(run_id)
        assert run_id.startswith("pubsub__sample-project__aaaaaa-1111-bbbb-2222-cccccccccccc__")


def test_other_messages_and_other_projects_are_other_runs() -> None:
    base = sample("cloudevents-testdata-pubsub-text.json")  # my-project, message-id
    other_message = copy.deepcopy(base)
    other_message["message"]["messageId"] = "message-id-2"
    other_project = {**base, "subscription": "projects/other-project/subscriptions/my-subscription"}
    ids = [run_id_for(push(b)) for b in (base, other_message, other_project)]
    assert len(set(ids)) == 3
    assert ids[0].startswith("pubsub__my-project__message-id__")


def test_a_redelivery_with_another_payload_copy_is_the_same_run() -> None:
    # Pub/Sub keeps the message id across redeliveries; the data and attributes do not enter the run id.
    body = sample("cloudevents-testdata-pubsub-text.json")
    redelivered = copy.deepcopy(body)
    redelivered["message"]["attributes"] = {"attr1": "changed"}
    assert run_id_for(push(body)) == run_id_for(push(redelivered))


# -- run ids by kind (moved from test_conf.py: one test module per package module)


def test_same_object_version_under_a_new_event_id_keeps_the_run_id() -> None:
    assert run_id_for(storage_event()) == run_id_for(storage_event(id="another-delivery-id"))


def test_overwrite_is_a_new_run() -> None:
    assert run_id_for(storage_event(generation="1")) != run_id_for(storage_event(generation="2"))


def test_event_type_is_part_of_the_identity() -> None:
    deleted = storage_event(type="google.cloud.storage.object.v1.deleted")
    assert run_id_for(deleted) != run_id_for(storage_event())
    assert run_id_for(deleted).startswith("gcs_deleted__")


def test_run_id_is_readable() -> None:
    run_id = run_id_for(storage_event())
    assert run_id.startswith("gcs_finalized__landing__raw_2026_file.csv__1732442400123456__")
    assert RUN_ID_PATTERN.match(run_id)


def test_names_that_squash_alike_still_get_distinct_run_ids() -> None:
    assert run_id_for(storage_event(name="a b.csv")) != run_id_for(storage_event(name="a_b.csv"))
    assert run_id_for(storage_event(name="été.csv")) != run_id_for(storage_event(name="ete.csv"))


def test_long_names_keep_the_file_name_and_fit() -> None:
    name = "deep/" * 200 + "final-report.parquet"
    run_id = run_id_for(storage_event(name=name))
    assert len(run_id) <= RUN_ID_MAX
    assert "final-report.parquet" in run_id


def test_pubsub_run_id_follows_the_message_id() -> None:
    assert run_id_for(pubsub_event(b"a")) == run_id_for(pubsub_event(b"b"))
    assert run_id_for(pubsub_event(b"a", "1")) != run_id_for(pubsub_event(b"a", "2"))
    assert run_id_for(pubsub_event(b"a")).startswith("pubsub__example-project__11223344556677__")
