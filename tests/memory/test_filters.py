from datetime import UTC, datetime

import pytest

from memory.errors import InvalidFilter
from memory.filters import compile_filter

REC = {
    "metadata": {"city": "Paris", "year": 2021, "tags": ["a", "b"], "nested": {"level": 3}, "name": "Ann Lee"},
    "event_time": datetime(2024, 5, 1, tzinfo=UTC),
    "created_at": datetime(2024, 5, 2, tzinfo=UTC),
    "tags": ["travel", "role:user"],
    "keywords": ["lisbon"],
    "importance": 0.7,
    "recall_count": 2,
    "content": "I moved to Paris",
}

CASES = [
    ({"city": "Paris"}, True),
    ({"city": "Rome"}, False),
    ({"city": {"eq": "Paris"}}, True),
    ({"city": {"ne": "Paris"}}, False),
    ({"missing": {"ne": "x"}}, True),
    ({"missing": "x"}, False),
    ({"missing": {"nin": ["x"]}}, True),
    ({"year": {"gt": 2020}}, True),
    ({"year": {"gte": 2021, "lt": 2022}}, True),
    ({"year": {"lte": 2020}}, False),
    ({"year": {"gt": "2020"}}, False),  # type mismatch is simply false
    ({"city": {"in": ["Rome", "Paris"]}}, True),
    ({"city": {"nin": ["Rome", "Paris"]}}, False),
    ({"tags": "travel"}, True),  # note tags: membership
    ({"tags": {"in": ["food", "travel"]}}, True),
    ({"metadata.tags": "x"}, False),
    ({"name": {"contains": "Lee"}}, True),
    ({"name": {"contains": "lee"}}, False),
    ({"name": {"icontains": "LEE"}}, True),
    ({"nested.level": 3}, True),
    ({"nested.level": {"gte": 4}}, False),
    ({"event_time": {"gte": "2024-04-30T00:00:00Z", "lt": "2024-05-02"}}, True),
    ({"event_time": {"lt": "2024-05-01T00:00:00Z"}}, False),
    ({"importance": {"gt": 0.5}}, True),
    ({"AND": [{"city": "Paris"}, {"year": 2021}]}, True),
    ({"AND": [{"city": "Paris"}, {"year": 1999}]}, False),
    ({"OR": [{"city": "Rome"}, {"year": 2021}]}, True),
    ({"OR": [{"city": "Rome"}, {"year": 1999}]}, False),
    ({"NOT": {"city": "Rome"}}, True),
    ({"NOT": [{"city": "Paris"}, {"year": 2021}]}, False),
    ({"city": "Paris", "year": 1999}, False),  # several keys are ANDed
    ({"OR": [{"NOT": {"city": "Paris"}}, {"AND": [{"year": 2021}, {"nested.level": {"in": [1, 3]}}]}]}, True),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_filter_semantics(spec, expected):
    assert compile_filter(spec)(REC) is expected


@pytest.mark.parametrize(
    "spec",
    [
        {},
        [],
        "city",
        {"city": {"regex": ".*"}},
        {"city": {}},
        {"city": {"in": "Paris"}},
        {"AND": {"city": "Paris"}},
        {"OR": []},
        {"event_time": {"gt": "not a date"}},
        {"name": {"contains": ["x"]}},
        {"": 1},
    ],
)
def test_malformed_filters_raise_invalid_filter(spec):
    with pytest.raises(InvalidFilter):
        compile_filter(spec)


def test_deep_nesting_is_refused():
    spec = {"city": "Paris"}
    for _ in range(40):
        spec = {"NOT": spec}
    with pytest.raises(InvalidFilter):
        compile_filter(spec)
