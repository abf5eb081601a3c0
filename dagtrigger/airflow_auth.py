"""The ways to authenticate to Airflow, each a ``requests`` auth hook that is safe to share between threads.

Tokens are fetched lazily, cached, and renewed only when expired or after Airflow answered 401, so a busy instance
makes about one token fetch per token lifetime. Nothing here ever logs or raises with a token in the message.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import UTC
from typing import Any

import requests
from requests.auth import AuthBase

from . import first_token
from .clock import SYSTEM_CLOCK, Clock
from .exceptions import CredentialsUnavailable
from .settings import Settings

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_RENEW_BEFORE_S = 300.0


class Auth(AuthBase):
    """No authentication (a local Airflow that allows anonymous API calls)."""

    mode = "none"
    refreshable = False

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    def invalidate(self) -> None:
        """Forget a cached token so the next call fetches a new one (after a 401)."""

    def identity(self) -> str:
        """Who we are to Airflow, for error messages (never a secret)."""
        return "anonymous"


class BasicAuth(Auth):
    mode = "basic"

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")
        self._username = username

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def identity(self) -> str:
        return f"user {self._username!r}"


class StaticBearer(Auth):
    mode = "bearer"

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def identity(self) -> str:
        return "the static AIRFLOW_TOKEN"


class _CachedBearer(Auth):
    """A bearer token fetched on demand, cached until shortly before expiry, renewed under a lock."""

    refreshable = True

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._failure: CredentialsUnavailable | None = None
        self._failed_at = 0.0

    def _fetch(self) -> tuple[str, float]:
        """Return a new token and its absolute expiry (unix seconds)."""
        raise NotImplementedError

    def _current(self) -> str:
        """The cached token, renewed close to expiry. While the token source fails, a token that has not expired yet
        is still used, and requests that waited on the lock share the failure instead of each fetching again
        (google-auth spends ~15 s on one failed fetch, so they would answer one after the other, ~15 s apart)."""
        asked = self.clock.monotonic()
        with self._lock:
            now = self.clock.now().timestamp()
            if self._token is not None and now < self._expires_at - _RENEW_BEFORE_S:
                return self._token
            usable = self._token if self._token is not None and now < self._expires_at else None
            if self._failure is not None and self._failed_at >= asked:  # it failed while this request waited
                if usable:
                    return usable
                raise CredentialsUnavailable(f"{self._failure} (failed while this request waited for it)")
            try:
                self._token, self._expires_at = self._fetch()
            except CredentialsUnavailable as exc:
                self._failure, self._failed_at = exc, self.clock.monotonic()
                if usable:
                    return usable
                raise
            self._failure = None
            return self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._current()}"
        return request

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._failure = None


class GoogleAuth(_CachedBearer):
    """The function's service account via google-auth: access tokens (Composer) or OIDC ID tokens (IAP, Cloud Run)."""

    def __init__(self, mode: str, audience: str, token_session: requests.Session, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self.mode = mode
        self._audience = audience
        self._session = token_session
        self._credentials: Any = None
        self._handed_account = ""

    def _make_credentials(self) -> Any:
        return google_credentials(self.mode, self._audience, self._session)

    def _fetch(self) -> tuple[str, float]:
        """A cold start's first fetch takes the token gunicorn's master fetched for this worker (``first_token``)."""
        if self._credentials is None and first_token.pending():
            handed = first_token.take(self.mode, self._audience)
            if handed is not None and handed.error:
                raise CredentialsUnavailable(handed.error)
            if handed is not None and handed.token and handed.expires_at > self.clock.now().timestamp():
                self._handed_account = handed.account
                return handed.token, handed.expires_at
        return self.fetch_token()

    def fetch_token(self) -> tuple[str, float]:
        """A new token from google-auth and its absolute expiry (unix seconds), whatever is cached."""
        import google.auth.exceptions
        import google.auth.transport.requests

        try:
            if self._credentials is None:
                self._credentials = self._make_credentials()
            self._credentials.refresh(google.auth.transport.requests.Request(session=self._session))
        except google.auth.exceptions.GoogleAuthError as exc:
            raise CredentialsUnavailable(
                f"could not get a Google {'ID' if self.mode == 'id-token' else 'access'} token for the function's "
                f"service account ({type(exc).__name__}); on Cloud Run check the service account exists and, "
                "locally, run `gcloud auth application-default login`"
            ) from None
        token = self._credentials.token
        if not token:
            raise CredentialsUnavailable("google-auth returned no token")
        expiry = getattr(self._credentials, "expiry", None)
        # google-auth expiries are naive UTC datetimes.
        expires_at = expiry.replace(tzinfo=UTC).timestamp() if expiry else self.clock.now().timestamp() + 3600
        return token, expires_at

    def handover(self) -> first_token.FirstToken:
        """A new token for another process (``first_token``: gunicorn's master fetches the worker's first)."""
        try:
            token, expires_at = self.fetch_token()
        except CredentialsUnavailable as exc:
            return first_token.FirstToken(self.mode, self._audience, error=str(exc))
        return first_token.FirstToken(self.mode, self._audience, token, expires_at, self.account_email())

    def account_email(self) -> str:
        """The service account's email once known (after a fetch), else ""."""
        email = getattr(self._credentials, "service_account_email", None) or self._handed_account
        return email if isinstance(email, str) and email != "default" else ""

    def identity(self) -> str:
        email = self.account_email()
        return f"service account {email}" if email else "the function's service account"


class AirflowJwtAuth(_CachedBearer):
    """Airflow 3 without Composer: exchange user/password at ``/auth/token`` for a JWT, renew before ``exp``."""

    mode = "airflow-jwt"

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        session: requests.Session,
        timeout_s: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(clock)
        self._url = f"{base_url}/auth/token"
        self._username = username
        self._password = password
        self._session = session
        self._timeout_s = timeout_s

    def _fetch(self) -> tuple[str, float]:
        try:
            reply = self._session.post(
                self._url,
                json={"username": self._username, "password": self._password},
                timeout=self._timeout_s,
                allow_redirects=False,  # the password must never reach whatever address a redirect names
            )
        except requests.RequestException as exc:
            raise CredentialsUnavailable(f"could not reach {self._url} for a JWT ({type(exc).__name__})") from None
        if reply.is_redirect or 300 <= reply.status_code < 400:
            raise CredentialsUnavailable(
                f"{self._url} answered {reply.status_code} (a redirect), which is not followed with the password: "
                "set AIRFLOW_URI to the final address of the Airflow API server",
                transient=False,
            )
        if reply.status_code not in (200, 201):
            raise CredentialsUnavailable(
                f"{self._url} answered {reply.status_code} for user {self._username!r}: check AIRFLOW_USERNAME and "
                "AIRFLOW_PASSWORD (the password is never logged)"
            )
        try:
            token = str(reply.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise CredentialsUnavailable(f"{self._url} did not answer with an access_token") from None
        return token, _jwt_expiry(token) or self.clock.now().timestamp() + 3600

    def identity(self) -> str:
        return f"Airflow user {self._username!r}"


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (we only need to know when to renew; the server verifies)."""
    try:
        return float(jwt_claims(token)["exp"])
    except (KeyError, ValueError, TypeError):
        return None


def make_auth(
    settings: Settings, token_session_factory: Callable[[], requests.Session], clock: Clock = SYSTEM_CLOCK
) -> Auth:
    """The auth hook for ``settings.auth``; token fetches use their own session, never the retrying Airflow one;
    token expiry is judged on ``clock``."""
    if settings.auth == "none":
        return Auth()
    if settings.auth == "basic":
        return BasicAuth(settings.username, settings.password)
    if settings.auth == "bearer":
        return StaticBearer(settings.token)
    if settings.auth == "airflow-jwt":
        return AirflowJwtAuth(
            settings.airflow_uri,
            settings.username,
            settings.password,
            token_session_factory(),
            settings.timeout_s,
            clock,
        )
    return GoogleAuth(settings.auth, settings.audience, token_session_factory(), clock)


# -- Google credentials and JWTs, shared by GoogleAuth and `check` (which names the account without a token).


def google_credentials(mode: str, audience: str, session: requests.Session) -> Any:
    """The function's Google credentials for AIRFLOW_AUTH=google (access tokens) or id-token (ID tokens for
    ``audience``), not refreshed yet. Raises google.auth.exceptions.GoogleAuthError when there are none."""
    import google.auth
    import google.auth.transport.requests
    import google.oauth2.id_token

    if mode == "id-token":
        request = google.auth.transport.requests.Request(session=session)
        return google.oauth2.id_token.fetch_id_token_credentials(  # type: ignore[no-untyped-call]
            audience, request=request
        )
    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return credentials


def is_user_credentials(credentials: Any) -> bool:
    """A person's own login (gcloud auth application-default login), not a service account."""
    return type(credentials).__module__ == "google.oauth2.credentials"


def account_email(credentials: Any, request: Any) -> str | None:
    """The account behind refreshed credentials: their own attribute, the ID token's claim, or the metadata server."""
    for attribute in ("service_account_email", "signer_email", "account"):
        value = getattr(credentials, attribute, None)
        if isinstance(value, str) and "@" in value:
            return value
    email = jwt_claims(getattr(credentials, "token", None)).get("email")
    if isinstance(email, str):
        return email
    if type(credentials).__module__.startswith("google.auth.compute_engine"):
        try:
            from google.auth.compute_engine import _metadata

            info = _metadata.get_service_account_info(request)  # type: ignore[no-untyped-call]
            return str(info["email"]) if isinstance(info, dict) and info.get("email") else None
        except Exception:
            return None
    return None


def jwt_claims(token: Any) -> dict[str, Any]:
    """Claims of a JWT read without verifying (google-auth's decoder); {} for anything else (opaque tokens)."""
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    from google.auth import jwt

    try:
        claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}
