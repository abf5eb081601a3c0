"""The Airflow REST client: API version, the trigger call, retries, idempotency.

One ``requests.Session`` per process carries a connection pool and the retry policy (a urllib3 ``Retry`` value).
POST is retried safely because the run id is deterministic: a retry of a request that did reach Airflow gets 409.
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.ssl_ import create_urllib3_context

from .airflow_auth import Auth
from .clock import SYSTEM_CLOCK, Clock, utc
from .exceptions import AirflowUnreachable

RUNS_PAGE = 100  # Airflow's default [api] maximum_page_limit on both majors
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MESSAGE_CHARS = 300
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


class BudgetedRetry(Retry):
    """urllib3 ``Retry`` that also stops when a time budget is spent.

    Exponential backoff with jitter and ``Retry-After`` come from urllib3; the budget (counted from the first failed
    attempt) keeps the whole call well inside the function timeout. A ``Retry-After`` longer than what is left ends
    the retries at once, so the platform redelivers later instead of the function sleeping past its deadline.
    Time is read from, and waited on, ``clock``: tests pass a fake one.
    """

    def __init__(
        self, *args: Any, budget_s: float = 30.0, started: float | None = None, clock: Clock = SYSTEM_CLOCK, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.budget_s = budget_s
        self.started = started
        self.clock = clock

    def new(self, **kw: Any) -> BudgetedRetry:
        """urllib3 makes a new value per attempt; the budget, its start and the clock carry over."""
        kw.setdefault("budget_s", self.budget_s)
        kw.setdefault("started", self.started if self.started is not None else self.clock.monotonic())
        kw.setdefault("clock", self.clock)
        return super().new(**kw)

    def _left(self) -> float:
        return self.budget_s if self.started is None else self.budget_s - (self.clock.monotonic() - self.started)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self._left() <= 0

    def get_backoff_time(self) -> float:
        return max(0.0, min(super().get_backoff_time(), self._left()))

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """urllib3's choice of wait (``Retry-After`` when the answer has one, else the backoff), on our clock."""
        wait = self.get_retry_after(response) if self.respect_retry_after_header and response else None
        wait = wait or self.get_backoff_time()
        if wait > 0:
            self.clock.sleep(wait)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> BudgetedRetry:
        """urllib3's count of the failed attempt, then: give up now if the server asks us to wait past the budget."""
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = new.get_retry_after(response) if response is not None else None
        if wait is not None and wait > new._left():
            raise MaxRetryError(_pool, url or "", error)  # type: ignore[arg-type]
        return new


def retry_policy(budget_s: float, attempts: int = 8, clock: Clock = SYSTEM_CLOCK) -> BudgetedRetry:
    """The policy as a value: what is retried, how often, how long we wait, and the total budget."""
    return BudgetedRetry(
        total=attempts - 1,
        connect=attempts - 1,
        read=attempts - 1,
        status=attempts - 1,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET", "POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.25,
        backoff_jitter=0.25,
        backoff_max=8.0,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
        budget_s=budget_s,
        clock=clock,
    )


_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


class NoRedirectSession(requests.Session):
    """A session that never follows a redirect, whoever calls it (google-auth's token fetches too): a credential
    on the request must not travel to the address a 3xx names. The 3xx comes back as the answer."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)


class SharedTrustAdapter(HTTPAdapter):
    """HTTPS verified against one ``SSLContext`` per trust store, loaded once per process.

    requests hands urllib3 the CA bundle's path for every new connection, and urllib3 loads it into a fresh context
    each time: 20-30 ms of CPU, holding the GIL, per connection (certifi's bundle). Here the bundle requests would use
    (``verify``: certifi's, ``REQUESTS_CA_BUNDLE`` or a path) is loaded once, and the pools get that context instead
    of the path: the same certificates and the same hostname check, paid once. The warm-up loads it while the first
    token is still being fetched (``AirflowClient.preload_trust``). A bundle changed on disk is read at the next
    start, not at the next connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._contexts_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def trust_context(self, verify: bool | str | None) -> ssl.SSLContext | None:
        """The loaded context for this ``verify`` value; None when nothing is verified (``verify=False``)."""
        location = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        if not isinstance(location, str) or not location:
            return None
        loaded = self._contexts.get(location)  # every request asks: no lock once it is loaded
        if loaded is not None:
            return loaded
        with self._contexts_lock:
            context = self._contexts.get(location)
            if context is None:
                context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
                if os.path.isdir(location):
                    context.load_verify_locations(capath=location)
                else:
                    context.load_verify_locations(cafile=location)
                self._contexts[location] = context
            return context

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[Any, Any]:
        host_params, given = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(given)
        context = self.trust_context(verify) if host_params.get("scheme") == "https" else None
        if context is not None:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = context
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]  # CERT_REQUIRED, and an error for a bundle that is not there
        context = getattr(conn, "conn_kw", {}).get("ssl_context")
        if context is not None and url.lower().startswith("https") and context is self.trust_context(verify):
            conn.ca_certs = None  # the context holds them already: urllib3 would load the file again
            conn.ca_cert_dir = None


def no_redirect_session() -> requests.Session:
    return NoRedirectSession()


def make_session(budget_s: float, pool_size: int = 32, clock: Clock = SYSTEM_CLOCK) -> requests.Session:
    """A long-lived pooled session with the retry policy mounted; shared by all threads of the process.

    Without a proxy configured, the environment is read once here instead of on every request (``trust_env`` costs
    ~0.4 ms of CPU per call, a quarter of a pooled POST); the CA bundle variables keep working.
    """
    session = NoRedirectSession()
    if not any(name.lower() in _PROXY_VARIABLES for name in os.environ):
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    adapter = SharedTrustAdapter(
        pool_connections=4, pool_maxsize=pool_size, max_retries=retry_policy(budget_s, clock=clock)
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class BoundedSession(NoRedirectSession):
    """A session whose every request has a timeout no longer than ``limit_s``: for operator commands and their token
    fetches (google-auth asks for 120 s), which must answer in bounded time and do not retry."""

    def __init__(self, limit_s: float, user_agent: str = "dagtrigger") -> None:
        super().__init__()
        self.limit_s = limit_s
        self.headers["User-Agent"] = user_agent

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        wanted = kwargs.get("timeout")
        if isinstance(wanted, tuple):
            kwargs["timeout"] = tuple(min(t or self.limit_s, self.limit_s) for t in wanted)
        else:
            kwargs["timeout"] = min(wanted or self.limit_s, self.limit_s)
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class TriggerCall:
    """One DAG run to create: the DAG, our run id, the conf and an optional note."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    note: str | None = None
    # Batch windows (batch/): the earliest start. Airflow 3 gets run_after (its scheduler starts a queued run once
    # run_after <= now); Airflow 2 gets a logical date from logical_dates, a future one waiting while
    # allow_trigger_in_future is False.
    run_after: datetime | None = None
    # Airflow 2 only (Airflow 3 sends null: no logical-date collisions): the logical dates this run may take, in the
    # order to try (a batch window's). Empty: Airflow's now(), then dates of our own while another run holds it
    # (trigger.py).
    logical_dates: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class RunInfo:
    """One DAG run as Airflow lists it (both majors name these fields alike); times as Airflow wrote them."""

    run_id: str
    state: str
    start_date: str | None = None
    end_date: str | None = None

    @classmethod
    def from_json(cls, value: Any, run_id: str | None = None) -> RunInfo | None:
        """None when ``value`` is not a run; ``run_id``: the id asked for, when the answer omits it."""
        if not isinstance(value, dict):
            return None
        run_id, state = value.get("dag_run_id") or value.get("run_id") or run_id, value.get("state")
        if not isinstance(run_id, str) or not isinstance(state, str):
            return None
        start, end = value.get("start_date"), value.get("end_date")
        return cls(run_id, state, start if isinstance(start, str) else None, end if isinstance(end, str) else None)


@dataclass(frozen=True)
class AirflowReply:
    """Airflow's answer: status, a short human message (never the whole body), and the API version used."""

    status: int
    message: str
    api_version: str


def short_message(response: requests.Response) -> str:
    """Airflow's own explanation, from JSON when it is JSON, else the text of an HTML page, cut short."""
    try:
        payload = response.json()
    except ValueError:
        text = _SPACES.sub(" ", _TAGS.sub(" ", response.text or "")).strip()
        return text[:_MESSAGE_CHARS] or response.reason or ""
    if isinstance(payload, dict):
        for key in ("detail", "title", "message", "error"):
            if payload.get(key):
                value = payload[key]
                return (value if isinstance(value, str) else json.dumps(value))[:_MESSAGE_CHARS]
    return json.dumps(payload)[:_MESSAGE_CHARS]


class AirflowClient:
    """Triggers DAG runs on one Airflow web server; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        api_version: str = "auto",
        timeout_s: float = 20.0,
        session: requests.Session | None = None,
        retry_budget_s: float = 30.0,
        max_in_flight: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self._queue_wait_s = max(1.0, retry_budget_s)
        self.auth = auth
        self.timeout = (min(5.0, timeout_s), timeout_s)
        self.session = session or make_session(retry_budget_s)
        self._version = None if api_version == "auto" else api_version
        # A configured version is used without a probe; until Airflow has answered a call under it, a 404 is checked
        # against GET …/version, and a version this Airflow does not serve is replaced by the probed one (_recheck).
        self._unconfirmed = self._version is not None
        self._version_lock = threading.Lock()
        self._warming: threading.Event | None = None  # first calls wait on it while the warm-up runs (hold_first_calls)
        self._warm_up_thread = threading.local()  # .active in the thread running warm_up: its own calls never wait

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One logical call (the adapter retries inside); a 401 drops a cached token and tries once more.

        At most ``max_in_flight`` calls per process reach Airflow at once, whatever the request concurrency: the
        web server (and its database) is shared, and a burst of uploads must queue here rather than overload it.
        """
        self._wait_for_warm_up()
        if not self._in_flight.acquire(timeout=self._queue_wait_s):
            raise AirflowUnreachable(
                f"{method} {url}: still queued after {self._queue_wait_s:.0f} s (AIRFLOW_MAX_IN_FLIGHT)"
            )
        try:
            return self._send_now(method, url, **kwargs)
        finally:
            self._in_flight.release()

    def _send_now(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(
                method, url, auth=self.auth, timeout=self.timeout, allow_redirects=False, **kwargs
            )
            if response.status_code == 401 and self.auth.refreshable:
                self.auth.invalidate()
                response = self.session.request(
                    method, url, auth=self.auth, timeout=self.timeout, allow_redirects=False, **kwargs
                )
        except requests.RequestException as exc:
            raise AirflowUnreachable(f"{method} {url}: {_describe(exc)}") from None
        return response

    def _wait_for_warm_up(self) -> None:
        warming = self._warming
        if warming is not None and not getattr(self._warm_up_thread, "active", False):
            warming.wait(self.timeout[0])  # the warm-up is fetching the token and opening the connection: share them

    def api_version(self) -> str:
        """v1 (Airflow 2) or v2 (Airflow 3): configured, or probed once with GET …/version and cached."""
        self._wait_for_warm_up()  # it may correct a configured version
        if self._version:
            return self._version
        with self._version_lock:
            if not self._version:
                self._version = self._probe()
            return self._version

    def preload_trust(self) -> bool:
        """Load the CA bundle Airflow's certificate is checked against (``SharedTrustAdapter``) now, not at the first
        connection; True if there was one to load."""
        adapter = self.session.get_adapter(self.base_url)
        if not isinstance(adapter, SharedTrustAdapter) or not self.base_url.lower().startswith("https"):
            return False
        verify = self.session.merge_environment_settings(self.base_url, {}, None, None, None)["verify"]
        return adapter.trust_context(verify) is not None

    def open_connection(self) -> bool:
        """A pooled connection to Airflow, opened with a request that carries no credential (GET …/version) while
        the token is still being fetched elsewhere (``first_token``): the TLS handshake is then off the first event's
        path. The answer (401 without a token, 200, a 3xx: anything) is read and dropped; True if one came."""
        url = f"{self.base_url}/api/{self._version or 'v2'}/version"
        try:
            with self.session.request("GET", url, timeout=self.timeout, allow_redirects=False) as response:
                _ = response.content  # read to the end: the connection goes back to the pool
        except requests.RequestException:
            return False
        return True

    def hold_first_calls(self) -> Callable[[], None]:
        """With a configured version, make calls wait (at most the connect timeout) until the returned function is
        called: the warm-up (``warm_up``, in another thread) is fetching the token and opening the connection, which a
        first event would otherwise fetch and open a second time, next to it (two TLS handshakes at once). Nothing is
        held for ``auto``: there the event waits for the probe on the version lock."""
        if not self.version_known:
            return lambda: None
        warming = threading.Event()
        self._warming = warming

        def release() -> None:
            self._warming = None
            warming.set()

        return release

    def warm_up(self) -> str:
        """Token, API version and a pooled connection before the first event, with one request; returns the version.

        ``auto``: the probe. Configured: GET /api/<version>/version, which confirms it (or, when this Airflow does not
        serve it, corrects it as a trigger's 404 would: ``_recheck``). Without a request the connection cannot be
        kept: the server's TLS 1.3 session tickets arrive after the handshake, and urllib3 takes an idle connection
        with bytes to read for a dropped one and opens another (measured: the first POST connected again).
        Raises like a call would."""
        if not self.version_known:
            return self.api_version()
        self._warm_up_thread.active = True
        try:
            return self._recheck(self.api_version(), known_missing=False)
        finally:
            self._warm_up_thread.active = False

    def _recheck(self, version: str, known_missing: bool = True) -> str:
        """The version to use after a 404 or 405 (Airflow 3 on a v1 path) under a configured, unconfirmed version
        (or at the warm-up, ``known_missing=False``). GET /api/<version>/version not answering as the probe expects
        means this Airflow does not serve that API: the probe decides, with one warning."""
        with self._version_lock:
            if not self._unconfirmed or self._version != version:
                return self._version or version  # another thread rechecked meanwhile
            self._unconfirmed = False
            response = self._send("GET", f"{self.base_url}/api/{version}/version")
            if response.status_code in (200, 401, 403):  # as the probe reads it: the API is there, the DAG is not
                return version
            if not known_missing and response.status_code not in (404, 405):
                self._unconfirmed = True  # Airflow is not answering yet (5xx, 3xx): a trigger's 404 checks again
                return version
            found = self._probe()
            logging.getLogger("dagtrigger").warning(
                "AIRFLOW_API_VERSION=%s, but %s does not serve /api/%s; using %s, which it serves: set "
                "AIRFLOW_API_VERSION=%s or auto [api-version-mismatch]",
                version,
                self.base_url,
                version,
                found,
                found,
                extra={"api_version": found},
            )
            self._version = found
            return found

    @property
    def version_known(self) -> bool:
        """Configured or already probed: ``api_version()`` sends no request then."""
        return self._version is not None

    def _probe(self) -> str:
        seen = []
        for version in ("v2", "v1"):
            response = self._send("GET", f"{self.base_url}/api/{version}/version")
            # 401/403 still prove the endpoint exists; 404 (or 405) means this API is not served here.
            if response.status_code in (200, 401, 403):
                return version
            if 300 <= response.status_code < 400:  # not followed (the credential would go along), not retried
                raise AirflowUnreachable(
                    f"GET /api/{version}/version at {self.base_url} answered {response.status_code} (a redirect), "
                    "which is never followed with credentials: set AIRFLOW_URI to the final address [airflow-redirect]",
                    transient=False,
                )
            seen.append(f"/api/{version}/version → {response.status_code}")
        raise AirflowUnreachable(
            f"could not detect the Airflow API version at {self.base_url} ({'; '.join(seen)}); check AIRFLOW_URI "
            "or set AIRFLOW_API_VERSION=v1 (Airflow 2) or v2 (Airflow 3)"
        )

    def dag_runs_url(self, dag_id: str, version: str | None = None) -> str:
        return f"{self.base_url}/api/{version or self.api_version()}/dags/{quote(dag_id, safe='')}/dagRuns"

    def trigger(self, call: TriggerCall, logical_date: datetime | None = None) -> AirflowReply:
        """POST one DAG run, on Airflow 2 with ``logical_date`` (None: Airflow's now()). A 409 is Airflow's answer
        as is: what it proves is trigger.py's to find out. Raises AirflowUnreachable when no answer came within the
        retry budget."""
        version = self.api_version()
        response = self._send(
            "POST", self.dag_runs_url(call.dag_id, version), json=_trigger_body(call, version, logical_date)
        )
        missing = response.status_code in (404, 405) and (self._unconfirmed or self._version != version)
        if missing and self._recheck(version) != version:
            version = self.api_version()
            response = self._send(
                "POST", self.dag_runs_url(call.dag_id, version), json=_trigger_body(call, version, logical_date)
            )
        elif self._unconfirmed and (200 <= response.status_code < 300 or response.status_code == 409):
            self._unconfirmed = False  # Airflow's API answered under this version: it is served
        created = 200 <= response.status_code < 300  # not response.ok: that is true for a 3xx too
        if created:
            try:
                value = response.json()
            except ValueError:
                value = None
            if not isinstance(value, dict):
                # Airflow answers a created run with the run as JSON; a 2xx page (a proxy's, a sign-in page) is no
                # proof that the run exists, so the event must not be acknowledged on it.
                raise AirflowUnreachable(
                    f"POST {self.dag_runs_url(call.dag_id, version)} answered {response.status_code} with "
                    f"{short_message(response)[:80]!r}, not a DAG run: a proxy or sign-in page in front of Airflow? "
                    "check AIRFLOW_URI and AIRFLOW_AUTH"
                )
        message = "" if created else short_message(response)
        return AirflowReply(response.status_code, message, version)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """A run's state (queued, running, success, failed), None when no such run; AirflowUnreachable otherwise."""
        run = self.get_run(dag_id, run_id)
        return run.state if run is not None else None

    def get_run(self, dag_id: str, run_id: str) -> RunInfo | None:
        """One run (state, start and end times), None when no such run; AirflowUnreachable otherwise."""
        response = self._send("GET", f"{self.dag_runs_url(dag_id)}/{quote(run_id, safe='')}")
        if response.status_code == 404:
            return None
        try:
            run = RunInfo.from_json(response.json(), run_id) if response.ok else None
        except (ValueError, AttributeError):
            run = None
        if run is None:
            raise AirflowUnreachable(
                f"reading run {run_id!r} of DAG {dag_id!r} answered {response.status_code}: "
                f"{short_message(response)[:120] or '(no state)'}"
            )
        return run

    def list_runs(self, dag_id: str, updated_since: datetime, page_size: int = RUNS_PAGE) -> Iterator[RunInfo]:
        """The DAG's runs created or changed at or after ``updated_since``, one GET per page of ``page_size`` (both
        majors cap a page at [api] maximum_page_limit, 100 by default; the server's answer decides the paging).

        Ordered by id, so runs created while paging land on later pages, never shift earlier ones. A 404 (no such
        DAG) yields nothing; any other failure raises AirflowUnreachable."""
        offset = 0
        while True:
            params = {"updated_at_gte": _iso(updated_since), "order_by": "id", "limit": page_size, "offset": offset}
            response = self._send("GET", self.dag_runs_url(dag_id), params=params)
            if response.status_code == 404:
                return
            try:
                payload = response.json() if response.ok else None
            except ValueError:
                payload = None
            runs = payload.get("dag_runs") if isinstance(payload, dict) else None
            if not isinstance(runs, list):
                raise AirflowUnreachable(
                    f"listing the runs of DAG {dag_id!r} answered {response.status_code}: "
                    f"{short_message(response)[:120] or '(no runs)'}"
                )
            for item in runs:
                run = RunInfo.from_json(item)
                if run is not None:
                    yield run
            offset += len(runs)
            total = payload.get("total_entries") if isinstance(payload, dict) else None
            if not runs or (isinstance(total, int) and offset >= total):
                return

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET an API path (``dags/x``) under the detected version; for operator commands."""
        return self._send("GET", f"{self.base_url}/api/{self.api_version()}/{path.lstrip('/')}", **kwargs)

    def probe_trigger(self, dag_id: str, body: dict[str, Any]) -> requests.Response:
        """POST ``body`` to the DAG's runs as a trigger would, and return Airflow's answer as is: for ``check``'s
        permission probe, a body Airflow refuses only after its permission check (so no run is created)."""
        return self._send("POST", self.dag_runs_url(dag_id), json=body)


def _trigger_body(call: TriggerCall, version: str, logical_date: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {"dag_run_id": call.run_id, "conf": call.conf}
    if version == "v2":
        body["logical_date"] = None  # v2 requires the field; null avoids logical-date collisions.
        if call.run_after is not None:
            body["run_after"] = _iso(call.run_after)
    elif logical_date is not None:
        body["logical_date"] = _iso(logical_date)
    if call.note:
        body["note"] = call.note
    return body


def _iso(moment: datetime) -> str:
    """RFC 3339 in UTC with an explicit offset (Airflow 2 refuses naive dates), microseconds kept."""
    return utc(moment).isoformat(timespec="microseconds")


def _describe(exc: requests.RequestException) -> str:
    """A one-line cause without URLs' query strings or headers (which could hold credentials)."""
    reason: Any = exc
    while reason is not None and not isinstance(reason, MaxRetryError):
        reason = reason.args[0] if reason.args and isinstance(reason.args[0], Exception) else None
    if isinstance(reason, MaxRetryError) and reason.reason is not None:
        return f"{type(exc).__name__}: {type(reason.reason).__name__} after retries"
    return type(exc).__name__
