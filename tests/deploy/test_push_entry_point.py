"""deploy-http.sh deploys either entry point: trigger_http (signed webhooks) or trigger_push (Pub/Sub push + OIDC)."""

from __future__ import annotations

from .script_runner import ScriptRunner

BASE = ("--project", "my-proj", "--region", "us-central1", "--airflow-uri", "https://x.example", "--dag-id", "d")
SIGNED = ("--secret", "WEBHOOK_HMAC_SECRET=webhook-hmac:1")
PUSH = ("--env", "PUSH_AUDIENCE=https://f.run.app", "--env", "PUSH_SERVICE_ACCOUNTS=push@p.iam.gserviceaccount.com")


def test_webhooks_are_the_default_entry_point(run_script: ScriptRunner) -> None:
    result = run_script("deploy-http.sh", *BASE, *SIGNED)
    assert result.returncode == 0, result.stderr
    assert "--entry-point=trigger_http" in result.stdout


def test_push_deploys_trigger_push_with_its_audience(run_script: ScriptRunner) -> None:
    result = run_script("deploy-http.sh", *BASE, "--entry-point", "trigger_push", *PUSH)
    assert result.returncode == 0, result.stderr
    assert "--entry-point=trigger_push" in result.stdout and "PUSH_AUDIENCE=https://f.run.app" in result.stdout


def test_an_unknown_entry_point_is_refused(run_script: ScriptRunner) -> None:
    result = run_script("deploy-http.sh", *BASE, "--entry-point", "trigger_anything")
    assert result.returncode != 0 and "not trigger_http or trigger_push" in result.stderr


def test_a_deploy_the_function_would_refuse_to_start_is_refused_first(run_script: ScriptRunner) -> None:
    """main.py stops trigger_push without PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNTS, and trigger_http without a signing
    secret: the deploy says so before deploying."""
    push = run_script("deploy-http.sh", *BASE, "--entry-point", "trigger_push", *PUSH[:2])
    assert push.returncode == 2 and "PUSH_SERVICE_ACCOUNTS" in push.stderr, push.stderr
    unsigned = run_script("deploy-http.sh", *BASE)
    assert unsigned.returncode == 2 and "--secret WEBHOOK_HMAC_SECRET" in unsigned.stderr, unsigned.stderr
    iam_only = run_script("deploy-http.sh", *BASE, "--env", "WEBHOOK_AUTH=cloud-run-iam")
    assert iam_only.returncode == 0, iam_only.stderr
