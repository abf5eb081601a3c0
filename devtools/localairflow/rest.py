"""The REST calls tools and tests make to a local Airflow (as a given user, never raising on an HTTP status), and
the settings that point the function at it."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, NamedTuple

from devtools.localairflow.common import (
    _HTTP_TIMEOUT_S,
    _MAX_PAGES,
    _PAGE_LIMIT,
    PASSWORD_USERS,
    AirflowServerError,
    Auth,
)
from devtools.ports import HOST


class Response(NamedTuple):
    """An HTTP answer; ``body`` is parsed JSON when the server sent JSON, else text."""

    status: int
    body: Any
    headers: Mapping[str, str]


class AirflowApi:
    """Airflow's REST API at ``url`` (``HOST:port``) for ``major`` in ``auth`` mode; the server class extends it."""

    def __init__(self, major: int, port: int, auth: Auth) -> None:
        self.major = major
        self.port = port
        self.auth: Auth = auth
        self._tokens: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_prefix(self) -> str:
        return "/api/v2" if self.major >= 3 else "/api/v1"

    def token_for(self, user: str, password: str) -> str:
        """An Airflow 3 JWT for ``user`` from ``POST /auth/token`` (valid 24 h, across restarts)."""
        if self.major < 3:
            raise AirflowServerError("Airflow 2 has no /auth/token; use headers_for() (basic auth)")
        answer = self._send("POST", "/auth/token", {"username": user, "password": password}, {})
        if answer.status not in (200, 201) or not isinstance(answer.body, dict):
            raise AirflowServerError(f"POST /auth/token for {user!r} answered {answer.status}: {answer.body!r}")
        return str(answer.body["access_token"])

    def headers_for(self, user: str = "admin") -> dict[str, str]:
        """The Authorization header that makes a request act as ``user`` ({} in ``none`` mode)."""
        if self.auth == "none":
            return {}
        if user not in PASSWORD_USERS:
            raise AirflowServerError(f"unknown user {user!r}; known: {sorted(PASSWORD_USERS)}")
        password = PASSWORD_USERS[user][0]
        if self.major >= 3:
            if user not in self._tokens:
                self._tokens[user] = self.token_for(user, password)
            return {"Authorization": f"Bearer {self._tokens[user]}"}
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {basic}"}

    def request(self, method: str, path: str, body: object = None, *, user: str = "admin") -> Response:
        """Call the server as ``user``; ``path`` starts with ``/``. HTTP errors are returned, not raised."""
        return self._send(method, path, body, self.headers_for(user))

    def list_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id`` in the server's default order, following pagination."""
        runs: list[dict[str, Any]] = []
        base = f"{self.api_prefix}/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns"
        for _ in range(_MAX_PAGES):
            answer = self.request("GET", f"{base}?limit={_PAGE_LIMIT}&offset={len(runs)}")
            if answer.status != 200 or not isinstance(answer.body, dict):
                raise AirflowServerError(f"GET {base} answered {answer.status}: {answer.body!r}")
            page = answer.body.get("dag_runs", [])
            runs.extend(page)
            if not page or len(runs) >= int(answer.body.get("total_entries", 0)):
                return runs
        raise AirflowServerError(f"more than {_MAX_PAGES} pages of runs for {dag_id}")

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """One run, or None if Airflow answers 404 (no such run or DAG)."""
        quote = urllib.parse.quote
        path = f"{self.api_prefix}/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        answer = self.request("GET", path)
        if answer.status == 404:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise AirflowServerError(f"GET {path} answered {answer.status}: {answer.body!r}")
        return answer.body

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The run once it is final (success or failed), polled every 0.5 s; at the deadline, the last one seen
        (None if it does not exist). Needs a scheduler: without one a run stays queued."""
        deadline = time.monotonic() + timeout_s
        run = self.get_run(dag_id, run_id)
        while time.monotonic() < deadline and (run is None or run.get("state") not in ("success", "failed")):
            time.sleep(0.5)
            run = self.get_run(dag_id, run_id)
        return run

    def _send(self, method: str, path: str, body: object, headers: Mapping[str, str]) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method.upper())
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as answer:
                status, raw, answer_headers = (answer.status, answer.read(), answer.headers)
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), error.headers
        except (urllib.error.URLError, OSError) as error:
            raise AirflowServerError(f"{method} {self.url}{path} failed: {error}") from error
        text = raw.decode("utf-8", "replace")
        parsed: Any = text
        if "json" in answer_headers.get("Content-Type", ""):
            with contextlib.suppress(ValueError):
                parsed = json.loads(text)
        return Response(status, parsed, dict(answer_headers.items()))


def function_env(airflow: AirflowApi, user: str = "op", **extra: str) -> dict[str, str]:
    """Settings for the function to talk to this server as ``user`` (basic on Airflow 2, JWT on Airflow 3)."""
    env = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "dagtrigger_example",
        "AIRFLOW_AUTH": "basic" if airflow.major == 2 else "airflow-jwt",
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": user,
        "AIRFLOW_RETRY_BUDGET_SECONDS": "3",
        "AIRFLOW_TIMEOUT_SECONDS": "10",
        # SQLite allows one writer: Airflow 3's api-server answers 500 and then hangs under concurrent trigger
        # POSTs (measured here), so the function queues its calls. Production databases take the default of 8.
        "AIRFLOW_MAX_IN_FLIGHT": "1",
    }
    env.update(extra)
    return env
