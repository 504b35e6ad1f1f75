"""Idempotent adds: a client that retries an add (after a timeout, a dropped connection) sends the
same key again and gets the notes of the first attempt instead of a second copy.

The key names one request: the digest of what the caller sent (content or messages, scope,
metadata, timestamp, importance; not the defaults filled in at call time, so "now" does not make
two tries differ). The same key with a different request is a Conflict, as in HTTP's
Idempotency-Key convention. Keys are kept with the notes' database (one table row per keyed add).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from memory.errors import InvalidInput
from memory.schema import KEY_LEN
from memory.types import Idempotency, Scope


def clean_key(key: Any) -> str:
    """A key of 1..255 printable characters, or InvalidInput."""
    if not isinstance(key, str) or not key or len(key) > KEY_LEN:
        raise InvalidInput(f"an idempotency key is a string of 1 to {KEY_LEN} characters")
    if not key.isprintable():
        raise InvalidInput("an idempotency key must be printable text")
    return key


def idempotency_for(key: Any, data: Any, scope: Scope, metadata: Any, timestamp: Any, importance: Any) -> Idempotency:
    """The key with the digest of the request made under it. Usage:
    ``idempotency_for("req-1", "I moved to Lisbon", Scope("ann"), None, None, None)``."""
    request = {"data": data, "scope": scope.as_dict(), "metadata": metadata,
               "timestamp": None if timestamp is None else str(timestamp), "importance": importance}
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, default=str)
    return Idempotency(clean_key(key), hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
