"""``engram chat``: a terminal chat with memory, showing the memories each reply used.

Usage: ``engram --db engram.db chat --user-id ann`` then type; an empty line or EOF ends it.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from api.chat.memory_kv import MemoryKV
from api.chat.turn import ChatConfig, ChatPipeline, ChatRequest


def open_local_pipeline(db: str | Path, threads: int = 2) -> ChatPipeline:
    """The local engine with a chunk store on disk beside the database (``<db>.kv``)."""
    from inference.chunk_store import StoreConfig, TieredChunkStore
    from inference.local_engine import LocalEngine

    store = TieredChunkStore(StoreConfig(ram_bytes=128 << 20, disk_dir=f"{db}.kv", disk_bytes=1 << 30,
                                         policy="value"))
    engine = LocalEngine(threads=threads, chunk_store=store, prefix_cache_blocks=32, block_size=64)
    return ChatPipeline(engine, ChatConfig(), MemoryKV(engine))


def chat_loop(pipeline: ChatPipeline, mem: Any, scope: dict[str, str | None], lines: Iterable[str],
              out: TextIO = sys.stdout, max_tokens: int = 128) -> int:
    """Answer each line; returns how many turns ran."""
    history: list[dict[str, str]] = []
    turns = 0
    for line in lines:
        message = line.strip()
        if not message:
            break
        turn = pipeline.prepare("", mem, ChatRequest(message, **scope, history=history[-8:], max_tokens=max_tokens))
        _memories(turn.chunks, out)
        out.write("engram> ")
        for piece in pipeline.generate(turn):
            out.write(piece)
            out.flush()
        result = pipeline.finish("", mem, turn)
        s = result.stats
        out.write(f"\n  [ttft {s.get('ttft_ms', 0):.0f} ms, total {s.get('total_ms', 0):.0f} ms, chunk tokens "
                  f"reused {s.get('chunk_reused_tokens', 0)} / computed {s.get('chunk_computed_tokens', 0)}]\n")
        pipeline.warm("", result)  # while the user reads and types
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": result.reply}]
        turns += 1
    return turns


def _memories(chunks: list[Any], out: TextIO) -> None:
    if not chunks:
        out.write("  (no memories used)\n")
    for c in chunks:
        ret = "" if c.retention is None else f" R={c.retention:.2f}"
        out.write(f"  memory {c.kind} {c.score:.2f}{ret}: {c.content}\n")
