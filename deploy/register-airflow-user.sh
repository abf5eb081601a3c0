#!/usr/bin/env bash
# Register the function's service account as an Airflow user, so its REST API calls are
# authorized with a known Airflow role.
#
# Cloud Composer registers a Google identity on its first Airflow API call, with the role
# in [api] composer_auth_user_registration_role (Op by default). That automatic
# registration fails for service accounts whose email is longer than 64 characters; for
# them this pre-registration is required (username accounts.google.com:NUMERIC_ID). For
# shorter emails it is harmless and pins the role.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/register-airflow-user.sh --project ID --composer-env ENV
         (--composer-location LOC | --region REGION) [--service-account SA]
         [--role ROLE] [--add-role [--remove-role OLD]] [--method cli|api] [--dry-run]

Looks up the service account's numeric id (oauth2ClientId), then creates the Airflow user
accounts.google.com:NUMERIC_ID with email SA and role ROLE:

  gcloud composer environments run ENV --location LOC users create -- \
    -u accounts.google.com:NUMERIC_ID -e SA -f SA_NAME -l - -r Op --use-random-password

Options:
  --composer-env ENV       Cloud Composer environment (required)
  --composer-location LOC  its region (default: --region)
  --role ROLE              Airflow role (default Op; Admin, User, Viewer or a custom one
                           such as dagtrigger_trigger from deploy/airflow-role.sh)
  --add-role               the user exists already: give it ROLE (users add-role)
  --remove-role OLD        with --add-role: then take OLD away (users remove-role), e.g.
                           Op after Composer's automatic registration, so that only the
                           narrow role of deploy/airflow-role.sh is left
  --method cli|api         cli (default): the Airflow CLI through gcloud composer
                           environments run ('users' is a FAB auth manager command).
                           api: POST to the FAB auth manager REST API of the web server
                           (/api/v1/users on Airflow 2, /auth/fab/v1/users on Airflow 3)
                           with your gcloud access token; your Airflow user needs the
                           Admin role. Not verified against a live Composer environment.
  --airflow-api-version V  api method: v1 (Airflow 2, default) or v2 (Airflow 3)
  --airflow-uri URL        api method: the web server URL (default: looked up)

Airflow 3: gcloud 528 (June 2025) lets `composer environments run ... users` run only on
Airflow < 3.0.0; newer gcloud releases may allow it. Otherwise use --method api.

EOF
  dt_help_common
}

ROLE=Op
ADD_ROLE=0
REMOVE_ROLE=""
SA_EMAIL=""
NUMERIC_ID=""
METHOD=cli
API_VERSION=v1

dt_script_option() {
  case $1 in
    --role) ROLE=$2 ;;
    --add-role) ADD_ROLE=1 ;;
    --remove-role) REMOVE_ROLE=$2 ;;
    --method) METHOD=$2 ;;
    --airflow-api-version) API_VERSION=$2 ;;
  esac
}

dt_use_options common airflow
dt_add_options "--role --method --airflow-api-version --remove-role" "--add-role"
dt_parse_args "$@"

dt_check_project
[[ -z $DT_NAME ]] || dt_usage_error "--name is not used here: the Airflow user is the service account (--service-account)"
[[ -z $DT_DAG_ID ]] || dt_usage_error "--dag-id is not used here"
dt_check_composer_env
dt_check_regex "$ROLE" '^[A-Za-z][A-Za-z0-9_ -]{0,63}$' --role "an Airflow role name such as Op"
dt_check_airflow_method "$METHOD" "$API_VERSION"
if [[ -n $REMOVE_ROLE ]]; then
  ((ADD_ROLE)) || dt_usage_error "--remove-role works with --add-role only"
  dt_check_regex "$REMOVE_ROLE" '^[A-Za-z][A-Za-z0-9_ -]{0,63}$' --remove-role "an Airflow role name such as Op"
  [[ $REMOVE_ROLE != "$ROLE" ]] || dt_usage_error "--remove-role $REMOVE_ROLE is the role being given"
fi
[[ $METHOD == cli ]] || ((!ADD_ROLE)) || dt_usage_error "--add-role works with --method cli only"
dt_sa_email SA_EMAIL "$DT_SERVICE_ACCOUNT" --service-account
SA_NAME=${SA_EMAIL%%@*}
dt_require_gcloud

if ((${#SA_EMAIL} > 64)); then
  dt_note "$SA_EMAIL has ${#SA_EMAIL} characters (> 64): Composer cannot register it automatically; this registration is required."
else
  dt_note "$SA_EMAIL has ${#SA_EMAIL} characters (<= 64): Composer would register it on its first API call with the default role; registering pins role $ROLE."
fi

dt_capture NUMERIC_ID '<NUMERIC_ID>' \
  gcloud iam service-accounts describe "$SA_EMAIL" --project="$(dt_sa_project "$SA_EMAIL")" --format='value(oauth2ClientId)'
USERNAME=accounts.google.com:$NUMERIC_ID

if [[ $METHOD == cli ]]; then
  if ((ADD_ROLE)); then
    dt_composer_run users add-role -- -u "$USERNAME" -r "$ROLE"
    # Added first, removed second: the user is never left without a role that can trigger.
    [[ -z $REMOVE_ROLE ]] || dt_composer_run users remove-role -- -u "$USERNAME" -r "$REMOVE_ROLE"
  else
    DT_FAIL_HINT="if the user exists already, run again with --add-role to set its role"
    dt_composer_run users create -- -u "$USERNAME" -e "$SA_EMAIL" -f "$SA_NAME" -l - -r "$ROLE" --use-random-password
  fi
  exit 0
fi

# --method api: the FAB auth manager's users endpoint, authenticated like the function
# (a Google access token that Composer's API front end accepts).
if ((DT_DRY_RUN)); then
  password='<RANDOM_PASSWORD>'
  shown_password=$password
else
  password=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
  shown_password='***'
fi
body_format='{"username": "%s", "email": "%s", "first_name": "%s", "last_name": "-", "roles": [{"name": "%s"}], "password": "%s"}'
# shellcheck disable=SC2059 # the format is the constant above
dt_fab_api_post users "$API_VERSION" \
  "$(printf "$body_format" "$USERNAME" "$SA_EMAIL" "$SA_NAME" "$ROLE" "$password")" \
  "$(printf "$body_format" "$USERNAME" "$SA_EMAIL" "$SA_NAME" "$ROLE" "$shown_password")"
