"""docs/batch-windows.md#verifying-members gives DAG authors a member check that does not import dagtrigger: it must
accept every member the function seals and refuse planted, altered, copied and foreign-key ones."""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path
from typing import Any

from dagtrigger.deadletter.seal import SealKeys

DOC = Path(__file__).resolve().parents[2] / "docs" / "batch-windows.md"
KEY = base64.b64encode(b"member-seal-key-0123456789abcdef").decode()


def _documented_check() -> Any:
    text = DOC.read_text()
    section = text[text.index("### Verifying members") :]
    (code,) = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ")], re.S)[:1]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation's code block
    return namespace["member_verifies"]


def test_the_documented_check_agrees_with_the_function() -> None:
    verifies = _documented_check()
    member = {"key": "gcs_finalized__l__a.csv__1__ab", "late": False, "conf": {"name": "é/ü.csv", "n": [1, None]}}
    sealed = json.loads(json.dumps(SealKeys.parse(KEY).seal_member("ops", "m/k.json", member), ensure_ascii=False))
    assert verifies(sealed, "ops", "m/k.json", KEY)
    assert not verifies(member, "ops", "m/k.json", KEY)  # planted: no seal
    assert not verifies({**sealed, "late": True}, "ops", "m/k.json", KEY)  # altered
    assert not verifies(sealed, "ops", "m/other.json", KEY)  # copied into another batch's folder
    planted = {"key": "k", "late": False, "conf": {"n": float("nan")}, "seal": sealed["seal"]}  # json.loads takes NaN
    assert not verifies(planted, "ops", "m/k.json", KEY)  # refused, not raised: one object must not fail the task
    other = base64.b64encode(b"o" * 32).decode()
    assert not verifies(SealKeys.parse(other).seal_member("ops", "m/k.json", member), "ops", "m/k.json", KEY)


def _definitions(source: str, names: set[str]) -> dict[str, str]:
    """The AST of each top-level function or assignment named in ``names``."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            found[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in names:
            found[node.targets[0].id] = ast.dump(node.value)
    return found


def test_the_example_dag_runs_the_documented_check() -> None:
    """The example DAG (Airflow's venv has no dagtrigger to import) carries the documented check, unchanged."""
    text = DOC.read_text()
    section = text[text.index("### Verifying members") :]
    documented = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    dag = (DOC.parents[1] / "devtools" / "dags" / "dagtrigger_batch_example.py").read_text()
    names = {"DOMAIN", "member_verifies"}
    assert _definitions(dag, names) == _definitions(documented, names)
    assert set(_definitions(documented, names)) == names
