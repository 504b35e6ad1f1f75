"""The one exception tree of Engram's memory layer (and, through api/, of the service).

    EngramError
     +-- InvalidInput            the caller gave something we cannot store or run
     |    +-- ScopeRequired      no user_id, agent_id or session_id
     |    +-- EmptyContent       content that is empty or only whitespace
     |    +-- ContentTooLarge    content over the configured size limit
     |    +-- InvalidFilter      a malformed metadata filter or unknown operator
     |    +-- InvalidTimestamp   a time that cannot be parsed
     +-- NotFound                no note with that id (in that scope)
     +-- Conflict                the thing to create already exists
     +-- StorageError           the database failed; nothing half-written is visible

Every error carries a stable ``code`` that the REST layer maps to a status and JSON body.
"""
from __future__ import annotations


class EngramError(Exception):
    """Base of every error Engram raises on purpose."""

    code = "engram_error"


class InvalidInput(EngramError, ValueError):
    """The caller's input is invalid; nothing was stored."""

    code = "invalid_input"


class ScopeRequired(InvalidInput):
    """At least one of user_id, agent_id, session_id is required."""

    code = "scope_required"


class EmptyContent(InvalidInput):
    """A note's content is empty."""

    code = "empty_content"


class ContentTooLarge(InvalidInput):
    """A note's content is over the configured limit."""

    code = "content_too_large"


class InvalidFilter(InvalidInput):
    """A metadata filter is malformed."""

    code = "invalid_filter"


class InvalidTimestamp(InvalidInput):
    """A timestamp could not be understood."""

    code = "invalid_timestamp"


class NotFound(EngramError, LookupError):
    """No such note."""

    code = "not_found"


class StorageError(EngramError):
    """The database failed; the transaction was rolled back."""

    code = "storage_error"


class Conflict(EngramError):
    """The thing to create already exists (a tenant name, an imported note id)."""

    code = "conflict"


class IdempotencyKeyTaken(Conflict):
    """An add's idempotency key is already stored (a retry, or the same key for another request)."""
