"""Note ids are UUIDv7: valid RFC 9562 UUIDs whose order follows creation time."""
from __future__ import annotations

import time
import uuid

from memory.ids import id_millis, new_id

NOW_NS = 1_796_322_710_826_123_456  # 2026-12-03, a fixed instant


def test_new_id_is_a_version_7_rfc_uuid() -> None:
    parsed = uuid.UUID(new_id(NOW_NS))
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert len(str(parsed)) == 36


def test_the_id_carries_its_millisecond() -> None:
    assert id_millis(new_id(NOW_NS)) == NOW_NS // 1_000_000


def test_later_ids_sort_after_earlier_ones() -> None:
    ids = [new_id(NOW_NS + step * 1_000_000) for step in range(200)]
    assert ids == sorted(ids)


def test_ids_of_the_same_millisecond_differ() -> None:
    ids = {new_id(NOW_NS) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert {id_millis(i) for i in ids} == {NOW_NS // 1_000_000}


def test_default_clock_is_now() -> None:
    before = time.time_ns() // 1_000_000
    made = id_millis(new_id())
    assert before <= made <= time.time_ns() // 1_000_000
