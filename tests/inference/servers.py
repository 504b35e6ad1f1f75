"""A small scripted OpenAI-compatible server on 127.0.0.1, for testing remote engines for real.

Usage::

    with ScriptedServer() as server:
        server.push(Reply(status=500), Reply(content='{"a": 1}'))
        engine = LiteLLMEngine("openai/test", api_base=server.base_url, api_key="sk-test")

Each request to /v1/chat/completions takes the next scripted Reply (an empty script answers
"ok"); every request body is kept in ``server.requests`` for assertions.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an HTTP error status, or content (optionally after a delay).

    ``break_after``: a streamed reply drops the connection after that many pieces.
    ``piece_delay``: seconds between streamed pieces.
    """

    content: str = "ok"
    status: int = 200
    delay: float = 0.0
    break_after: int | None = None
    piece_delay: float = 0.0


class ScriptedServer:
    """Runs uvicorn in a daemon thread on a free loopback port; stops on ``close``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.abandoned_streams = 0  # streams the client hung up on before the end
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"
        config = uvicorn.Config(
            _app(self), log_level="warning", timeout_graceful_shutdown=1, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            return self._script.popleft() if self._script else Reply()

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.abandoned_streams = 0

    def start(self) -> ScriptedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted server did not start")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _app(server: ScriptedServer) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        reply = server.next_reply(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            message = f"scripted {reply.status}: {reply.content}"
            error = {"error": {"message": message, "type": "scripted", "code": reply.status}}
            return JSONResponse(error, status_code=reply.status)
        if body.get("stream"):
            return StreamingResponse(_sse(server, body["model"], reply), media_type="text/event-stream")
        return JSONResponse(_completion(body["model"], reply.content))

    return app


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


async def _sse(server: ScriptedServer, model: str, reply: Reply) -> AsyncIterator[str]:
    try:
        async for event in _events(model, reply):
            yield event
    except asyncio.CancelledError:
        server.abandoned_streams += 1
        raise


async def _events(model: str, reply: Reply) -> AsyncIterator[str]:
    words = reply.content.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    for i, piece in enumerate([*pieces, None]):
        if i and reply.piece_delay:
            await asyncio.sleep(reply.piece_delay)
        if i == reply.break_after:
            raise ConnectionAbortedError("scripted break mid-stream")
        delta = {"content": piece} if piece is not None else {}
        if i == 0:
            delta["role"] = "assistant"
        chunk = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None if piece is not None else "stop"}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"
