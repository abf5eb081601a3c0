#!/usr/bin/env bash
# Deploy dagtrigger as an HTTP Cloud Run function (2nd gen) for signed webhooks (trigger_http) or Pub/Sub push
# subscriptions (trigger_push, OIDC-verified). It is never public: callers need roles/run.invoker (--invoker).
# Run deploy/iam.sh --trigger http first (service account and roles).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/deploy-http.sh --project ID --region REGION
         (--composer-env ENV [--composer-location LOC] | --airflow-uri URL)
         --dag-id DAG [--invoker MEMBER]... [--entry-point trigger_http|trigger_push] [options]

Deploys the function (default name dagtrigger-http, entry point trigger_http) with an HTTP
trigger that requires authentication (--no-allow-unauthenticated), then grants
roles/run.invoker on it to each --invoker.

HTTP trigger:
  --entry-point NAME       trigger_http (default): signed webhooks; trigger_push: Pub/Sub push
                           subscriptions, which need --env PUSH_AUDIENCE=URL and
                           --env PUSH_SERVICE_ACCOUNTS=EMAIL (the subscription's OIDC token)
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
ENTRY_POINT=trigger_http

dt_script_option() {
  case $1 in
    --invoker) INVOKERS+=("$2") ;;
    --entry-point)
      case $2 in
        trigger_http | trigger_push) ENTRY_POINT=$2 ;;
        *) dt_die "--entry-point: '$2' is not trigger_http or trigger_push" ;;
      esac
      ;;
  esac
}

dt_use_options common airflow function
dt_add_options "--invoker --entry-point" ""
dt_parse_args "$@"
dt_prepare_deploy http dagtrigger-http
# The function refuses to start without these (main.py): refuse the deploy now rather than after it.
dt_env_given() {
  local item
  for item in "${DT_EXTRA_ENV[@]}" "${DT_EXTRA_SECRETS[@]}"; do
    [[ ${item%%=*} == "$1" ]] && return 0
  done
  return 1
}
if [[ $ENTRY_POINT == trigger_push ]]; then
  # Pub/Sub push from a subscription in the function's project (or VPC Service Controls perimeter) to its default
  # URL is internal traffic for Cloud Run (docs/deploy.md#ingress): nothing else needs to reach this URL.
  if [[ -z $DT_INGRESS_SETTINGS ]]; then
    DT_INGRESS_SETTINGS=internal-only
    dt_note "Ingress internal-only: Pub/Sub push from a subscription in project $DT_PROJECT to the function's" \
      "run.app URL is internal traffic; a subscription in another project needs --ingress-settings all."
  fi
  if ! dt_env_given PUSH_AUDIENCE || ! dt_env_given PUSH_SERVICE_ACCOUNTS; then
    dt_usage_error "--entry-point trigger_push needs --env PUSH_AUDIENCE=URL and --env PUSH_SERVICE_ACCOUNTS=EMAIL" \
      "(the push subscription's OIDC token audience and service account); without them the function does not start"
  fi
elif [[ -z $DT_ROUTES_FILE ]] && ! dt_env_given WEBHOOK_HMAC_SECRET \
  && [[ " ${DT_EXTRA_ENV[*]} " != *" WEBHOOK_AUTH=cloud-run-iam "* ]]; then
  dt_usage_error "trigger_http needs a signing secret: --secret WEBHOOK_HMAC_SECRET=SECRET_ID[:VERSION]" \
    "(or --env WEBHOOK_AUTH=cloud-run-iam when only Cloud Run IAM guards it); without one the function does not start"
fi
members=()
for invoker in "${INVOKERS[@]}"; do
  dt_member member "$invoker" --invoker
  members+=("$member")
done
dt_require_gcloud

dt_resolve_airflow_uri
dt_deploy_function http "$ENTRY_POINT" --trigger-http --no-allow-unauthenticated
for member in "${members[@]}"; do
  dt_grant_invoker "$member"
done
if ((${#members[@]} == 0)); then
  dt_note "No --invoker given: only principals that already have roles/run.invoker can call the function" \
    "(add some with deploy/iam.sh --trigger http --phase post --invoker MEMBER)."
fi
