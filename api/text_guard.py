"""Refuse text that no backend can hold, anywhere in a request (path, query or body): NUL (U+0000)
and lone UTF-16 surrogates (a JSON ``\\ud800`` escape without its pair).

PostgreSQL cannot store NUL in text, nor compare text with it, so a NUL in a scope id, a note id,
an entity name or a filter value came back as a storage error (503), while SQLite stored it. A lone
surrogate is not UTF-8 at all: SQLite and the tokenizer fail on it (500), and one that slipped into
stored metadata made every later list or search of that scope fail while serialising it. One check
at the edge gives every route on both backends the same answer, 422 ``validation_error``, before
anything is read or written. (``memory.validation`` checks content and metadata for embedded use.)
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from api.errors import ValidationFailed
from memory.validation import is_utf8

# A JSON ``\\u0000`` escape, not preceded by an odd run of backslashes (``\\\\u0000`` is the
# six characters "\\u0000", which are harmless text).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_JSON_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # a cheap hint; the parsed body decides
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_NUL = "a NUL character (\\u0000), which no text may hold"


async def reject_unstorable_text(request: Request) -> None:
    """An app-wide dependency: ValidationFailed when the request carries NUL or a lone surrogate."""
    if "\x00" in request.scope.get("path", ""):
        raise ValidationFailed(f"the path contains {_NUL}")
    if b"\x00" in unquote_to_bytes(request.scope.get("query_string", b"")):
        raise ValidationFailed(f"the query contains {_NUL}")
    if request.method in _BODY_METHODS:
        body = await request.body()  # already read (and size-limited) by FastAPI; cached on the request
        if b"\x00" in body or (b"\\u0000" in body and _JSON_NUL.search(body)):
            raise ValidationFailed(f"the body contains {_NUL}")
        if _JSON_SURROGATE.search(body) and _has_lone_surrogate(body):
            raise ValidationFailed("the body contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")


def _has_lone_surrogate(body: bytes) -> bool:
    try:
        docs: list[Any] = [json.loads(body)]
    except ValueError:
        docs = _json_lines(body)  # /v1/import: one document per line
    return not all(is_utf8(json.dumps(doc, ensure_ascii=False)) for doc in docs)


def _json_lines(body: bytes) -> list[Any]:
    docs = []
    for line in body.splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            pass  # not JSON: the route's own parsing answers
    return docs
