"""Checks on caller input, run before anything is written (so bad input never loses data)."""
from __future__ import annotations

import json
import math
from typing import Any

from memory.config import MemoryConfig
from memory.errors import ContentTooLarge, EmptyContent, InvalidInput


def clean_content(content: Any, cfg: MemoryConfig) -> str:
    """The content to store, or a typed error. Null bytes are refused (SQL backends choke on them)."""
    if not isinstance(content, str):
        raise InvalidInput(f"content must be a string, got {type(content).__name__}")
    if "\x00" in content:
        raise InvalidInput("content must not contain null bytes")
    if not is_utf8(content):
        raise InvalidInput("content must not contain lone surrogates (\\ud800-\\udfff)")
    if not content.strip():
        raise EmptyContent("content is empty")
    if len(content) > cfg.max_content_chars:
        raise ContentTooLarge(f"content has {len(content)} characters; the limit is {cfg.max_content_chars}")
    return content


def clean_metadata(metadata: Any, cfg: MemoryConfig) -> dict[str, Any]:
    """A JSON-serialisable dict with string keys under the size limit."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f"metadata must be an object, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from exc
    if "\\u0000" in encoded:
        raise InvalidInput("metadata must not contain null bytes")
    if not is_utf8(json.dumps(metadata, ensure_ascii=False)):
        # Stored escaped it would load fine, then fail every response that serialises it.
        raise InvalidInput("metadata must not contain lone surrogates (\\ud800-\\udfff)")
    if len(encoded.encode()) > cfg.max_metadata_bytes:
        raise ContentTooLarge(f"metadata is over {cfg.max_metadata_bytes} bytes")
    return json.loads(encoded)


def clean_importance(importance: Any, cfg: MemoryConfig) -> float:
    """A number in [0, 1]; None means the configured default."""
    if importance is None:
        return cfg.default_importance
    if isinstance(importance, bool) or not isinstance(importance, int | float) or not math.isfinite(importance):
        raise InvalidInput(f"importance must be a number in [0, 1], got {importance!r}")
    if not 0.0 <= float(importance) <= 1.0:
        raise InvalidInput(f"importance must be in [0, 1], got {importance}")
    return float(importance)


def clean_note_id(note_id: Any) -> str:
    if not isinstance(note_id, str) or not note_id or len(note_id) > 64:
        raise InvalidInput(f"not a note id: {note_id!r}")
    return note_id


def is_utf8(text: str) -> bool:
    """False for a string holding a lone UTF-16 surrogate (JSON can carry one; UTF-8 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
