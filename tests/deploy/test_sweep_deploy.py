"""deploy/deploy-sweep.sh and deploy-storage.sh --dead-letter-topic: what their dry runs would do."""

from __future__ import annotations

from .script_runner import ScriptRunner
from .test_scripts import AIRFLOW, PROJECT, STORAGE, flags

SWEEP = [*PROJECT, "--region", "us-central1", *AIRFLOW, "--bucket", "landing", "--dead-letter-uri", "gs://ops/dl",
         "--members-uri", "gs://ops/members"]  # fmt: skip
SWEEP_SA = "serviceAccount:dagtrigger-sweep@my-proj.iam.gserviceaccount.com"
SCHEDULER_SA = "dagtrigger-scheduler@my-proj.iam.gserviceaccount.com"


def test_the_sweep_is_a_cloud_run_job_run_by_an_authenticated_schedule(run_script: ScriptRunner) -> None:
    result = run_script("deploy-sweep.sh", *SWEEP)
    assert result.returncode == 0, result.stderr
    job = flags(result.command("gcloud", "run", "jobs", "deploy"))
    assert job["--command"] == ["python"]
    assert job["--args"] == ["-m,dagtrigger,sweep,--since,26h,--settle,5m,--budget,50m,--bucket,landing"]
    assert job["--task-timeout"] == ["60m"] and job["--max-retries"] == ["0"]
    assert "DEAD_LETTER_URI=gs://ops/dl" in job["--set-env-vars"][0]
    schedule = flags(result.command("gcloud", "scheduler", "jobs", "create", "http"))
    assert schedule["--oauth-service-account-email"] == [SCHEDULER_SA]
    assert schedule["--uri"] == [
        "https://run.googleapis.com/v2/projects/my-proj/locations/us-central1/jobs/dagtrigger-sweep:run"
    ]
    assert schedule["--schedule"] == ["17 * * * *"]
    invoker = flags(result.command("gcloud", "run", "jobs", "add-iam-policy-binding"))
    assert invoker["--member"] == [f"serviceAccount:{SCHEDULER_SA}"] and invoker["--role"] == ["roles/run.invoker"]
    assert "allUsers" not in result.stdout and "allAuthenticatedUsers" not in result.stdout


def test_the_sweep_account_gets_bucket_roles_and_writes_only_under_its_prefixes(run_script: ScriptRunner) -> None:
    result = run_script("deploy-sweep.sh", *SWEEP)
    grants = [flags(c) for c in result.commands if c[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]]
    assert all(g["--member"] == [SWEEP_SA] for g in grants)
    writers = [g for g in grants if g["--role"] == ["roles/storage.objectUser"]]
    conditions = sorted(g["--condition"][0] for g in writers)
    assert conditions == [
        'title=dagtrigger-sweep-cursor,expression=resource.name.startsWith("projects/_/buckets/ops/objects/dl/_sweep/")',
        'title=dagtrigger-sweep-members,expression=resource.name.startsWith("projects/_/buckets/ops/objects/members/")',
    ]
    readers = {c[4] for c in result.commands if "roles/storage.objectViewer" in " ".join(c)}
    assert readers == {"gs://landing", "gs://ops"}
    project_roles = [
        flags(c)["--role"][0] for c in result.commands if c[:3] == ["gcloud", "projects", "add-iam-policy-binding"]
    ]
    assert project_roles == ["roles/composer.user"]  # no storage role on the project


def test_the_sweep_needs_a_bucket_and_valid_durations(run_script: ScriptRunner) -> None:
    no_bucket = run_script("deploy-sweep.sh", *PROJECT, "--region", "us-central1", *AIRFLOW)
    assert no_bucket.returncode == 2 and "missing required option --bucket" in no_bucket.stderr
    bad = run_script("deploy-sweep.sh", *SWEEP, "--since", "a day")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_storage_deploy_gives_the_trigger_subscription_a_dead_letter_topic(run_script: ScriptRunner) -> None:
    result = run_script("deploy-storage.sh", *STORAGE, "--dead-letter-topic", "dead-events")
    assert result.returncode == 0, result.stderr
    update = flags(result.command("gcloud", "pubsub", "subscriptions", "update"))
    assert update["--dead-letter-topic"] == ["projects/my-proj/topics/dead-events"]
    assert update["--max-delivery-attempts"] == ["100"]
    hold = flags(result.command("gcloud", "pubsub", "subscriptions", "create"))
    assert hold["--message-retention-duration"] == ["7d"]
    assert hold["--ack-deadline"] == ["600"]  # a drain holds what it pulls for its whole run
    assert "dagtrigger drain projects/my-proj/subscriptions/dead-events-hold" in result.stdout + result.stderr
    roles = {flags(c)["--role"][0] for c in result.commands if "add-iam-policy-binding" in c and "pubsub" in c}
    assert roles == {"roles/pubsub.publisher", "roles/pubsub.subscriber"}
    plain = run_script("deploy-storage.sh", *STORAGE)
    assert "pubsub" not in plain.stdout


DRAIN = "projects/my-proj/subscriptions/dead-events-hold"
TRIGGER_SUB = "projects/my-proj/subscriptions/eventarc-us-central1-dagtrigger-storage-000-sub-123"


def test_the_sweep_job_drains_the_dead_letter_subscription_first_with_one_more_grant(run_script: ScriptRunner) -> None:
    result = run_script("deploy-sweep.sh", *SWEEP, "--drain-subscription", DRAIN, "--drain-source-subscription",
                        TRIGGER_SUB)  # fmt: skip
    assert result.returncode == 0, result.stderr
    job = flags(result.command("gcloud", "run", "jobs", "deploy"))
    assert job["--args"][0].endswith(f",--drain,{DRAIN},--source-subscription,{TRIGGER_SUB}")
    assert job["--task-timeout"] == ["70m"]  # the drain's 10 minutes before the sweep's 50, plus 10 to finish
    grants = [c for c in result.commands if c[:4] == ["gcloud", "pubsub", "subscriptions", "add-iam-policy-binding"]]
    assert [(c[4], flags(c)["--member"], flags(c)["--role"]) for c in grants] == [
        (DRAIN, [SWEEP_SA], ["roles/pubsub.subscriber"])
    ]  # on that subscription only, never on the project
    writers = [flags(c) for c in result.commands if "roles/storage.objectUser" in " ".join(c)]
    conditions = sorted(g["--condition"][0] for g in writers)
    assert conditions[0] == (
        'title=dagtrigger-drain-dead-letters,expression=resource.name.startsWith("projects/_/buckets/ops/objects/dl/")'
    )  # a drained event that fails is recorded, as the function records it
    bad = run_script("deploy-sweep.sh", *SWEEP, "--drain-subscription", "dead-events-hold")
    assert bad.returncode == 2 and "--drain-subscription" in bad.stderr
    lone = run_script("deploy-sweep.sh", *SWEEP, "--drain-source-subscription", TRIGGER_SUB)
    assert lone.returncode == 2 and "needs --drain-subscription" in lone.stderr
