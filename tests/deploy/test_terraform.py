"""deploy/terraform: parses, is formatted, is self-consistent, and matches the gcloud scripts.

`terraform validate` needs the google provider, which only the Terraform registry serves (not
reachable here), so the checks are: every file parses (python-hcl2), `terraform fmt -check` when
the terraform binary is installed, references resolve, and the settings agree with deploy/*.sh
and .gcloudignore.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .script_runner import DEPLOY_DIR, REPO_ROOT

hcl2 = pytest.importorskip("hcl2", reason="pip install -r tests/deploy/requirements.txt (python-hcl2)")

TF_DIR = DEPLOY_DIR / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))


def unq(value: Any) -> Any:
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def load_all() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in TF_FILES:
        with path.open(encoding="utf-8") as handle:
            for key, found in hcl2.load(handle).items():
                if not key.startswith("__"):  # python-hcl2's __comments__ and the like
                    merged.setdefault(key, []).extend(found)
    return merged


def blocks(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """resource/data blocks by (type, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for block in load_all().get(kind, []):
        for rtype, instances in block.items():
            for name, body in instances.items():
                if not name.startswith("__"):
                    out[(unq(rtype), unq(name))] = body
    return out


def variables() -> dict[str, dict[str, Any]]:
    return {
        unq(name): body for block in load_all()["variable"] for name, body in block.items() if not name.startswith("__")
    }


def all_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in TF_FILES)


def test_every_file_parses() -> None:
    assert {p.name for p in TF_FILES} >= {"versions.tf", "variables.tf", "main.tf", "iam.tf", "outputs.tf"}
    for path in TF_FILES:
        with path.open(encoding="utf-8") as handle:
            assert hcl2.load(handle), path.name


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform") or shutil.which("tofu")
    if terraform is None:
        pytest.skip("terraform (or tofu) is not installed; formatting not checked")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}  # no version check against HashiCorp's servers
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-recursive", str(TF_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_variables_are_declared_described_and_typed() -> None:
    declared = variables()
    for name, body in declared.items():
        assert unq(body.get("description", "")), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
    used = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", all_text()))
    assert used - set(declared) == set(), "undeclared variables"
    assert set(declared) - used == set(), "unused variables"
    for required in ("project_id", "region", "airflow_uri", "dag_id", "trigger_kind"):
        assert required in declared


def test_locals_and_references_resolve() -> None:
    text = all_text()
    defined_locals = {name for block in load_all()["locals"] for name in block if not name.startswith("__")}
    assert set(re.findall(r"\blocal\.([a-z_][a-z0-9_]*)", text)) <= defined_locals
    resources, data = blocks("resource"), blocks("data")
    for rtype, name in re.findall(r"(?<![.\w])(google_[a-z0-9_]+|archive_[a-z0-9_]+)\.([a-z_][a-z0-9_]*)\b", text):
        if f"data.{rtype}.{name}" in text and (rtype, name) not in resources:
            continue
        assert (rtype, name) in resources, f"{rtype}.{name} is not a resource"
    for rtype, name in re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z_][a-z0-9_]*)\b", text):
        assert (rtype, name) in data, f"data.{rtype}.{name} is not declared"


def test_providers_are_pinned() -> None:
    (terraform,) = load_all()["terraform"]
    (providers,) = terraform["required_providers"]
    assert unq(providers["google"]["source"]) == "hashicorp/google"
    assert unq(providers["archive"]["source"]) == "hashicorp/archive"
    assert unq(terraform["required_version"]).startswith(">=")


def test_function_matches_the_gcloud_scripts() -> None:
    function = blocks("resource")[("google_cloudfunctions2_function", "function")]
    text = (TF_DIR / "main.tf").read_text(encoding="utf-8")
    # entry points and event types as in deploy-*.sh
    assert '"trigger_event"' in text and "var.http_entry_point" in text
    entry = variables()["http_entry_point"]
    assert unq(entry["default"]) == "trigger_http" and "trigger_push" in str(entry["validation"])
    assert '"google.cloud.storage.object.v1.finalized"' in text
    assert '"google.cloud.pubsub.topic.v1.messagePublished"' in text
    assert "RETRY_POLICY_RETRY" in text
    (service,) = function["service_config"]
    assert {
        "max_instance_count",
        "max_instance_request_concurrency",
        "available_memory",
        "available_cpu",
        "timeout_seconds",
    } <= set(service)
    assert "service_account_email" in service
    assert "secret_environment_variables" in str(service.get("dynamic", "")), "secrets come from Secret Manager"
    (build,) = function["build_config"]
    assert build["runtime"] == "${var.runtime}"
    # the same environment variable names as the scripts set
    lib = (DEPLOY_DIR / "lib.sh").read_text(encoding="utf-8")
    for name in (
        "AIRFLOW_URI",
        "DAG_ID",
        "AIRFLOW_API_VERSION",
        "AIRFLOW_AUTH",
        "AIRFLOW_USERNAME",
        "AIRFLOW_AUDIENCE",
        "AIRFLOW_TIMEOUT_SECONDS",
        "AIRFLOW_RETRY_BUDGET_SECONDS",
        "AIRFLOW_MAX_IN_FLIGHT",
        "MAX_INSTANCES",
        "AIRFLOW_CAPACITY",
        "ROUTES_FILE",
        "DEAD_LETTER_URI",
        "THREADS",
        "AIRFLOW_PASSWORD",
        "AIRFLOW_TOKEN",
    ):
        assert name in text, name
        assert name in lib, name


def test_defaults_match_the_scripts() -> None:
    declared = variables()
    lib = (DEPLOY_DIR / "lib.sh").read_text(encoding="utf-8")
    pairs = {
        "runtime": "DT_RUNTIME",
        "timeout_seconds": "DT_TIMEOUT",
        "memory": "DT_MEMORY",
        "cpu": "DT_CPU",
        "max_instances": "DT_MAX_INSTANCES",
        "max_in_flight": "DT_MAX_IN_FLIGHT",
        "airflow_capacity": "DT_AIRFLOW_CAPACITY",
        "concurrency": "DT_CONCURRENCY",
        "request_timeout_seconds": "DT_REQUEST_TIMEOUT",
        "retry_budget_seconds": "DT_RETRY_BUDGET",
    }
    for variable, shell in pairs.items():
        match = re.search(rf"^{shell}=(\S+)$", lib, re.M)
        assert match, shell
        assert str(unq(declared[variable]["default"])) == match.group(1), variable
    assert unq(declared["service_account_id"]["default"]) == "dagtrigger"


def test_iam_matches_iam_sh() -> None:
    resources = blocks("resource")
    roles = {unq(body["role"]) for (rtype, _), body in resources.items() if rtype.endswith("_iam_member")}
    assert roles == {
        "roles/composer.user",
        "roles/eventarc.eventReceiver",
        "roles/pubsub.publisher",
        "roles/iam.serviceAccountTokenCreator",
        "roles/secretmanager.secretAccessor",
        "roles/run.invoker",
        "roles/storage.objectUser",
        "roles/storage.objectViewer",
        "roles/pubsub.subscriber",  # the drain's one subscription (deploy-sweep.sh --drain-subscription)
    }
    scripts = ("iam.sh", "lib.sh", "deploy-storage.sh", "deploy-sweep.sh")
    iam_sh = "".join((DEPLOY_DIR / name).read_text(encoding="utf-8") for name in scripts)
    for role in roles:
        assert role in iam_sh, role
    assert ("google_service_account", "function") in resources
    assert ("google_storage_project_service_account", "gcs") in blocks("data")


def test_source_zip_uses_the_gcloudignore_allowlist(tmp_path: Path) -> None:
    """The regex that filters dagtrigger/** in main.tf drops what .gcloudignore drops."""
    pathspec = pytest.importorskip("pathspec")
    (locals_block,) = [b for b in load_all()["locals"] if "package_files" in b]
    match = re.search(r'regexall\("((?:[^"\\]|\\.)*)"', locals_block["package_files"])
    assert match, locals_block["package_files"]
    pattern = re.compile(match.group(1).encode().decode("unicode_escape"))  # HCL "\\." is the regex \.
    candidates = [
        "dagtrigger/__init__.py",
        "dagtrigger/sub/mod.py",
        "dagtrigger/data/schema.json",
        "dagtrigger/__pycache__/x.cpython-311.pyc",
        "dagtrigger/x.pyc",
        "dagtrigger/.DS_Store",
        "dagtrigger/sub/.hidden/x.py",
        "dagtrigger/x.py~",
        "dagtrigger/.x.py.swp",
    ]
    spec = pathspec.GitIgnoreSpec.from_lines((REPO_ROOT / ".gcloudignore").read_text(encoding="utf-8").splitlines())
    for path in candidates:
        dropped_by_tf = bool(pattern.search(path))
        parents = [path.rsplit("/", i)[0] + "/" for i in range(path.count("/"), 0, -1)]
        dropped_by_gcloud = any(spec.match_file(p) for p in parents) or spec.match_file(path)
        assert dropped_by_tf == dropped_by_gcloud, path
    assert '"main.py", "requirements.txt"' in (TF_DIR / "main.tf").read_text(encoding="utf-8")
    assert "routes.{yaml,yml,json}" in (TF_DIR / "main.tf").read_text(encoding="utf-8")


def test_example_tfvars_only_sets_declared_variables() -> None:
    declared = set(variables())
    with (TF_DIR / "terraform.tfvars.example").open(encoding="utf-8") as handle:
        example = {k for k in hcl2.load(handle) if not k.startswith("__")}
    assert example <= declared
    commented = re.findall(
        r"^#\s*([a-z_]+)\s*=", (TF_DIR / "terraform.tfvars.example").read_text(encoding="utf-8"), re.M
    )
    assert set(commented) <= declared


def test_the_dead_letter_topic_and_the_drain_match_the_scripts() -> None:
    resources = blocks("resource")
    hold = resources[("google_pubsub_subscription", "dead_letter_hold")]
    assert (hold["ack_deadline_seconds"], unq(hold["message_retention_duration"])) == (600, "604800s")
    forwarder = resources[("google_pubsub_topic_iam_member", "dead_letter_forwarder")]
    assert unq(forwarder["role"]) == "roles/pubsub.publisher"
    drain = resources[("google_pubsub_subscription_iam_member", "sweep_drain")]
    assert unq(drain["role"]) == "roles/pubsub.subscriber" and "local.sweep_drain" in str(drain["subscription"])
    sweep = (DEPLOY_DIR / "terraform" / "sweep.tf").read_text(encoding="utf-8")
    assert '["--drain", local.sweep_drain]' in sweep and '"--source-subscription", s' in sweep
    assert '(local.sweep_drain == "" ? 0 : 10)' in sweep  # the task timeout makes room for the drain
    storage = (DEPLOY_DIR / "deploy-storage.sh").read_text(encoding="utf-8")
    assert "--ack-deadline=600" in storage and "--message-retention-duration=7d" in storage


# What each data source copies into the Terraform state, which everyone who may read the state bucket can read.
DATA_SOURCES = {
    "google_project": "the project number (service agents' emails)",
    "google_storage_project_service_account": "the Cloud Storage service agent's email",
    "google_storage_bucket": "the trigger bucket's location (and its labels and settings, no object data)",
    "archive_file": "the function's source zip: the files .gcloudignore ships",
}


def test_no_data_source_copies_the_composer_environment_into_state() -> None:
    """Issue 16, finding 13: ``data.google_composer_environment`` copied the whole environment into the state, its
    env variables and Airflow config overrides (where credentials often sit) with it, to read one URL. airflow_uri
    is now an input; the error without it gives the gcloud command that prints it."""
    assert {rtype for rtype, _ in blocks("data")} <= set(DATA_SOURCES)
    assert not re.search(r"data\s+\"google_composer_environment\"|data\.google_composer_environment", all_text())
    main = (TF_DIR / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"^\s*airflow_uri\s*=\s*var\.airflow_uri\s*$", main, re.M)
    assert "--format='value(config.airflowUri)'" in main
