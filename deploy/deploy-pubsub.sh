#!/usr/bin/env bash
# Deploy dagtrigger as a Cloud Run function (2nd gen) that Eventarc calls for each message
# published to a Pub/Sub topic (google.cloud.pubsub.topic.v1.messagePublished).
# Run deploy/iam.sh --trigger pubsub first (service account and roles).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/deploy-pubsub.sh --project ID --region REGION --topic TOPIC
         (--composer-env ENV [--composer-location LOC] | --airflow-uri URL)
         --dag-id DAG [options]

Deploys the function (default name dagtrigger-pubsub, entry point trigger_event) with a
Pub/Sub trigger on TOPIC (gcloud --trigger-topic, an Eventarc trigger for 2nd gen),
retried on failure (--retry), then grants the trigger's service account roles/run.invoker.

Pub/Sub trigger:
  --topic TOPIC            topic id in --project (required; not projects/P/topics/T:
                           gcloud takes only the id and the project from --project)
  --trigger-location LOC   where the trigger lives (default: gcloud's choice, the
                           function's region)

EOF
  dt_help_event
  echo
  dt_help_common
  echo
  dt_help_airflow
  echo
  dt_help_function
}

TOPIC=""
TRIGGER_LOCATION=""

dt_script_option() {
  case $1 in
    --topic) TOPIC=$2 ;;
    --trigger-location) TRIGGER_LOCATION=${2,,} ;;
  esac
}

dt_use_options common airflow function event
dt_add_options "--topic --trigger-location" ""
dt_parse_args "$@"
dt_prepare_deploy event dagtrigger-pubsub
dt_require "$TOPIC" --topic "the Pub/Sub topic whose messages trigger DAG runs"
if [[ $TOPIC == */* ]]; then
  dt_usage_error "invalid --topic '$TOPIC': give the topic id only; gcloud --trigger-topic does not accept projects/PROJECT/topics/TOPIC (the project comes from --project)"
fi
dt_check_regex "$TOPIC" '^[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$' --topic "a topic id (3-255 characters, starting with a letter)"
[[ -z $TRIGGER_LOCATION ]] ||
  dt_check_regex "$TRIGGER_LOCATION" '^[a-z][-a-z0-9]*[a-z0-9]$' --trigger-location "a region such as us-central1"
dt_require_gcloud

dt_resolve_airflow_uri
trigger=(--trigger-topic="$TOPIC")
[[ -z $TRIGGER_LOCATION ]] || trigger+=(--trigger-location="$TRIGGER_LOCATION")
dt_deploy_function event trigger_event "${trigger[@]}" --retry
dt_grant_invoker "serviceAccount:$DT_TRIGGER_SA_EMAIL"
