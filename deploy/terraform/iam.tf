# The function's identity and the least roles each trigger kind needs (as deploy/iam.sh).

resource "google_service_account" "function" {
  count        = var.create_service_account ? 1 : 0
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "dagtrigger function (triggers Airflow DAG runs)"
}

locals {
  service_account_email = (var.create_service_account
    ? google_service_account.function[0].email
  : "${var.service_account_id}@${var.project_id}.iam.gserviceaccount.com")
  trigger_service_account_email = local.is_event ? (
    var.trigger_service_account_email != "" ? var.trigger_service_account_email : local.service_account_email
  ) : null
}

# Calls to the Airflow REST API go through Composer, which checks the caller's IAM access on
# the environment's project (roles/composer.user cannot be granted below a project).
resource "google_project_iam_member" "composer_user" {
  project = local.composer_project
  role    = "roles/composer.user"
  member  = "serviceAccount:${local.service_account_email}"
}

# Eventarc delivers events with the trigger's service account.
resource "google_project_iam_member" "event_receiver" {
  count   = local.is_event ? 1 : 0
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${local.trigger_service_account_email}"
}

# Cloud Storage direct events reach Eventarc through Pub/Sub, published by the project's
# Cloud Storage service agent (gcloud storage service-agent).
data "google_storage_project_service_account" "gcs" {
  count   = var.trigger_kind == "storage" ? 1 : 0
  project = var.project_id
}

resource "google_project_iam_member" "gcs_pubsub_publisher" {
  count   = var.trigger_kind == "storage" ? 1 : 0
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs[0].email_address}"
}

# Projects that enabled Pub/Sub on or before 2021-04-08: its agent must mint tokens.
data "google_project" "this" {
  count      = var.legacy_pubsub_agent && local.is_event ? 1 : 0
  project_id = var.project_id
}

resource "google_project_iam_member" "pubsub_token_creator" {
  count   = var.legacy_pubsub_agent && local.is_event ? 1 : 0
  project = var.project_id
  role    = "roles/iam.serviceAccountTokenCreator"
  member  = "serviceAccount:service-${data.google_project.this[0].number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# The function reads AIRFLOW_PASSWORD / AIRFLOW_TOKEN (and other secrets) from Secret Manager.
resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each  = local.secret_accessors
  project   = each.value.project_id
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.service_account_email}"
}

# Buckets: bucket-level bindings only (as deploy/iam.sh --dead-letter-uri / --manifest-bucket).
# objectUser: a dead-letter record is read, then replaced (get, create, delete).
resource "google_storage_bucket_iam_member" "dead_letters" {
  count  = var.dead_letter_uri != "" ? 1 : 0
  bucket = split("/", trimprefix(var.dead_letter_uri, "gs://"))[0]
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${local.service_account_email}"
}

resource "google_storage_bucket_iam_member" "manifests" {
  for_each = toset([for b in var.manifest_buckets : trimprefix(b, "gs://")])
  bucket   = each.value
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${local.service_account_email}"
}

# 2nd gen functions are Cloud Run services of the same name: invoking needs roles/run.invoker.
resource "google_cloud_run_service_iam_member" "trigger_invoker" {
  count    = local.is_event ? 1 : 0
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.trigger_service_account_email}"
}

resource "google_cloud_run_service_iam_member" "http_invoker" {
  for_each = var.trigger_kind == "http" ? toset(var.http_invokers) : toset([])
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function.name
  role     = "roles/run.invoker"
  member   = each.value
}
