# The scheduled sweep (docs/accounting.md), the Terraform twin of deploy/deploy-sweep.sh: a Cloud
# Run job running `python -m dagtrigger sweep` with the function's settings, run by Cloud Scheduler
# through the Cloud Run Admin API as its own service account (roles/run.invoker on this job only),
# never over a public URL. A job, not an HTTP entry point of the function: it may run up to its
# task timeout (the function's requests stop at 60 minutes), it takes no concurrency slot from live
# events, and it runs as an identity that may list buckets, which the function's need not.
#
# Terraform cannot build an image: set sweep_image to one built from this repository, e.g.
#   gcloud builds submit --pack image=REGION-docker.pkg.dev/PROJECT/REPO/dagtrigger
# (or deploy with deploy/deploy-sweep.sh, which builds from source).

locals {
  sweep_enabled = var.sweep_image != ""
  sweep_name    = "${local.function_name}-sweep"
  sweep_args = concat(
    ["-m", "dagtrigger", "sweep", "--since", var.sweep_since, "--settle", var.sweep_settle, "--budget", "${var.sweep_budget_minutes}m"],
    flatten([for b in local.sweep_buckets : ["--bucket", b]]),
    local.sweep_drain == "" ? [] : ["--drain", local.sweep_drain],
    local.sweep_drain == "" ? [] : flatten([for s in var.sweep_drain_source_subscriptions : ["--source-subscription", s]]),
  )
  # A drain before each sweep: the named subscription, else the dead_letter_topic's -hold one.
  sweep_drain   = var.sweep_drain_subscription != "" ? var.sweep_drain_subscription : local.drain_subscription
  sweep_buckets = distinct(compact(concat(var.sweep_buckets, [var.trigger_kind == "storage" ? var.bucket : ""])))
  # gs://bucket/prefix → bucket and prefix, for the dead letters (cursor) and each batch members location
  dead_letter_bucket = var.dead_letter_uri == "" ? "" : split("/", trimprefix(var.dead_letter_uri, "gs://"))[0]
  dead_letter_prefix = var.dead_letter_uri == "" ? "" : trimsuffix(join("/", slice(split("/", trimprefix(var.dead_letter_uri, "gs://")), 1, length(split("/", trimprefix(var.dead_letter_uri, "gs://"))))), "/")
  sweep_members = {
    for uri in var.sweep_members_uris : uri => {
      bucket = split("/", trimprefix(uri, "gs://"))[0]
      prefix = trimsuffix(join("/", slice(split("/", trimprefix(uri, "gs://")), 1, length(split("/", trimprefix(uri, "gs://"))))), "/")
    }
  }
  sweep_readable_buckets = distinct(concat(
    local.sweep_buckets,
    local.dead_letter_bucket == "" ? [] : [local.dead_letter_bucket],
    [for m in values(local.sweep_members) : m.bucket],
  ))
}

resource "google_service_account" "sweep" {
  count        = local.sweep_enabled ? 1 : 0
  project      = var.project_id
  account_id   = "${var.service_account_id}-sweep"
  display_name = "dagtrigger sweep (finds and sends uploads that never triggered)"
}

resource "google_service_account" "sweep_scheduler" {
  count        = local.sweep_enabled ? 1 : 0
  project      = var.project_id
  account_id   = "${var.service_account_id}-scheduler"
  display_name = "dagtrigger sweep scheduler (runs the sweep job)"
}

# Listing needs storage.objects.list on the bucket: objectViewer (list, read metadata, manifests).
resource "google_storage_bucket_iam_member" "sweep_reader" {
  for_each = local.sweep_enabled ? toset(local.sweep_readable_buckets) : toset([])
  bucket   = each.value
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.sweep[0].email}"
}

# Writes only under the cursor prefix next to the dead letters: a sweep never writes a dead letter. With a drain,
# under the dead-letter prefix: a drained event that fails is recorded as the function records it.
resource "google_storage_bucket_iam_member" "sweep_cursor" {
  count  = local.sweep_enabled && local.dead_letter_bucket != "" ? 1 : 0
  bucket = local.dead_letter_bucket
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.sweep[0].email}"
  condition {
    title      = local.sweep_drain == "" ? "dagtrigger-sweep-cursor" : "dagtrigger-drain-dead-letters"
    expression = "resource.name.startsWith(\"projects/_/buckets/${local.dead_letter_bucket}/objects/${local.dead_letter_prefix == "" ? "" : "${local.dead_letter_prefix}/"}${local.sweep_drain == "" ? "_sweep/" : ""}\")"
  }
}

# The drain pulls and acknowledges on its one subscription, nothing else in Pub/Sub.
resource "google_pubsub_subscription_iam_member" "sweep_drain" {
  count        = local.sweep_enabled && local.sweep_drain != "" ? 1 : 0
  subscription = local.sweep_drain
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.sweep[0].email}"
  depends_on   = [google_pubsub_subscription.dead_letter_hold]
}

# Batched routes: a missing member is recorded by the pipeline, under its route's members prefix.
resource "google_storage_bucket_iam_member" "sweep_members" {
  for_each = local.sweep_enabled ? local.sweep_members : {}
  bucket   = each.value.bucket
  role     = "roles/storage.objectUser"
  member   = "serviceAccount:${google_service_account.sweep[0].email}"
  condition {
    title      = "dagtrigger-sweep-members"
    expression = "resource.name.startsWith(\"projects/_/buckets/${each.value.bucket}/objects/${each.value.prefix}/\")"
  }
}

resource "google_project_iam_member" "sweep_composer_user" {
  count   = local.sweep_enabled ? 1 : 0
  project = local.composer_project
  role    = "roles/composer.user"
  member  = "serviceAccount:${google_service_account.sweep[0].email}"
}

resource "google_secret_manager_secret_iam_member" "sweep_accessor" {
  for_each  = local.sweep_enabled ? local.secret_accessors : {}
  project   = each.value.project_id
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.sweep[0].email}"
}

resource "google_cloud_run_v2_job" "sweep" {
  count               = local.sweep_enabled ? 1 : 0
  project             = var.project_id
  name                = local.sweep_name
  location            = var.region
  deletion_protection = false

  template {
    task_count = 1
    template {
      service_account = google_service_account.sweep[0].email
      max_retries     = 0
      timeout         = "${(var.sweep_budget_minutes + 10 + (local.sweep_drain == "" ? 0 : 10)) * 60}s" # + the drain's budget

      containers {
        image   = var.sweep_image
        command = ["python"]
        args    = local.sweep_args

        resources {
          limits = { cpu = var.cpu, memory = var.memory }
        }

        dynamic "env" {
          for_each = local.environment
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = local.secret_environment
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value.secret
                version = env.value.version
              }
            }
          }
        }
      }

      dynamic "vpc_access" {
        for_each = var.vpc_connector != "" ? [var.vpc_connector] : []
        content {
          connector = vpc_access.value
          egress    = "ALL_TRAFFIC"
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.sweep_buckets) > 0
      error_message = "The sweep lists buckets: set sweep_buckets (or trigger_kind storage with bucket)."
    }
  }

  depends_on = [
    google_storage_bucket_iam_member.sweep_reader,
    google_project_iam_member.sweep_composer_user,
    google_secret_manager_secret_iam_member.sweep_accessor,
    google_pubsub_subscription_iam_member.sweep_drain,
  ]
}

resource "google_cloud_run_v2_job_iam_member" "sweep_invoker" {
  count    = local.sweep_enabled ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.sweep[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.sweep_scheduler[0].email}"
}

resource "google_cloud_scheduler_job" "sweep" {
  count     = local.sweep_enabled ? 1 : 0
  project   = var.project_id
  region    = var.region
  name      = "${local.sweep_name}-schedule"
  schedule  = var.sweep_schedule
  time_zone = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${local.sweep_name}:run"
    oauth_token {
      service_account_email = google_service_account.sweep_scheduler[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.sweep_invoker]
}
