"""Parsing caller-supplied times into timezone-aware UTC datetimes."""
from __future__ import annotations

from datetime import UTC, datetime

from memory.errors import InvalidTimestamp

TimeLike = datetime | str | int | float


def to_utc(value: TimeLike) -> datetime:
    """Normalise a datetime, ISO-8601 string or epoch seconds to aware UTC.

    Naive datetimes are taken to be UTC. Usage: ``to_utc("2024-05-01T10:00:00Z")``.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise InvalidTimestamp(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidTimestamp(f"epoch seconds out of range: {value!r}") from exc
    if isinstance(value, str):
        return _parse_iso(value)
    raise InvalidTimestamp(f"not a timestamp: {value!r}")


def _parse_iso(text: str) -> datetime:
    cleaned = text.strip().replace("Z", "+00:00")
    try:
        return to_utc(datetime.fromisoformat(cleaned))
    except ValueError as exc:
        raise InvalidTimestamp(f"cannot parse timestamp {text!r}; use ISO-8601") from exc


def days_between(earlier: datetime, later: datetime) -> float:
    """Signed number of days from ``earlier`` to ``later`` (both aware)."""
    return (later - earlier).total_seconds() / 86400.0
