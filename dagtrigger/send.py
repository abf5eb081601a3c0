"""``python -m dagtrigger send``: post a realistic sample event to a local or deployed function and show its answer.

Storage and Pub/Sub events go out as Eventarc delivers them — CloudEvents in binary content mode (``ce-*`` headers,
the data as the body) — built by hand with ``requests`` so the function's runtime dependencies suffice. Webhooks
are a JSON body, signed when a secret is given (``X-Dagtrigger-Signature`` over method, path, query, idempotency key
and body; or the Standard Webhooks headers with ``--scheme standard-webhooks``). For a private deployed function,
``--id-token`` adds a Google ID token for the URL (never printed).
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests

from . import signature, storage_events
from .clock import SYSTEM_CLOCK
from .exceptions import ConfigError
from .signature import SignedRequest

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
DEFAULT_PROJECT = "local-project"
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Outgoing:
    """One HTTP request to the function: where, which headers, what body, and a one-line summary for the user."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    summary: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def percent_encode(value: str) -> str:
    """CloudEvents HTTP binding 3.1.3.2: space, '"', '%' and anything outside U+0021–U+007E become UTF-8 %XX."""
    return "".join(
        c if "!" <= c <= "~" and c not in '"%' else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in value
    )


def rfc3339(moment: datetime | None = None) -> str:
    """Event times as Google writes them: UTC with milliseconds and Z."""
    moment = moment or SYSTEM_CLOCK.now()
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _numeric_id() -> str:
    """Eventarc event ids and Pub/Sub message ids are decimal strings of about 16 digits."""
    return str(secrets.randbelow(9 * 10**15) + 10**15)


def binary_cloud_event(url: str, attributes: Mapping[str, str], data: Any, summary: str) -> Outgoing:
    """A CloudEvent in binary content mode: each attribute a ``ce-`` header (percent-encoded), the data as JSON."""
    headers = {f"ce-{key}": percent_encode(value) for key, value in attributes.items() if key != "datacontenttype"}
    headers["Content-Type"] = attributes.get("datacontenttype", "application/json")
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Outgoing(url, headers, body, summary, dict(attributes))


def storage_event(
    url: str,
    bucket: str,
    name: str,
    generation: str | None = None,
    action: str = storage_events.FINALIZED,
    content_type: str | None = None,
    size: int = 0,
    metadata: Mapping[str, str] | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> Outgoing:
    """A Cloud Storage object event as Eventarc sends it; the object resource (strings for numbers) is the data.

    Without ``generation`` a new one is made from the clock, so each send is a new object version (a new run);
    repeat a generation to see the redelivery give the same run (Airflow 409, counted as a duplicate).
    ``event_id``: default a new random one (the load harness gives its own, to tell redeliveries apart).
    """
    moment = now or SYSTEM_CLOCK.now()
    generation = generation or str(int(moment.timestamp() * 1_000_000))
    when = rfc3339(moment)
    resource: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{quote(name, safe='')}",
        "mediaLink": f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
        f"?generation={generation}&alt=media",
        "name": name,
        "bucket": bucket,
        "generation": generation,
        "metageneration": "1",
        "contentType": content_type or mimetypes.guess_type(name)[0] or "application/octet-stream",
        "timeCreated": when,
        "updated": when,
        "storageClass": "STANDARD",
        "timeStorageClassUpdated": when,
        "size": str(size),
    }
    if metadata:
        resource["metadata"] = dict(metadata)
    event_type = storage_events.cloud_event_type(action)
    attributes = {
        "specversion": "1.0",
        "id": event_id or _numeric_id(),
        "type": event_type,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "time": when,
        "bucket": bucket,
        "datacontenttype": "application/json",
    }
    summary = f"CloudEvent {event_type} gs://{bucket}/{name} generation {generation}"
    return binary_cloud_event(url, attributes, resource, summary)


def topic_path(topic: str) -> tuple[str, str]:
    """``T`` or ``projects/P/topics/T`` → (project, topic id)."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == "topics" and parts[1] and parts[3]:
        return parts[1], parts[3]
    if "/" in topic or not topic:
        raise ConfigError(f"--topic: {topic!r} is not a topic id or projects/PROJECT/topics/TOPIC")
    return DEFAULT_PROJECT, topic


def pubsub_event(
    url: str,
    data: bytes | None,
    attributes: Mapping[str, str] | None = None,
    topic: str = "dagtrigger-send",
    ordering_key: str | None = None,
    now: datetime | None = None,
    message_id: str | None = None,
) -> Outgoing:
    """A Pub/Sub message as Eventarc delivers it: the message (data base64-encoded) and the subscription.

    ``message_id``: default a new random one; a Pub/Sub redelivery repeats the same id.
    """
    project, topic_id = topic_path(topic)
    message_id = message_id or _numeric_id()
    when = rfc3339(now)
    message: dict[str, Any] = {
        "attributes": dict(attributes or {}),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": when,
        "publish_time": when,
    }
    if data is not None:
        message["data"] = base64.b64encode(data).decode("ascii")
    if ordering_key:
        message["orderingKey"] = ordering_key
    envelope = {"message": message, "subscription": f"projects/{project}/subscriptions/eventarc-{topic_id}-sub"}
    ce = {
        "specversion": "1.0",
        "id": message_id,
        "type": PUBSUB_TYPE,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic_id}",
        "time": when,
        "datacontenttype": "application/json",
    }
    summary = f"CloudEvent {PUBSUB_TYPE} projects/{project}/topics/{topic_id} message {message_id}"
    return binary_cloud_event(url, ce, envelope, summary)


def sign_webhook(
    secret: str,
    method: str,
    target: str,
    body: bytes,
    headers: Mapping[str, str],
    scheme: str = "dagtrigger-v2",
    timestamp: int | None = None,
) -> dict[str, str]:
    """``headers`` plus the signature for this exact request; ``target`` is the path with its query, as sent.

    dagtrigger-v2 covers the method, the (percent-decoded) path, the query, the idempotency key and the body;
    standard-webhooks signs ``webhook-id.timestamp.body`` and needs the idempotency key as ``webhook-id``."""
    parts = urlsplit(target)
    out = dict(headers)
    if scheme == "standard-webhooks":
        message_id = out.pop("Idempotency-Key", None) or out.get("webhook-id") or f"msg_{secrets.token_hex(12)}"
        return {**out, **signature.sign_standard(secret, message_id, body, timestamp)}
    from .events import idempotency_key

    request = SignedRequest(method, unquote(parts.path or "/"), parts.query, idempotency_key(out) or "", body)
    return {**out, signature.HEADER: signature.sign(secret, request, timestamp)}


def webhook_request(
    url: str,
    body: Any,
    path: str = "/",
    secret: str | None = None,
    idempotency_key: str | None = None,
    timestamp: int | None = None,
    scheme: str = "dagtrigger-v2",
) -> Outgoing:
    """A webhook POST: the JSON body, signed over the exact request sent when a secret is given."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    target = url.rstrip("/") + "/" + path.lstrip("/")
    if secret:
        parts = urlsplit(target)
        path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = sign_webhook(secret, "POST", path_and_query, raw, headers, scheme, timestamp)
    signed = f", signed {scheme}" if secret else ""
    return Outgoing(target, headers, raw, f"webhook POST {urlsplit(target).path or '/'} ({len(raw)} bytes{signed})")


def fetch_id_token(audience: str, timeout_s: float) -> str:
    """A Google ID token for ``audience`` (the function's URL) from google-auth; raises ConfigError with the fix."""
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.id_token

    from .airflow import BoundedSession

    request = google.auth.transport.requests.Request(session=BoundedSession(timeout_s))
    try:
        token = google.oauth2.id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]
    except google.auth.exceptions.GoogleAuthError as exc:
        raise ConfigError(
            f"--id-token: no ID token for {audience} ({type(exc).__name__}). google-auth mints ID tokens for service "
            "accounts only: set GOOGLE_APPLICATION_CREDENTIALS to a service account key or to the file written by "
            "`gcloud auth application-default login --impersonate-service-account=SA` (or run where a metadata "
            "server is, such as Cloud Shell or a VM)"
        ) from None
    return str(token)


def post(outgoing: Outgoing, timeout_s: float, id_token: str | None = None) -> requests.Response:
    """Send once, no retries (the point is to see the function's own answer); bounded by the timeouts."""
    headers = dict(outgoing.headers)
    if id_token:
        headers["Authorization"] = f"Bearer {id_token}"
    headers.setdefault("User-Agent", "dagtrigger-send")
    return requests.post(
        outgoing.url, data=outgoing.body, headers=headers, timeout=(CONNECT_TIMEOUT_S, timeout_s), allow_redirects=False
    )


def render_answer(response: requests.Response) -> str:
    """The status line, then the body: pretty JSON when it is JSON, else its text."""
    head = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    try:
        body = json.dumps(response.json(), indent=2, ensure_ascii=False)
    except ValueError:
        body = response.text.strip()
    return f"{head}\n{body}" if body else head


def _pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option}: {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def build(args: argparse.Namespace, env: Mapping[str, str]) -> Outgoing:
    """The request the command line describes; ConfigError for a bad option (exit 2)."""
    url = args.url
    if args.kind == "storage":
        return storage_event(
            url,
            args.bucket,
            args.name,
            generation=args.generation,
            action=args.event_type,
            content_type=args.content_type,
            size=args.size,
            metadata=_pairs(args.metadata, "--metadata"),
        )
    if args.kind == "pubsub":
        data = None if args.data is None else args.data.encode("utf-8")
        attributes = _pairs(args.attribute, "--attribute")
        return pubsub_event(url, data, attributes, args.topic, args.ordering_key)
    try:
        body = json.loads(args.json)
    except ValueError as exc:
        raise ConfigError(f"--json: not valid JSON ({exc})") from None
    secret = None
    if args.secret_env:
        secret = env.get(args.secret_env, "")
        if not secret:
            raise ConfigError(f"--secret-env: environment variable {args.secret_env} is not set or empty")
    return webhook_request(url, body, args.path, secret, args.idempotency_key, scheme=args.scheme)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Build, (optionally) authenticate, send, print; 0 on a 2xx answer, 1 otherwise, 2 for bad options."""
    env = os.environ if env is None else env
    outgoing = build(args, env)
    token = None
    if args.id_token:
        audience = args.audience or _audience_for(args.url)
        token = fetch_id_token(audience, args.timeout)
    print(f"→ POST {outgoing.url}: {outgoing.summary}{' (with a Google ID token)' if token else ''}", file=sys.stderr)
    began = SYSTEM_CLOCK.monotonic()
    try:
        response = post(outgoing, args.timeout, token)
    except requests.RequestException as exc:
        print(f"✗ no answer from {outgoing.url}: {type(exc).__name__} (is the function running there?)")
        return 1
    print(render_answer(response))
    print(f"({SYSTEM_CLOCK.monotonic() - began:.2f} s)", file=sys.stderr)
    return 0 if 200 <= response.status_code < 300 else 1


def _audience_for(url: str) -> str:
    """Cloud Run's expected ID token audience: the URL the function is called by, without a trailing slash."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def add_arguments(send: argparse.ArgumentParser) -> None:
    """The ``send`` subcommands; common options are accepted after the kind (``send storage --url …``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="http://127.0.0.1:8080", help="the function's URL (default: %(default)s)")
    common.add_argument(
        "--id-token",
        action="store_true",
        help="send a Google ID token for the URL as Bearer (deployed functions that require authentication)",
    )
    common.add_argument("--audience", help="the ID token's audience (default: the URL without a trailing slash)")
    common.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the answer (default: %(default)g)"
    )
    kinds = send.add_subparsers(dest="kind", required=True)
    st = kinds.add_parser("storage", parents=[common], help="a Cloud Storage object event (trigger_event)")
    st.add_argument("--bucket", required=True)
    st.add_argument("--name", required=True, help="the object name, e.g. incoming/2026-11-24/orders.csv")
    st.add_argument("--generation", help="default: a new one from the clock (each send is a new object version)")
    st.add_argument(
        "--event-type",
        default=storage_events.FINALIZED,
        choices=storage_events.ACTIONS,
        help="default: %(default)s",
    )
    st.add_argument("--content-type", help="default: guessed from the name")
    st.add_argument("--size", type=int, default=0, help="object size in bytes (default: %(default)s)")
    st.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="custom object metadata (repeatable)")
    ps = kinds.add_parser("pubsub", parents=[common], help="a Pub/Sub message event (trigger_event)")
    ps.add_argument("--data", help='the message data, sent as UTF-8 (e.g. \'{"table": "orders"}\')')
    ps.add_argument("--attribute", action="append", metavar="KEY=VALUE", help="a message attribute (repeatable)")
    ps.add_argument("--topic", default="dagtrigger-send", help="TOPIC or projects/P/topics/TOPIC")
    ps.add_argument("--ordering-key")
    wh = kinds.add_parser("webhook", parents=[common], help="a JSON webhook (trigger_http)")
    wh.add_argument("--json", required=True, help='the JSON body, e.g. \'{"table": "orders"}\'')
    wh.add_argument("--path", default="/", help="request path, e.g. /dags/DAG_ID (default: %(default)s)")
    wh.add_argument(
        "--secret-env",
        metavar="NAME",
        help="sign with the secret in this environment variable (e.g. WEBHOOK_HMAC_SECRET); never on the command line",
    )
    wh.add_argument("--idempotency-key", help="the Idempotency-Key header: the same key gives the same run")
    wh.add_argument(
        "--scheme",
        choices=signature.SCHEMES,
        default="dagtrigger-v2",
        help="how --secret-env signs (default: %(default)s; standard-webhooks sends webhook-id/-timestamp/-signature)",
    )
