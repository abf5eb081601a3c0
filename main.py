"""Cloud Run function entry points: unwrap the request, run the pipeline, map the outcome to HTTP.

``trigger_event`` — CloudEvents from Eventarc (Cloud Storage object events, Pub/Sub messages).
``trigger_http``  — signed webhooks (a JSON object becomes the conf).
``trigger_push``  — Pub/Sub push subscriptions, authenticated by the subscription's OIDC token.
The entry point decides the event kind, never the body's shape. Configuration is read and validated here, at import,
so a bad setting stops the deployment from starting.
"""

from __future__ import annotations

import gc

# Start-up only: the cyclic collector would run again and again over the thousands of objects the imports below
# create, walking them all each time (~10 % of this module's import). On again, with them frozen, once it is built.
gc.disable()

import json
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote

import flask
import functions_framework
import werkzeug.exceptions
from cloudevents.http import CloudEvent

from dagtrigger import function, http_limits, warmup
from dagtrigger.exceptions import BadEvent, CannotVerifyNow
from dagtrigger.outcome import OutcomeKind
from dagtrigger.redaction import redact

if TYPE_CHECKING:  # the per-event stages load in the worker (pipeline.load_stages), not before the port opens
    from dagtrigger.report import EventReport

http_limits.install()  # before functions-framework builds its gunicorn application: bounds the head and read times
FUNCTION = function.build()  # the same assembly `check` validates: a bad setting stops start-up here
PIPELINE = FUNCTION.pipeline
PUSH = FUNCTION.push
warmup.start(PIPELINE.client, PIPELINE.log)  # token, API version, connection: off the first event's path
gc.freeze()  # what start-up made lives as long as the process: later collections (and forks) leave it alone
gc.enable()

# Webhook callers wait for the answer, so they get the precise status; event transports only need ack or not.
WEBHOOK_STATUS = {
    OutcomeKind.DONE: 200,
    OutcomeKind.DUPLICATE: 200,
    OutcomeKind.IGNORED: 200,
    OutcomeKind.RETRY: 503,
    OutcomeKind.FAILED: 502,
}


def _json(status: int, body: dict[str, Any]) -> flask.Response:
    """Every answer passes through the one redaction, like the logs and the dead letters."""
    text = redact(json.dumps(body, ensure_ascii=False))
    return flask.Response(text, status=status, mimetype="application/json")


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
    elif isinstance(error, TimeoutError) and not entered:  # functions-framework reading a body past its deadline
        status, reason = 408, http_limits.BODY_TIMEOUT_REASON
    elif entered:
        raise error
    else:
        status, reason = 400, f"not a CloudEvent ({type(error).__name__})"
    PIPELINE.log.warning("rejected request: %s", reason, extra={"outcome": "rejected", "status": status})
    return _json(status, {"outcome": "rejected", "error": reason})


functions_framework.errorhandler(Exception)(_rejected_before_us)


def _decoded(value: Any) -> Any:
    """One ``ce-*`` value percent-decoded; a value that does not decode to UTF-8 is kept as sent (lenient: an odd id
    is still an id, and the same bytes always give the same run id)."""
    if not isinstance(value, str) or "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value


def _attributes(cloud_event: CloudEvent) -> dict[str, Any]:
    """CloudEvent attributes; in binary mode the HTTP binding percent-encodes ``ce-*`` header values (the SDK does
    not decode them), so a non-ASCII subject reads as the object name again. Structured mode is JSON: taken as is."""
    attributes = dict(cloud_event.get_attributes())
    if "ce-id" in flask.request.headers:
        attributes = {k: _decoded(v) for k, v in attributes.items()}
    return attributes


@functions_framework.cloud_event
def trigger_event(cloud_event: CloudEvent) -> None:
    from dagtrigger import events

    flask.g.setdefault(_ENTERED, True)
    try:
        event = events.from_cloud_event(_attributes(cloud_event), cloud_event.data, PIPELINE.rules.notifications)
        report = PIPELINE.process(event)
    except BadEvent as error:
        _reject(error)
    if not report.acknowledged:
        flask.abort(_json(503, report.as_json()))
    # functions-framework answers "OK" for a CloudEvent function; the report replaces that body, so a caller testing
    # by hand (`dagtrigger send`) sees the outcome and the run ids. Eventarc reads only the status.
    flask.after_this_request(lambda _answer: _json(200, report.as_json()))


def _read_body(request: flask.Request, limit: int) -> bytes:
    if request.method != "POST":
        raise BadEvent(f"method {request.method} not allowed: POST a JSON object", 405)
    if request.content_length is not None and request.content_length > limit:
        raise BadEvent(f"body is {request.content_length} bytes, over MAX_BODY_BYTES={limit}", 413)
    try:
        body = request.stream.read(limit + 1)
    except TimeoutError:  # the body's deadline (http_limits): a stalled sender must not hold this worker thread
        raise BadEvent(http_limits.BODY_TIMEOUT_REASON, 408) from None
    except Exception as exc:  # gunicorn's InvalidChunkSize and kin, a cut stream: the sender's bytes, never our 500
        raise BadEvent(f"the request body could not be read: {type(exc).__name__}") from None
    if len(body) > limit:
        raise BadEvent(f"body is over MAX_BODY_BYTES={limit}", 413)
    return body


def _answer(report: EventReport, status: int) -> flask.Response:
    return _json(status, report.as_json())


def _webhook_status(report: EventReport) -> int:
    """Airflow's refusal is a 502 for the caller; a conf we would not even send is the caller's 422."""
    if report.kind is OutcomeKind.FAILED and all(r.outcome.sender_fault for r in report.results):
        return 422
    return WEBHOOK_STATUS[report.kind]


@functions_framework.http
def trigger_http(request: flask.Request) -> flask.Response:
    """Webhooks only: the signature is checked on the raw request before the body is parsed."""
    from dagtrigger import events, sender_auth  # sender_auth: loaded at start-up for this entry point only

    flask.g.setdefault(_ENTERED, True)
    try:
        body = _read_body(request, PIPELINE.settings.max_body_bytes)
        headers = dict(request.headers)
        signed = sender_auth.signed_request(request.method, request.path, request.query_string, headers, body)
        routes = sender_auth.authenticate_webhook(PIPELINE.settings, PIPELINE.rules, signed, headers, PIPELINE.clock)
        event = events.from_webhook(body, headers, request.path, routes, signed.query)
        report = PIPELINE.process(event)
    except BadEvent as error:
        _reject(error)
    return _json(_webhook_status(report), report.public_json())


@functions_framework.http
def trigger_push(request: flask.Request) -> flask.Response:
    """Pub/Sub push subscriptions: the OIDC token is verified before the body is parsed; a 2xx acknowledges."""
    from dagtrigger import events

    flask.g.setdefault(_ENTERED, True)
    if PUSH is None:  # served under another FUNCTION_TARGET: no verifier was built, so nothing is accepted
        _reject(
            BadEvent("this deployment does not serve trigger_push: deploy it with FUNCTION_TARGET=trigger_push", 404)
        )
    try:
        PUSH.verify(request.headers.get("Authorization"))
        body = _read_body(request, PIPELINE.settings.max_body_bytes)
        event = events.from_push_envelope(body, PIPELINE.rules.notifications)
        report = PIPELINE.process(event)
    except BadEvent as error:
        _reject(error)
    except CannotVerifyNow as error:  # nothing wrong with the request: not acknowledged, Pub/Sub delivers it again
        PIPELINE.log.warning("push not verified yet: %s", error, extra={"outcome": "retry", "status": 503})
        return _json(503, {"outcome": "retry", "error": str(error)})
    return _answer(report, 200 if report.acknowledged else 503)
