"""memory: the source of truth — notes, scopes, history, forgetting curve and the SQL store."""
from memory.errors import (
    ContentTooLarge,
    EmptyContent,
    EngramError,
    InvalidFilter,
    InvalidInput,
    InvalidTimestamp,
    NotFound,
    ScopeRequired,
    StorageError,
)
from memory.types import HistoryEntry, Link, Note, NoteDraft, Scope

__all__ = [
    "ContentTooLarge", "EmptyContent", "EngramError", "HistoryEntry", "InvalidFilter", "InvalidInput",
    "InvalidTimestamp", "Link", "Note", "NoteDraft", "NotFound", "Scope", "ScopeRequired", "StorageError",
]
