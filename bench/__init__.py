"""dagtrigger's benchmark: per-event overhead, throughput, cold start and memory, against baselines run alongside.

Run it with ``bash bench/run.sh`` (or ``python -m bench`` inside the venv); see ``bench/README.md``.
"""
