"""Refuse NUL characters (U+0000) anywhere in a request: path, query or body.

PostgreSQL cannot store NUL in text, nor compare text with it, so a NUL in a scope id, a note id,
an entity name or a filter value would reach the driver and come back as a storage error (503);
SQLite would store it, so the two backends would disagree. One check at the edge gives every
route on both backends the same answer: 422 ``validation_error``, before anything is read or
written. (Note content and metadata are also checked by ``memory.validation`` for embedded use.)
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from api.errors import ValidationFailed

# A JSON ``\\u0000`` escape, not preceded by an odd run of backslashes (``\\\\u0000`` is the
# six characters "\\u0000", which are harmless text).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def reject_nul(request: Request) -> None:
    """An app-wide dependency: ValidationFailed when the request carries a NUL character."""
    if "\x00" in request.scope.get("path", ""):
        raise ValidationFailed("the path contains a NUL character (\\u0000), which no text may hold")
    if b"\x00" in unquote_to_bytes(request.scope.get("query_string", b"")):
        raise ValidationFailed("the query contains a NUL character (\\u0000), which no text may hold")
    if request.method in _BODY_METHODS:
        body = await request.body()  # already read (and size-limited) by FastAPI; cached on the request
        if b"\x00" in body or (b"\\u0000" in body and _JSON_NUL.search(body)):
            raise ValidationFailed("the body contains a NUL character (\\u0000), which no text may hold")
