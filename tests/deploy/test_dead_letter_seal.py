"""The dead-letter seal key (issue 16, finding 4) is deployed like every other secret: from Secret Manager only.

The deploy scripts map it with ``--secret DEAD_LETTER_SEAL_SECRET=SECRET_ID:VERSION`` (gcloud's --set-secrets) and
refuse it as a plain ``--env`` (its name holds SECRET); ``--dead-letter-uri`` without it prints a warning, as
``dagtrigger check`` does; the sweep job, whose drain writes records too, gets it the same way. Terraform maps
``dead_letter_seal_secret`` (and, during a rotation, a previous version of it) into the secret environment, warns
without it, and grants one accessor binding per secret. Terraform's locals are evaluated by ``terraform console``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .script_runner import DEPLOY_DIR, ScriptRunner
from .test_least_privilege import _terraform_local
from .test_scripts import HTTP, PUBSUB, STORAGE, deploy_command, env_vars, flags
from .test_sweep_deploy import SWEEP

DEPLOYS = {"deploy-storage.sh": STORAGE, "deploy-pubsub.sh": PUBSUB, "deploy-http.sh": HTTP}
DEAD_LETTERS = ("--dead-letter-uri", "gs://ops/dead-letters")
SEAL = ("--secret", "DEAD_LETTER_SEAL_SECRET=dead-letter-seal:2")
KEY_VALUE = "c2VhbC1rZXktdGhhdC1tdXN0LW5vdC1wcmludA=="
needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not installed")


@pytest.mark.parametrize("script", sorted(DEPLOYS))
@pytest.mark.parametrize("name", ["DEAD_LETTER_SEAL_SECRET", "DEAD_LETTER_SEAL_SECRET_PREVIOUS"])
def test_the_seal_key_is_refused_as_a_plain_env(run_script: ScriptRunner, script: str, name: str) -> None:
    result = run_script(script, *DEPLOYS[script], *DEAD_LETTERS, "--env", f"{name}={KEY_VALUE}")
    assert result.returncode == 2 and f"{name} looks like a secret" in result.stderr, result.stderr
    assert f"--secret {name}=SECRET_ID:VERSION" in result.stderr
    assert KEY_VALUE not in result.stdout + result.stderr and not result.commands


@pytest.mark.parametrize("script", sorted(DEPLOYS))
def test_the_seal_key_comes_from_secret_manager_and_its_absence_is_warned_about(
    run_script: ScriptRunner, script: str
) -> None:
    sealed = run_script(script, *DEPLOYS[script], *DEAD_LETTERS, *SEAL)
    deploy = deploy_command(sealed)
    assert "DEAD_LETTER_SEAL_SECRET=dead-letter-seal:2" in flags(deploy)["--set-secrets"][0]
    assert "DEAD_LETTER_SEAL_SECRET" not in env_vars(deploy)
    assert "written unsealed" not in sealed.stdout + sealed.stderr
    unsealed = run_script(script, *DEPLOYS[script], *DEAD_LETTERS)
    assert unsealed.returncode == 0, unsealed.stderr
    assert "WARNING: --dead-letter-uri without --secret DEAD_LETTER_SEAL_SECRET" in unsealed.stdout, unsealed.stdout
    assert "docs/dead-letters.md#seals" in unsealed.stdout
    without_dead_letters = run_script(script, *DEPLOYS[script])
    assert "written unsealed" not in without_dead_letters.stdout  # nothing is written: nothing to seal


def test_the_sweep_job_which_drains_into_dead_letters_gets_the_key_too(run_script: ScriptRunner) -> None:
    result = run_script("deploy-sweep.sh", *SWEEP, *SEAL)
    assert result.returncode == 0, result.stderr
    job = flags(result.command("gcloud", "run", "jobs", "deploy"))
    assert job["--set-secrets"] == ["DEAD_LETTER_SEAL_SECRET=dead-letter-seal:2"]
    grant = flags(result.command("gcloud", "secrets", "add-iam-policy-binding"))
    assert grant["--role"] == ["roles/secretmanager.secretAccessor"]
    assert result.command("gcloud", "secrets", "add-iam-policy-binding")[3] == "dead-letter-seal"


# ----------------------------------------------------------------------------- Terraform

SEAL_LOCALS = ("seal_environment", "dead_letters_unsealed")
TF_BASE = {"project_id": "my-proj", "region": "us-central1"}


def _local(tmp_path: Path, name: str, **tfvars: object) -> Any:
    tmp_path.mkdir(exist_ok=True)
    return _terraform_local(tmp_path, name, {**TF_BASE, **tfvars}, SEAL_LOCALS, as_json=True)


@needs_terraform
def test_terraform_maps_the_seal_secret_and_its_previous_version(tmp_path: Path) -> None:
    env = _local(
        tmp_path / "a", "seal_environment", dead_letter_seal_secret="dl-seal", dead_letter_seal_secret_version="4"
    )
    assert env == {"DEAD_LETTER_SEAL_SECRET": {"secret": "dl-seal", "version": "4", "project_id": "my-proj"}}
    rotating = _local(
        tmp_path / "b", "seal_environment", dead_letter_seal_secret="dl-seal", dead_letter_seal_secret_version="4",
        dead_letter_seal_secret_previous_version="3",
    )  # fmt: skip
    assert rotating["DEAD_LETTER_SEAL_SECRET_PREVIOUS"] == {
        "secret": "dl-seal",
        "version": "3",
        "project_id": "my-proj",
    }
    assert _local(tmp_path / "c", "seal_environment", dead_letter_seal_secret_previous_version="3") == {}


@needs_terraform
@pytest.mark.parametrize(
    ("tfvars", "unsealed"),
    [
        ({"dead_letter_uri": "gs://ops/dl"}, True),
        ({"dead_letter_uri": "gs://ops/dl", "dead_letter_seal_secret": "dl-seal"}, False),
        ({"dead_letter_uri": "gs://ops/dl", "secrets": {"DEAD_LETTER_SEAL_SECRET": {"secret": "dl-seal"}}}, False),
        ({}, False),
    ],
)
def test_terraform_warns_when_dead_letters_are_unsealed(
    tmp_path: Path, tfvars: dict[str, object], unsealed: bool
) -> None:
    assert _local(tmp_path, "dead_letters_unsealed", **tfvars) is unsealed
    main = (DEPLOY_DIR / "terraform" / "main.tf").read_text(encoding="utf-8")
    assert 'check "dead_letters_sealed"' in main and "condition     = !local.dead_letters_unsealed" in main


@needs_terraform
def test_terraform_binds_each_secret_once_whatever_reads_it(tmp_path: Path) -> None:
    """Two bindings of one member on one secret are two resources: removing the previous key's after a rotation would
    revoke the access the current key's still needs. The real ``secret_accessors`` line over a rotation's secrets."""
    main = (DEPLOY_DIR / "terraform" / "main.tf").read_text(encoding="utf-8")
    line = next(x for x in main.splitlines() if x.strip().startswith("secret_accessors"))
    secret_environment = {
        "DEAD_LETTER_SEAL_SECRET": {"secret": "dl-seal", "version": "4", "project_id": "p"},
        "DEAD_LETTER_SEAL_SECRET_PREVIOUS": {"secret": "dl-seal", "version": "3", "project_id": "p"},
        "AIRFLOW_PASSWORD": {"secret": "pw", "version": "1", "project_id": "p"},
    }
    module = tmp_path / "module"
    module.mkdir()
    (module / "locals.tf").write_text(
        "locals {\n  secret_environment = jsondecode(" + json.dumps(json.dumps(secret_environment)) + ")\n"
        + line + "\n}\n", encoding="utf-8",
    )  # fmt: skip
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TF_IN_AUTOMATION": "1"}
    out = subprocess.run(
        ["terraform", "console"], cwd=module, env=env, input="jsonencode(keys(local.secret_accessors))\n",
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(json.loads(out.stdout.strip())) == ["AIRFLOW_PASSWORD", "DEAD_LETTER_SEAL_SECRET"]
    iam = (DEPLOY_DIR / "terraform" / "iam.tf").read_text(encoding="utf-8")
    sweep = (DEPLOY_DIR / "terraform" / "sweep.tf").read_text(encoding="utf-8")
    assert "for_each  = local.secret_accessors" in iam and "local.secret_accessors : {}" in sweep
