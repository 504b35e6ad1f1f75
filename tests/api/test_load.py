"""A short run of bench/load.py: 8 writers and 8 readers against a real ``engram serve`` (SQLite)
and against two servers sharing one PostgreSQL. Nothing fails, nothing acknowledged is lost or
stored twice (read back from the database itself). Timing is the bench's business, not asserted."""
import pytest

from bench.load import run
from tests.helpers import POSTGRES_URL


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_concurrent_writers_and_readers_lose_nothing(kind):
    summary = run(kind, duration=4, seed_notes=60, pg_url=POSTGRES_URL)
    assert summary["servers"] == (1 if kind == "sqlite" else 2)
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["acked"] > 0 and summary["ops"]["search"]["n"] > 0 and summary["ops"]["get"]["n"] > 0
    assert summary["lost"] == summary["duplicated"] == summary["wrong_id"] == 0
    assert summary["stored"] == summary["acked"]  # no write stored without its acknowledgement
