"""dagtrigger: turn Cloud Storage, Pub/Sub and webhook events into exactly one Airflow DAG run each."""

__version__ = "0.1.0"
