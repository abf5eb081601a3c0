output "function_name" {
  description = "The function (and its Cloud Run service)."
  value       = google_cloudfunctions2_function.function.name
}

output "function_uri" {
  description = "HTTPS endpoint of the function (webhooks, Pub/Sub push for trigger_kind http)."
  value       = google_cloudfunctions2_function.function.service_config[0].uri
}

output "service_account_email" {
  description = "Runtime identity of the function: the Airflow user to register."
  value       = local.service_account_email
}

output "max_calls_to_airflow" {
  description = "Upper bound of simultaneous calls to the Airflow API server: max_instances x max_in_flight (compare with airflow_capacity)."
  value       = var.max_instances * var.max_in_flight
}

output "airflow_user_registration" {
  description = "Registers the service account as an Airflow user (needed when its email is longer than 64 characters)."
  value = join(" ", [
    "deploy/register-airflow-user.sh --project ${var.project_id}",
    "--composer-env ${var.composer_environment != "" ? var.composer_environment : "ENV"}",
    "--composer-location ${local.composer_location}",
    "--service-account ${local.service_account_email}",
  ])
}

output "sweep_job" {
  description = "The scheduled sweep's Cloud Run job (empty without sweep_image): gcloud run jobs execute NAME runs it now."
  value       = local.sweep_enabled ? google_cloud_run_v2_job.sweep[0].name : ""
}

output "sweep_service_account_email" {
  description = "The sweep's identity (register it as an Airflow user like the function's when needed)."
  value       = local.sweep_enabled ? google_service_account.sweep[0].email : ""
}

output "dead_letter_attach" {
  description = "With dead_letter_topic: the gcloud commands that make it the dead-letter topic of the trigger's subscription (Eventarc owns that subscription; Terraform cannot set it)."
  value = local.dead_letter_topic_enabled ? join("\n", [
    "SUB=$(gcloud eventarc triggers describe ${google_cloudfunctions2_function.function.event_trigger[0].trigger} --format='value(transport.pubsub.subscription)')",
    "gcloud pubsub subscriptions add-iam-policy-binding \"$SUB\" --member=${local.pubsub_agent} --role=roles/pubsub.subscriber",
    "gcloud pubsub subscriptions update \"$SUB\" --dead-letter-topic=${google_pubsub_topic.dead_letter[0].id} --max-delivery-attempts=100",
  ]) : ""
}

output "drain_subscription" {
  description = "The subscription dagtrigger drain reads (empty without dead_letter_topic)."
  value       = local.drain_subscription
}
