# shellcheck shell=bash
# deploy/lib.sh — shared by the deploy/*.sh scripts. Source it; don't run it.
#
# Provides: option parsing (common options + per-script ones), validation with exit code 2
# on usage errors, and the dry-run machinery: every gcloud command goes through dt_run or
# dt_capture, which print it as "+ <shell-quoted words>" and, with --dry-run, run nothing
# (look-ups print their command and yield a <PLACEHOLDER> instead of a value).
#
# Exit codes: 0 ok, 1 a command failed, 2 usage error (missing/invalid option).

if [[ -n ${DT_LIB_LOADED:-} ]]; then
  return 0
fi
DT_LIB_LOADED=1

DT_LIB_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
DT_REPO_ROOT=$(cd -- "$DT_LIB_DIR/.." && pwd)
DT_PROG=$(basename -- "$0")

readonly DT_DEFAULT_SA_ID=dagtrigger

# ---------------------------------------------------------------- state (set by options)
DT_DRY_RUN=0
DT_PROJECT=""
DT_REGION=""
DT_NAME=""
DT_SERVICE_ACCOUNT=""          # as given: short id or email; see dt_sa_email
# airflow group
DT_COMPOSER_ENV=""
DT_COMPOSER_LOCATION=""
DT_COMPOSER_PROJECT=""          # the environment's project; default: --project
DT_AIRFLOW_URI=""
DT_DAG_ID=""
# function group
DT_RUNTIME=python311
DT_TIMEOUT=120
DT_MEMORY=256Mi
DT_CPU=1
DT_MAX_INSTANCES=3
DT_MIN_INSTANCES=""
DT_CONCURRENCY=10
# Calls to Airflow in flight per instance (AIRFLOW_MAX_IN_FLIGHT), and what the target Airflow's API server takes
# at once (AIRFLOW_CAPACITY): Airflow 3's API server stalls past its database pool, 5 + 10 overflow connections
# by default. 3 instances x 4 = 12 stays under it (docs/deploy.md#airflow-capacity).
DT_MAX_IN_FLIGHT=4
DT_AIRFLOW_CAPACITY=15
DT_API_VERSION=""
DT_AUTH=""
DT_USERNAME=""
DT_AUDIENCE=""
DT_PASSWORD_SECRET=""
DT_TOKEN_SECRET=""
DT_REQUEST_TIMEOUT=20
DT_RETRY_BUDGET=30
DT_ROUTES_FILE=""
DT_DEAD_LETTER_URI=""
DT_VPC_CONNECTOR=""
DT_EGRESS_SETTINGS=""
DT_INGRESS_SETTINGS=""
DT_INGRESS_DEFAULTED=0        # 1: internal-only chosen for an event-triggered function
DT_SOURCE=""
DT_TRIGGER_SA=""              # event group: --trigger-service-account
DT_EXTRA_ENV=()               # KEY=VALUE from --env
DT_EXTRA_SECRETS=()           # ENV=SECRET[:VERSION] from --secret
# derived
DT_SA_EMAIL=""
DT_TRIGGER_SA_EMAIL=""
DT_ENV_PAIRS=()
DT_SECRET_PAIRS=()
DT_ENV_FLAG=""
DT_SECRETS_FLAG=""

# Option groups a script can enable with dt_use_options. Value options take one argument
# (as "--opt value" or "--opt=value"); flag options take none.
DT_VALUE_OPTS=""
DT_FLAG_OPTS=""
DT_FAIL_HINT=""     # appended to dt_run's error message when a command fails
DT_SCRIPT_OPTS=""   # the script's own options: they take precedence over the groups' ones
readonly DT_GROUP_COMMON_VALUES="--project --region --name --service-account"
readonly DT_GROUP_COMMON_FLAGS="--dry-run"
readonly DT_GROUP_AIRFLOW_VALUES="--composer-env --composer-location --composer-project --airflow-uri --dag-id"
readonly DT_GROUP_EVENT_VALUES="--trigger-service-account"
readonly DT_GROUP_FUNCTION_VALUES="--runtime --timeout --memory --cpu --max-instances --min-instances
  --concurrency --max-in-flight --airflow-capacity --airflow-api-version --airflow-auth --airflow-username --airflow-audience
  --password-secret --token-secret --request-timeout --retry-budget --env --secret --routes-file
  --dead-letter-uri --vpc-connector --egress-settings --ingress-settings --source"

# ---------------------------------------------------------------- messages
dt_die() {
  printf '%s: error: %s\n' "$DT_PROG" "$*" >&2
  exit 1
}

dt_usage_error() {
  printf '%s: error: %s\n' "$DT_PROG" "$*" >&2
  printf "Run '%s --help' for the options.\n" "$DT_PROG" >&2
  exit 2
}

# A comment line in the command listing: stdout with --dry-run (so the listing reads as a
# script), stderr otherwise (so stdout keeps only what gcloud prints).
dt_note() {
  if ((DT_DRY_RUN)); then
    printf '# %s\n' "$*"
  else
    printf '# %s\n' "$*" >&2
  fi
}

# ---------------------------------------------------------------- quoting and running
readonly DT_SAFE_WORD='^[A-Za-z0-9_@%+=:,./-]+$'

# Quote one word for a POSIX shell, exactly as Python's shlex.quote does.
dt_quote() {
  local s=$1
  if [[ -z $s ]]; then
    printf "''"
  elif [[ $s =~ $DT_SAFE_WORD ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/\'\"\'\"\'}"
  fi
}

dt_format_cmd() {
  local line="+" word
  for word in "$@"; do
    line+=" $(dt_quote "$word")"
  done
  printf '%s\n' "$line"
}

# Run a command (or, with --dry-run, only print it).
dt_run() {
  if ((DT_DRY_RUN)); then
    dt_format_cmd "$@"
    return 0
  fi
  dt_format_cmd "$@" >&2
  "$@" || dt_die "command failed (exit $?): $(dt_format_cmd "$@")${DT_FAIL_HINT:+($DT_FAIL_HINT)}"
}

# dt_capture VAR PLACEHOLDER cmd... — run a look-up and store the first line it prints in VAR.
# With --dry-run the command is printed and VAR gets PLACEHOLDER (e.g. <AIRFLOW_URI>).
dt_capture() {
  local _dt_var=$1 _dt_placeholder=$2 _dt_out
  shift 2
  if ((DT_DRY_RUN)); then
    dt_format_cmd "$@"
    printf -v "$_dt_var" '%s' "$_dt_placeholder"
    return 0
  fi
  dt_format_cmd "$@" >&2
  _dt_out=$("$@") || dt_die "look-up failed: $(dt_format_cmd "$@")"
  _dt_out=${_dt_out%%$'\n'*}
  _dt_out=${_dt_out//[[:space:]]/}
  [[ -n $_dt_out ]] || dt_die "look-up printed nothing: $(dt_format_cmd "$@")"
  printf -v "$_dt_var" '%s' "$_dt_out"
}

dt_require_gcloud() {
  ((DT_DRY_RUN)) && return 0
  command -v gcloud >/dev/null 2>&1 ||
    dt_die "gcloud not found: install the Google Cloud CLI, or add --dry-run to only print the commands"
}

# ---------------------------------------------------------------- option parsing
# dt_use_options GROUP... — enable option groups: common, airflow, function, event.
dt_use_options() {
  local group
  for group in "$@"; do
    case $group in
      common)
        DT_VALUE_OPTS+=" $DT_GROUP_COMMON_VALUES"
        DT_FLAG_OPTS+=" $DT_GROUP_COMMON_FLAGS"
        ;;
      airflow) DT_VALUE_OPTS+=" $DT_GROUP_AIRFLOW_VALUES" ;;
      function) DT_VALUE_OPTS+=" $DT_GROUP_FUNCTION_VALUES" ;;
      event) DT_VALUE_OPTS+=" $DT_GROUP_EVENT_VALUES" ;;
      *) dt_die "internal: unknown option group $group" ;;
    esac
  done
}

# dt_add_options "VALUE OPTS" "FLAG OPTS" — a script's own options, handled by its
# dt_script_option function: dt_script_option OPTION VALUE (VALUE is 1 for flags).
dt_add_options() {
  DT_VALUE_OPTS+=" $1"
  DT_FLAG_OPTS+=" ${2:-}"
  DT_SCRIPT_OPTS+=" $1 ${2:-}"
}

dt__in_list() { # dt__in_list WORD "LIST"
  local list=" ${2//$'\n'/ } "
  [[ $list == *" $1 "* ]]
}

dt_parse_args() {
  local arg opt val
  while (($#)); do
    arg=$1
    shift
    case $arg in
      -h | --help)
        usage
        exit 0
        ;;
      --*=*)
        opt=${arg%%=*}
        val=${arg#*=}
        if ! dt__in_list "$opt" "$DT_VALUE_OPTS"; then
          dt__in_list "$opt" "$DT_FLAG_OPTS" && dt_usage_error "option $opt takes no value"
          dt_usage_error "unknown option: $opt"
        fi
        [[ -n $val ]] || dt_usage_error "option $opt needs a non-empty value"
        ;;
      --*)
        opt=$arg
        if dt__in_list "$opt" "$DT_VALUE_OPTS"; then
          if (($# == 0)) || [[ $1 == --* ]] || [[ -z $1 ]]; then
            dt_usage_error "option $opt needs a value"
          fi
          val=$1
          shift
        elif dt__in_list "$opt" "$DT_FLAG_OPTS"; then
          val=1
        else
          dt_usage_error "unknown option: $opt"
        fi
        ;;
      *) dt_usage_error "unexpected argument: $arg (options start with --)" ;;
    esac
    dt__set_option "$opt" "$val"
  done
}

dt__set_option() {
  local opt=$1 val=$2
  if dt__in_list "$opt" "$DT_SCRIPT_OPTS"; then
    dt_script_option "$opt" "$val"
    return 0
  fi
  case $opt in
    --dry-run) DT_DRY_RUN=1 ;;
    --project) DT_PROJECT=$val ;;
    --region) DT_REGION=$val ;;
    --name) DT_NAME=$val ;;
    --service-account) DT_SERVICE_ACCOUNT=$val ;;
    --composer-env) DT_COMPOSER_ENV=$val ;;
    --composer-location) DT_COMPOSER_LOCATION=$val ;;
    --composer-project) DT_COMPOSER_PROJECT=$val ;;
    --airflow-uri) DT_AIRFLOW_URI=$val ;;
    --dag-id) DT_DAG_ID=$val ;;
    --runtime) DT_RUNTIME=$val ;;
    --timeout) DT_TIMEOUT=${val%s} ;;
    --memory) DT_MEMORY=$val ;;
    --cpu) DT_CPU=$val ;;
    --max-instances) DT_MAX_INSTANCES=$val ;;
    --min-instances) DT_MIN_INSTANCES=$val ;;
    --concurrency) DT_CONCURRENCY=$val ;;
    --max-in-flight) DT_MAX_IN_FLIGHT=$val ;;
    --airflow-capacity) DT_AIRFLOW_CAPACITY=$val ;;
    --airflow-api-version) DT_API_VERSION=$val ;;
    --airflow-auth) DT_AUTH=$val ;;
    --airflow-username) DT_USERNAME=$val ;;
    --airflow-audience) DT_AUDIENCE=$val ;;
    --password-secret) DT_PASSWORD_SECRET=$val ;;
    --token-secret) DT_TOKEN_SECRET=$val ;;
    --request-timeout) DT_REQUEST_TIMEOUT=${val%s} ;;
    --retry-budget) DT_RETRY_BUDGET=${val%s} ;;
    --env) DT_EXTRA_ENV+=("$val") ;;
    --secret) DT_EXTRA_SECRETS+=("$val") ;;
    --routes-file) DT_ROUTES_FILE=$val ;;
    --dead-letter-uri) DT_DEAD_LETTER_URI=$val ;;
    --vpc-connector) DT_VPC_CONNECTOR=$val ;;
    --egress-settings) DT_EGRESS_SETTINGS=$val ;;
    --ingress-settings) DT_INGRESS_SETTINGS=$val ;;
    --source) DT_SOURCE=$val ;;
    --trigger-service-account) DT_TRIGGER_SA=$val ;;
    *) dt_die "internal: option $opt has no handler" ;;
  esac
}

# ---------------------------------------------------------------- validation
# dt_require VALUE OPTION "what it is"
dt_require() {
  [[ -n $1 ]] || dt_usage_error "missing required option $2 ($3)"
}

dt_check_regex() { # dt_check_regex VALUE REGEX OPTION "expected form"
  [[ $1 =~ $2 ]] || dt_usage_error "invalid $3 '$1': expected $4"
}

dt_check_int() { # dt_check_int VALUE OPTION MIN [MAX]
  [[ $1 =~ ^[0-9]+$ ]] || dt_usage_error "invalid $2 '$1': expected a whole number"
  ((10#$1 >= $3)) || dt_usage_error "invalid $2 '$1': must be at least $3"
  if [[ -n ${4:-} ]]; then
    ((10#$1 <= $4)) || dt_usage_error "invalid $2 '$1': must be at most $4"
  fi
}

dt_check_choice() { # dt_check_choice VALUE OPTION "CHOICES"
  dt__in_list "$1" "$3" || dt_usage_error "invalid $2 '$1': choose one of ${3// /, }"
}

dt_check_project() {
  dt_require "$DT_PROJECT" --project "the Google Cloud project id"
  dt_check_regex "$DT_PROJECT" '^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$' --project "a project id such as my-project"
}

dt_check_region() { # dt_check_region VALUE OPTION
  dt_check_regex "$1" '^[a-z]+(-[a-z]+)*[0-9]+$' "$2" "a region such as us-central1"
}

dt_check_function_name() {
  dt_check_regex "$DT_NAME" '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$' --name \
    "lower-case letters, digits and hyphens, starting with a letter, at most 63 characters"
}

# dt_sa_email VAR ID_OR_EMAIL OPTION — the service account's email in VAR: a short id
# (6-30 chars) becomes ID@PROJECT.iam.gserviceaccount.com (default id: dagtrigger).
# (Results come back in a variable, not $(...), so that a usage error exits the script.)
dt_sa_email() {
  local _dt_sa=${2:-$DT_DEFAULT_SA_ID}
  if [[ $_dt_sa == *@* ]]; then
    [[ $_dt_sa =~ ^[^@[:space:]]+@[^@[:space:]]+\.[a-z]+$ ]] || dt_usage_error "invalid $3 '$_dt_sa': not an email"
  else
    [[ $_dt_sa =~ ^[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]] ||
      dt_usage_error "invalid $3 '$_dt_sa': an id is 6-30 lower-case letters, digits and hyphens"
    _dt_sa=$_dt_sa@${DT_PROJECT#*:}.iam.gserviceaccount.com
  fi
  printf -v "$1" '%s' "$_dt_sa"
}

# The project a user-managed service account lives in (from its email), else DT_PROJECT.
dt_sa_project() { # dt_sa_project EMAIL
  local domain=${1#*@}
  if [[ $domain == *.iam.gserviceaccount.com ]]; then
    printf '%s' "${domain%.iam.gserviceaccount.com}"
  else
    printf '%s' "$DT_PROJECT"
  fi
}

# Validate the Airflow location options: exactly one of --airflow-uri / --composer-env.
dt_check_airflow_target() {
  if [[ -n $DT_AIRFLOW_URI && -n $DT_COMPOSER_ENV ]]; then
    dt_usage_error "give either --airflow-uri or --composer-env, not both"
  fi
  if [[ -z $DT_AIRFLOW_URI && -z $DT_COMPOSER_ENV ]]; then
    dt_usage_error "missing required option --composer-env (with --composer-location) or --airflow-uri (the Airflow web server URL)"
  fi
  if [[ -n $DT_AIRFLOW_URI ]]; then
    dt_check_regex "$DT_AIRFLOW_URI" '^https?://[^[:space:]]+$' --airflow-uri "an http(s) URL"
  else
    DT_COMPOSER_LOCATION=${DT_COMPOSER_LOCATION:-$DT_REGION}
    dt_require "$DT_COMPOSER_LOCATION" --composer-location "the Composer environment's region (defaults to --region)"
    dt_check_region "$DT_COMPOSER_LOCATION" --composer-location
  fi
  dt_check_composer_project
}

# The Composer environment's project (--composer-project, default --project): where
# roles/composer.user is granted and where the environment is looked up.
dt_check_composer_project() {
  DT_COMPOSER_PROJECT=${DT_COMPOSER_PROJECT:-$DT_PROJECT}
  dt_check_regex "$DT_COMPOSER_PROJECT" '^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$' --composer-project \
    "a project id such as my-composer-project"
}

# For the scripts that act inside a Composer environment (register-airflow-user.sh,
# airflow-role.sh): --composer-env is required, its location defaults to --region.
dt_check_composer_env() {
  dt_require "$DT_COMPOSER_ENV" --composer-env "the Cloud Composer environment"
  DT_COMPOSER_LOCATION=${DT_COMPOSER_LOCATION:-$DT_REGION}
  dt_require "$DT_COMPOSER_LOCATION" --composer-location "the environment's region (or give --region)"
  dt_check_region "$DT_COMPOSER_LOCATION" --composer-location
  dt_check_composer_project
}

# dt_check_airflow_method METHOD API_VERSION — cli (gcloud composer environments run) or api
# (the FAB auth manager REST API, see dt_fab_api_post); --airflow-uri only makes sense for api.
dt_check_airflow_method() {
  dt_check_choice "$1" --method "cli api"
  dt_check_choice "$2" --airflow-api-version "v1 v2"
  if [[ $1 == cli ]]; then
    [[ -z $DT_AIRFLOW_URI ]] || dt_usage_error "--airflow-uri is used by --method api only"
  else
    [[ -z $DT_AIRFLOW_URI ]] || dt_check_regex "$DT_AIRFLOW_URI" '^https?://[^[:space:]]+$' --airflow-uri "an http(s) URL"
  fi
}

# dt_composer_run SUBCOMMAND... — an Airflow CLI command in the environment (the arguments
# after SUBCOMMAND go after --, as gcloud composer environments run expects).
dt_composer_run() {
  dt_run gcloud composer environments run "$DT_COMPOSER_ENV" --project="$DT_COMPOSER_PROJECT" \
    --location="$DT_COMPOSER_LOCATION" "$@"
}

# Look the Airflow web server URL up from Composer unless --airflow-uri was given.
dt_resolve_airflow_uri() {
  [[ -n $DT_AIRFLOW_URI ]] && return 0
  dt_capture DT_AIRFLOW_URI '<AIRFLOW_URI>' \
    gcloud composer environments describe "$DT_COMPOSER_ENV" --project="$DT_COMPOSER_PROJECT" \
    --location="$DT_COMPOSER_LOCATION" --format='value(config.airflowUri)'
}

# dt_fab_api_post ENDPOINT API_VERSION BODY SHOWN_BODY — POST a JSON body to the FAB auth
# manager's REST API of the Airflow web server (ENDPOINT users or roles: /api/v1/ENDPOINT on
# Airflow 2, /auth/fab/v1/ENDPOINT on Airflow 3), authenticated with your gcloud access token
# as Composer's API front end expects. The token and BODY go through 0600 temporary files,
# never the command line; the listing shows SHOWN_BODY (BODY with secrets masked).
DT_API_WORKDIR=""
dt_fab_api_post() {
  local endpoint=$1 api_version=$2 body=$3 shown_body=$4 token="" header_file body_file shown_token path
  if [[ $api_version == v1 ]]; then
    path=/api/v1/$endpoint
  else
    path=/auth/fab/v1/$endpoint
  fi
  dt_resolve_airflow_uri
  dt_capture token '<ACCESS_TOKEN>' gcloud auth print-access-token
  if ((DT_DRY_RUN)); then
    header_file='<HEADER_FILE>'
    body_file='<BODY_FILE>'
    shown_token=$token
  else
    DT_API_WORKDIR=$(mktemp -d)
    trap 'rm -rf -- "$DT_API_WORKDIR"' EXIT
    header_file=$DT_API_WORKDIR/header
    body_file=$DT_API_WORKDIR/body.json
    shown_token='***'
    (
      umask 077
      printf 'Authorization: Bearer %s\n' "$token" >"$header_file"
      printf '%s\n' "$body" >"$body_file"
    )
  fi
  dt_note "$header_file holds: Authorization: Bearer $shown_token"
  dt_note "$body_file holds: $shown_body"
  dt_run curl --silent --show-error --fail-with-body -X POST "${DT_AIRFLOW_URI%/}$path" \
    -H "@$header_file" -H 'Content-Type: application/json' --data "@$body_file"
}

# dt_secret_ref VAR VALUE OPTION — a Secret Manager reference for --set-secrets in VAR:
# NAME -> NAME:latest; NAME:VERSION and projects/P/secrets/NAME[/versions/V|:V] are kept.
dt_secret_ref() {
  local _dt_ref=$2
  if [[ $_dt_ref =~ ^projects/[^/]+/secrets/[A-Za-z0-9_-]+(/versions/[A-Za-z0-9]+|:[A-Za-z0-9]+)?$ ]]; then
    [[ $_dt_ref == */versions/* || $_dt_ref =~ :[A-Za-z0-9]+$ ]] || _dt_ref+=:latest
  elif [[ $_dt_ref =~ ^[A-Za-z0-9_-]+(:([0-9]+|latest))?$ ]]; then
    [[ $_dt_ref == *:* ]] || _dt_ref+=:latest
  else
    dt_usage_error "invalid $3 '$2': expected SECRET, SECRET:VERSION or projects/PROJECT/secrets/SECRET[:VERSION]"
  fi
  printf -v "$1" '%s' "$_dt_ref"
}

# dt_join_kv VAR ITEM... — join KEY=VALUE items for a gcloud list flag into VAR. Uses
# gcloud's alternate-delimiter syntax (^D^item1Ditem2, see `gcloud topic escaping`) when a
# value contains a comma.
dt_join_kv() {
  local _dt_var=$1 joined="" item delim
  shift
  if [[ "$*" != *,* ]]; then
    local IFS=,
    printf -v "$_dt_var" '%s' "$*"
    return 0
  fi
  for delim in '|' ';' '~' '#'; do
    [[ "$*" == *"$delim"* ]] && continue
    joined="^$delim^"
    for item in "$@"; do
      joined+="$item$delim"
    done
    printf -v "$_dt_var" '%s' "${joined%"$delim"}"
    return 0
  done
  dt_usage_error "cannot pass the environment: values contain ',' and every alternate delimiter (| ; ~ #)"
}

# ---------------------------------------------------------------- function deployment
# A plain environment variable whose NAME matches this (any case) is refused: secrets come
# only from Secret Manager. It covers AIRFLOW_PASSWORD, AIRFLOW_TOKEN, WEBHOOK_HMAC_SECRET,
# DEAD_LETTER_SEAL_SECRET[_PREVIOUS] and the per-route webhook secrets (names ending in SECRET).
readonly DT_SECRET_NAME_PATTERN='(SECRET|PASSWORD|TOKEN)'

# Whether the routes file (relative to the source, as the function reads it) names the variable $1 as a word.
# Conservative on purpose: any mention counts, since webhook.secrets may name any variable in YAML or JSON.
dt_routes_file_names() {
  local file=$DT_ROUTES_FILE
  [[ $file == /* ]] || file="$DT_SOURCE/$file"
  [[ -f $file ]] || return 1
  grep -qwF -- "$1" "$file"
}

# Validate the function-group options and build DT_ENV_PAIRS / DT_SECRET_PAIRS.
dt_check_function_options() {
  local kind=$1 item key
  dt_check_choice "$DT_RUNTIME" --runtime "python311 python312"
  dt_check_int "$DT_REQUEST_TIMEOUT" --request-timeout 1 600
  dt_check_int "$DT_RETRY_BUDGET" --retry-budget 0 3600
  if [[ $kind == event ]]; then
    dt_check_int "$DT_TIMEOUT" --timeout 1 540
  else
    dt_check_int "$DT_TIMEOUT" --timeout 1 3600
  fi
  # One trigger attempt may spend the whole retry budget and then one more request.
  local need=$((10#$DT_RETRY_BUDGET + 10#$DT_REQUEST_TIMEOUT))
  ((10#$DT_TIMEOUT > need)) || dt_usage_error "--timeout ${DT_TIMEOUT}s must exceed --retry-budget + --request-timeout" \
    "(${DT_RETRY_BUDGET}s + ${DT_REQUEST_TIMEOUT}s = ${need}s), or Cloud Run kills a trigger that is still retrying"
  dt_check_int "$DT_MAX_INSTANCES" --max-instances 1 1000
  [[ -z $DT_MIN_INSTANCES ]] || dt_check_int "$DT_MIN_INSTANCES" --min-instances 0 "$DT_MAX_INSTANCES"
  dt_check_int "$DT_CONCURRENCY" --concurrency 1 1000
  dt_check_int "$DT_MAX_IN_FLIGHT" --max-in-flight 1 256
  dt_check_int "$DT_AIRFLOW_CAPACITY" --airflow-capacity 1 100000
  dt_check_regex "$DT_MEMORY" '^[0-9]+(k|M|G|Ki|Mi|Gi)$' --memory "a size such as 256Mi or 1Gi"
  dt_check_regex "$DT_CPU" '^([0-9]+(\.[0-9]+)?|\.[0-9]+|[0-9]+m)$' --cpu "a CPU count such as 1, 2 or .5"
  if ((10#$DT_CONCURRENCY > 1)) && ! dt__cpu_at_least_one "$DT_CPU"; then
    dt_usage_error "--concurrency $DT_CONCURRENCY needs --cpu 1 or more (Cloud Run allows concurrency > 1 only with at least 1 vCPU)"
  fi
  [[ -z $DT_API_VERSION ]] || dt_check_choice "$DT_API_VERSION" --airflow-api-version "auto v1 v2"
  [[ -z $DT_AUTH ]] || dt_check_choice "$DT_AUTH" --airflow-auth "google none basic airflow-jwt id-token bearer"
  case $DT_AUTH in
    basic | airflow-jwt)
      dt_require "$DT_USERNAME" --airflow-username "needed by --airflow-auth $DT_AUTH"
      dt_require "$DT_PASSWORD_SECRET" --password-secret "the Secret Manager secret holding the Airflow password, needed by --airflow-auth $DT_AUTH"
      ;;
    bearer)
      dt_require "$DT_TOKEN_SECRET" --token-secret "the Secret Manager secret holding the token, needed by --airflow-auth bearer"
      ;;
  esac
  [[ -z $DT_DEAD_LETTER_URI ]] || dt_check_regex "$DT_DEAD_LETTER_URI" '^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/.*)?$' \
    --dead-letter-uri "gs://BUCKET[/PREFIX]"
  if [[ -z $DT_DAG_ID && -z $DT_ROUTES_FILE ]]; then
    dt_usage_error "missing required option --dag-id (the DAG to trigger) or --routes-file"
  fi
  [[ -z $DT_DAG_ID ]] || dt_check_regex "$DT_DAG_ID" '^[A-Za-z0-9_.-]{1,250}$' --dag-id "letters, digits, '_', '.' and '-'"
  [[ -z $DT_EGRESS_SETTINGS ]] || dt_check_choice "$DT_EGRESS_SETTINGS" --egress-settings "private-ranges-only all"
  [[ -z $DT_INGRESS_SETTINGS ]] || dt_check_choice "$DT_INGRESS_SETTINGS" --ingress-settings "all internal-only internal-and-gclb"
  # Eventarc (and the Pub/Sub subscription it creates) in the function's project counts as
  # internal traffic, so event-triggered functions need no public ingress (docs/deploy.md#ingress).
  if [[ $kind == event && -z $DT_INGRESS_SETTINGS ]]; then
    DT_INGRESS_SETTINGS=internal-only
    DT_INGRESS_DEFAULTED=1
  fi
  if [[ -n $DT_EGRESS_SETTINGS && -z $DT_VPC_CONNECTOR ]]; then
    dt_usage_error "--egress-settings needs --vpc-connector"
  fi
  if [[ -n $DT_SOURCE ]]; then
    [[ -d $DT_SOURCE ]] || dt_usage_error "--source '$DT_SOURCE' is not a directory"
    DT_SOURCE=$(cd -- "$DT_SOURCE" && pwd)
  else
    DT_SOURCE=$DT_REPO_ROOT
  fi

  # Plain environment: non-secret settings only.
  DT_ENV_PAIRS=()
  [[ -n $DT_DAG_ID ]] && DT_ENV_PAIRS+=("DAG_ID=$DT_DAG_ID")
  [[ -n $DT_API_VERSION ]] && DT_ENV_PAIRS+=("AIRFLOW_API_VERSION=$DT_API_VERSION")
  [[ -n $DT_AUTH ]] && DT_ENV_PAIRS+=("AIRFLOW_AUTH=$DT_AUTH")
  [[ -n $DT_USERNAME ]] && DT_ENV_PAIRS+=("AIRFLOW_USERNAME=$DT_USERNAME")
  [[ -n $DT_AUDIENCE ]] && DT_ENV_PAIRS+=("AIRFLOW_AUDIENCE=$DT_AUDIENCE")
  DT_ENV_PAIRS+=("AIRFLOW_TIMEOUT_SECONDS=$DT_REQUEST_TIMEOUT" "AIRFLOW_RETRY_BUDGET_SECONDS=$DT_RETRY_BUDGET")
  DT_ENV_PAIRS+=("AIRFLOW_MAX_IN_FLIGHT=$DT_MAX_IN_FLIGHT" "MAX_INSTANCES=$DT_MAX_INSTANCES"
    "AIRFLOW_CAPACITY=$DT_AIRFLOW_CAPACITY")
  [[ -n $DT_ROUTES_FILE ]] && DT_ENV_PAIRS+=("ROUTES_FILE=$DT_ROUTES_FILE")
  [[ -n $DT_DEAD_LETTER_URI ]] && DT_ENV_PAIRS+=("DEAD_LETTER_URI=$DT_DEAD_LETTER_URI")
  local threads_given=0
  for item in "${DT_EXTRA_ENV[@]}"; do
    [[ $item == *=* ]] || dt_usage_error "invalid --env '$item': expected KEY=VALUE"
    key=${item%%=*}
    dt_check_regex "$key" '^[A-Za-z_][A-Za-z0-9_]*$' --env "KEY=VALUE with KEY a valid variable name"
    if [[ ${key^^} =~ $DT_SECRET_NAME_PATTERN ]]; then
      # The value is never echoed: it may be the secret itself.
      dt_usage_error "$key looks like a secret (its name contains ${BASH_REMATCH[1]}) and must not be a plain" \
        "environment variable: secrets come only from Secret Manager. Store it there, then map it with" \
        "--secret $key=SECRET_ID:VERSION (gcloud's --set-secrets; --password-secret / --token-secret for" \
        "the Airflow password / token) and grant access with deploy/iam.sh --secret SECRET_ID."
    fi
    if [[ -n $DT_ROUTES_FILE ]] && dt_routes_file_names "$key"; then
      # A route's webhook.secrets may name any variable: the names the routes use are secrets whatever they look like.
      dt_usage_error "$key is named in the routes file ($DT_ROUTES_FILE, e.g. a route's webhook.secrets) and must" \
        "not be a plain environment variable: secrets come only from Secret Manager. Map it with" \
        "--secret $key=SECRET_ID:VERSION (gcloud's --set-secrets) and grant access with deploy/iam.sh --secret SECRET_ID."
    fi
    [[ $key == AIRFLOW_URI ]] && dt_usage_error "set AIRFLOW_URI with --airflow-uri or --composer-env, not --env"
    [[ $key == THREADS ]] && threads_given=1
    DT_ENV_PAIRS+=("$item")
  done
  # functions-framework serves requests with THREADS gunicorn threads (default 4 per CPU);
  # give each instance as many threads as the concurrency it is allowed.
  ((threads_given)) || DT_ENV_PAIRS+=("THREADS=$DT_CONCURRENCY")

  # Secrets: from Secret Manager only (--set-secrets), never plain environment variables.
  DT_SECRET_PAIRS=()
  local ref
  if [[ -n $DT_PASSWORD_SECRET ]]; then
    dt_secret_ref ref "$DT_PASSWORD_SECRET" --password-secret
    DT_SECRET_PAIRS+=("AIRFLOW_PASSWORD=$ref")
  fi
  if [[ -n $DT_TOKEN_SECRET ]]; then
    dt_secret_ref ref "$DT_TOKEN_SECRET" --token-secret
    DT_SECRET_PAIRS+=("AIRFLOW_TOKEN=$ref")
  fi
  for item in "${DT_EXTRA_SECRETS[@]}"; do
    [[ $item == *=* ]] || dt_usage_error "invalid --secret '$item': expected ENV=SECRET[:VERSION]"
    key=${item%%=*}
    dt_check_regex "$key" '^[A-Za-z_][A-Za-z0-9_]*$' --secret "ENV=SECRET[:VERSION] with ENV a valid variable name"
    dt_secret_ref ref "${item#*=}" --secret
    DT_SECRET_PAIRS+=("$key=$ref")
  done
  dt_join_kv DT_ENV_FLAG "AIRFLOW_URI=${DT_AIRFLOW_URI:-<AIRFLOW_URI>}" "${DT_ENV_PAIRS[@]}"
  DT_SECRETS_FLAG=""
  ((${#DT_SECRET_PAIRS[@]} == 0)) || dt_join_kv DT_SECRETS_FLAG "${DT_SECRET_PAIRS[@]}"
  dt__note_unsealed_dead_letters
}

# Dead letters without DEAD_LETTER_SEAL_SECRET are written unsealed: a writer of the bucket can plant records that
# replay cannot tell from the function's (docs/dead-letters.md#seals). A note, as `dagtrigger check` warns.
dt__note_unsealed_dead_letters() {
  local pair
  [[ -n $DT_DEAD_LETTER_URI ]] || return 0
  for pair in "${DT_SECRET_PAIRS[@]}"; do
    [[ ${pair%%=*} == DEAD_LETTER_SEAL_SECRET ]] && return 0
  done
  dt_note "WARNING: --dead-letter-uri without --secret DEAD_LETTER_SEAL_SECRET=SECRET_ID:VERSION: records are" \
    "written unsealed, so whoever can write the bucket can plant them, and replay refuses Pub/Sub-message records" \
    "without --accept-unsealed. Create a key once (openssl rand -base64 32, stored in Secret Manager as" \
    "dead-letter-seal), grant it with deploy/iam.sh --secret dead-letter-seal and deploy with" \
    "--secret DEAD_LETTER_SEAL_SECRET=dead-letter-seal:1 (docs/dead-letters.md#seals)."
}

dt__cpu_at_least_one() {
  local cpu=$1
  if [[ $cpu == *m ]]; then
    ((10#${cpu%m} >= 1000))
  else
    [[ $cpu =~ ^0*[1-9][0-9]*(\.[0-9]*)?$ ]]
  fi
}

# dt_prepare_deploy KIND DEFAULT_NAME — validate everything a deploy script shares (KIND is
# event or http) and work out the service accounts. Runs nothing; the script calls
# dt_require_gcloud once its own options are checked too.
dt_prepare_deploy() {
  local kind=$1
  dt_check_project
  dt_require "$DT_REGION" --region "the function's region, e.g. us-central1"
  dt_check_region "$DT_REGION" --region
  DT_NAME=${DT_NAME:-$2}
  dt_check_function_name
  dt_check_airflow_target
  dt_check_function_options "$kind"
  dt_sa_email DT_SA_EMAIL "$DT_SERVICE_ACCOUNT" --service-account
  if [[ $kind == event ]]; then
    dt_sa_email DT_TRIGGER_SA_EMAIL "${DT_TRIGGER_SA:-$DT_SA_EMAIL}" --trigger-service-account
  fi
}

# dt_deploy_function KIND ENTRY_POINT TRIGGER_FLAG...: the `gcloud functions deploy` call,
# with the shared settings; KIND is event or http.
dt_deploy_function() {
  local kind=$1 entry_point=$2
  shift 2
  local cmd=(gcloud functions deploy "$DT_NAME" --gen2 --project="$DT_PROJECT" --region="$DT_REGION"
    --runtime="$DT_RUNTIME" --source="$DT_SOURCE" --entry-point="$entry_point" "$@")
  cmd+=(--service-account="$DT_SA_EMAIL")
  [[ $kind == event ]] && cmd+=(--trigger-service-account="$DT_TRIGGER_SA_EMAIL")
  cmd+=(--timeout="${DT_TIMEOUT}s" --memory="$DT_MEMORY" --cpu="$DT_CPU"
    --max-instances="$DT_MAX_INSTANCES" --concurrency="$DT_CONCURRENCY")
  [[ -n $DT_MIN_INSTANCES ]] && cmd+=(--min-instances="$DT_MIN_INSTANCES")
  [[ -n $DT_INGRESS_SETTINGS ]] && cmd+=(--ingress-settings="$DT_INGRESS_SETTINGS")
  ((DT_INGRESS_DEFAULTED)) && dt_note "Ingress internal-only: Eventarc delivers from inside Google Cloud;" \
    "--ingress-settings all opens the URL to the internet (IAM still applies)."
  if [[ -n $DT_VPC_CONNECTOR ]]; then
    cmd+=(--vpc-connector="$DT_VPC_CONNECTOR" --egress-settings="${DT_EGRESS_SETTINGS:-all}")
  fi
  dt_join_kv DT_ENV_FLAG "AIRFLOW_URI=$DT_AIRFLOW_URI" "${DT_ENV_PAIRS[@]}"
  cmd+=(--set-env-vars="$DT_ENV_FLAG")
  dt_pin_secret_versions
  [[ -z $DT_SECRETS_FLAG ]] || cmd+=(--set-secrets="$DT_SECRETS_FLAG")
  dt_note_airflow_load
  dt_run "${cmd[@]}"
}

# What the deployment can send Airflow at once: max-instances x AIRFLOW_MAX_IN_FLIGHT (each instance queues the
# rest of its --concurrency requests), against what the API server takes (--airflow-capacity).
dt_note_airflow_load() {
  local calls=$((10#$DT_MAX_INSTANCES * 10#$DT_MAX_IN_FLIGHT))
  dt_note "At most max-instances x AIRFLOW_MAX_IN_FLIGHT = $DT_MAX_INSTANCES x $DT_MAX_IN_FLIGHT = $calls calls" \
    "in flight to Airflow's API server (--airflow-capacity $DT_AIRFLOW_CAPACITY); each instance queues the rest" \
    "of its --concurrency $DT_CONCURRENCY requests."
  if ((calls > 10#$DT_AIRFLOW_CAPACITY)); then
    dt_note "WARNING: $calls is over the $DT_AIRFLOW_CAPACITY concurrent calls Airflow's API server takes: past" \
      "its database pool it stalls (Airflow 3, measured: 3.1 POST/s at 32 callers against 34-44/s at 16). Lower" \
      "--max-instances or --max-in-flight, or raise [database] sql_alchemy_pool_size / sql_alchemy_max_overflow" \
      "on Airflow and pass the new total as --airflow-capacity (docs/deploy.md#airflow-capacity)."
  fi
}

# Pin every Secret Manager reference to a version: under :latest a rotated secret changes what the function does
# at its next cold start, without a deploy. NAME and NAME:latest become the version that is current now.
dt_pin_secret_versions() {
  local i pair key ref secret project version
  for i in "${!DT_SECRET_PAIRS[@]}"; do
    pair=${DT_SECRET_PAIRS[$i]}
    key=${pair%%=*}
    ref=${pair#*=}
    [[ $ref == *:latest ]] || continue
    secret=${ref%:latest}
    project=$DT_PROJECT
    if [[ $secret == projects/*/secrets/* ]]; then
      project=${secret#projects/}
      project=${project%%/*}
      secret=${secret##*/}
    fi
    dt_capture version "<VERSION_OF_$secret>" gcloud secrets versions describe latest --secret="$secret" \
      --project="$project" --format='value(name)'
    DT_SECRET_PAIRS[i]="$key=${ref%:latest}:${version##*/}"
  done
  DT_SECRETS_FLAG=""
  ((${#DT_SECRET_PAIRS[@]} == 0)) || dt_join_kv DT_SECRETS_FLAG "${DT_SECRET_PAIRS[@]}"
}

# roles/run.invoker on the function's Cloud Run service (2nd gen functions are Cloud Run
# services of the same name). Equivalent: gcloud functions add-invoker-policy-binding.
dt_grant_invoker() { # dt_grant_invoker MEMBER
  dt_run gcloud run services add-iam-policy-binding "$DT_NAME" --project="$DT_PROJECT" --region="$DT_REGION" \
    --member="$1" --role=roles/run.invoker
}

# dt_ensure_service_account EMAIL DISPLAY_NAME — create a user-managed service account unless
# it exists.
dt_ensure_service_account() {
  local email=$1 display_name=$2 id=${1%%@*} sa_project
  sa_project=$(dt_sa_project "$email")
  if [[ $email != *.iam.gserviceaccount.com ]]; then
    dt_note "$email is not a user-managed service account of a project: not creating it"
    return 0
  fi
  # A look-up like dt_capture's, but its failure (no such account) is the expected answer.
  local probe=(gcloud iam service-accounts describe "$email" --project="$sa_project" --format='value(email)')
  if ((DT_DRY_RUN)); then
    dt_format_cmd "${probe[@]}"
    dt_note "(the account is created only if that look-up fails)"
  else
    dt_format_cmd "${probe[@]}" >&2
    if "${probe[@]}" >/dev/null 2>&1; then
      dt_note "service account $email exists"
      return 0
    fi
  fi
  dt_run gcloud iam service-accounts create "$id" --project="$sa_project" \
    --display-name="$display_name"
}

# dt_unless_exists PROBE_WORDS... -- CREATE_WORDS...: run the create command unless the probe
# (a describe) succeeds; with --dry-run both are printed.
dt_unless_exists() {
  local probe=() create=()
  while (($#)) && [[ $1 != -- ]]; do
    probe+=("$1")
    shift
  done
  shift
  create=("$@")
  if ((DT_DRY_RUN)); then
    dt_format_cmd "${probe[@]}"
    dt_note "(the next command runs only if that look-up fails)"
  else
    dt_format_cmd "${probe[@]}" >&2
    if "${probe[@]}" >/dev/null 2>&1; then
      return 0
    fi
  fi
  dt_run "${create[@]}"
}

# dt_member VAR VALUE OPTION — a principal for an IAM binding in VAR: kept if it has a type
# prefix; a bare service-account email gets serviceAccount:. Public principals are refused.
dt_member() {
  local _dt_m=$2
  case $_dt_m in
    allUsers | allAuthenticatedUsers)
      dt_usage_error "refusing $3 $_dt_m: the function must not be public (it can start DAG runs)"
      ;;
    user:?*@?* | group:?*@?* | serviceAccount:?*@?* | domain:?* | principal:?* | principalSet:?*) ;;
    *@*.gserviceaccount.com) _dt_m=serviceAccount:$_dt_m ;;
    *) dt_usage_error "invalid $3 '$2': use user:EMAIL, group:EMAIL, serviceAccount:EMAIL, domain:DOMAIN or principal(Set):..." ;;
  esac
  printf -v "$1" '%s' "$_dt_m"
}

# Help text shared by the scripts.
dt_help_common() {
  cat <<'EOF'
Common options:
  --project ID             Google Cloud project (required)
  --region REGION          region of the function, e.g. us-central1
  --name NAME              function name (Cloud Run service name)
  --service-account SA     runtime identity: short id or email (default: dagtrigger,
                           i.e. dagtrigger@PROJECT.iam.gserviceaccount.com)
  --dry-run                print the gcloud commands ("+ " lines, shell-quoted) and run
                           nothing; look-ups are printed too and replaced by <PLACEHOLDERS>
  -h, --help               this help
EOF
}

dt_help_airflow() {
  cat <<'EOF'
Airflow (one of):
  --composer-env ENV       Cloud Composer environment; AIRFLOW_URI is looked up with
                           gcloud composer environments describe (config.airflowUri)
  --composer-location LOC  the environment's region (default: --region)
  --composer-project ID    the environment's project (default: --project)
  --airflow-uri URL        the Airflow web server URL, when not looked up
  --dag-id DAG             DAG to trigger (DAG_ID); required unless --routes-file
EOF
}

dt_help_event() {
  cat <<'EOF'
Event delivery:
  --trigger-service-account SA
                           identity Eventarc uses to call the function (default: the
                           --service-account); it gets roles/run.invoker on the function
EOF
}

dt_help_function() {
  cat <<'EOF'
Function settings:
  --runtime RT             python311 (default) or python312
  --timeout SECONDS        request timeout of the function (default 120); must exceed
                           --retry-budget + --request-timeout
  --memory SIZE            default 256Mi        --cpu N   default 1
  --max-instances N        default 3            --min-instances N   default unset (0)
  --concurrency N          requests per instance (default 10; >1 needs --cpu 1 or more)
  --max-in-flight N        AIRFLOW_MAX_IN_FLIGHT: calls to Airflow at once per instance
                           (default 4); max-instances x this many reach Airflow at once
  --airflow-capacity N     concurrent calls the Airflow API server takes (default 15:
                           Airflow's database pool, 5 + 10 overflow); a warning when the
                           product above exceeds it; `dagtrigger check` warns too
  --airflow-api-version V  auto | v1 | v2 (AIRFLOW_API_VERSION)
  --airflow-auth MODE      google | none | basic | airflow-jwt | id-token | bearer
  --airflow-username USER  AIRFLOW_USERNAME (basic, airflow-jwt)
  --airflow-audience AUD   AIRFLOW_AUDIENCE (id-token)
  --password-secret S      Secret Manager secret for AIRFLOW_PASSWORD (NAME[:VERSION]; NAME and
                           NAME:latest are pinned to the version current at deploy time)
  --token-secret S         Secret Manager secret for AIRFLOW_TOKEN (NAME[:VERSION])
  --secret ENV=S[:V]       any other secret environment variable (repeatable)
  --request-timeout S      AIRFLOW_TIMEOUT_SECONDS (default 20)
  --retry-budget S         AIRFLOW_RETRY_BUDGET_SECONDS (default 30)
  --routes-file PATH       ROUTES_FILE (routing config shipped with the source)
  --dead-letter-uri URI    DEAD_LETTER_URI (gs://bucket/prefix); seal its records with
                           --secret DEAD_LETTER_SEAL_SECRET=SECRET_ID:VERSION
  --env KEY=VALUE          any other plain environment variable (repeatable); a KEY
                           containing SECRET, PASSWORD or TOKEN is refused: use --secret
  --vpc-connector NAME     send egress through this Serverless VPC Access connector
  --egress-settings E      all (default with --vpc-connector) | private-ranges-only
  --ingress-settings I     all | internal-only | internal-and-gclb (default: internal-only
                           for storage and pubsub triggers and trigger_push, gcloud's
                           default all for webhooks)
  --source DIR             source directory (default: the repository root)
EOF
}
