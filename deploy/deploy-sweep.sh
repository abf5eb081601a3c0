#!/usr/bin/env bash
# Deploy the sweep (python -m dagtrigger sweep, docs/accounting.md) as a Cloud Run job that
# Cloud Scheduler runs on a schedule, with its own service account and the least privilege it
# needs. Why a job and not an HTTP entry point of the function: docs/deploy.md#the-scheduled-sweep.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF2'
Usage: deploy/deploy-sweep.sh --project ID --region REGION
         (--composer-env ENV [--composer-location LOC] | --airflow-uri URL)
         (--dag-id DAG | --routes-file PATH) --bucket BUCKET [options]

Deploys the Cloud Run job NAME (default dagtrigger-sweep) running
`python -m dagtrigger sweep --since SINCE --settle SETTLE --budget BUDGET` with the function's
settings, and a Cloud Scheduler job NAME-schedule that runs it (an authenticated call to the
Cloud Run Admin API; nobody else may run it). The job's service account (default
dagtrigger-sweep) gets: list/read on each --bucket, list on the dead letters and write on their
_sweep/ cursor prefix only, write on each --members-uri prefix (batched routes), the Composer
user role, and access to the secrets it reads.

Sweep:
  --bucket BUCKET          a bucket the storage routes take uploads from (repeatable;
                           required: routes without a bucket match are listed here)
  --members-uri URI        gs://BUCKET/PREFIX of a batched route's members (repeatable)
  --since DURATION         lookback, longer than Eventarc's 24 h retention (default 26h)
  --settle DURATION        leave uploads younger than this to the live path (default 5m)
  --budget DURATION        stop and leave a cursor after this long (default 50m); the
                           job's task timeout is this plus 10 minutes
  --schedule CRON          when it runs, in UTC (default: "17 * * * *", hourly)
  --scheduler-service-account SA
                           identity Cloud Scheduler calls with (default dagtrigger-scheduler);
                           it gets roles/run.invoker on this job only
  --image IMAGE            a built image of this repository (default: build from --source
                           with Cloud Build: gcloud run jobs deploy --source)
  --drain-subscription SUB drain this subscription on a trigger's dead-letter topic before
                           each sweep (projects/P/subscriptions/S, deploy-storage.sh
                           --dead-letter-topic T makes T-hold): the job's account gets
                           roles/pubsub.subscriber on SUB and writes dead letters under
                           --dead-letter-uri (a drained event that fails is recorded there)
  --drain-source-subscription SUB
                           the trigger's own subscription: only messages forwarded from it
                           are sent (repeatable; recommended)

EOF2
  dt_help_common
  echo
  dt_help_airflow
  echo
  dt_help_function
}

readonly DURATION='^([0-9]+(\.[0-9]+)?[smhd]|0)$'
BUCKETS=()
MEMBERS=()
SINCE=26h
SETTLE=5m
BUDGET=50m
SCHEDULE="17 * * * *"
SCHEDULER_SA=""
IMAGE=""
DRAIN=""
DRAIN_SOURCES=()

dt_script_option() {
  case $1 in
    --bucket)
      local bucket=${2#gs://}
      BUCKETS+=("${bucket%/}")
      ;;
    --members-uri) MEMBERS+=("$2") ;;
    --since) SINCE=$2 ;;
    --settle) SETTLE=$2 ;;
    --budget) BUDGET=$2 ;;
    --schedule) SCHEDULE=$2 ;;
    --scheduler-service-account) SCHEDULER_SA=$2 ;;
    --image) IMAGE=$2 ;;
    --drain-subscription) DRAIN=$2 ;;
    --drain-source-subscription) DRAIN_SOURCES+=("$2") ;;
  esac
}

dt_use_options common airflow function
dt_add_options "--bucket --members-uri --since --settle --budget --schedule --scheduler-service-account --image
  --drain-subscription --drain-source-subscription" ""
dt_parse_args "$@"
DT_SERVICE_ACCOUNT=${DT_SERVICE_ACCOUNT:-dagtrigger-sweep}
dt_prepare_deploy http dagtrigger-sweep
dt_sa_email SCHEDULER_SA_EMAIL "${SCHEDULER_SA:-dagtrigger-scheduler}" --scheduler-service-account
((${#BUCKETS[@]})) || dt_usage_error "missing required option --bucket (a bucket the storage routes take uploads from)"
for bucket in "${BUCKETS[@]}"; do
  dt_check_regex "$bucket" '^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$' --bucket "a bucket name (gs:// optional)"
done
for uri in "${MEMBERS[@]}"; do
  dt_check_regex "$uri" '^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9]/[^*?]+$' --members-uri "gs://BUCKET/PREFIX"
done
readonly SUBSCRIPTION='^projects/[a-z0-9][-a-z0-9.:]{0,99}/subscriptions/[A-Za-z][-_.~+%A-Za-z0-9]{2,254}$'
[[ -z $DRAIN ]] || dt_check_regex "$DRAIN" "$SUBSCRIPTION" --drain-subscription "projects/P/subscriptions/S"
for source in "${DRAIN_SOURCES[@]}"; do
  dt_check_regex "$source" "$SUBSCRIPTION" --drain-source-subscription "projects/P/subscriptions/eventarc-..."
done
((${#DRAIN_SOURCES[@]} == 0)) || [[ -n $DRAIN ]] ||
  dt_usage_error "--drain-source-subscription needs --drain-subscription"
dt_check_regex "$SINCE" "$DURATION" --since "a duration such as 26h"
dt_check_regex "$SETTLE" "$DURATION" --settle "a duration such as 5m"
dt_check_regex "$BUDGET" '^[0-9]+[mh]$' --budget "minutes or hours such as 50m"
dt_check_regex "$SCHEDULE" '^[-*/,0-9A-Za-z]+( [-*/,0-9A-Za-z]+){4}$' --schedule "a cron expression such as '17 * * * *'"
budget_min=${BUDGET%[mh]}
[[ $BUDGET == *h ]] && budget_min=$((10#$budget_min * 60))
((10#$budget_min >= 1 && 10#$budget_min <= 1430)) || dt_usage_error "invalid --budget '$BUDGET': 1m to 23h50m"
dt_require_gcloud

dt_resolve_airflow_uri
dt_join_kv DT_ENV_FLAG "AIRFLOW_URI=$DT_AIRFLOW_URI" "${DT_ENV_PAIRS[@]}"
[[ -n $DT_DEAD_LETTER_URI ]] ||
  dt_note "No --dead-letter-uri: dead letters are not told apart from missing uploads, and a sweep cut short" \
    "by --budget leaves no cursor."

# ------------------------------------------------------------ identities and least privilege
dt_ensure_service_account "$DT_SA_EMAIL" "dagtrigger sweep (finds and sends uploads that never triggered)"
dt_ensure_service_account "$SCHEDULER_SA_EMAIL" "dagtrigger sweep scheduler (runs the sweep job)"
member="serviceAccount:$DT_SA_EMAIL"

declare -A granted=()
# bucket_binding BUCKET ROLE [PREFIX TITLE]: a bucket-level role, limited to objects under PREFIX
# when given (an IAM condition); each binding once.
bucket_binding() {
  local key="$1 $2 ${3:-}"
  [[ -z ${granted[$key]:-} ]] || return 0
  granted[$key]=1
  local cmd=(gcloud storage buckets add-iam-policy-binding "gs://$1" --member="$member" --role="$2" --format=none)
  if [[ -n ${3:-} ]]; then
    cmd+=("--condition=title=$4,expression=resource.name.startsWith(\"projects/_/buckets/$1/objects/$3\")")
  fi
  dt_run "${cmd[@]}"
}

# Listing needs storage.objects.list on the bucket: objectViewer (list, read metadata and manifests).
for bucket in "${BUCKETS[@]}"; do
  bucket_binding "$bucket" roles/storage.objectViewer
done
if [[ -n $DT_DEAD_LETTER_URI ]]; then
  dl=${DT_DEAD_LETTER_URI#gs://}
  dl_bucket=${dl%%/*}
  dl_prefix=""
  [[ $dl == */* ]] && dl_prefix="${dl#*/}"
  dl_prefix=${dl_prefix%/}
  bucket_binding "$dl_bucket" roles/storage.objectViewer
  if [[ -n $DRAIN ]]; then
    # A drained event that fails is recorded like a live one: write under the dead-letter prefix.
    bucket_binding "$dl_bucket" roles/storage.objectUser "${dl_prefix:+$dl_prefix/}" dagtrigger-drain-dead-letters
  else
    # The cursor only: a sweep never writes a dead letter.
    bucket_binding "$dl_bucket" roles/storage.objectUser "${dl_prefix:+$dl_prefix/}_sweep/" dagtrigger-sweep-cursor
  fi
fi
if [[ -n $DRAIN ]]; then
  [[ -n $DT_DEAD_LETTER_URI ]] ||
    dt_note "No --dead-letter-uri: a drained event Airflow refuses for good stays in $DRAIN (not acknowledged)."
  # Pull and acknowledge on that one subscription, nothing else in Pub/Sub.
  dt_run gcloud pubsub subscriptions add-iam-policy-binding "$DRAIN" --member="$member" \
    --role=roles/pubsub.subscriber --format=none
fi
for uri in "${MEMBERS[@]}"; do
  m=${uri#gs://}
  m_prefix=${m#*/}
  bucket_binding "${m%%/*}" roles/storage.objectViewer
  bucket_binding "${m%%/*}" roles/storage.objectUser "${m_prefix%/}/" dagtrigger-sweep-members
done
if [[ -n $DT_COMPOSER_ENV || -z $DT_AUTH || $DT_AUTH == google ]]; then
  dt_run gcloud projects add-iam-policy-binding "${DT_COMPOSER_PROJECT:-$DT_PROJECT}" --member="$member" \
    --role=roles/composer.user --condition=None --format=none
fi
for pair in "${DT_SECRET_PAIRS[@]}"; do
  ref=${pair#*=}
  secret=${ref%:*}
  secret_project=$DT_PROJECT
  if [[ $secret == projects/*/secrets/* ]]; then
    secret_project=${secret#projects/}
    secret_project=${secret_project%%/*}
    secret=${secret##*/}
  fi
  dt_run gcloud secrets add-iam-policy-binding "$secret" --project="$secret_project" --member="$member" \
    --role=roles/secretmanager.secretAccessor --format=none
done

# ------------------------------------------------------------ the job
args="-m,dagtrigger,sweep,--since,$SINCE,--settle,$SETTLE,--budget,$BUDGET"
for bucket in "${BUCKETS[@]}"; do
  args+=",--bucket,$bucket"
done
[[ -z $DRAIN ]] || args+=",--drain,$DRAIN"
for source in "${DRAIN_SOURCES[@]}"; do
  args+=",--source-subscription,$source"
done
# The task may run the drain (its 10-minute budget) and then the sweep (its budget), plus 10 minutes to finish.
timeout_min=$((10#$budget_min + 10))
[[ -z $DRAIN ]] || timeout_min=$((timeout_min + 10))
job=(gcloud run jobs deploy "$DT_NAME" --project="$DT_PROJECT" --region="$DT_REGION")
if [[ -n $IMAGE ]]; then
  job+=(--image="$IMAGE")
else
  job+=(--source="$DT_SOURCE")
fi
job+=(--command=python --args="$args" --service-account="$DT_SA_EMAIL"
  --tasks=1 --max-retries=0 --task-timeout="${timeout_min}m" --memory="$DT_MEMORY" --cpu="$DT_CPU"
  --set-env-vars="$DT_ENV_FLAG")
dt_pin_secret_versions
[[ -z $DT_SECRETS_FLAG ]] || job+=(--set-secrets="$DT_SECRETS_FLAG")
[[ -z $DT_VPC_CONNECTOR ]] || job+=(--vpc-connector="$DT_VPC_CONNECTOR" --vpc-egress="${DT_EGRESS_SETTINGS:-all}")
dt_note "One sweep at a time: each run lists every routed bucket; see docs/accounting.md for the cost."
dt_run "${job[@]}"

# ------------------------------------------------------------ the schedule (authenticated, not public)
dt_run gcloud run jobs add-iam-policy-binding "$DT_NAME" --project="$DT_PROJECT" --region="$DT_REGION" \
  --member="serviceAccount:$SCHEDULER_SA_EMAIL" --role=roles/run.invoker --format=none
schedule_name="$DT_NAME-schedule"
run_uri="https://run.googleapis.com/v2/projects/$DT_PROJECT/locations/$DT_REGION/jobs/$DT_NAME:run"
probe=(gcloud scheduler jobs describe "$schedule_name" --project="$DT_PROJECT" --location="$DT_REGION" --format='value(name)')
verb=create
if ((DT_DRY_RUN)); then
  dt_format_cmd "${probe[@]}"
  dt_note "(create when that look-up fails, else update)"
else
  dt_format_cmd "${probe[@]}" >&2
  "${probe[@]}" >/dev/null 2>&1 && verb=update
fi
dt_run gcloud scheduler jobs "$verb" http "$schedule_name" --project="$DT_PROJECT" --location="$DT_REGION" \
  --schedule="$SCHEDULE" --time-zone=Etc/UTC --uri="$run_uri" --http-method=POST \
  --oauth-service-account-email="$SCHEDULER_SA_EMAIL" \
  --oauth-token-scope=https://www.googleapis.com/auth/cloud-platform
