#!/usr/bin/env bash
# Deploy dagtrigger as an HTTP Cloud Run function (2nd gen) for webhooks and Pub/Sub push
# subscriptions. It is never public: callers need roles/run.invoker (--invoker).
# Run deploy/iam.sh --trigger http first (service account and roles).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/deploy-http.sh --project ID --region REGION
         (--composer-env ENV [--composer-location LOC] | --airflow-uri URL)
         --dag-id DAG [--invoker MEMBER]... [options]

Deploys the function (default name dagtrigger-http, entry point trigger_http) with an HTTP
trigger that requires authentication (--no-allow-unauthenticated), then grants
roles/run.invoker on it to each --invoker.

HTTP trigger:
  --invoker MEMBER         who may call the function (repeatable): serviceAccount:EMAIL
                           (e.g. a Pub/Sub push subscription's service account),
                           user:EMAIL, group:EMAIL, ... A bare *.gserviceaccount.com email
                           is taken as serviceAccount:. allUsers is refused.

EOF
  dt_help_common
  echo
  dt_help_airflow
  echo
  dt_help_function
}

INVOKERS=()

dt_script_option() {
  case $1 in
    --invoker) INVOKERS+=("$2") ;;
  esac
}

dt_use_options common airflow function
dt_add_options "--invoker" ""
dt_parse_args "$@"
dt_prepare_deploy http dagtrigger-http
members=()
for invoker in "${INVOKERS[@]}"; do
  dt_member member "$invoker" --invoker
  members+=("$member")
done
dt_require_gcloud

dt_resolve_airflow_uri
dt_deploy_function http trigger_http --trigger-http --no-allow-unauthenticated
for member in "${members[@]}"; do
  dt_grant_invoker "$member"
done
if ((${#members[@]} == 0)); then
  dt_note "No --invoker given: only principals that already have roles/run.invoker can call the function" \
    "(add some with deploy/iam.sh --trigger http --phase post --invoker MEMBER)."
fi
