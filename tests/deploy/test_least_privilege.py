"""Issue 9, item 9: the deployment grants no more than triggering needs.

Secrets only from Secret Manager (a secret-looking name in ``--env`` / ``extra_env`` is refused, with the way to do it
instead), event-triggered functions internal-only by default, ``roles/composer.user`` on the Composer environment's
project, and a narrow Airflow role next to ``Op``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .script_runner import DEPLOY_DIR, Result, ScriptRunner
from .test_scripts import HTTP, PROJECT, PUBSUB, SA, STORAGE, deploy_command, env_vars, flags

DEPLOYS = {"deploy-storage.sh": STORAGE, "deploy-pubsub.sh": PUBSUB, "deploy-http.sh": HTTP}
SECRET_VALUE = "hunter2-do-not-print-me"

# ----------------------------------------------------------------------------- secrets only from Secret Manager


@pytest.mark.parametrize("script", sorted(DEPLOYS))
@pytest.mark.parametrize(
    "name",
    ["WEBHOOK_HMAC_SECRET", "SHOP_WEBHOOK_SECRET", "ordersSecret", "DB_PASSWORD", "GITHUB_TOKEN", "AIRFLOW_PASSWORD"],
)
def test_a_secret_looking_env_is_refused_with_the_secret_manager_way(
    run_script: ScriptRunner, script: str, name: str
) -> None:
    result = run_script(script, *DEPLOYS[script], "--env", f"{name}={SECRET_VALUE}")
    assert result.returncode == 2, result.stdout
    assert f"{name} looks like a secret" in result.stderr
    assert f"--secret {name}=SECRET_ID:VERSION" in result.stderr
    assert "Secret Manager" in result.stderr and "--set-secrets" in result.stderr
    assert SECRET_VALUE not in result.stdout + result.stderr, "the refusal must not echo the secret"
    assert not result.commands, "nothing may be listed, let alone deployed"


@pytest.mark.parametrize("pair", ["LOG_LEVEL=DEBUG", "WEBHOOK_TOLERANCE_SECONDS=60", "STORAGE_EVENT_TYPES=finalized"])
def test_plain_settings_still_pass_through_env(run_script: ScriptRunner, pair: str) -> None:
    name, value = pair.split("=")
    assert env_vars(deploy_command(run_script("deploy-http.sh", *HTTP, "--env", pair)))[name] == value


def test_webhook_secrets_come_from_secret_manager(run_script: ScriptRunner) -> None:
    result = run_script(
        "deploy-http.sh",
        *HTTP[:-2],  # HTTP without its own --secret WEBHOOK_HMAC_SECRET=…
        "--secret",
        "WEBHOOK_HMAC_SECRET=webhook-hmac:3",
        "--secret",
        "SHOP_WEBHOOK_SECRET=projects/vault/secrets/shop-hmac:latest",
    )
    deploy = deploy_command(result)
    # :latest is pinned to the version current at deploy time (looked up first; a placeholder in --dry-run).
    lookup = ["gcloud", "secrets", "versions", "describe", "latest", "--secret=shop-hmac", "--project=vault"]
    assert [c[: len(lookup)] for c in result.commands].count(lookup) == 1
    assert flags(deploy)["--set-secrets"] == [
        "WEBHOOK_HMAC_SECRET=webhook-hmac:3,SHOP_WEBHOOK_SECRET=projects/vault/secrets/shop-hmac:<VERSION_OF_shop-hmac>"
    ]
    assert not {"WEBHOOK_HMAC_SECRET", "SHOP_WEBHOOK_SECRET"} & set(env_vars(deploy))


# ----------------------------------------------------------------------------- ingress


@pytest.mark.parametrize("script", ["deploy-storage.sh", "deploy-pubsub.sh"])
def test_event_triggered_functions_are_internal_only_by_default(run_script: ScriptRunner, script: str) -> None:
    result = run_script(script, *DEPLOYS[script])
    assert flags(deploy_command(result))["--ingress-settings"] == ["internal-only"]
    assert "Eventarc" in result.stdout  # the note says why, and how to override


@pytest.mark.parametrize("script", ["deploy-storage.sh", "deploy-pubsub.sh"])
def test_ingress_can_be_opened_explicitly(run_script: ScriptRunner, script: str) -> None:
    result = run_script(script, *DEPLOYS[script], "--ingress-settings", "all")
    assert flags(deploy_command(result))["--ingress-settings"] == ["all"]


def test_webhooks_keep_all_ingress_and_rely_on_iam(run_script: ScriptRunner) -> None:
    """Webhook senders are outside Google Cloud: internal-only would lock them out; IAM still applies."""
    deploy = deploy_command(run_script("deploy-http.sh", *HTTP))
    assert "--ingress-settings" not in flags(deploy)
    assert "--no-allow-unauthenticated" in deploy


# ----------------------------------------------------------------------------- roles/composer.user scope


def _bindings(result: Result) -> list[tuple[str, str, str]]:
    """(project, member, role) of every project-level binding listed."""
    out = []
    for cmd in result.commands:
        if cmd[:3] == ["gcloud", "projects", "add-iam-policy-binding"]:
            f = flags(cmd)
            out.append((cmd[3], f["--member"][0], f["--role"][0]))
    return out


def test_composer_user_goes_to_the_environments_project(run_script: ScriptRunner) -> None:
    result = run_script("iam.sh", *PROJECT, "--trigger", "storage", "--composer-project", "airflow-prod")
    assert result.returncode == 0, result.stderr
    composer = [b for b in _bindings(result) if b[2] == "roles/composer.user"]
    assert composer == [("airflow-prod", f"serviceAccount:{SA}", "roles/composer.user")]
    assert all(b[0] == "my-proj" for b in _bindings(result) if b[2] != "roles/composer.user")


def test_composer_user_defaults_to_the_functions_project(run_script: ScriptRunner) -> None:
    result = run_script("iam.sh", *PROJECT, "--trigger", "http")
    assert [b for b in _bindings(result) if b[2] == "roles/composer.user"] == [
        ("my-proj", f"serviceAccount:{SA}", "roles/composer.user")
    ]


# ----------------------------------------------------------------------------- Terraform


def _variable_block(name: str) -> str:
    """The text of one `variable "NAME" { ... }` block of variables.tf (braces balanced)."""
    text = (DEPLOY_DIR / "terraform" / "variables.tf").read_text(encoding="utf-8")
    start = text.index(f'variable "{name}" {{')
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0 and text[i] == "}":
            return text[start : i + 1]
    raise AssertionError(f"unbalanced block {name}")


def _terraform_plan(tmp_path: Path, variable: str, value: object) -> subprocess.CompletedProcess[str]:
    """Evaluate the real variable block's validation: a module with only that variable needs no provider."""
    (tmp_path / "main.tf").write_text(_variable_block(variable) + "\n", encoding="utf-8")
    (tmp_path / "terraform.tfvars.json").write_text(json.dumps({variable: value}), encoding="utf-8")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TF_IN_AUTOMATION": "1"}
    init = subprocess.run(
        ["terraform", "init", "-backend=false", "-input=false"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    return subprocess.run(
        ["terraform", "plan", "-input=false", "-no-color"], cwd=tmp_path, env=env, capture_output=True, text=True
    )


needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not installed")


@needs_terraform
@pytest.mark.parametrize("name", ["WEBHOOK_HMAC_SECRET", "SHOP_WEBHOOK_SECRET", "db_password", "GITHUB_TOKEN"])
def test_terraform_refuses_a_secret_looking_extra_env(tmp_path: Path, name: str) -> None:
    plan = _terraform_plan(tmp_path, "extra_env", {name: SECRET_VALUE, "LOG_LEVEL": "DEBUG"})
    assert plan.returncode != 0
    message = " ".join(plan.stderr.split())
    assert "extra_env" in message and "secrets" in message and "secret_environment_variables" in message


@needs_terraform
def test_terraform_accepts_plain_extra_env(tmp_path: Path) -> None:
    plan = _terraform_plan(tmp_path, "extra_env", {"LOG_LEVEL": "DEBUG", "WEBHOOK_TOLERANCE_SECONDS": "60"})
    assert plan.returncode == 0, plan.stderr


def _terraform_local(
    tmp_path: Path, name: str, tfvars: dict[str, object], needs: tuple[str, ...], as_json: bool = False
) -> Any:
    """``local.NAME`` as Terraform computes it from ``tfvars``: the real variables.tf and the real one-line
    definitions of ``needs`` (NAME among them) from main.tf, evaluated by ``terraform console`` (no provider)."""
    main = (DEPLOY_DIR / "terraform" / "main.tf").read_text(encoding="utf-8")
    lines = []
    for local in needs:
        found = re.search(rf"^\s*{local}\s*=.*$", main, re.M)
        assert found, local
        lines.append(found.group(0))
    module = tmp_path / "module"
    module.mkdir()
    shutil.copy(DEPLOY_DIR / "terraform" / "variables.tf", module / "variables.tf")
    (module / "locals.tf").write_text("locals {\n" + "\n".join(lines) + "\n}\n", encoding="utf-8")
    (module / "terraform.tfvars.json").write_text(json.dumps(tfvars), encoding="utf-8")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TF_IN_AUTOMATION": "1"}
    out = subprocess.run(
        ["terraform", "console"],
        cwd=module,
        env=env,
        input=f"jsonencode(local.{name})\n" if as_json else f"local.{name}\n",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout.strip()
    return json.loads(json.loads(text)) if as_json else text.strip('"')


INGRESS_LOCALS = ("is_event", "is_push", "ingress_settings")
TF_BASE = {"project_id": "my-proj", "region": "us-central1"}


@needs_terraform
@pytest.mark.parametrize(
    ("tfvars", "expected"),
    [
        ({"trigger_kind": "storage"}, "ALLOW_INTERNAL_ONLY"),
        ({"trigger_kind": "pubsub"}, "ALLOW_INTERNAL_ONLY"),
        ({"trigger_kind": "http"}, "ALLOW_ALL"),
        # Issue 16, finding 13: Pub/Sub push from the function's project is internal traffic (docs/deploy.md#ingress)
        ({"trigger_kind": "http", "http_entry_point": "trigger_push"}, "ALLOW_INTERNAL_ONLY"),
        ({"trigger_kind": "http", "http_entry_point": "trigger_push", "ingress_settings": "ALLOW_ALL"}, "ALLOW_ALL"),
    ],
)
def test_terraform_ingress_is_internal_only_except_for_webhooks(
    tmp_path: Path, tfvars: dict[str, object], expected: str
) -> None:
    assert _terraform_local(tmp_path, "ingress_settings", {**TF_BASE, **tfvars}, INGRESS_LOCALS) == expected


def test_terraform_function_uses_the_computed_ingress_and_entry_point() -> None:
    main = (DEPLOY_DIR / "terraform" / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"ingress_settings\s*=\s*local\.ingress_settings", main)
    assert re.search(r"entry_point\s*=\s*local\.entry_point", main)
    assert re.search(r'default\s*=\s*""', _variable_block("ingress_settings"))


def test_terraform_composer_user_goes_to_the_environments_project() -> None:
    iam = (DEPLOY_DIR / "terraform" / "iam.tf").read_text(encoding="utf-8")
    block = iam[iam.index('resource "google_project_iam_member" "composer_user"') :]
    block = block[: block.index("}")]
    assert re.search(r"project\s*=\s*local\.composer_project", block), block


# ----------------------------------------------------------------------------- the narrow Airflow role

COMPOSER = [*PROJECT, "--composer-env", "prod", "--region", "us-central1"]
RUN = ["gcloud", "composer", "environments", "run", "prod", "--project=my-proj", "--location=us-central1"]


def test_role_for_every_dag_is_trigger_and_read_only(run_script: ScriptRunner) -> None:
    result = run_script("airflow-role.sh", *COMPOSER)
    assert result.returncode == 0, result.stderr
    assert result.commands == [
        [*RUN, "roles", "create", "--", "dagtrigger_trigger"],
        [*RUN, "roles", "add-perms", "--", "dagtrigger_trigger", "-r", "DAGs", "-a", "can_read", "can_edit"],
        [*RUN, "roles", "add-perms", "--", "dagtrigger_trigger", "-r", "DAG Runs", "-a", "can_read", "can_create"],
    ]


def test_role_for_named_dags_syncs_their_resources_first(run_script: ScriptRunner) -> None:
    result = run_script(
        "airflow-role.sh", *COMPOSER, "--composer-project", "airflow-prod", "--dag-id", "b_dag", "--dag-id", "a_dag"
    )
    assert result.returncode == 0, result.stderr
    run = [*RUN[:5], "--project=airflow-prod", RUN[6]]
    assert result.commands == [
        [*run, "sync-perm", "--", "--include-dags"],
        [*run, "roles", "create", "--", "dagtrigger_trigger"],
        [
            *run,
            "roles",
            "add-perms",
            "--",
            "dagtrigger_trigger",
            "-r",
            "DAG:a_dag",
            "DAG:b_dag",
            "-a",
            "can_read",
            "can_edit",
        ],
        [
            *run,
            "roles",
            "add-perms",
            "--",
            "dagtrigger_trigger",
            "-r",
            "DAG Run:a_dag",
            "DAG Run:b_dag",
            "-a",
            "can_read",
            "can_create",
        ],
    ]


@pytest.mark.parametrize(("version", "path"), [("v1", "/api/v1/roles"), ("v2", "/auth/fab/v1/roles")])
def test_role_through_the_fab_api(run_script: ScriptRunner, version: str, path: str) -> None:
    result = run_script(
        "airflow-role.sh", *COMPOSER, "--role", "dt_orders", "--dag-id", "orders", "--method", "api",
        "--airflow-api-version", version,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"<AIRFLOW_URI>{path}" in result.command("curl")
    (body,) = [line.split(" holds: ", 1)[1] for line in result.stdout.splitlines() if "<BODY_FILE> holds:" in line]
    assert json.loads(body) == role_body("dt_orders", ["orders"])


def role_body(name: str, dags: list[str]) -> dict[str, object]:
    """The role the FAB API gets: read+edit on each DAG, read+create on each DAG's runs."""
    pairs = [(a, f"DAG:{d}") for d in dags for a in ("can_read", "can_edit")]
    pairs += [(a, f"DAG Run:{d}") for d in dags for a in ("can_read", "can_create")]
    return {"name": name, "actions": [{"action": {"name": a}, "resource": {"name": r}} for a, r in pairs]}


@pytest.mark.parametrize("role", ["Op", "Admin", "Viewer"])
def test_role_refuses_airflows_own_roles(run_script: ScriptRunner, role: str) -> None:
    result = run_script("airflow-role.sh", *COMPOSER, "--role", role)
    assert result.returncode == 2
    assert "one of Airflow's own roles" in result.stderr


def test_register_swaps_op_for_the_narrow_role(run_script: ScriptRunner) -> None:
    result = run_script(
        "register-airflow-user.sh", *COMPOSER, "--add-role", "--role", "dagtrigger_trigger", "--remove-role", "Op"
    )
    assert result.returncode == 0, result.stderr
    user = "accounts.google.com:<NUMERIC_ID>"
    assert [c[7:] for c in result.commands if c[:4] == RUN[:4]] == [
        ["users", "add-role", "--", "-u", user, "-r", "dagtrigger_trigger"],
        ["users", "remove-role", "--", "-u", user, "-r", "Op"],
    ]


def test_remove_role_needs_add_role(run_script: ScriptRunner) -> None:
    result = run_script("register-airflow-user.sh", *COMPOSER, "--remove-role", "Op")
    assert result.returncode == 2
    assert "--remove-role works with --add-role only" in result.stderr


# ----------------------------------------------------------------------------- bucket-level grants


def _bucket_bindings(result: Result) -> list[tuple[str, str, str]]:
    out = []
    for cmd in result.commands:
        if cmd[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]:
            f = flags(cmd)
            out.append((cmd[4], f["--member"][0], f["--role"][0]))
    return out


def test_dead_letters_and_manifests_get_bucket_level_roles(run_script: ScriptRunner) -> None:
    result = run_script(
        "iam.sh", *PROJECT, "--trigger", "storage", "--dead-letter-uri", "gs://my-proj-dagtrigger/dead-letters",
        "--manifest-bucket", "exports", "--manifest-bucket", "gs://partner-drop",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    member = f"serviceAccount:{SA}"
    assert _bucket_bindings(result) == [
        ("gs://my-proj-dagtrigger", member, "roles/storage.objectUser"),
        ("gs://exports", member, "roles/storage.objectViewer"),
        ("gs://partner-drop", member, "roles/storage.objectViewer"),
    ]
    assert not [b for b in _bindings(result) if b[2].startswith("roles/storage.")], "never project-wide"


def test_no_bucket_roles_unless_asked(run_script: ScriptRunner) -> None:
    assert _bucket_bindings(run_script("iam.sh", *PROJECT, "--trigger", "http")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dead-letter-uri", "s3://b/p"], "invalid --dead-letter-uri"),
        (["--manifest-bucket", "Bad_Bucket!"], "invalid --manifest-bucket"),
    ],
)
def test_bad_bucket_options_exit_2(run_script: ScriptRunner, args: list[str], message: str) -> None:
    result = run_script("iam.sh", *PROJECT, "--trigger", "storage", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_terraform_grants_the_same_bucket_roles() -> None:
    iam = (DEPLOY_DIR / "terraform" / "iam.tf").read_text(encoding="utf-8")
    assert 'resource "google_storage_bucket_iam_member" "dead_letters"' in iam
    assert 'resource "google_storage_bucket_iam_member" "manifests"' in iam
    assert '"roles/storage.objectUser"' in iam and '"roles/storage.objectViewer"' in iam
    assert 'variable "manifest_buckets"' in (DEPLOY_DIR / "terraform" / "variables.tf").read_text(encoding="utf-8")


def test_a_variable_the_routes_name_is_refused_as_a_plain_env(run_script: ScriptRunner, tmp_path: Path) -> None:
    """Issue 16, finding 12: the name check missed a route's webhook.secrets naming any variable (``SHOP_KEY``)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "routes.yaml").write_text(
        "routes:\n  - name: shop\n    dag_id: shop\n    webhook:\n      secrets:\n        - SHOP_KEY\n"
    )
    args = [*HTTP, "--source", str(source), "--routes-file", "routes.yaml", "--env", f"SHOP_KEY={SECRET_VALUE}"]
    result = run_script("deploy-http.sh", *args)
    assert result.returncode == 2, result.stdout
    assert "SHOP_KEY is named in the routes file" in result.stderr
    assert SECRET_VALUE not in result.stdout + result.stderr
    assert not result.commands
    fine = run_script("deploy-http.sh", *args[:-2], "--env", "LOG_LEVEL=DEBUG")
    assert fine.returncode == 0, fine.stderr


@needs_terraform
def test_terraform_finds_the_plain_env_names_the_routes_use(tmp_path: Path) -> None:
    """Issue 16, finding 12 (Terraform's half): extra_env was checked by name only (SECRET/PASSWORD/TOKEN), while a
    route's webhook.secrets may name any variable. Terraform now lists the extra_env names the routes file mentions
    (a precondition refuses the function), as deploy/lib.sh does."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "routes.yaml").write_text(
        "routes:\n  - name: shop\n    dag_id: shop\n    webhook:\n      secrets:\n        - SHOP_KEY\n"
    )
    tfvars = {
        **TF_BASE,
        "trigger_kind": "http",
        "source_dir": str(source),
        "routes_file": "routes.yaml",
        "extra_env": {"SHOP_KEY": SECRET_VALUE, "LOG_LEVEL": "DEBUG", "SHOP": "x"},
    }
    needs = ("source_root", "routes_text", "plain_env_named_by_routes")
    found = _terraform_local(tmp_path, "plain_env_named_by_routes", tfvars, needs, as_json=True)
    assert found == ["SHOP_KEY"], found
    main = (DEPLOY_DIR / "terraform" / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"condition\s*=\s*length\(local\.plain_env_named_by_routes\)\s*==\s*0", main)
