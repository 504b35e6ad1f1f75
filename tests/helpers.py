"""Constants and small builders shared by tests (import as ``tests.helpers``)."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
