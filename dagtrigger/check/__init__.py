"""``python -m dagtrigger check``: is this configuration able to trigger its DAGs, and if not, what is the fix?

It reads the same environment as the function and walks the path an event takes — configuration, identity, network,
API version, authentication, then each DAG the configuration can trigger — reporting ✓/⚠/✗ per step; every ✗ names
the fix. By concern: ``walk`` (the named steps), ``classify`` (pure: answers → symptoms, the permission probe),
``fixes`` (symptom → fix text), ``report`` (the result, as text or JSON).
"""

from __future__ import annotations

from .classify import (
    PROBE_BODY,
    PROBE_MARKER,
    classify_denial,
    classify_exception,
    classify_probe,
    dag_state_symptoms,
    dags_to_check,
)
from .fixes import FIXES, Facts, Symptom, fix_for
from .report import MARKS, CheckReport, Status, Step
from .walk import main, run_check

__all__ = [
    "FIXES",
    "MARKS",
    "PROBE_BODY",
    "PROBE_MARKER",
    "CheckReport",
    "Facts",
    "Status",
    "Step",
    "Symptom",
    "classify_denial",
    "classify_exception",
    "classify_probe",
    "dag_state_symptoms",
    "dags_to_check",
    "fix_for",
    "main",
    "run_check",
]
