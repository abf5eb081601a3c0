"""Re-export: the function's settings for a test Airflow server live in devtools (bench uses them too)."""

from __future__ import annotations

from devtools.localairflow import function_env

__all__ = ["function_env"]
