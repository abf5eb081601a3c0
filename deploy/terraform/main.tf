# dagtrigger as a Cloud Run function (Cloud Functions v2 API), the Terraform twin of
# deploy/deploy-{storage,pubsub,http}.sh.

locals {
  is_event      = contains(["storage", "pubsub"], var.trigger_kind)
  function_name = var.function_name != "" ? var.function_name : "dagtrigger-${var.trigger_kind}"
  entry_point   = local.is_event ? "trigger_event" : var.http_entry_point
  is_push       = !local.is_event && var.http_entry_point == "trigger_push"

  # ---------------------------------------------------------------- source
  # The same allowlist as /.gcloudignore: main.py, requirements.txt, the dagtrigger package
  # without caches, compiled or hidden files, and a routes file at the root.
  source_root = var.source_dir != "" ? var.source_dir : abspath("${path.module}/../..")
  # A route's webhook.secrets may name any variable: extra_env names the routes file mentions (as words, as
  # deploy/lib.sh's grep -w) are secrets whatever they look like, refused by a precondition on the function.
  routes_text               = var.routes_file == "" ? "" : try(file(startswith(var.routes_file, "/") ? var.routes_file : "${local.source_root}/${var.routes_file}"), "")
  plain_env_named_by_routes = [for name in keys(var.extra_env) : name if try(length(regexall("(^|[^A-Za-z0-9_])${name}($|[^A-Za-z0-9_])", local.routes_text)), 0) > 0]
  package_files = [
    for f in fileset(local.source_root, "dagtrigger/**") : f
    if length(regexall("(^|/)(__pycache__|\\.[^/]*)(/|$)|\\.py[cod]$|~$|\\.sw[op]$", f)) == 0
  ]
  source_files = sort(distinct(concat(
    ["main.py", "requirements.txt"],
    local.package_files,
    tolist(fileset(local.source_root, "routes.{yaml,yml,json}")),
  )))
  source_bucket = var.source_bucket != "" ? var.source_bucket : google_storage_bucket.source[0].name

  # ---------------------------------------------------------------- Airflow
  composer_location = var.composer_location != "" ? var.composer_location : var.region
  composer_project  = var.composer_project != "" ? var.composer_project : var.project_id
  # An input, not read from Composer: the Composer environment data source would copy the whole environment,
  # its env variables and Airflow config overrides with it, into the state to read this one URL.
  airflow_uri = var.airflow_uri

  # Plain settings only; secrets go through secret_environment_variables.
  optional_env = {
    DAG_ID              = var.dag_id
    AIRFLOW_API_VERSION = var.airflow_api_version
    AIRFLOW_AUTH        = var.airflow_auth
    AIRFLOW_USERNAME    = var.airflow_username
    AIRFLOW_AUDIENCE    = var.airflow_audience
    ROUTES_FILE         = var.routes_file
    DEAD_LETTER_URI     = var.dead_letter_uri
  }
  environment = merge(
    {
      AIRFLOW_URI                  = local.airflow_uri
      AIRFLOW_TIMEOUT_SECONDS      = tostring(var.request_timeout_seconds)
      AIRFLOW_RETRY_BUDGET_SECONDS = tostring(var.retry_budget_seconds)
      AIRFLOW_MAX_IN_FLIGHT        = tostring(var.max_in_flight)
      MAX_INSTANCES                = tostring(var.max_instances)
      AIRFLOW_CAPACITY             = tostring(var.airflow_capacity)
      # functions-framework serves THREADS requests at once per instance (default 4 per CPU).
      THREADS = tostring(var.concurrency)
    },
    { for k, v in local.optional_env : k => v if v != "" },
    var.extra_env,
  )
  secret_environment = merge(
    var.password_secret == "" ? {} : { AIRFLOW_PASSWORD = { secret = var.password_secret, version = var.password_secret_version, project_id = var.project_id } },
    var.token_secret == "" ? {} : { AIRFLOW_TOKEN = { secret = var.token_secret, version = var.token_secret_version, project_id = var.project_id } },
    local.seal_environment,
    { for k, v in var.secrets : k => { secret = v.secret, version = v.version, project_id = coalesce(v.project_id, var.project_id) } },
  )
  # Dead-letter seal keys (docs/dead-letters.md#seals): the current version seals; the previous one, during a
  # rotation, is still accepted by replay. Both versions of one secret.
  seal_environment      = var.dead_letter_seal_secret == "" ? {} : merge({ DEAD_LETTER_SEAL_SECRET = { secret = var.dead_letter_seal_secret, version = var.dead_letter_seal_secret_version, project_id = var.project_id } }, var.dead_letter_seal_secret_previous_version == "" ? {} : { DEAD_LETTER_SEAL_SECRET_PREVIOUS = { secret = var.dead_letter_seal_secret, version = var.dead_letter_seal_secret_previous_version, project_id = var.project_id } })
  dead_letters_unsealed = var.dead_letter_uri != "" && var.dead_letter_seal_secret == "" && !contains(keys(var.secrets), "DEAD_LETTER_SEAL_SECRET")
  # One accessor binding per secret, under the first variable (by name) that reads it: two bindings of one member
  # would be two resources, and removing one (the previous key after a rotation) would revoke the other's access.
  secret_accessors = { for k, v in local.secret_environment : k => v if k == [for k2, v2 in local.secret_environment : k2 if v2.secret == v.secret && v2.project_id == v.project_id][0] }

  # ---------------------------------------------------------------- triggers
  storage_trigger_location = var.trigger_location != "" ? var.trigger_location : lower(try(data.google_storage_bucket.trigger[0].location, ""))
  trigger_region           = var.trigger_kind == "storage" ? local.storage_trigger_location : (var.trigger_location != "" ? var.trigger_location : var.region)
  event_type               = var.trigger_kind == "storage" ? "google.cloud.storage.object.v1.finalized" : "google.cloud.pubsub.topic.v1.messagePublished"
  # Eventarc, and Pub/Sub push from a subscription in the function's project, are internal traffic (docs/deploy.md#ingress):
  # event and push functions need no public URL; webhook senders are outside Google Cloud.
  ingress_settings = var.ingress_settings != "" ? var.ingress_settings : (local.is_event || local.is_push ? "ALLOW_INTERNAL_ONLY" : "ALLOW_ALL")
}

data "google_storage_bucket" "trigger" {
  count = var.trigger_kind == "storage" && var.trigger_location == "" ? 1 : 0
  name  = var.bucket
}

# ------------------------------------------------------------------ source upload

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.module}/.build/dagtrigger-source.zip"

  dynamic "source" {
    for_each = toset(local.source_files)
    content {
      content  = file("${local.source_root}/${source.value}")
      filename = source.value
    }
  }
}

resource "google_storage_bucket" "source" {
  count                       = var.source_bucket == "" ? 1 : 0
  name                        = "${var.project_id}-dagtrigger-source"
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
}

resource "google_storage_bucket_object" "source" {
  # A new object name per content makes Terraform redeploy the function when the code changes.
  name   = "${local.function_name}/source-${data.archive_file.source.output_md5}.zip"
  bucket = local.source_bucket
  source = data.archive_file.source.output_path
}

# ------------------------------------------------------------------ function

resource "google_cloudfunctions2_function" "function" {
  name        = local.function_name
  project     = var.project_id
  location    = var.region
  description = "dagtrigger: ${var.trigger_kind} events to Airflow DAG runs"

  build_config {
    runtime     = var.runtime
    entry_point = local.entry_point
    source {
      storage_source {
        bucket = local.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    # At most max_instances x max_in_flight calls reach the Airflow API server at once (the rest queue per instance).
    max_instance_count               = var.max_instances
    min_instance_count               = var.min_instances
    max_instance_request_concurrency = var.concurrency
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    timeout_seconds                  = var.timeout_seconds
    ingress_settings                 = local.ingress_settings
    all_traffic_on_latest_revision   = true
    service_account_email            = local.service_account_email
    environment_variables            = local.environment
    vpc_connector                    = var.vpc_connector != "" ? var.vpc_connector : null
    vpc_connector_egress_settings    = var.vpc_connector != "" ? "ALL_TRAFFIC" : null

    dynamic "secret_environment_variables" {
      for_each = local.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = secret_environment_variables.value.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  dynamic "event_trigger" {
    for_each = local.is_event ? [var.trigger_kind] : []
    content {
      trigger_region        = local.trigger_region
      event_type            = local.event_type
      pubsub_topic          = event_trigger.value == "pubsub" ? "projects/${var.project_id}/topics/${var.topic}" : null
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = local.trigger_service_account_email

      dynamic "event_filters" {
        for_each = event_trigger.value == "storage" ? [var.bucket] : []
        content {
          attribute = "bucket"
          value     = event_filters.value
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.airflow_uri != ""
      error_message = "Set airflow_uri, the Airflow web server URL: gcloud composer environments describe ${var.composer_environment != "" ? var.composer_environment : "ENV"} --location ${local.composer_location} --project ${local.composer_project} --format='value(config.airflowUri)'. Terraform does not read it from Composer, which would copy the environment's variables into the state."
    }
    precondition {
      condition     = var.dag_id != "" || var.routes_file != ""
      error_message = "Set dag_id (the DAG to trigger) or routes_file."
    }
    precondition {
      condition     = var.timeout_seconds > var.retry_budget_seconds + var.request_timeout_seconds
      error_message = "timeout_seconds must exceed retry_budget_seconds + request_timeout_seconds, or Cloud Run kills a trigger that is still retrying."
    }
    precondition {
      condition     = !local.is_event || var.timeout_seconds <= 540
      error_message = "Event-driven functions allow a timeout of at most 540 seconds."
    }
    precondition {
      condition     = var.concurrency == 1 || (can(tonumber(var.cpu)) ? tonumber(var.cpu) >= 1 : false)
      error_message = "concurrency above 1 needs cpu of at least 1."
    }
    precondition {
      condition     = !local.is_push || alltrue([for name in ["PUSH_AUDIENCE", "PUSH_SERVICE_ACCOUNTS"] : contains(keys(var.extra_env), name)])
      error_message = "http_entry_point trigger_push needs extra_env PUSH_AUDIENCE (the push subscription's token audience) and PUSH_SERVICE_ACCOUNTS (its push service account): without them the function does not start."
    }
    precondition {
      condition     = length(local.plain_env_named_by_routes) == 0
      error_message = "extra_env ${join(", ", local.plain_env_named_by_routes)}: named in the routes file (e.g. a route's webhook.secrets), so a secret: store it in Secret Manager and map it with secrets = { NAME = { secret = \"SECRET_ID\", version = \"VERSION\" } }."
    }
    precondition {
      condition     = var.trigger_kind != "storage" || var.bucket != ""
      error_message = "trigger_kind storage needs bucket."
    }
    precondition {
      condition     = var.trigger_kind != "pubsub" || can(regex("^[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$", var.topic))
      error_message = "trigger_kind pubsub needs topic: a topic id in project_id (not projects/P/topics/T)."
    }
    precondition {
      condition     = !contains(["basic", "airflow-jwt"], var.airflow_auth) || (var.airflow_username != "" && var.password_secret != "")
      error_message = "airflow_auth basic and airflow-jwt need airflow_username and password_secret."
    }
    precondition {
      condition     = var.airflow_auth != "bearer" || var.token_secret != ""
      error_message = "airflow_auth bearer needs token_secret."
    }
  }

  depends_on = [
    google_project_iam_member.composer_user,
    google_project_iam_member.event_receiver,
    google_project_iam_member.gcs_pubsub_publisher,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

# Warnings at plan and apply (not errors): what keeps Airflow off its cliff, and secrets that cannot change unseen.
check "airflow_capacity" {
  assert {
    condition     = var.max_instances * var.max_in_flight <= var.airflow_capacity
    error_message = "max_instances x max_in_flight = ${var.max_instances * var.max_in_flight} calls at once is over airflow_capacity = ${var.airflow_capacity}: past its database pool Airflow 3's API server stalls. Lower max_instances or max_in_flight, or raise Airflow's [database] sql_alchemy_pool_size / sql_alchemy_max_overflow and set airflow_capacity to match (docs/deploy.md#airflow-capacity)."
  }
}

check "dead_letters_sealed" {
  assert {
    condition     = !local.dead_letters_unsealed
    error_message = "dead_letter_uri is set without dead_letter_seal_secret: records are written unsealed, so whoever can write the bucket can plant them, and replay refuses Pub/Sub-message records without --accept-unsealed. Store a key (openssl rand -base64 32) in Secret Manager and set dead_letter_seal_secret and dead_letter_seal_secret_version (docs/dead-letters.md#seals)."
  }
}

check "secret_versions_pinned" {
  assert {
    condition     = alltrue([for v in values(local.secret_environment) : v.version != "latest"])
    error_message = "A secret is read at version latest (${join(", ", [for k, v in local.secret_environment : k if v.version == "latest"])}): a rotated secret then changes the function at its next cold start without an apply. Pin a version number (password_secret_version, token_secret_version, secrets[*].version)."
  }
}
