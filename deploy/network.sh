#!/usr/bin/env bash
# A fixed egress IP for dagtrigger, so the Airflow web server can allow just that address.
#
# Cloud Run functions send requests from Google's shared, changing addresses. To call the
# Airflow web server from one known address, route all of the function's egress into a VPC
# subnet and out through Cloud NAT with a reserved static IP:
#
#   function --(VPC connector | Direct VPC egress)--> subnet --> Cloud NAT (static IP) --> Airflow
#
# --mode connector (default): a Serverless VPC Access connector in a dedicated /28 subnet;
#   deploy the function with deploy/deploy-*.sh --vpc-connector PREFIX-conn, which adds
#   --vpc-connector=PREFIX-conn --egress-settings=all to gcloud functions deploy.
# --mode direct: Direct VPC egress (no connector VMs) from a dedicated /26-or-larger subnet;
#   `gcloud functions deploy` has no flags for it, so it is set on the function's Cloud Run
#   service: gcloud run services update NAME --network --subnet --vpc-egress=all-traffic
#   (or deploy with `gcloud run deploy NAME --function=ENTRY_POINT --network ... --subnet ...`).
#
# Finally the web server access control is narrowed to the NAT address: the script prints
# the `gcloud composer environments update --update-web-server-allow-ip` command (or runs
# it with --apply-allowlist).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: deploy/network.sh --project ID --region REGION [--mode connector|direct]
         [--network NET] [--prefix PREFIX] [--subnet NAME] [--subnet-range CIDR]
         [--use-existing-subnet] [--name FUNCTION]
         [--composer-env ENV [--composer-location LOC]] [--also-allow CIDR[=DESC]]...
         [--apply-allowlist] [--dry-run]

Creates PREFIX-egress-ip (static IP), the subnet, PREFIX-router, PREFIX-nat (Cloud NAT for
that subnet only, using the static IP) and, in connector mode, PREFIX-conn.

Options:
  --mode MODE              connector (default) | direct
  --network NET            VPC network (default: default)
  --prefix PREFIX          name prefix of the network resources (default: dagtrigger)
  --subnet NAME            subnet for the function's egress (default: PREFIX-egress)
  --subnet-range CIDR      its range: a /28 for a connector (default 10.8.0.0/28), /26 or
                           larger for direct egress (default 10.8.0.0/26)
  --use-existing-subnet    the subnet exists already: don't create it
  --name FUNCTION          direct mode: the deployed function to switch to Direct VPC
                           egress (gcloud run services update); without it the command is
                           printed
  --composer-env ENV       environment whose web server should allow the static IP
  --composer-location LOC  its region (default: --region)
  --also-allow CIDR[=DESC] another range to keep allowed (repeatable): the allowlist update
                           sets the whole list
  --apply-allowlist        run the composer environments update (needs --composer-env);
                           without it the command is printed for you to review

EOF
  dt_help_common
}

MODE=connector
NETWORK=default
PREFIX=dagtrigger
SUBNET=""
SUBNET_RANGE=""
CREATE_SUBNET=1
APPLY_ALLOWLIST=0
ALSO_ALLOW=()

dt_script_option() {
  case $1 in
    --mode) MODE=$2 ;;
    --network) NETWORK=$2 ;;
    --prefix) PREFIX=$2 ;;
    --subnet) SUBNET=$2 ;;
    --subnet-range) SUBNET_RANGE=$2 ;;
    --use-existing-subnet) CREATE_SUBNET=0 ;;
    --also-allow) ALSO_ALLOW+=("$2") ;;
    --apply-allowlist) APPLY_ALLOWLIST=1 ;;
  esac
}

dt_use_options common airflow
dt_add_options "--mode --network --prefix --subnet --subnet-range --also-allow" "--use-existing-subnet --apply-allowlist"
dt_parse_args "$@"

readonly CIDR_RE='^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$'

dt_check_project
dt_require "$DT_REGION" --region "the function's region, e.g. us-central1"
dt_check_region "$DT_REGION" --region
[[ -z $DT_SERVICE_ACCOUNT ]] || dt_usage_error "--service-account is not used here"
[[ -z $DT_AIRFLOW_URI && -z $DT_DAG_ID ]] || dt_usage_error "--airflow-uri and --dag-id are not used here"
dt_check_composer_project
dt_check_choice "$MODE" --mode "connector direct"
dt_check_regex "$NETWORK" '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$' --network "a VPC network name"
dt_check_regex "$PREFIX" '^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$' --prefix "1-20 lower-case letters, digits and hyphens (the connector name PREFIX-conn is limited to 25)"
SUBNET=${SUBNET:-$PREFIX-egress}
dt_check_regex "$SUBNET" '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$' --subnet "a subnet name"
if [[ $MODE == connector ]]; then
  SUBNET_RANGE=${SUBNET_RANGE:-10.8.0.0/28}
else
  SUBNET_RANGE=${SUBNET_RANGE:-10.8.0.0/26}
fi
dt_check_regex "$SUBNET_RANGE" "$CIDR_RE" --subnet-range "an IPv4 CIDR range such as 10.8.0.0/28"
prefix_length=${SUBNET_RANGE#*/}
if [[ $MODE == connector ]] && ((CREATE_SUBNET)) && ((prefix_length != 28)); then
  dt_usage_error "--subnet-range $SUBNET_RANGE: a VPC connector's subnet must be a /28"
fi
if [[ $MODE == direct ]] && ((CREATE_SUBNET)) && ((prefix_length > 26)); then
  dt_usage_error "--subnet-range $SUBNET_RANGE: Direct VPC egress needs a /26 or larger subnet"
fi
if [[ -n $DT_NAME ]]; then
  [[ $MODE == direct ]] || dt_usage_error "--name is for --mode direct (connector mode: deploy with --vpc-connector $PREFIX-conn)"
  dt_check_function_name
fi
allow_items=()
for item in "${ALSO_ALLOW[@]}"; do
  cidr=${item%%=*}
  dt_check_regex "$cidr" "$CIDR_RE" --also-allow "CIDR[=DESCRIPTION], e.g. 203.0.113.0/24=office"
  if [[ $item == *=* ]]; then
    allow_items+=("ip_range=$cidr,description=${item#*=}")
  else
    allow_items+=("ip_range=$cidr")
  fi
done
if [[ -n $DT_COMPOSER_ENV ]]; then
  DT_COMPOSER_LOCATION=${DT_COMPOSER_LOCATION:-$DT_REGION}
  dt_check_region "$DT_COMPOSER_LOCATION" --composer-location
elif ((APPLY_ALLOWLIST)); then
  dt_usage_error "--apply-allowlist needs --composer-env"
fi
dt_require_gcloud

IP_NAME=$PREFIX-egress-ip
ROUTER=$PREFIX-router
NAT=$PREFIX-nat
CONNECTOR=$PREFIX-conn
STATIC_IP=""
where=(--project="$DT_PROJECT" --region="$DT_REGION")

dt_run gcloud compute addresses create "$IP_NAME" "${where[@]}" --description="dagtrigger egress (Cloud NAT)"
if ((CREATE_SUBNET)); then
  dt_run gcloud compute networks subnets create "$SUBNET" "${where[@]}" --network="$NETWORK" --range="$SUBNET_RANGE"
fi
dt_run gcloud compute routers create "$ROUTER" "${where[@]}" --network="$NETWORK"
# NAT only this subnet's traffic, and only through the reserved address.
dt_run gcloud compute routers nats create "$NAT" "${where[@]}" --router="$ROUTER" \
  --nat-custom-subnet-ip-ranges="$SUBNET" --nat-external-ip-pool="$IP_NAME"
if [[ $MODE == connector ]]; then
  dt_run gcloud compute networks vpc-access connectors create "$CONNECTOR" "${where[@]}" --subnet="$SUBNET"
fi
dt_capture STATIC_IP '<STATIC_IP>' gcloud compute addresses describe "$IP_NAME" "${where[@]}" --format='value(address)'

if [[ $MODE == connector ]]; then
  dt_note "Egress IP: $STATIC_IP. Deploy the function through the connector (all traffic):"
  dt_note "  deploy/deploy-<storage|pubsub|http>.sh ... --vpc-connector $CONNECTOR"
  dt_note "  (adds --vpc-connector=$CONNECTOR --egress-settings=all to gcloud functions deploy)"
else
  direct=(gcloud run services update "${DT_NAME:-<FUNCTION_NAME>}" "${where[@]}" --network="$NETWORK" --subnet="$SUBNET" --vpc-egress=all-traffic)
  if [[ -n $DT_NAME ]]; then
    dt_run "${direct[@]}"
  else
    dt_note "Egress IP: $STATIC_IP. Switch the deployed function to Direct VPC egress (all traffic):"
    dt_note "  $(dt_format_cmd "${direct[@]}" | cut -c3-)"
  fi
  dt_note "A later gcloud functions deploy may not keep Cloud Run-side settings: check the"
  dt_note "service's network after each deploy, or deploy with gcloud run deploy --function."
fi

allowlist=("ip_range=$STATIC_IP/32,description=dagtrigger" "${allow_items[@]}")
update=(gcloud composer environments update "${DT_COMPOSER_ENV:-<COMPOSER_ENV>}" --project="$DT_COMPOSER_PROJECT"
  --location="${DT_COMPOSER_LOCATION:-$DT_REGION}")
for item in "${allowlist[@]}"; do
  update+=(--update-web-server-allow-ip="$item")
done
if ((APPLY_ALLOWLIST)); then
  dt_run "${update[@]}"
else
  dt_note "Then let the Airflow web server accept only these ranges. This sets the whole allowlist"
  dt_note "(other callers, e.g. your own browser, need --also-allow). Run, or re-run with --apply-allowlist:"
  dt_note "  $(dt_format_cmd "${update[@]}" | cut -c3-)"
fi
