"""A blocking producer (model generation) in its own thread, feeding an async stream of frames.

The event loop never runs model code: the thread puts frames on an asyncio queue through
``call_soon_threadsafe``. When the client goes away the async generator is closed, which sets
``cancel`` — the engine stops at its next token and releases its lock.

Usage::

    def produce(emit, cancel):
        for piece in pipeline.generate(turn, tenant, cancel):
            emit(sse("token", {"text": piece}))
    return StreamingResponse(thread_stream(produce, on_error), media_type="text/event-stream")
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from memory.errors import EngramError

log = logging.getLogger("engram.api")
Emit = Callable[[str], None]
_END = object()


def sse(event: str | None, data: Any) -> str:
    """One server-sent event (``event: ...`` omitted when None, as OpenAI's stream does)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def error_body(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, EngramError):
        return {"code": exc.code, "message": str(exc)}
    log.exception("error in a stream", exc_info=exc)
    return {"code": "internal", "message": "internal error; see the server log"}


async def thread_stream(produce: Callable[[Emit, threading.Event], None],
                        on_error: Callable[[BaseException], str]) -> AsyncIterator[str]:
    """Run ``produce(emit, cancel)`` in a thread; yield what it emits, then its error frame if any."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def emit(frame: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, frame)
        except RuntimeError:  # the loop is gone (server shutting down): nobody is listening
            cancel.set()

    def run() -> None:
        try:
            produce(emit, cancel)
        except BaseException as exc:  # noqa: BLE001 - reported in the stream: the status line is sent
            emit(on_error(exc))
        finally:
            emit(_END)

    threading.Thread(target=run, name="engram-chat-stream", daemon=True).start()
    try:
        while (frame := await queue.get()) is not _END:
            yield frame
    finally:
        cancel.set()
