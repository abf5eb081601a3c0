#!/usr/bin/env bash
# Deploy dagtrigger as a Cloud Run function (2nd gen) that Eventarc calls for each new or
# overwritten object in a Cloud Storage bucket (google.cloud.storage.object.v1.finalized).
# Run deploy/iam.sh --trigger storage first (service account, roles, Cloud Storage agent).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/deploy-storage.sh --project ID --region REGION --bucket BUCKET
         (--composer-env ENV [--composer-location LOC] | --airflow-uri URL)
         --dag-id DAG [options]

Deploys the function (default name dagtrigger-storage, entry point trigger_event) with an
Eventarc trigger on google.cloud.storage.object.v1.finalized events of BUCKET, retried on
failure (--retry), then grants the trigger's service account roles/run.invoker on it.

Storage trigger:
  --bucket BUCKET          bucket whose new objects trigger DAG runs (required)
  --trigger-location LOC   must be the bucket's location (us-central1, us, eu, ...);
                           default: looked up with gcloud storage buckets describe
  --event-type TYPE        finalized (default) | metadataUpdated | deleted | archived;
                           other than finalized also sets STORAGE_EVENT_TYPES=TYPE unless
                           --env STORAGE_EVENT_TYPES=... is given

EOF
  dt_help_event
  echo
  dt_help_common
  echo
  dt_help_airflow
  echo
  dt_help_function
}

readonly EVENT_PREFIX=google.cloud.storage.object.v1.
BUCKET=""
TRIGGER_LOCATION=""
EVENT_TYPE=finalized

dt_script_option() {
  case $1 in
    --bucket)
      BUCKET=${2#gs://}
      BUCKET=${BUCKET%/}
      ;;
    --trigger-location) TRIGGER_LOCATION=${2,,} ;;
    --event-type) EVENT_TYPE=${2#"$EVENT_PREFIX"} ;;
  esac
}

dt_use_options common airflow function event
dt_add_options "--bucket --trigger-location --event-type" ""
dt_parse_args "$@"
# The function acts only on the storage events in STORAGE_EVENT_TYPES (default: finalized).
if [[ $EVENT_TYPE != finalized && " ${DT_EXTRA_ENV[*]} " != *" STORAGE_EVENT_TYPES="* ]]; then
  DT_EXTRA_ENV+=("STORAGE_EVENT_TYPES=$EVENT_TYPE")
fi
dt_prepare_deploy event dagtrigger-storage
dt_require "$BUCKET" --bucket "the bucket whose new objects trigger DAG runs"
dt_check_regex "$BUCKET" '^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$' --bucket "a bucket name (gs:// optional)"
dt_check_choice "$EVENT_TYPE" --event-type "finalized metadataUpdated deleted archived"
[[ -z $TRIGGER_LOCATION ]] ||
  dt_check_regex "$TRIGGER_LOCATION" '^[a-z][-a-z0-9]*[a-z0-9]$' --trigger-location "a region or multi-region such as us-central1 or eu"
dt_require_gcloud

dt_resolve_airflow_uri
if [[ -z $TRIGGER_LOCATION ]]; then
  # Eventarc needs the trigger in the bucket's own location.
  dt_capture TRIGGER_LOCATION '<BUCKET_LOCATION>' \
    gcloud storage buckets describe "gs://$BUCKET" --project="$DT_PROJECT" --format='value(location)'
  ((DT_DRY_RUN)) || TRIGGER_LOCATION=${TRIGGER_LOCATION,,}
fi

dt_deploy_function event trigger_event \
  --trigger-event-filters="type=$EVENT_PREFIX$EVENT_TYPE" \
  --trigger-event-filters="bucket=$BUCKET" \
  --trigger-location="$TRIGGER_LOCATION" \
  --retry
dt_grant_invoker "serviceAccount:$DT_TRIGGER_SA_EMAIL"
