"""The load and fault harness: N real function processes fed real CloudEvents by a client that redelivers like
Eventarc / Pub/Sub push, against the fake Airflow (faults) or a real one, and every event accounted for afterwards
from what the servers recorded. ``bash devtools/run-load.sh`` runs it (``loadrun.py``); ``tests/load`` reuses its
scenarios; ``python -m loadtest.batch_flood`` floods batch windows. See docs/load.md.
"""
