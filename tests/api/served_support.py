"""The real service with the shared chat engine on a real uvicorn server on 127.0.0.1 (a thread of
the test process), for tests that need a socket: OpenAI clients, litellm, a browser."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.api.chat_support import start_chat


@contextmanager
def serve(tmp_dir, embedder, engine, **overrides) -> Iterator[str]:
    """Yield the base URL of the running app; stop it on exit."""
    _, app = start_chat(tmp_dir, embedder, engine, **overrides)
    with serve_app(app) as url:
        yield url


@contextmanager
def serve_app(app, **uvicorn_options) -> Iterator[str]:
    """Run ``app`` on uvicorn on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           **{"log_level": "warning", **uvicorn_options}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
