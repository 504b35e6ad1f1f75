"""Memory-aware chunk caching: the memory layer tells the chunk store what a note's KV is worth.

- A note's chunk KV is computed when the chat writes it back (``warm``, after the reply is sent)
  or else the first time a turn uses the note (the engine stores it).
- Its predicted reuse (``set_reuse``, on its KV computed alone and on each in-context variant) is
  the note's retention on the forgetting curve, refreshed
  every turn of its tenant for the notes this process has cached: a recalled note (retention back
  near 1) is protected, the caches of fading notes are the first the value-aware policy evicts.
- Archiving or deleting a note drops its cache (``discard``); editing a note drops the old text's
  cache — the new text has a new key and is computed when first used.

Keys are ``chunk_key(model, quant, tokens of the chunk text, salt=tenant)``, exactly what the
engine computes, so the hints reach the entries the engine wrote. Usage::

    kv = MemoryKV(engine)                  # engine.chunk_store is a TieredChunkStore
    kv.watch("acme", mem)                  # archive/delete/edit of acme's notes drop their caches
    kv.after_turn("acme", mem, chunks)     # remember the notes used, refresh retention hints
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from api.chat.context import NOTE, ContextChunk, note_text
from inference.chunk_kv import chunk_key
from memory.types import Note

MAX_TRACKED = 4096  # notes per tenant whose hints are refreshed; the oldest used are forgotten


class MemoryKV:
    """Retention → reuse hints and invalidation for one engine's chunk store. Thread-safe."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._store = engine.chunk_store
        self._tracked: dict[str, OrderedDict[str, str]] = {}  # tenant → note id → chunk key
        self._watched: set[int] = set()
        self._lock = threading.Lock()

    def key_of(self, tenant: str, text: str) -> str:
        e = self._engine
        return chunk_key(e.model_id, e.quant, e.tokenizer.encode(text), tenant)

    def keys_of(self, tenant: str, text: str) -> list[str]:
        """Every store key of a chunk's KV: computed alone, then in each context it was stored in."""
        keys = getattr(self._engine, "chunk_keys", None)
        return keys(text, tenant=tenant) if keys is not None else [self.key_of(tenant, text)]

    def watch(self, tenant: str, mem: Any) -> None:
        """Subscribe to ``mem``'s note changes (once per Engram)."""
        with self._lock:
            if id(mem) in self._watched:
                return
            self._watched.add(id(mem))
        mem.on_note_change(lambda event, note: self.forget(tenant, note))

    def forget(self, tenant: str, note: Note) -> None:
        """Drop the cache of ``note``'s current text (after archive, delete or edit): its KV
        computed alone and every in-context KV of it or of chunks computed after it."""
        discard = getattr(self._engine, "discard_chunk", None)
        if discard is not None:
            discard(note_text(note), tenant=tenant)
        else:
            self._store.discard(self.key_of(tenant, note_text(note)))
        with self._lock:
            self._tracked.get(tenant, OrderedDict()).pop(note.id, None)

    def after_turn(self, tenant: str, mem: Any, used: Sequence[ContextChunk]) -> None:
        """Track the notes ``used`` and set every tracked note's reuse to its retention now."""
        with self._lock:
            tracked = self._tracked.setdefault(tenant, OrderedDict())
            for chunk in used:
                if chunk.kind == NOTE:
                    tracked[chunk.id] = self.key_of(tenant, chunk.text)
                    tracked.move_to_end(chunk.id)
            while len(tracked) > MAX_TRACKED:
                tracked.popitem(last=False)
            snapshot = dict(tracked)
        notes = mem.store.get_many(list(snapshot))
        for note_id in snapshot:
            note = notes.get(note_id)
            if note is not None:
                reuse = min(1.0, max(0.0, mem.retention(note)))
                for key in self.keys_of(tenant, note_text(note)):  # the in-context variants too
                    self._store.set_reuse(key, reuse)

    def warm(self, tenant: str, notes: Sequence[Note]) -> int:
        """Compute the chunk KV of notes just written (after the reply has gone out), so the turn
        that first retrieves them reuses it instead of computing it on the reply path."""
        return self._engine.prepare_chunks([note_text(n) for n in notes], tenant=tenant)

    def reuse_of(self, tenant: str, note_id: str) -> str | None:
        """The chunk key tracked for a note (tests and the demo's cache panel)."""
        with self._lock:
            return self._tracked.get(tenant, {}).get(note_id)
