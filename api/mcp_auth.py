"""A bearer token in front of the MCP streamable-HTTP endpoint.

The MCP server (``engram mcp --transport http``) holds a whole memory (an embedded database, or a
tenant key for a remote service): any process that can reach its port can read and delete notes.
On loopback the SDK's DNS-rebinding check keeps web pages out, not other local users; with a token,
every HTTP request must carry ``Authorization: Bearer <token>``. A server on a non-loopback address
must have one (``serve_http`` refuses to start otherwise).
"""
from __future__ import annotations

import hmac
import json
from typing import Any

from memory.errors import InvalidInput

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def require_token(host: str, token: str | None) -> None:
    """InvalidInput when a server on a non-loopback ``host`` would run without a token."""
    if not token and host not in LOOPBACK:
        raise InvalidInput(f"an MCP server on {host} (not loopback) needs a token (--token or ENGRAM_MCP_TOKEN)")


class BearerGuard:
    """ASGI middleware: HTTP requests without the token get 401; lifespan passes through."""

    def __init__(self, app: Any, token: str) -> None:
        if not token:
            raise ValueError("an empty token guards nothing")
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"code": "unauthorized", "message": "send Authorization: Bearer <token>"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: dict[str, Any]) -> bool:
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(given, self._expected)
