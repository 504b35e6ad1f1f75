"""Relative and absolute dates, resolved against a fixed reference time (a Wednesday)."""
from datetime import UTC, datetime

import pytest

from graph.dates import add_months, find_dates, resolve_date

REF = datetime(2026, 1, 14, 15, 30, tzinfo=UTC)  # Wednesday 14 January 2026


def d(y, m, day=1):
    return datetime(y, m, day, tzinfo=UTC)


@pytest.mark.parametrize(("text", "when", "granularity"), [
    ("today", d(2026, 1, 14), "day"),
    ("yesterday", d(2026, 1, 13), "day"),
    ("tomorrow", d(2026, 1, 15), "day"),
    ("the day before yesterday", d(2026, 1, 12), "day"),
    ("two weeks ago", d(2025, 12, 31), "day"),
    ("3 days ago", d(2026, 1, 11), "day"),
    ("a few days ago", d(2026, 1, 11), "day"),
    ("a couple of months ago", d(2025, 11, 14), "day"),
    ("a year ago", d(2025, 1, 14), "day"),
    ("in two weeks", d(2026, 1, 28), "day"),
    ("last June", d(2025, 6), "month"),
    ("next June", d(2026, 6), "month"),
    ("this June", d(2026, 6), "month"),
    ("in March", d(2026, 3), "month"),          # nearest March: two months ahead, not ten back
    ("in November", d(2025, 11), "month"),      # nearest November: two months back
    ("since May 2023", d(2023, 5), "month"),
    ("May 2023", d(2023, 5), "month"),
    ("in 2021", d(2021, 1), "year"),
    ("last month", d(2025, 12), "month"),
    ("next month", d(2026, 2), "month"),
    ("last year", d(2025, 1), "year"),
    ("last week", d(2026, 1, 5), "week"),
    ("next week", d(2026, 1, 19), "week"),
    ("last weekend", d(2026, 1, 10), "day"),
    ("next Friday", d(2026, 1, 16), "day"),
    ("last Friday", d(2026, 1, 9), "day"),
    ("on Friday", d(2026, 1, 9), "day"),
    ("Wednesday", d(2026, 1, 14), "day"),
    ("last Wednesday", d(2026, 1, 7), "day"),
    ("next Wednesday", d(2026, 1, 21), "day"),
    ("May 5, 2023", d(2023, 5, 5), "day"),
    ("on the 5th of March", d(2026, 3, 5), "day"),
    ("2023-05-17", d(2023, 5, 17), "day"),
    ("2023-05", d(2023, 5), "month"),
])
def test_resolves_against_reference_time(text, when, granularity):
    found = resolve_date(text, REF)
    assert found is not None, text
    assert (found.when, found.granularity) == (when, granularity)


def test_finds_dates_inside_sentences_with_spans():
    text = "We moved to Paris last June and I started at Airbus two weeks ago."
    found = find_dates(text, REF)
    assert [(f.text, f.when) for f in found] == [("last June", d(2025, 6)), ("two weeks ago", d(2025, 12, 31))]
    assert text[found[0].start:found[0].end] == "last June"


@pytest.mark.parametrize("text", ["I may go", "nothing here", "February 31", "I have 2 cats"])
def test_no_date_where_there_is_none(text):
    assert find_dates(text, REF) == []


def test_add_months_clamps_the_day():
    assert add_months(d(2026, 1, 31), 1) == d(2026, 2, 28)
    assert add_months(d(2026, 1, 31), -2) == d(2025, 11, 30)
