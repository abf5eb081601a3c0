"""The result of ``check``: one ✓/⚠/✗ line per step, with the fix under each ✗ and ⚠; text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ..redaction import redact
from .fixes import Symptom


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


MARKS = {Status.OK: "✓", Status.WARN: "⚠", Status.FAIL: "✗"}


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str
    fix: str = ""
    symptom: Symptom | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "symptom": self.symptom.value if self.symptom else None,
        }

    def render(self) -> str:
        line = f"{MARKS[self.status]} {self.name}: {self.detail}"
        return f"{line}\n    fix: {self.fix}" if self.fix else line


@dataclass(frozen=True)
class CheckReport:
    steps: tuple[Step, ...]
    airflow_uri: str = ""

    @property
    def ok(self) -> bool:
        """No ✗ (warnings allowed)."""
        return all(s.status is not Status.FAIL for s in self.steps)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        fails = sum(s.status is Status.FAIL for s in self.steps)
        warns = sum(s.status is Status.WARN for s in self.steps)
        if fails:
            return f"✗ {fails} problem(s), {warns} warning(s): the function cannot trigger every DAG yet"
        if warns:
            return f"⚠ ready, with {warns} warning(s)"
        return "✓ ready: the function can trigger every DAG it is configured for"

    def render(self) -> str:
        return "\n".join([*(s.render() for s in self.steps), self.summary()])

    def redacted(self, user: str = "") -> CheckReport:
        """The report as printed: details (they quote Airflow's answers) fully redacted, fix texts (our advice, its
        outside values redacted when it was written) only of known secrets; the Airflow ``user`` name stays readable."""
        public = (user,) if user else ()
        steps = tuple(
            replace(s, detail=redact(s.detail, public=public), fix=redact(s.fix, public=public, patterns=False))
            for s in self.steps
        )
        return replace(self, steps=steps, airflow_uri=redact(self.airflow_uri, public=public))

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "airflow_uri": self.airflow_uri, "steps": [s.as_json() for s in self.steps]}
