#!/usr/bin/env bash
# IAM for dagtrigger: the function's own service account and the least roles each trigger
# kind needs. Safe to run again: bindings are idempotent and the account is created only
# when missing.
#
#   --phase pre   (default) before the first deploy: service account, project roles,
#                 Cloud Storage service agent, secret access
#   --phase post  after the deploy: roles/run.invoker on the function (the deploy scripts
#                 already do this for the trigger's service account and their --invoker)
#   --phase all   both, for a function that exists already
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/iam.sh --project ID --trigger storage|pubsub|http [--phase pre|post|all]
         [--service-account SA] [--trigger-service-account SA] [--invoker MEMBER]...
         [--secret NAME]... [--dead-letter-uri gs://B/P] [--manifest-bucket B]...
         [--composer-project ID] [--region REGION --name NAME] [--legacy-pubsub-agent]
         [--enable-apis] [--dry-run]

Grants (and why):
  service account SA (default dagtrigger@PROJECT.iam.gserviceaccount.com) is created
  roles/composer.user            SA, on the Composer environment's project (--composer-project,
                                 default --project; Google lets this role be granted on a
                                 project at the lowest): Composer's Airflow API front end lets
                                 through Google identities with Composer access
  roles/eventarc.eventReceiver   trigger SA, on the project (storage, pubsub): receive
                                 events from Eventarc
  roles/pubsub.publisher         Cloud Storage service agent (gcloud storage
                                 service-agent), on the project (storage): Cloud Storage
                                 publishes its object events through Pub/Sub
  roles/secretmanager.secretAccessor
                                 SA, on each --secret: read the secrets the deploy maps
  roles/storage.objectUser       SA, on the --dead-letter-uri bucket: read, create and
                                 replace dead-letter records
  roles/storage.objectViewer     SA, on each --manifest-bucket: read manifests
  roles/iam.serviceAccountTokenCreator
                                 Pub/Sub service agent, on the project, only with
                                 --legacy-pubsub-agent (projects that enabled Pub/Sub on
                                 or before 2021-04-08)
  roles/run.invoker              (phase post) on the function: the trigger SA (storage,
                                 pubsub) or each --invoker (http)

Options:
  --trigger KIND           storage | pubsub | http (required)
  --composer-project ID    the Composer environment's project, where roles/composer.user
                           is granted (default: --project)
  --phase PHASE            pre (default) | post | all
  --trigger-service-account SA
                           Eventarc's identity (default: the --service-account)
  --invoker MEMBER         http: who may call the function (repeatable), e.g.
                           serviceAccount:push@PROJECT.iam.gserviceaccount.com
  --secret NAME            Secret Manager secret the function reads (repeatable):
                           NAME, NAME:VERSION or projects/P/secrets/NAME
  --dead-letter-uri URI    gs://BUCKET[/PREFIX] (DEAD_LETTER_URI): objectUser on BUCKET
  --manifest-bucket B      a bucket routes read manifests from (repeatable): objectViewer
  --legacy-pubsub-agent    also grant the Pub/Sub service agent Token Creator
  --enable-apis            first enable the APIs the deployment uses (Cloud Functions,
                           Cloud Run, Cloud Build, Artifact Registry, Composer, IAM, and
                           Eventarc, Pub/Sub, Cloud Storage, Secret Manager as needed)
  --region, --name         the function, for --phase post/all (name defaults to
                           dagtrigger-KIND, as in the deploy scripts)

EOF
  dt_help_common
}

TRIGGER=""
PHASE=pre
SA_EMAIL=""
TRIGGER_SA_EMAIL=""
INVOKERS=()
SECRETS=()
DEAD_LETTER_BUCKET=""
MANIFEST_BUCKETS=()
LEGACY_PUBSUB_AGENT=0
ENABLE_APIS=0

dt_script_option() {
  case $1 in
    --trigger) TRIGGER=$2 ;;
    --composer-project) DT_COMPOSER_PROJECT=$2 ;;
    --phase) PHASE=$2 ;;
    --invoker) INVOKERS+=("$2") ;;
    --secret) SECRETS+=("$2") ;;
    --dead-letter-uri)
      dt_check_regex "$2" '^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/.*)?$' --dead-letter-uri "gs://BUCKET[/PREFIX]"
      DEAD_LETTER_BUCKET=${2#gs://}
      DEAD_LETTER_BUCKET=${DEAD_LETTER_BUCKET%%/*}
      ;;
    --manifest-bucket)
      dt_check_regex "${2#gs://}" '^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$' --manifest-bucket "a bucket name (gs:// optional)"
      MANIFEST_BUCKETS+=("${2#gs://}")
      ;;
    --legacy-pubsub-agent) LEGACY_PUBSUB_AGENT=1 ;;
    --enable-apis) ENABLE_APIS=1 ;;
  esac
}

dt_use_options common event
dt_add_options "--trigger --phase --invoker --secret --composer-project --dead-letter-uri --manifest-bucket" "--legacy-pubsub-agent --enable-apis"
dt_parse_args "$@"

dt_check_project
dt_require "$TRIGGER" --trigger "storage, pubsub or http"
dt_check_choice "$TRIGGER" --trigger "storage pubsub http"
dt_check_choice "$PHASE" --phase "pre post all"
dt_check_composer_project
dt_sa_email SA_EMAIL "$DT_SERVICE_ACCOUNT" --service-account
if [[ $TRIGGER == http ]]; then
  [[ -z $DT_TRIGGER_SA ]] || dt_usage_error "--trigger-service-account applies to storage and pubsub triggers only"
  TRIGGER_SA_EMAIL=""
else
  ((${#INVOKERS[@]} == 0)) || dt_usage_error "--invoker applies to --trigger http only (event triggers are invoked by the trigger's service account)"
  dt_sa_email TRIGGER_SA_EMAIL "${DT_TRIGGER_SA:-$SA_EMAIL}" --trigger-service-account
fi
((LEGACY_PUBSUB_AGENT == 0)) || [[ $TRIGGER != http ]] ||
  dt_usage_error "--legacy-pubsub-agent applies to storage and pubsub triggers only"
members=()
for invoker in "${INVOKERS[@]}"; do
  dt_member member "$invoker" --invoker
  members+=("$member")
done
secret_ids=()
secret_projects=()
for secret in "${SECRETS[@]}"; do
  dt_secret_ref ref "$secret" --secret # validates the form
  ref=${ref%:*}
  ref=${ref%/versions/*}
  if [[ $ref == projects/*/secrets/* ]]; then
    secret_projects+=("${ref#projects/}")
    secret_projects[-1]=${secret_projects[-1]%%/*}
    secret_ids+=("${ref##*/}")
  else
    secret_projects+=("$DT_PROJECT")
    secret_ids+=("$ref")
  fi
done
if [[ $PHASE != pre ]]; then
  dt_require "$DT_REGION" --region "the function's region (needed by --phase $PHASE)"
  dt_check_region "$DT_REGION" --region
  DT_NAME=${DT_NAME:-dagtrigger-$TRIGGER}
  dt_check_function_name
fi
dt_require_gcloud

# project_role MEMBER ROLE [PROJECT] — a project-level binding (default project: --project).
# --condition=None: add an unconditional binding even when the project policy already has
# conditional ones (gcloud would prompt).
project_role() {
  dt_run gcloud projects add-iam-policy-binding "${3:-$DT_PROJECT}" --member="$1" --role="$2" --condition=None --format=none
}

# bucket_role BUCKET ROLE — the function's service account gets ROLE on one bucket.
bucket_role() {
  dt_run gcloud storage buckets add-iam-policy-binding "gs://$1" --member="serviceAccount:$SA_EMAIL" --role="$2" \
    --format=none
}

pre_phase() {
  if ((ENABLE_APIS)); then
    local apis=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
      artifactregistry.googleapis.com composer.googleapis.com iam.googleapis.com)
    [[ $TRIGGER == http ]] || apis+=(eventarc.googleapis.com pubsub.googleapis.com)
    [[ $TRIGGER != storage ]] || apis+=(storage.googleapis.com)
    ((${#secret_ids[@]} == 0)) || apis+=(secretmanager.googleapis.com)
    dt_run gcloud services enable "${apis[@]}" --project="$DT_PROJECT"
  fi
  dt_ensure_service_account "$SA_EMAIL" "dagtrigger function (triggers Airflow DAG runs)"
  if [[ -n $TRIGGER_SA_EMAIL && $TRIGGER_SA_EMAIL != "$SA_EMAIL" ]]; then
    dt_ensure_service_account "$TRIGGER_SA_EMAIL" "dagtrigger Eventarc trigger"
  fi

  # The function calls the Airflow REST API as SA; Composer checks the caller's IAM access
  # on the environment's project (the narrowest scope Google allows for this role).
  project_role "serviceAccount:$SA_EMAIL" roles/composer.user "$DT_COMPOSER_PROJECT"

  if [[ $TRIGGER != http ]]; then
    # Eventarc delivers events with the trigger's service account.
    project_role "serviceAccount:$TRIGGER_SA_EMAIL" roles/eventarc.eventReceiver
  fi

  if [[ $TRIGGER == storage ]]; then
    # Cloud Storage direct events reach Eventarc through Pub/Sub, published by the
    # project's Cloud Storage service agent.
    local gcs_agent=""
    dt_capture gcs_agent '<GCS_SERVICE_AGENT>' gcloud storage service-agent --project="$DT_PROJECT"
    project_role "serviceAccount:$gcs_agent" roles/pubsub.publisher
  fi

  if ((LEGACY_PUBSUB_AGENT)); then
    local number=""
    dt_capture number '<PROJECT_NUMBER>' gcloud projects describe "$DT_PROJECT" --format='value(projectNumber)'
    project_role "serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com" \
      roles/iam.serviceAccountTokenCreator
  fi

  # Buckets: bucket-level bindings only, never storage roles on the project.
  # objectUser: a dead-letter record is read, then replaced (get, create, delete).
  [[ -z $DEAD_LETTER_BUCKET ]] || bucket_role "$DEAD_LETTER_BUCKET" roles/storage.objectUser
  local bucket
  for bucket in "${MANIFEST_BUCKETS[@]}"; do
    bucket_role "$bucket" roles/storage.objectViewer
  done

  local i
  for i in "${!secret_ids[@]}"; do
    dt_run gcloud secrets add-iam-policy-binding "${secret_ids[$i]}" --project="${secret_projects[$i]}" \
      --member="serviceAccount:$SA_EMAIL" --role=roles/secretmanager.secretAccessor --format=none
  done
}

post_phase() {
  if [[ $TRIGGER == http ]]; then
    local member
    for member in "${members[@]}"; do
      dt_grant_invoker "$member"
    done
    ((${#members[@]})) || dt_note "No --invoker given: nobody new may call $DT_NAME."
  else
    dt_grant_invoker "serviceAccount:$TRIGGER_SA_EMAIL"
  fi
}

case $PHASE in
  pre) pre_phase ;;
  post) post_phase ;;
  all)
    pre_phase
    post_phase
    ;;
esac
