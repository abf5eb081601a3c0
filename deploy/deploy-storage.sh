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
  --dead-letter-topic T    keep events the function never acknowledged in Pub/Sub topic T
                           (created with a 7-day pull subscription T-hold) instead of
                           dropping them: set on the trigger's subscription, with the roles
                           Pub/Sub's service agent needs; `dagtrigger drain` (or the sweep
                           job's --drain-subscription) sends them (docs/accounting.md)
  --max-delivery-attempts N
                           attempts before an event goes to --dead-letter-topic
                           (5-100, default 100: about 16 h of backed-off retries)

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
DEAD_LETTER_TOPIC=""
MAX_DELIVERY_ATTEMPTS=100

dt_script_option() {
  case $1 in
    --bucket)
      BUCKET=${2#gs://}
      BUCKET=${BUCKET%/}
      ;;
    --trigger-location) TRIGGER_LOCATION=${2,,} ;;
    --event-type) EVENT_TYPE=${2#"$EVENT_PREFIX"} ;;
    --dead-letter-topic) DEAD_LETTER_TOPIC=$2 ;;
    --max-delivery-attempts) MAX_DELIVERY_ATTEMPTS=$2 ;;
  esac
}

dt_use_options common airflow function event
dt_add_options "--bucket --trigger-location --event-type --dead-letter-topic --max-delivery-attempts" ""
dt_parse_args "$@"
# The function acts only on the storage events in STORAGE_EVENT_TYPES (default: finalized).
if [[ $EVENT_TYPE != finalized && " ${DT_EXTRA_ENV[*]} " != *" STORAGE_EVENT_TYPES="* ]]; then
  DT_EXTRA_ENV+=("STORAGE_EVENT_TYPES=$EVENT_TYPE")
fi
dt_prepare_deploy event dagtrigger-storage
dt_require "$BUCKET" --bucket "the bucket whose new objects trigger DAG runs"
dt_check_regex "$BUCKET" '^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$' --bucket "a bucket name (gs:// optional)"
dt_check_choice "$EVENT_TYPE" --event-type "finalized metadataUpdated deleted archived"
[[ -z $DEAD_LETTER_TOPIC ]] ||
  dt_check_regex "$DEAD_LETTER_TOPIC" '^[A-Za-z][-_.~+%A-Za-z0-9]{2,254}$' --dead-letter-topic "a topic id (not a path)"
dt_check_int "$MAX_DELIVERY_ATTEMPTS" --max-delivery-attempts 5 100
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

if [[ -n $DEAD_LETTER_TOPIC ]]; then
  # Eventarc delivers through a Pub/Sub subscription it manages (24 h retention): undeliverable
  # events are dropped unless that subscription has a dead-letter topic (Eventarc "Retry events").
  trigger="" subscription="" number=""
  dt_capture trigger '<TRIGGER>' gcloud functions describe "$DT_NAME" --gen2 --project="$DT_PROJECT" \
    --region="$DT_REGION" --format='value(eventTrigger.trigger)'
  dt_capture subscription '<TRIGGER_SUBSCRIPTION>' gcloud eventarc triggers describe "$trigger" \
    --format='value(transport.pubsub.subscription)'
  dt_capture number '<PROJECT_NUMBER>' gcloud projects describe "$DT_PROJECT" --format='value(projectNumber)'
  pubsub_agent="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"
  dt_unless_exists gcloud pubsub topics describe "$DEAD_LETTER_TOPIC" --project="$DT_PROJECT" --format='value(name)' \
    -- gcloud pubsub topics create "$DEAD_LETTER_TOPIC" --project="$DT_PROJECT"
  # A topic keeps nothing by itself: this subscription holds the dead events for 7 days.
  dt_unless_exists gcloud pubsub subscriptions describe "$DEAD_LETTER_TOPIC-hold" --project="$DT_PROJECT" \
    --format='value(name)' -- gcloud pubsub subscriptions create "$DEAD_LETTER_TOPIC-hold" --project="$DT_PROJECT" \
    --topic="$DEAD_LETTER_TOPIC" --message-retention-duration=7d --expiration-period=never --ack-deadline=600
  dt_run gcloud pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --project="$DT_PROJECT" \
    --member="$pubsub_agent" --role=roles/pubsub.publisher --format=none
  dt_run gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project="$DT_PROJECT" \
    --member="$pubsub_agent" --role=roles/pubsub.subscriber --format=none
  dt_run gcloud pubsub subscriptions update "$subscription" --project="$DT_PROJECT" \
    --dead-letter-topic="projects/$DT_PROJECT/topics/$DEAD_LETTER_TOPIC" \
    --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
  dt_note "Drain it: dagtrigger drain projects/$DT_PROJECT/subscriptions/$DEAD_LETTER_TOPIC-hold" \
    "--source-subscription $subscription (or deploy-sweep.sh --drain-subscription with the same names)."
fi
