# Inputs. The same settings as the deploy/*.sh scripts, with the same defaults.

variable "project_id" {
  description = "Google Cloud project of the function."
  type        = string
}

variable "region" {
  description = "Region of the function, e.g. us-central1."
  type        = string
}

variable "trigger_kind" {
  description = "storage (Cloud Storage object finalized, via Eventarc), pubsub (Pub/Sub messages, via Eventarc) or http (webhooks, Pub/Sub push)."
  type        = string

  validation {
    condition     = contains(["storage", "pubsub", "http"], var.trigger_kind)
    error_message = "trigger_kind must be storage, pubsub or http."
  }
}

variable "function_name" {
  description = "Function (and Cloud Run service) name. Default: dagtrigger-<trigger_kind>."
  type        = string
  default     = ""

  validation {
    condition     = var.function_name == "" || can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.function_name))
    error_message = "function_name: lower-case letters, digits and hyphens, starting with a letter, at most 63 characters."
  }
}

# ------------------------------------------------------------------ Airflow

variable "airflow_uri" {
  description = "Airflow web server URL (AIRFLOW_URI), required. For Cloud Composer: gcloud composer environments describe ENV --location REGION --format='value(config.airflowUri)'. Not read from Composer by Terraform: its data source would copy the environment's env variables and Airflow config overrides into the state."
  type        = string
  default     = ""

  validation {
    condition     = var.airflow_uri == "" || can(regex("^https?://", var.airflow_uri))
    error_message = "airflow_uri must be an http(s) URL."
  }
}

variable "composer_environment" {
  description = "Cloud Composer environment of airflow_uri: named in the airflow_user_registration output and in the hint when airflow_uri is missing (never read by Terraform)."
  type        = string
  default     = ""
}

variable "composer_project" {
  description = "Project of composer_environment, where roles/composer.user is granted. Default: project_id."
  type        = string
  default     = ""
}

variable "composer_location" {
  description = "Region of composer_environment. Default: region."
  type        = string
  default     = ""
}

variable "dag_id" {
  description = "DAG to trigger (DAG_ID). Required unless routes_file is set."
  type        = string
  default     = ""

  validation {
    condition     = var.dag_id == "" || can(regex("^[A-Za-z0-9_.-]{1,250}$", var.dag_id))
    error_message = "dag_id: letters, digits, '_', '.' and '-'."
  }
}

variable "airflow_api_version" {
  description = "AIRFLOW_API_VERSION: auto, v1 (Airflow 2) or v2 (Airflow 3). Empty: the function's default (auto)."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "auto", "v1", "v2"], var.airflow_api_version)
    error_message = "airflow_api_version must be auto, v1 or v2."
  }
}

variable "airflow_auth" {
  description = "AIRFLOW_AUTH: google, none, basic, airflow-jwt, id-token or bearer. Empty: the function's default (google)."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "google", "none", "basic", "airflow-jwt", "id-token", "bearer"], var.airflow_auth)
    error_message = "airflow_auth must be google, none, basic, airflow-jwt, id-token or bearer."
  }
}

variable "airflow_username" {
  description = "AIRFLOW_USERNAME (basic, airflow-jwt)."
  type        = string
  default     = ""
}

variable "airflow_audience" {
  description = "AIRFLOW_AUDIENCE (id-token)."
  type        = string
  default     = ""
}

variable "password_secret" {
  description = "Secret Manager secret (name in project_id) read as AIRFLOW_PASSWORD, at password_secret_version."
  type        = string
  default     = ""
}

variable "password_secret_version" {
  description = "The version of password_secret to read: pin a number; under latest a rotated secret changes the function at its next cold start without an apply (a check warns)."
  type        = string
  default     = "latest"
}

variable "token_secret" {
  description = "Secret Manager secret (name in project_id) read as AIRFLOW_TOKEN, at token_secret_version."
  type        = string
  default     = ""
}

variable "token_secret_version" {
  description = "The version of token_secret to read: pin a number (see password_secret_version)."
  type        = string
  default     = "latest"
}

variable "dead_letter_seal_secret" {
  description = "Secret Manager secret (name in project_id) read as DEAD_LETTER_SEAL_SECRET: the key that seals dead-letter records so replay can verify them (base64 of >= 16 bytes: openssl rand -base64 32; docs/dead-letters.md#seals)."
  type        = string
  default     = ""
}

variable "dead_letter_seal_secret_version" {
  description = "The version of dead_letter_seal_secret that seals: pin a number (see password_secret_version)."
  type        = string
  default     = "latest"
}

variable "dead_letter_seal_secret_previous_version" {
  description = "During a rotation, the version of dead_letter_seal_secret being retired, read as DEAD_LETTER_SEAL_SECRET_PREVIOUS: replay still verifies records it sealed; nothing is sealed with it. Empty: none."
  type        = string
  default     = ""
}

variable "secrets" {
  description = "Other secret environment variables: ENV => { secret, version (default latest), project_id (default project_id) }."
  type = map(object({
    secret     = string
    version    = optional(string, "latest")
    project_id = optional(string)
  }))
  default = {}
}

variable "request_timeout_seconds" {
  description = "AIRFLOW_TIMEOUT_SECONDS: timeout of one request to Airflow."
  type        = number
  default     = 20
}

variable "retry_budget_seconds" {
  description = "AIRFLOW_RETRY_BUDGET_SECONDS: time spent retrying Airflow within one invocation."
  type        = number
  default     = 30
}

variable "routes_file" {
  description = "ROUTES_FILE: routing configuration path in the uploaded source (e.g. routes.yaml)."
  type        = string
  default     = ""
}

variable "dead_letter_topic" {
  description = "trigger_kind storage: a Pub/Sub topic id for events Eventarc gives up on, created with a 7-day pull subscription TOPIC-hold for dagtrigger drain; attach it with the dead_letter_attach output's commands."
  type        = string
  default     = ""

  validation {
    condition     = var.dead_letter_topic == "" || can(regex("^[A-Za-z][-_.~+%A-Za-z0-9]{2,254}$", var.dead_letter_topic))
    error_message = "dead_letter_topic must be a topic id (not a path)."
  }
}

variable "dead_letter_uri" {
  description = "DEAD_LETTER_URI: gs://bucket/prefix for events that cannot be delivered."
  type        = string
  default     = ""

  validation {
    condition     = var.dead_letter_uri == "" || can(regex("^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/.*)?$", var.dead_letter_uri))
    error_message = "dead_letter_uri must look like gs://BUCKET[/PREFIX]."
  }
}

variable "manifest_buckets" {
  description = "Buckets the routes read manifests from: the function gets roles/storage.objectViewer on each."
  type        = list(string)
  default     = []
}

variable "extra_env" {
  description = "Other plain environment variables (LOG_LEVEL, STORAGE_EVENT_TYPES, ...). Never secrets."
  type        = map(string)
  default     = {}

  # As deploy/lib.sh: a name containing SECRET, PASSWORD or TOKEN (any case) is a secret, e.g.
  # AIRFLOW_PASSWORD, AIRFLOW_TOKEN, WEBHOOK_HMAC_SECRET or a per-route webhook secret.
  validation {
    condition     = alltrue([for name in keys(var.extra_env) : !can(regex("(?i)(SECRET|PASSWORD|TOKEN)", name))])
    error_message = "extra_env must not hold secrets (a name containing SECRET, PASSWORD or TOKEN): store them in Secret Manager and map them with secrets = { NAME = { secret = \"SECRET_ID\", version = \"VERSION\" } } (or password_secret / token_secret), which the function reads as secret_environment_variables."
  }

  validation {
    condition     = !contains(keys(var.extra_env), "AIRFLOW_URI")
    error_message = "extra_env must not set AIRFLOW_URI (use airflow_uri)."
  }
}

# ------------------------------------------------------------------ triggers

variable "bucket" {
  description = "storage: the bucket whose finalized objects trigger DAG runs."
  type        = string
  default     = ""
}

variable "trigger_location" {
  description = "storage: the bucket's location (us-central1, us, eu, ...); empty: read from the bucket. pubsub: empty means region."
  type        = string
  default     = ""
}

variable "topic" {
  description = "pubsub: the topic id in project_id."
  type        = string
  default     = ""
}

variable "http_entry_point" {
  description = "http: trigger_http (signed webhooks) or trigger_push (Pub/Sub push; set PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNTS in extra_env), as deploy-http.sh --entry-point."
  type        = string
  default     = "trigger_http"

  validation {
    condition     = contains(["trigger_http", "trigger_push"], var.http_entry_point)
    error_message = "http_entry_point must be trigger_http or trigger_push."
  }
}

variable "http_invokers" {
  description = "http: principals given roles/run.invoker (e.g. serviceAccount:push@PROJECT.iam.gserviceaccount.com). Never allUsers."
  type        = list(string)
  default     = []

  validation {
    condition     = length(setintersection(var.http_invokers, ["allUsers", "allAuthenticatedUsers"])) == 0
    error_message = "http_invokers must not make the function public."
  }
}

# ------------------------------------------------------------------ identities

variable "service_account_id" {
  description = "Account id of the function's runtime service account (dagtrigger@PROJECT.iam.gserviceaccount.com)."
  type        = string
  default     = "dagtrigger"
}

variable "create_service_account" {
  description = "Create the runtime service account. Set false when it exists already (e.g. made by deploy/iam.sh)."
  type        = bool
  default     = true
}

variable "trigger_service_account_email" {
  description = "Eventarc's identity for storage/pubsub triggers. Empty: the runtime service account."
  type        = string
  default     = ""
}

variable "legacy_pubsub_agent" {
  description = "Grant the Pub/Sub service agent roles/iam.serviceAccountTokenCreator (projects that enabled Pub/Sub on or before 2021-04-08)."
  type        = bool
  default     = false
}

# ------------------------------------------------------------------ runtime

variable "runtime" {
  description = "python311 or python312."
  type        = string
  default     = "python311"

  validation {
    condition     = contains(["python311", "python312"], var.runtime)
    error_message = "runtime must be python311 or python312."
  }
}

variable "timeout_seconds" {
  description = "Function timeout; must exceed retry_budget_seconds + request_timeout_seconds (event functions: at most 540)."
  type        = number
  default     = 120
}

variable "memory" {
  description = "Memory per instance."
  type        = string
  default     = "256Mi"
}

variable "cpu" {
  description = "vCPUs per instance; concurrency above 1 needs at least 1."
  type        = string
  default     = "1"
}

variable "max_instances" {
  description = "Instance cap. At most max_instances x max_in_flight calls reach Airflow at once (MAX_INSTANCES)."
  type        = number
  default     = 3
}

variable "max_in_flight" {
  description = "AIRFLOW_MAX_IN_FLIGHT: calls to Airflow at once per instance; the rest of its concurrency queues."
  type        = number
  default     = 4

  validation {
    condition     = var.max_in_flight >= 1 && var.max_in_flight <= 256
    error_message = "max_in_flight must be between 1 and 256."
  }
}

variable "airflow_capacity" {
  description = "AIRFLOW_CAPACITY: concurrent calls the Airflow API server takes (default 15: its database pool, 5 + 10 overflow). A check warns when max_instances x max_in_flight exceeds it."
  type        = number
  default     = 15
}

variable "min_instances" {
  description = "Instances kept warm."
  type        = number
  default     = 0
}

variable "concurrency" {
  description = "Requests per instance (also THREADS for functions-framework)."
  type        = number
  default     = 10

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "ingress_settings" {
  description = "ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB. Empty: ALLOW_INTERNAL_ONLY for storage, pubsub and trigger_push (Eventarc and Pub/Sub push from the same project are internal traffic), ALLOW_ALL for webhooks."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress_settings)
    error_message = "ingress_settings must be empty, ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector for all egress (static IP through Cloud NAT, see deploy/network.sh)."
  type        = string
  default     = ""
}

# ------------------------------------------------------------------ source

variable "source_dir" {
  description = "Repository root holding main.py. Default: two levels above this module."
  type        = string
  default     = ""
}

variable "source_bucket" {
  description = "Existing bucket for the source zip. Empty: create <project_id>-dagtrigger-source."
  type        = string
  default     = ""
}

# ------------------------------------------------------------------ the scheduled sweep (sweep.tf)

variable "sweep_image" {
  description = "Image of this repository for the scheduled sweep (a Cloud Run job); empty: no sweep. Build: gcloud builds submit --pack image=IMAGE."
  type        = string
  default     = ""
}

variable "sweep_buckets" {
  description = "Buckets the sweep lists (the storage trigger's bucket is added); the sweep's account gets objectViewer on each."
  type        = list(string)
  default     = []
}

variable "sweep_members_uris" {
  description = "gs://bucket/prefix of each batched route's members: the sweep may write there (and only there)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for uri in var.sweep_members_uris : can(regex("^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9]/[^*?]+$", uri))])
    error_message = "sweep_members_uris must be gs://BUCKET/PREFIX locations."
  }
}

variable "sweep_since" {
  description = "The sweep's lookback, longer than Eventarc's 24 h retention."
  type        = string
  default     = "26h"
}

variable "sweep_settle" {
  description = "Uploads younger than this are left to the live path."
  type        = string
  default     = "5m"
}

variable "sweep_budget_minutes" {
  description = "The sweep stops after this long and leaves a cursor next to the dead letters; the task timeout is 10 minutes more."
  type        = number
  default     = 50
}

variable "sweep_drain_subscription" {
  description = "Drain this subscription on a trigger's dead-letter topic before each sweep (projects/P/subscriptions/S; with dead_letter_topic, empty means its -hold subscription): the sweep's account gets roles/pubsub.subscriber on it and writes dead letters."
  type        = string
  default     = ""

  validation {
    condition     = var.sweep_drain_subscription == "" || can(regex("^projects/[a-z0-9][-a-z0-9.:]{0,99}/subscriptions/[A-Za-z][-_.~+%A-Za-z0-9]{2,254}$", var.sweep_drain_subscription))
    error_message = "sweep_drain_subscription must be projects/P/subscriptions/S."
  }
}

variable "sweep_drain_source_subscriptions" {
  description = "The trigger subscriptions (projects/P/subscriptions/eventarc-...) drained messages may come from; empty: any."
  type        = list(string)
  default     = []
}

variable "sweep_schedule" {
  description = "When the sweep runs (cron, UTC)."
  type        = string
  default     = "17 * * * *"
}

# ------------------------------------------------------------------ monitoring (monitoring.tf)

variable "monitoring" {
  description = "Create the log-based metrics and alert policies."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Monitoring notification channel ids the alert policies notify."
  type        = list(string)
  default     = []
}

variable "monitoring_resource_type" {
  description = "The monitored resource the function's log-based metrics are written under."
  type        = string
  default     = "cloud_run_revision"
}

variable "retry_alert_per_minute" {
  description = "Alert when more events than this per minute are answered 503 (redeliver), for 10 minutes."
  type        = number
  default     = 10
}
