# Numbers the platform can count, from the function's and the sweep's structured log lines (one
# JSON object per line: Cloud Logging puts its fields under jsonPayload). Every event outcome is
# logged with `outcome` and `route`; a dead letter adds `dead_letter` (its object name); every
# sweep logs one `outcome: "sweep"` line whose `sweep` object is the summary (docs/accounting.md).
# tests/deploy/test_log_metrics.py runs the function and the sweep and checks that each filter
# below matches lines they really print.

locals {
  log_source = "(resource.type=\"cloud_run_revision\" OR resource.type=\"cloud_run_job\")"
  log_filters = {
    events        = "${local.log_source} AND jsonPayload.outcome=~\"^(done|duplicate|ignored|retry|failed)$\""
    dead_letters  = "${local.log_source} AND jsonPayload.dead_letter:*"
    retries       = "${local.log_source} AND jsonPayload.outcome=\"retry\""
    sweep_missing = "${local.log_source} AND jsonPayload.outcome=\"sweep\" AND jsonPayload.sweep.missing>0"
    sweeps        = "${local.log_source} AND jsonPayload.outcome=\"sweep\""
    drains        = "${local.log_source} AND jsonPayload.outcome=\"drain\""
    drain_left    = "${local.log_source} AND jsonPayload.outcome=\"drain\" AND jsonPayload.drain.left>0"
  }
}

resource "google_logging_metric" "events" {
  count   = var.monitoring ? 1 : 0
  project = var.project_id
  name    = "dagtrigger/events"
  filter  = local.log_filters.events
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "route"
      value_type = "STRING"
    }
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
  }
  label_extractors = {
    route   = "EXTRACT(jsonPayload.route)"
    outcome = "EXTRACT(jsonPayload.outcome)"
  }
}

resource "google_logging_metric" "dead_letters" {
  count   = var.monitoring ? 1 : 0
  project = var.project_id
  name    = "dagtrigger/dead_letters"
  filter  = local.log_filters.dead_letters
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "route"
      value_type = "STRING"
    }
  }
  label_extractors = { route = "EXTRACT(jsonPayload.route)" }
}

# The function answers 503 (redeliver) for exactly these outcomes.
resource "google_logging_metric" "retries" {
  count   = var.monitoring ? 1 : 0
  project = var.project_id
  name    = "dagtrigger/retries"
  filter  = local.log_filters.retries
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "sweep_missing" {
  count           = var.monitoring ? 1 : 0
  project         = var.project_id
  name            = "dagtrigger/sweep_missing"
  filter          = local.log_filters.sweeps
  value_extractor = "EXTRACT(jsonPayload.sweep.missing)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "sweep_triggered" {
  count           = var.monitoring ? 1 : 0
  project         = var.project_id
  name            = "dagtrigger/sweep_triggered"
  filter          = local.log_filters.sweeps
  value_extractor = "EXTRACT(jsonPayload.sweep.triggered)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "sweeps_with_missing" {
  count   = var.monitoring ? 1 : 0
  project = var.project_id
  name    = "dagtrigger/sweeps_with_missing"
  filter  = local.log_filters.sweep_missing
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# `dagtrigger drain` (alone or as `sweep --drain`) logs one `outcome: "drain"` line: events sent from the
# trigger's dead-letter topic, and messages it had to leave there (docs/accounting.md#drain-the-dead-letter-topic).
resource "google_logging_metric" "drain_triggered" {
  count           = var.monitoring ? 1 : 0
  project         = var.project_id
  name            = "dagtrigger/drain_triggered"
  filter          = local.log_filters.drains
  value_extractor = "EXTRACT(jsonPayload.drain.triggered)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "drains_with_left" {
  count   = var.monitoring ? 1 : 0
  project = var.project_id
  name    = "dagtrigger/drains_with_left"
  filter  = local.log_filters.drain_left
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_alert_policy" "dead_letter" {
  count                 = var.monitoring ? 1 : 0
  project               = var.project_id
  display_name          = "dagtrigger: an event was dead-lettered"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content = "An event failed for good and was recorded under DEAD_LETTER_URI. Fix the cause, then `python -m dagtrigger replay` (docs/dead-letters.md)."
  }
  conditions {
    display_name = "dead letters written"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.dead_letters[0].name}\" AND resource.type=\"${var.monitoring_resource_type}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "sweep_found_missing" {
  count                 = var.monitoring ? 1 : 0
  project               = var.project_id
  display_name          = "dagtrigger: a sweep found uploads that never triggered"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content = "The scheduled sweep found uploads with no run, member or dead letter, and sent them. The platform lost events: look for a misconfigured trigger or an outage longer than Eventarc's retention (docs/accounting.md)."
  }
  conditions {
    display_name = "sweeps with missing > 0"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.sweeps_with_missing[0].name}\" AND resource.type=\"cloud_run_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "retries" {
  count                 = var.monitoring ? 1 : 0
  project               = var.project_id
  display_name          = "dagtrigger: Airflow keeps answering 'later' (503s to the platform)"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content = "Events are being redelivered because Airflow is unreachable, overloaded or refusing the caller. `python -m dagtrigger check` names the cause (docs/troubleshooting.md)."
  }
  conditions {
    display_name = "retries per minute above ${var.retry_alert_per_minute}"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.retries[0].name}\" AND resource.type=\"${var.monitoring_resource_type}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.retry_alert_per_minute
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "drain_left_messages" {
  count                 = var.monitoring ? 1 : 0
  project               = var.project_id
  display_name          = "dagtrigger: a drain left events in the trigger's dead-letter topic"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content = "A drain could not account for some messages of the dead-letter subscription (Airflow unavailable, no route takes them today, or they could not be verified) and left them there; they expire after the subscription's 7-day retention. Read the reasons with `python -m dagtrigger drain SUBSCRIPTION --dry-run` (docs/accounting.md#drain-the-dead-letter-topic)."
  }
  conditions {
    display_name = "drains with left > 0"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.drains_with_left[0].name}\" AND resource.type=\"cloud_run_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}
