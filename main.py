"""Cloud Run function entry points: unwrap the request, run the pipeline, map the outcome to HTTP.

``trigger_event`` — CloudEvents from Eventarc (Cloud Storage object events, Pub/Sub messages).
``trigger_http``  — webhooks (a JSON object becomes the conf) and Pub/Sub push subscriptions.
Configuration is read and validated here, at import, so a bad setting stops the deployment from starting.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import flask
import functions_framework
import werkzeug.exceptions
from cloudevents.http import CloudEvent

from dagtrigger import deadletter, events, signature
from dagtrigger.exceptions import BadEvent
from dagtrigger.outcome import Kind
from dagtrigger.pipeline import Pipeline, Report

PIPELINE = Pipeline.from_env()

# Webhook callers wait for the answer, so they get the precise status; event transports only need ack or not.
WEBHOOK_STATUS = {Kind.DONE: 200, Kind.DUPLICATE: 200, Kind.IGNORED: 200, Kind.RETRY: 503, Kind.FAILED: 502}


def _json(status: int, body: dict[str, Any]) -> flask.Response:
    return flask.Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def _reject(error: BadEvent) -> NoReturn:
    PIPELINE.log.warning("rejected request: %s", error, extra={"outcome": "rejected", "status": error.status})
    flask.abort(_json(error.status, {"outcome": "rejected", "error": str(error)}))


_ENTERED = "dagtrigger_entered"


def _rejected_before_us(error: Exception) -> Any:
    """functions-framework and the cloudevents SDK parse a request before our entry points run; what they reject
    (not a CloudEvent, a body that is not UTF-8, JSON that is not an object, a wrong method) gets a JSON 4xx with the
    reason, like our own rejections, instead of an HTML page echoing the request or a 500 the platform redelivers.
    What is raised once our code runs is answered as before."""
    entered = flask.g.get(_ENTERED, False)
    if isinstance(error, werkzeug.exceptions.HTTPException):
        if entered or error.code is None or error.code >= 500:
            return error
        status, reason = error.code, f"{error.name}: not a request this function accepts"
    elif entered:
        raise error
    else:
        status, reason = 400, f"not a CloudEvent ({type(error).__name__})"
    PIPELINE.log.warning("rejected request: %s", reason, extra={"outcome": "rejected", "status": status})
    return _json(status, {"outcome": "rejected", "error": reason})


functions_framework.errorhandler(Exception)(_rejected_before_us)


@functions_framework.cloud_event
def trigger_event(cloud_event: CloudEvent) -> None:
    flask.g.setdefault(_ENTERED, True)
    attributes = cloud_event.get_attributes()
    try:
        event = events.from_cloud_event(attributes, cloud_event.data)
        report = PIPELINE.handle(event, deadletter.received_cloud_event(attributes, cloud_event.data))
    except BadEvent as error:
        _reject(error)
    if not report.acknowledged:
        flask.abort(_json(503, report.as_json()))


def _read_body(request: flask.Request, limit: int) -> bytes:
    if request.method != "POST":
        raise BadEvent(f"method {request.method} not allowed: POST a JSON object", 405)
    if request.content_length is not None and request.content_length > limit:
        raise BadEvent(f"body is {request.content_length} bytes, over MAX_BODY_BYTES={limit}", 413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise BadEvent(f"body is over MAX_BODY_BYTES={limit}", 413)
    return body


def _answer(report: Report, status: int) -> flask.Response:
    return _json(status, report.as_json())


def _webhook_status(report: Report) -> int:
    """Airflow's refusal is a 502 for the caller; a conf we would not even send is the caller's 422."""
    if report.kind is Kind.FAILED and all(r.outcome.status is None for r in report.results):
        return 422
    return WEBHOOK_STATUS[report.kind]


def _check_signature(request: flask.Request, body: bytes, push: bool) -> None:
    settings = PIPELINE.settings
    if settings.webhook_secret and not (push and settings.allow_unsigned_push):
        signature.verify(
            settings.webhook_secret, request.headers.get(signature.HEADER), body, settings.webhook_tolerance_s
        )


@functions_framework.http
def trigger_http(request: flask.Request) -> flask.Response:
    flask.g.setdefault(_ENTERED, True)
    try:
        body = _read_body(request, PIPELINE.settings.max_body_bytes)
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = None
        push = isinstance(parsed, dict) and events.is_push_envelope(parsed)
        _check_signature(request, body, push)
        if isinstance(parsed, dict) and push:
            report = PIPELINE.handle(events.from_push_envelope(parsed), deadletter.received_push(parsed))
            return _answer(report, 200 if report.acknowledged else 503)
        headers = dict(request.headers)
        event = events.from_webhook(body, headers, request.path)
        report = PIPELINE.handle(event, deadletter.received_webhook(body, headers, request.path))
    except BadEvent as error:
        _reject(error)
    return _answer(report, _webhook_status(report))
