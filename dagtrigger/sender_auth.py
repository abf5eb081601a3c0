"""Who may send us events over HTTP: webhook signatures bound to routes, and Pub/Sub push OIDC tokens.

Both checks run on the raw request, before the body is parsed, and answer 401/403 with a reason. Eventarc
deliveries (``trigger_event``) are authenticated by Cloud Run's IAM check before they reach the function.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from . import signature
from .airflow import no_redirect_session
from .clock import SYSTEM_CLOCK, Clock
from .events import idempotency_key, requested_dag
from .exceptions import BadEvent, CannotVerifyNow, ConfigError
from .rules import Route, Rules
from .settings import Settings
from .signature import SignedRequest

STANDARD = "standard-webhooks"
_CERTS_TTL_S = 3600.0
# A token naming a key we do not hold refetches the certificates at most this often: Google rotates keys daily, and
# a caller sending tokens with made-up key ids must not make every request a fetch under the lock.
_CERTS_REFRESH_MIN_S = 60.0
_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


def _takes_webhooks(rules: Rules, route: Route, path: str, dag: str | None) -> bool:
    """Could this route serve a webhook at ``path``? (Only what the path decides; the body is not read yet.)"""
    if not route.takes_webhooks:
        return False
    if route.match.path is not None and route.match.path.failure(path, "path") is not None:
        return False
    if dag is not None:
        if route.webhook.scheme == STANDARD:  # the URL is not signed: it must not choose the DAG
            return False
        return rules.allows_dag(route, dag)
    return True


def _secrets_of(route: Route, settings: Settings) -> tuple[str, ...]:
    return route.webhook.secrets or (settings.webhook_secrets if route.webhook.scheme != STANDARD else ())


def check_webhook_config(settings: Settings, rules: Rules) -> None:
    """For the webhook entry point: fail start-up when a route would take webhooks that nothing authenticates."""
    if settings.webhook_auth == "cloud-run-iam":
        return
    open_routes = [r.name for r in rules.webhook_routes if not _secrets_of(r, settings)]
    if open_routes:
        raise ConfigError(
            f"WEBHOOK_HMAC_SECRET: route(s) {', '.join(open_routes)} take webhooks but have no secret; map one from "
            "Secret Manager (--set-secrets=WEBHOOK_HMAC_SECRET=my-webhook-secret:latest), give the route "
            "webhook.secrets, or set WEBHOOK_AUTH=cloud-run-iam when only IAM-authenticated callers can invoke it"
        )


def authenticate_webhook(
    settings: Settings,
    rules: Rules,
    request: SignedRequest,
    headers: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> frozenset[str] | None:
    """The names of the routes this request is proven to be for; None when Cloud Run IAM is the authentication.
    Timestamps are judged against ``clock`` (the pipeline's).

    Raises BadEvent(401) unless a signature made with one of the candidate routes' secrets covers the request.
    """
    if settings.webhook_auth == "cloud-run-iam":
        return None
    dag = requested_dag(request.path)
    candidates = [r for r in rules.routes if _takes_webhooks(rules, r, request.path, dag)]
    standard = signature.standard_headers(headers)
    if standard is not None:
        routes = [r for r in candidates if r.webhook.scheme == STANDARD]
        owned = tuple(dict.fromkeys(s for r in routes for s in r.webhook.secrets))
        secret = signature.verify_standard(
            owned, standard, request.body, settings.webhook_tolerance_s, clock.now().timestamp()
        )
        return frozenset(r.name for r in routes if secret in r.webhook.secrets)
    routes = [r for r in candidates if r.webhook.scheme != STANDARD]
    secrets: tuple[str, ...] = tuple(dict.fromkeys(s for r in routes for s in _secrets_of(r, settings)))
    secrets = secrets or settings.webhook_secrets
    header = next((v for k, v in headers.items() if k.lower() == signature.HEADER.lower()), None)
    secret = signature.verify(secrets, header, request, settings.webhook_tolerance_s, clock.now().timestamp())
    proven = frozenset(r.name for r in routes if secret in _secrets_of(r, settings))
    if candidates and not proven:  # e.g. a dagtrigger-v2 request at a Standard Webhooks route's path
        raise BadEvent(f"{signature.HEADER} is not signed with a secret of the route at this path", 401)
    return proven


def signed_request(method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes) -> SignedRequest:
    """What a signature covers, read from the request as the function received it (strict: 401 on odd bytes).

    The path is signed and routed decoded, so a decoded path must not hold what would make its canonical form
    ambiguous: ``?`` or ``#`` (``/shop%3Fa=b`` would read as path ``/shop``, query ``a=b``) or control characters
    (a line break would shift the canonical request's fields). Such a path is refused (400)."""
    if any(c in "?#" or not c.isprintable() for c in path):
        raise BadEvent("the decoded request path holds '?', '#' or control characters: no webhook path may", 400)
    try:
        key = idempotency_key(headers) or ""
        query_text = query.decode("ascii")
    except (BadEvent, UnicodeDecodeError):
        raise BadEvent("the idempotency key or the query string is malformed", 401) from None
    return SignedRequest(method=method, path=path or "/", query=query_text, idempotency_key=key, body=body)


@dataclass(frozen=True)
class PushCaller:
    email: str
    subject: str


class PushVerifier:
    """Verifies the OIDC token Pub/Sub push attaches (``Authorization: Bearer``): signature against Google's
    certificates (cached), issuer, audience, expiry, and that it is one of the configured service accounts."""

    def __init__(
        self, settings: Settings, session: requests.Session | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.clock = clock
        self.audience = settings.push_audience
        self.accounts = settings.push_service_accounts
        self.certs_url = settings.push_certs_url
        self._session = session or no_redirect_session()
        self._lock = threading.Lock()
        self._certs: Mapping[str, str] = {}
        self._fetched_at = 0.0

    def _certificates(self, refresh: bool = False) -> Mapping[str, str]:
        with self._lock:
            age = self.clock.monotonic() - self._fetched_at
            if not self._certs or age > _CERTS_TTL_S or (refresh and age > _CERTS_REFRESH_MIN_S):
                try:
                    reply = self._session.get(self.certs_url, timeout=10, allow_redirects=False)
                    reply.raise_for_status()
                    certs = reply.json()
                except (requests.RequestException, ValueError) as exc:
                    raise CannotVerifyNow(
                        f"cannot fetch Google's token certificates now ({type(exc).__name__})"
                    ) from None
                if not isinstance(certs, dict) or not certs:
                    raise CannotVerifyNow("Google's token certificates came back empty")
                self._certs, self._fetched_at = {str(k): str(v) for k, v in certs.items()}, self.clock.monotonic()
            return self._certs

    def verify(self, authorization: str | None) -> PushCaller:
        from google.auth import exceptions as gexc
        from google.auth import jwt

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or not token.isascii():
            raise BadEvent("missing push OIDC token: configure the subscription with --push-auth-service-account", 401)
        token = token.strip()
        claims: Any = None
        for refresh in (False, True):  # a key rotated since the last fetch: fetch once more
            try:
                certs = self._certificates(refresh)
                claims = jwt.decode(  # type: ignore[no-untyped-call]
                    token, certs=certs, audience=self.audience, clock_skew_in_seconds=10
                )
                break
            except (gexc.GoogleAuthError, ValueError) as exc:
                if refresh or "certificate" not in str(exc).lower():
                    raise BadEvent(f"push OIDC token refused: {_reason(exc)}", 401) from None
        if not isinstance(claims, dict) or claims.get("iss") not in _ISSUERS:
            raise BadEvent("push OIDC token refused: not issued by Google", 401)
        email = claims.get("email")
        if claims.get("email_verified") is not True or not isinstance(email, str) or email not in self.accounts:
            raise BadEvent("push OIDC token refused: not one of PUSH_SERVICE_ACCOUNTS", 403)
        return PushCaller(email=email, subject=str(claims.get("sub", "")))


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    for key, reason in (("audience", "wrong audience"), ("expired", "expired"), ("signature", "bad signature")):
        if key in text:
            return reason
    return "invalid token"
