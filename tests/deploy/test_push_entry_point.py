"""deploy-http.sh deploys either entry point: trigger_http (signed webhooks) or trigger_push (Pub/Sub push + OIDC)."""

from __future__ import annotations

from .script_runner import ScriptRunner

BASE = ("--project", "my-proj", "--region", "us-central1", "--airflow-uri", "https://x.example", "--dag-id", "d")


def test_webhooks_are_the_default_entry_point(run_script: ScriptRunner) -> None:
    result = run_script("deploy-http.sh", *BASE)
    assert result.returncode == 0, result.stderr
    assert "--entry-point=trigger_http" in result.stdout


def test_push_deploys_trigger_push_with_its_audience(run_script: ScriptRunner) -> None:
    result = run_script(
        "deploy-http.sh", *BASE, "--entry-point", "trigger_push", "--env", "PUSH_AUDIENCE=https://f.run.app"
    )
    assert result.returncode == 0, result.stderr
    assert "--entry-point=trigger_push" in result.stdout and "PUSH_AUDIENCE=https://f.run.app" in result.stdout


def test_an_unknown_entry_point_is_refused(run_script: ScriptRunner) -> None:
    result = run_script("deploy-http.sh", *BASE, "--entry-point", "trigger_anything")
    assert result.returncode != 0 and "not trigger_http or trigger_push" in result.stderr
