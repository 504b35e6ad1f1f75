"""Turning what callers pass to ``Engram.add`` into validated note specs, before any write."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memory.config import MemoryConfig
from memory.errors import InvalidInput
from memory.timeutil import TimeLike, to_utc
from memory.types import Scope
from memory.validation import clean_content, clean_importance, clean_metadata
from retrieval.speaker import CHAT_ROLES


@dataclass(frozen=True)
class NoteSpec:
    """One validated note to be created."""

    scope: Scope
    content: str
    metadata: dict[str, Any]
    event_time: datetime
    importance: float


def specs_from_add(
    data: Any, scope: Scope, metadata: Any, timestamp: TimeLike | None, importance: Any,
    now: datetime, cfg: MemoryConfig,
) -> list[NoteSpec]:
    """``add(content | messages, ...)``: a string is one note; a list of chat turns is one note each."""
    base_meta = clean_metadata(metadata, cfg)
    when = to_utc(timestamp) if timestamp is not None else now
    weight = clean_importance(importance, cfg)
    if isinstance(data, str):
        return [NoteSpec(scope, clean_content(data, cfg), base_meta, when, weight)]
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list) or not data:
        raise InvalidInput("add() takes a non-empty string or a non-empty list of {role, content} messages")
    return [_spec_from_message(m, scope, base_meta, when, weight, cfg) for m in data]


def _spec_from_message(msg: Any, scope: Scope, base_meta: dict[str, Any], when: datetime, weight: float,
                       cfg: MemoryConfig) -> NoteSpec:
    if not isinstance(msg, Mapping):
        raise InvalidInput(f"a message must be an object with role and content, got {type(msg).__name__}")
    role = msg.get("role", "user")
    if role not in CHAT_ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {sorted(CHAT_ROLES)}")
    meta = {**base_meta, "role": role}
    if msg.get("timestamp") is not None:
        when = to_utc(msg["timestamp"])
    return NoteSpec(scope, clean_content(msg.get("content"), cfg), meta, when, weight)


def specs_from_records(records: Iterable[Mapping[str, Any]], now: datetime, cfg: MemoryConfig) -> list[NoteSpec]:
    """``add_many``/``ingest``: each record is {content, role?, user_id?, agent_id?, session_id?,
    metadata?, timestamp?, importance?}."""
    specs: list[NoteSpec] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise InvalidInput(f"record {i} is not an object")
        try:
            specs.append(_spec_from_record(rec, now, cfg))
        except InvalidInput as exc:
            raise type(exc)(f"record {i}: {exc}") from exc
    return specs


def _spec_from_record(rec: Mapping[str, Any], now: datetime, cfg: MemoryConfig) -> NoteSpec:
    scope = Scope(rec.get("user_id"), rec.get("agent_id"), rec.get("session_id"))
    meta = clean_metadata(rec.get("metadata"), cfg)
    if rec.get("role") is not None:
        if rec["role"] not in CHAT_ROLES:
            raise InvalidInput(f"unknown role {rec['role']!r}")
        meta = {**meta, "role": rec["role"]}
    when = to_utc(rec["timestamp"]) if rec.get("timestamp") is not None else now
    return NoteSpec(scope, clean_content(rec.get("content"), cfg), meta, when,
                    clean_importance(rec.get("importance"), cfg))
