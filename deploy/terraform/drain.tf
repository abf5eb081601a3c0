# The dead-letter topic for the storage trigger's subscription and the pull subscription `dagtrigger drain`
# reads (docs/accounting.md#drain-the-dead-letter-topic): the Terraform twin of deploy-storage.sh
# --dead-letter-topic, for what Terraform can own. The dead-letter policy itself goes on the subscription
# Eventarc created and owns, which neither google_cloudfunctions2_function nor google_eventarc_trigger can
# configure (hashicorp/terraform-provider-google#17697, #25069): the output dead_letter_attach prints the
# gcloud commands that set it, the same ones deploy-storage.sh runs.

locals {
  dead_letter_topic_enabled = var.dead_letter_topic != "" && var.trigger_kind == "storage"
  drain_subscription = (
    local.dead_letter_topic_enabled ? "projects/${var.project_id}/subscriptions/${var.dead_letter_topic}-hold" : ""
  )
  pubsub_agent = local.dead_letter_topic_enabled ? "serviceAccount:service-${data.google_project.drain[0].number}@gcp-sa-pubsub.iam.gserviceaccount.com" : ""
}

data "google_project" "drain" {
  count      = local.dead_letter_topic_enabled ? 1 : 0
  project_id = var.project_id
}

resource "google_pubsub_topic" "dead_letter" {
  count   = local.dead_letter_topic_enabled ? 1 : 0
  project = var.project_id
  name    = var.dead_letter_topic
}

# A topic keeps nothing by itself: this subscription holds the dead events for 7 days, and a drain holds what it
# pulled for up to 600 s while it works.
resource "google_pubsub_subscription" "dead_letter_hold" {
  count                      = local.dead_letter_topic_enabled ? 1 : 0
  project                    = var.project_id
  name                       = "${var.dead_letter_topic}-hold"
  topic                      = google_pubsub_topic.dead_letter[0].id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 600
  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's service agent forwards undeliverable events: publisher on this topic only.
resource "google_pubsub_topic_iam_member" "dead_letter_forwarder" {
  count   = local.dead_letter_topic_enabled ? 1 : 0
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}
