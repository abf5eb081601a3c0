"""Every stage knows the same storage actions: what ``send`` sends, the function parses, settings and routes accept."""

from __future__ import annotations

import json

import pytest

from dagtrigger import storage_events
from dagtrigger.events import NOTIFICATION_TYPES, STORAGE_TYPES, from_cloud_event
from dagtrigger.rules import parse_rules
from dagtrigger.send import storage_event
from dagtrigger.settings import settings_from_env


@pytest.mark.parametrize("action", storage_events.ACTIONS)
def test_an_action_sent_is_the_action_parsed_and_accepted_everywhere(action: str) -> None:
    outgoing = storage_event("http://127.0.0.1:1/", "bkt", "a b/ü.csv", generation="7", action=action)
    event = from_cloud_event(outgoing.attributes, json.loads(outgoing.body))
    assert event.action == action and event.type == storage_events.cloud_event_type(action)
    env = {"AIRFLOW_URI": "http://127.0.0.1:1", "DAG_ID": "d", "AIRFLOW_AUTH": "none", "STORAGE_EVENT_TYPES": action}
    assert settings_from_env(env).storage_actions == frozenset({action})
    rules = parse_rules({"routes": [{"name": "r", "dag_id": "d", "match": {"event": [action]}}]}, "test")
    assert rules.routes[0].match.actions == (action,)


def test_the_tables_cover_each_other() -> None:
    assert set(STORAGE_TYPES.values()) == set(storage_events.ACTIONS)
    assert {STORAGE_TYPES[t] for t in NOTIFICATION_TYPES.values()} == set(storage_events.ACTIONS)
    assert set(storage_events.DEFAULT_ACTIONS) <= set(storage_events.ACTIONS)
