"""The end-to-end tour behind ``make run``: ingest a shipped conversation, then search, show
retention and links, forget with ``consolidate`` and restore."""
from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

SAMPLE = "sample_conversation.jsonl"
ASK_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
QUESTIONS = (
    "What does Sam eat these days?",
    "Where is Sam's new apartment?",
    "How is Pepper the dog doing?",
    "How did the half marathon go?",
    "What is Sam working on at his job?",
)


def sample_records() -> list[dict[str, Any]]:
    """The shipped sample conversation (30 turns over eleven weeks)."""
    text = resources.files("api").joinpath("data", SAMPLE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_demo(folder: Path | None = None) -> int:
    """Run the tour in ``folder`` (a fresh temporary folder by default); returns 0."""
    from api.engram import Engram

    folder = folder or Path(tempfile.mkdtemp(prefix="engram-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "demo.db"
    print(f"Engram demo — database {db}\n")
    with Engram(db) as mem:
        _ingest(mem)
        for question in QUESTIONS:
            _ask(mem, question)
        _show_links(mem)
        _forget_and_restore(mem)
    return 0


def _ingest(mem: Any) -> None:
    records = sample_records()
    start = time.perf_counter()
    notes = mem.add_many(records)
    took = time.perf_counter() - start
    links = sum(len(n.links) for n in notes)
    print(f"Ingested {len(notes)} turns of user 'sam' ({records[0]['timestamp'][:10]} → "
          f"{records[-1]['timestamp'][:10]}) in {took:.1f}s; {links} links made on insert.\n")


def _ask(mem: Any, question: str) -> None:
    print(f"Q: {question}   (asked at {ASK_AT:%Y-%m-%d})")
    for hit in mem.search(question, user_id="sam", top_k=3, now=ASK_AT, include_facts=False):
        age = (ASK_AT - hit.event_time).days
        dense = f"{hit.dense:.2f}" if hit.dense is not None else "  - "
        bm25 = f"{hit.bm25:.2f}" if hit.bm25 is not None else "  - "
        print(f"  {hit.score:.3f}  dense {dense}  bm25 {bm25}  retention {_bar(hit.retention)} {hit.retention:.2f}"
              f"  {age:3d}d ago  [{hit.metadata.get('role', 'note')}] {hit.content[:90]}")
    print()


def _show_links(mem: Any) -> None:
    hit = mem.search("Pepper sprained paw vet", user_id="sam", top_k=1, now=ASK_AT, include_facts=False)[0]
    note = mem.get(hit.id, now=ASK_AT)
    print(f"Note {note.id[:8]}: {note.content[:70]}")
    print(f"  keywords {note.keywords}  tags {note.tags}\n  context  {note.context}")
    print(f"  recalled {note.recall_count}x, strength {note.strength:.1f} days")
    for link in note.links:
        other_id = link.target_id if link.source_id == note.id else link.source_id
        other = mem.store.get(other_id)
        print(f"  --{link.kind} ({link.weight:.2f})--> {other.content[:70]}")
    evolutions = [h for h in mem.history(note.id) if h.action == "evolve"]
    for entry in evolutions:
        print(f"  evolved because of {entry.new['cause'][:8]}: tags {entry.old['tags']} → {entry.new['tags']}")
    print()


def _forget_and_restore(mem: Any) -> None:
    later = datetime(2027, 2, 15, tzinfo=UTC)
    archived = mem.consolidate(user_id="sam", now=later)
    active = mem.get_all(user_id="sam")
    recalled = sum(1 for n in active if n.recall_count > 0)
    print(f"Consolidate at {later:%Y-%m-%d}: {len(archived)} faded notes archived (nothing is deleted); "
          f"{len(active)} stay active, {recalled} of them strengthened by the recalls above.")
    hits = mem.search("jazz club with Ines", user_id="sam", top_k=1, now=later, include_archived=True,
                      include_facts=False)
    if hits and hits[0].note.archived:
        restored = mem.restore(hits[0].id)
        print(f"Restored {len(restored)} archived note: {hits[0].content[:70]}")


def _bar(value: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "░" * (width - filled)
