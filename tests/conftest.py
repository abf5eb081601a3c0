"""Shared fixtures. The repo root goes on sys.path so tests import dagtrigger, tests.support and devtools."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
