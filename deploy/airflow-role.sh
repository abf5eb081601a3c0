#!/usr/bin/env bash
# Create a narrow Airflow role for the function: what triggering a DAG run needs, and not what
# Op also grants (clearing and marking tasks, deleting runs, connections, variables, pools).
#
# What triggering needs, read from Airflow's FAB auth manager (is_authorized_dag with
# access_entity RUN and method POST, Airflow 2.11 and the Airflow 3 FAB provider alike):
# can_edit on the DAG ("DAGs", or "DAG:<dag_id>") and can_create on its runs ("DAG Runs", or
# "DAG Run:<dag_id>"). can_read on the DAG is added for `python -m dagtrigger check`, which
# reads the DAG before it probes the trigger permission; can_read on its runs because a 409 is
# proof of a duplicate only once the function has read its own run back (dagtrigger/trigger.py). Give the role to the function's
# Airflow user with deploy/register-airflow-user.sh --role ROLE.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/airflow-role.sh --project ID --composer-env ENV
         (--composer-location LOC | --region REGION) [--composer-project ID]
         [--role NAME] [--dag-id DAG]... [--method cli|api] [--dry-run]

Creates the Airflow role NAME (default dagtrigger_trigger) with only what triggering DAG runs
needs:

  can_read, can_edit on DAGs        (or on DAG:<dag_id> for each --dag-id)
  can_read, can_create on DAG Runs  (or on DAG Run:<dag_id> for each --dag-id)

through the Airflow CLI of the Composer environment:

  gcloud composer environments run ENV --location LOC roles create -- NAME
  gcloud composer environments run ENV --location LOC roles add-perms -- NAME -r DAGs -a can_read can_edit
  gcloud composer environments run ENV --location LOC roles add-perms -- NAME -r 'DAG Runs' -a can_read can_create

With --dag-id, `sync-perm --include-dags` runs first so that the per-DAG resources exist. Then
register the function's service account with it:
deploy/register-airflow-user.sh ... --role NAME (a user Composer already registered with Op:
--add-role --remove-role Op).

Options:
  --composer-env ENV       Cloud Composer environment (required)
  --composer-location LOC  its region (default: --region)
  --composer-project ID    its project (default: --project)
  --role NAME              the role to create (default dagtrigger_trigger)
  --dag-id DAG             limit the role to this DAG (repeatable; default: every DAG)
  --method cli|api         cli (default): the Airflow CLI through gcloud composer
                           environments run (Airflow 2; gcloud 528 allows 'roles' below
                           Airflow 3.0.0 only). api: POST the role to the FAB auth manager
                           REST API (/api/v1/roles on Airflow 2, /auth/fab/v1/roles on
                           Airflow 3) with your gcloud access token; your Airflow user needs
                           the Admin role. The api method creates the role: if it exists, the
                           API answers 409.
  --airflow-api-version V  api method: v1 (Airflow 2, default) or v2 (Airflow 3)
  --airflow-uri URL        api method: the web server URL (default: looked up)

EOF
  dt_help_common
}

ROLE=dagtrigger_trigger
METHOD=cli
API_VERSION=v1
DAGS=()

dt_script_option() {
  case $1 in
    --role) ROLE=$2 ;;
    --method) METHOD=$2 ;;
    --airflow-api-version) API_VERSION=$2 ;;
    --dag-id) DAGS+=("$2") ;; # repeatable here, unlike the deploy scripts' --dag-id
  esac
}

dt_use_options common airflow
dt_add_options "--role --method --airflow-api-version --dag-id" ""
dt_parse_args "$@"

dt_check_project
[[ -z $DT_NAME && -z $DT_SERVICE_ACCOUNT ]] || dt_usage_error "--name and --service-account are not used here"
dt_check_composer_env
dt_check_regex "$ROLE" '^[A-Za-z][A-Za-z0-9_-]{0,63}$' --role "a role name such as dagtrigger_trigger"
[[ $ROLE != Op && $ROLE != Admin && $ROLE != User && $ROLE != Viewer && $ROLE != Public ]] ||
  dt_usage_error "--role $ROLE is one of Airflow's own roles: name a new one"
dt_check_airflow_method "$METHOD" "$API_VERSION"
if ((${#DAGS[@]})); then
  mapfile -t DAGS < <(printf '%s\n' "${DAGS[@]}" | sort -u)
fi
for dag in "${DAGS[@]}"; do
  dt_check_regex "$dag" '^[A-Za-z0-9_.-]{1,250}$' --dag-id "letters, digits, '_', '.' and '-'"
done
dt_require_gcloud

# The FAB resources: every DAG, or one "DAG:<id>" / "DAG Run:<id>" per --dag-id.
dag_resources=()
run_resources=()
if ((${#DAGS[@]})); then
  for dag in "${DAGS[@]}"; do
    dag_resources+=("DAG:$dag")
    run_resources+=("DAG Run:$dag")
  done
else
  dag_resources=(DAGs)
  run_resources=("DAG Runs")
fi
dt_note "Role $ROLE: can_read, can_edit on ${dag_resources[*]}; can_read, can_create on ${run_resources[*]}."
dt_note "(Airflow checks can_edit on the DAG and can_create on its runs before it creates a run;"
dt_note " the function reads its run back after a 409, to tell a duplicate from a clash.)"

if [[ $METHOD == cli ]]; then
  ((${#DAGS[@]} == 0)) || dt_composer_run sync-perm -- --include-dags
  dt_composer_run roles create -- "$ROLE"
  dt_composer_run roles add-perms -- "$ROLE" -r "${dag_resources[@]}" -a can_read can_edit
  dt_composer_run roles add-perms -- "$ROLE" -r "${run_resources[@]}" -a can_read can_create
  exit 0
fi

# --method api: one POST with the role and its permissions.
actions=""
for resource in "${dag_resources[@]}"; do
  for action in can_read can_edit; do
    actions+=$(printf '{"action": {"name": "%s"}, "resource": {"name": "%s"}}, ' "$action" "$resource")
  done
done
for resource in "${run_resources[@]}"; do
  for action in can_read can_create; do
    actions+=$(printf '{"action": {"name": "%s"}, "resource": {"name": "%s"}}, ' "$action" "$resource")
  done
done
body=$(printf '{"name": "%s", "actions": [%s]}' "$ROLE" "${actions%, }")
dt_fab_api_post roles "$API_VERSION" "$body" "$body"
