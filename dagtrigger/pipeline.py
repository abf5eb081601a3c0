"""Carries one event through the stages: routes → conf and run id → Airflow call → outcome, logged once per target.

This is the only caller of the stages; the CloudEvent entry point, the HTTP entry point and operator commands all
come through ``Pipeline.handle``, so a fix here fixes every path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from . import logs
from .airflow import AirflowClient, TriggerCall, make_session
from .auth import make_auth
from .conf import conf_size, run_id_for
from .events import Event
from .exceptions import AirflowUnreachable, BadEvent, CredentialsUnavailable
from .manifest import ManifestError, read_manifest
from .outcome import SEVERITY, Kind, Outcome, classify, combine
from .render import TemplateError, manifest_location, render
from .routing import Target, route
from .rules import Rules, load_rules, single_route
from .settings import Settings, settings_from_env


@dataclass(frozen=True)
class Result:
    target: Target
    run_id: str
    outcome: Outcome


@dataclass(frozen=True)
class Report:
    """Everything that happened to one event; the entry points turn it into an HTTP answer."""

    event: Event
    kind: Kind
    reason: str
    results: tuple[Result, ...] = ()

    @property
    def acknowledged(self) -> bool:
        return self.kind is not Kind.RETRY

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.kind.value,
            "event_id": self.event.id,
            "reason": self.reason,
            "runs": [
                {
                    "dag_id": r.target.dag_id,
                    "run_id": r.run_id,
                    "outcome": r.outcome.kind.value,
                    "status": r.outcome.status,
                    "reason": r.outcome.reason,
                }
                for r in self.results
            ],
        }


class Pipeline:
    """Holds the per-process singletons (settings, HTTP session, credentials); safe to share between threads."""

    def __init__(
        self, settings: Settings, client: AirflowClient, rules: Rules, logger: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self.rules = rules
        self.log = logger or logs.get_logger()

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        logger = logs.configure(settings.log_level, settings.secrets())
        auth = make_auth(settings, requests.Session)
        client = AirflowClient(
            settings.airflow_uri,
            auth,
            api_version=settings.api_version,
            timeout_s=settings.timeout_s,
            session=make_session(settings.retry_budget_s),
        )
        if settings.routes_file:
            rules = load_rules(settings.routes_file)
        else:
            assert settings.dag_id is not None
            rules = single_route(settings.dag_id, settings.storage_actions)
        return cls(settings, client, rules, logger)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Pipeline:
        """Read and validate the configuration now, so a bad setting stops the process at start-up."""
        return cls.from_settings(settings_from_env(os.environ if env is None else env))

    def handle(self, event: Event) -> Report:
        """Trigger every DAG the event routes to. Raises BadEvent(403) for a webhook naming a DAG no route allows."""
        decision = route(event, self.rules)
        if decision.refused:
            raise BadEvent(decision.reason, 403)
        if not decision.targets:
            self._log(decision.severity, decision.reason, event, outcome=Kind.IGNORED.value)
            return Report(event, Kind.IGNORED, decision.reason)
        results = tuple(self._trigger(event, target) for target in decision.targets)
        kind = combine([r.outcome for r in results])
        reasons = "; ".join(f"{r.target.dag_id}: {r.outcome.reason}" for r in results if r.outcome.kind is kind)
        return Report(event, kind, reasons, results)

    def _trigger(self, event: Event, target: Target) -> Result:
        run_id = run_id_for(event, target.name if target.route.shares_dag else None)
        try:
            manifest = self._manifest(event, target)
            rendered = render(event, target.route, manifest)
        except TemplateError as exc:
            outcome = Outcome(Kind.FAILED, f"conf could not be built: {exc}")
        except ManifestError as exc:
            outcome = Outcome(Kind.RETRY if exc.transient else Kind.FAILED, str(exc))
        else:
            run_id = rendered.run_id
            size = conf_size(rendered.conf)
            if size > self.settings.max_conf_bytes:
                limit = self.settings.max_conf_bytes
                outcome = Outcome(Kind.FAILED, f"conf is {size} bytes, over MAX_CONF_BYTES={limit}; not sent")
            else:
                outcome = self._call(TriggerCall(target.dag_id, run_id, rendered.conf, rendered.note))
        result = Result(target, run_id, outcome)
        self._log_result(event, result)
        return result

    def _manifest(self, event: Event, target: Target) -> Any:
        spec = target.route.manifest
        if spec is None:
            return None
        bucket, name = manifest_location(event, target.route)
        return read_manifest(bucket, name, spec.max_bytes)

    def _call(self, call: TriggerCall) -> Outcome:
        try:
            reply = self.client.trigger(call)
        except AirflowUnreachable as exc:
            return Outcome(Kind.RETRY, f"Airflow unreachable: {exc}")
        except CredentialsUnavailable as exc:
            return Outcome(Kind.RETRY, f"no credentials: {exc}")
        outcome = classify(reply.status)
        if outcome.kind in (Kind.DONE, Kind.DUPLICATE):
            return outcome
        who = f" (calling as {self.client.auth.identity()})" if reply.status in (401, 403) else ""
        detail = f"Airflow answered {reply.status}{who}: {reply.message or '(no message)'}; {outcome.reason}"
        return Outcome(outcome.kind, detail, reply.status)

    def _log_result(self, event: Event, result: Result) -> None:
        kind = result.outcome.kind
        text = {
            Kind.DONE: f"triggered DAG {result.target.dag_id!r}",
            Kind.DUPLICATE: f"already triggered DAG {result.target.dag_id!r} for this event: counted as done",
            Kind.RETRY: f"DAG {result.target.dag_id!r} not triggered yet, the event will be redelivered: "
            f"{result.outcome.reason}",
            Kind.FAILED: f"DAG {result.target.dag_id!r} not triggered, acknowledged without retry: "
            f"{result.outcome.reason}",
        }.get(kind, result.outcome.reason)
        severity = SEVERITY[kind]
        self._log(
            severity,
            text,
            event,
            dag_id=result.target.dag_id,
            run_id=result.run_id,
            outcome=kind.value,
            status=result.outcome.status,
            route=result.target.name,
        )

    def _log(self, severity: str, message: str, event: Event, **fields: Any) -> None:
        level = logging.getLevelName(severity)
        self.log.log(level, message, extra={"event_id": event.id, "event_type": event.type, **fields})
