"""Row ids: UUIDv7 strings (RFC 9562), time-ordered where uuid4 is random.

Why: every table keyed or indexed by a note id (the notes' primary key, links, history, changes,
jobs) keeps a B-tree in id order. With random ids each insert of a large store dirties a random
leaf page of every such index, so a batch commit writes pages spread over the whole file and costs
more the larger the store grows. Ids that start with the creation time land next to each other at
the right edge of those B-trees. Usage: ``note_id = new_id()``.
"""
from __future__ import annotations

import os
import time
import uuid

_MS_BITS = 48
_RAND_A_BITS = 12
_RAND_B_BITS = 62
_VERSION = 0x7
_VARIANT = 0b10


def new_id(now_ns: int | None = None) -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, the version, 74 random bits (``now_ns`` for tests)."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> (80 - _RAND_A_BITS)
    rand_b = rand & ((1 << _RAND_B_BITS) - 1)
    value = ((ms & ((1 << _MS_BITS) - 1)) << 80) | (_VERSION << 76) | (rand_a << 64) | (_VARIANT << 62) | rand_b
    return str(uuid.UUID(int=value))


def id_millis(note_id: str) -> int:
    """The Unix milliseconds a UUIDv7 was made at (what orders the ids)."""
    return uuid.UUID(note_id).int >> 80
