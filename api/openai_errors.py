"""Errors in the shape OpenAI's API uses, for the OpenAI-compatible route.

OpenAI clients (the ``openai`` SDK, litellm) look for ``{"error": {"message", "type", "param",
"code"}}`` and show its message; Engram's own error body has ``code`` and ``message`` at the top.
The completions route sends both, so either kind of client reads it.
"""
from __future__ import annotations

from typing import Any

OPENAI_ROUTE = "/v1/chat/completions"

# OpenAI's error types by HTTP status; anything else is a server-side error.
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}


def openai_error(code: str, message: str, status: int) -> dict[str, Any]:
    """The ``error`` object of an OpenAI error body. Usage: ``openai_error("not_found", "no note", 404)``."""
    return {"message": message, "type": _TYPES.get(status, "server_error"), "param": None, "code": code}
