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
         [--role ROLE] [--add-role] [--method cli|api] [--dry-run]

Looks up the service account's numeric id (oauth2ClientId), then creates the Airflow user
accounts.google.com:NUMERIC_ID with email SA and role ROLE:

  gcloud composer environments run ENV --location LOC users create -- \
    -u accounts.google.com:NUMERIC_ID -e SA -f SA_NAME -l - -r Op --use-random-password

Options:
  --composer-env ENV       Cloud Composer environment (required)
  --composer-location LOC  its region (default: --region)
  --role ROLE              Airflow role (default Op; Admin, User, Viewer or a custom one)
  --add-role               the user exists already: give it ROLE (users add-role)
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
SA_EMAIL=""
NUMERIC_ID=""
token=""
METHOD=cli
API_VERSION=v1

dt_script_option() {
  case $1 in
    --role) ROLE=$2 ;;
    --add-role) ADD_ROLE=1 ;;
    --method) METHOD=$2 ;;
    --airflow-api-version) API_VERSION=$2 ;;
  esac
}

dt_use_options common airflow
dt_add_options "--role --method --airflow-api-version" "--add-role"
dt_parse_args "$@"

dt_check_project
[[ -z $DT_NAME ]] || dt_usage_error "--name is not used here: the Airflow user is the service account (--service-account)"
[[ -z $DT_DAG_ID ]] || dt_usage_error "--dag-id is not used here"
dt_require "$DT_COMPOSER_ENV" --composer-env "the Cloud Composer environment"
DT_COMPOSER_LOCATION=${DT_COMPOSER_LOCATION:-$DT_REGION}
dt_require "$DT_COMPOSER_LOCATION" --composer-location "the environment's region (or give --region)"
dt_check_region "$DT_COMPOSER_LOCATION" --composer-location
dt_check_composer_project
dt_check_regex "$ROLE" '^[A-Za-z][A-Za-z0-9_ -]{0,63}$' --role "an Airflow role name such as Op"
dt_check_choice "$METHOD" --method "cli api"
dt_check_choice "$API_VERSION" --airflow-api-version "v1 v2"
if [[ $METHOD == cli ]]; then
  [[ -z $DT_AIRFLOW_URI ]] || dt_usage_error "--airflow-uri is used by --method api only"
else
  ((!ADD_ROLE)) || dt_usage_error "--add-role works with --method cli only"
  [[ -z $DT_AIRFLOW_URI ]] || dt_check_regex "$DT_AIRFLOW_URI" '^https?://[^[:space:]]+$' --airflow-uri "an http(s) URL"
fi
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

composer_run() {
  dt_run gcloud composer environments run "$DT_COMPOSER_ENV" --project="$DT_COMPOSER_PROJECT" \
    --location="$DT_COMPOSER_LOCATION" "$@"
}

if [[ $METHOD == cli ]]; then
  if ((ADD_ROLE)); then
    composer_run users add-role -- -u "$USERNAME" -r "$ROLE"
  else
    DT_FAIL_HINT="if the user exists already, run again with --add-role to set its role"
    composer_run users create -- -u "$USERNAME" -e "$SA_EMAIL" -f "$SA_NAME" -l - -r "$ROLE" --use-random-password
  fi
  exit 0
fi

# --method api: the FAB auth manager's users endpoint, authenticated like the function
# (a Google access token that Composer's API front end accepts).
dt_resolve_airflow_uri
if [[ $API_VERSION == v1 ]]; then
  users_path=/api/v1/users
else
  users_path=/auth/fab/v1/users
fi
dt_capture token '<ACCESS_TOKEN>' gcloud auth print-access-token
if ((DT_DRY_RUN)); then
  header_file='<HEADER_FILE>'
  body_file='<BODY_FILE>'
  password='<RANDOM_PASSWORD>'
  shown_token=$token
  shown_password=$password
else
  workdir=$(mktemp -d)
  trap 'rm -rf -- "$workdir"' EXIT
  header_file=$workdir/header
  body_file=$workdir/body.json
  password=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
  shown_token='***'
  shown_password='***'
fi
body_format='{"username": "%s", "email": "%s", "first_name": "%s", "last_name": "-", "roles": [{"name": "%s"}], "password": "%s"}'
# shellcheck disable=SC2059 # the format is the constant above
shown_body=$(printf "$body_format" "$USERNAME" "$SA_EMAIL" "$SA_NAME" "$ROLE" "$shown_password")
dt_note "$header_file holds: Authorization: Bearer $shown_token"
dt_note "$body_file holds: $shown_body"
if ((!DT_DRY_RUN)); then
  (
    umask 077
    printf 'Authorization: Bearer %s\n' "$token" >"$header_file"
    # shellcheck disable=SC2059 # the format is the constant above
    printf "$body_format\n" "$USERNAME" "$SA_EMAIL" "$SA_NAME" "$ROLE" "$password" >"$body_file"
  )
fi
dt_run curl --silent --show-error --fail-with-body -X POST "${DT_AIRFLOW_URI%/}$users_path" \
  -H "@$header_file" -H 'Content-Type: application/json' --data "@$body_file"
