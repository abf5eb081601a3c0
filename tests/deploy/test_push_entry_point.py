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


def test_push_is_deployed_internal_only_and_webhooks_are_not(run_script: ScriptRunner) -> None:
    """Issue 16, finding 13: trigger_push was deployed with ingress ``all``. Pub/Sub push from a subscription in the
    function's project is internal traffic for Cloud Run (docs/deploy.md#ingress), so push needs no public URL;
    webhook senders are outside Google Cloud, so trigger_http keeps gcloud's default."""
    push = run_script("deploy-http.sh", *BASE, "--entry-point", "trigger_push", *PUSH)
    assert push.returncode == 0, push.stderr
    assert "--ingress-settings=internal-only" in push.stdout, push.stdout
    assert "another project needs --ingress-settings all" in push.stdout
    webhook = run_script("deploy-http.sh", *BASE, *SIGNED)
    assert webhook.returncode == 0 and "--ingress-settings" not in webhook.stdout, webhook.stdout


def test_push_ingress_can_be_opened_explicitly(run_script: ScriptRunner) -> None:
    """A push subscription in another project is not internal traffic: the operator opens ingress by name."""
    push = run_script("deploy-http.sh", *BASE, "--entry-point", "trigger_push", *PUSH, "--ingress-settings", "all")
    assert push.returncode == 0, push.stderr
    assert "--ingress-settings=all" in push.stdout and "--ingress-settings=internal-only" not in push.stdout
