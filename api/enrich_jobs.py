"""The ``enrich`` job: LLM note construction and neighbour evolution (queued only with an engine).

One ``complete_json`` call per note under the schema of ``memory.enrichment`` (constrained decoding on
the local engine), whose keywords, tags and context are drawn from the note's own words
(``memory.grounding``); a note with too few words of its own is skipped (its deterministic fields
stay). The answer is validated beyond the schema; an invalid answer gets one repair call showing
the model its error; a second invalid answer fails the job at once (greedy decoding
would repeat it) with the error recorded, and the note keeps its deterministic keywords, tags and
context. Engine errors that are not about the answer (a remote engine down) propagate, so the
queue retries them with backoff.

Usage: ``EnrichJobs(store, engine, neighbours_of, EnrichConfig(), clock).handle(job)``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jsonschema

from inference.engine import Engine
from inference.errors import StructuredOutputError
from inference.params import GenerationParams
from memory.clock import Clock
from memory.config import EnrichConfig
from memory.enrichment import (
    Enrichment,
    EnrichmentInvalid,
    dump,
    enrichment_messages,
    enrichment_schema,
    groundable,
    note_grounding,
    parse_enrichment,
    repair_request,
)
from memory.jobs import Job, JobSpec, PermanentFailure
from memory.store import NoteStore
from memory.types import Link, Note

ENRICH = "enrich"
Neighbours = Callable[[Note, int], list[tuple[Note, float]]]
_INVALID = (StructuredOutputError, EnrichmentInvalid, jsonschema.ValidationError)


def enrich_jobs_for(note: Note) -> list[JobSpec]:
    return [JobSpec(ENRICH, note.id)]


class EnrichJobs:
    """Handler of ``enrich`` jobs; ``stats`` counts calls, repairs and invalid answers."""

    def __init__(self, store: NoteStore, engine: Engine, neighbours_of: Neighbours, cfg: EnrichConfig,
                 clock: Clock) -> None:
        self.store = store
        self.engine = engine
        self.neighbours_of = neighbours_of
        self.cfg = cfg
        self.clock = clock
        self.stats = {"notes": 0, "calls": 0, "repairs": 0, "invalid": 0}

    def handle(self, job: Job) -> dict[str, Any]:
        assert job.note_id is not None
        note = self.store.get_many([job.note_id]).get(job.note_id)
        if note is None:
            return {"skipped": "note deleted"}
        ground = note_grounding(note.content, self.cfg)
        if not groundable(ground):  # fewer than three words of its own: its deterministic fields stay
            return {"skipped": "too few content words to ground three keywords"}
        self.stats["notes"] += 1
        near = self.neighbours_of(note, self.cfg.neighbours)
        labels = {f"N{i + 1}": n.id for i, (n, _) in enumerate(near)}
        grounds = {label: note_grounding(n.content, self.cfg) for label, (n, _) in zip(labels, near)}
        schema = enrichment_schema(list(labels), self.cfg, ground, grounds)
        enrichment = self._ask(enrichment_messages(note, near, labels), schema,
                               note.content, labels, {n.id: n for n, _ in near})
        now = self.clock()
        sims = {n.id: sim for n, sim in near}
        links = [Link(note.id, d.note_id, d.kind, round(sims[d.note_id], 4), now) for d in enrichment.neighbours if d.link]
        cause = {"job": job.id, "model": str(getattr(self.engine, "model_id", "?"))}
        applied = self.store.apply_enrichment(note.id, enrichment, links, now, "llm", cause)
        if applied is None:
            return {"skipped": "note deleted"}
        return {"keywords": enrichment.keywords, "tags": enrichment.tags, "context": enrichment.context,
                "neighbours": len(near), **applied}

    def _ask(self, messages: Sequence[dict[str, str]], schema: dict[str, Any], content: str,
             labels: dict[str, str], notes: dict[str, Note]) -> Enrichment:
        params = GenerationParams(max_tokens=self.cfg.max_tokens)
        error = ""
        for attempt in range(2):
            raw: Any = None
            try:
                self.stats["calls"] += 1
                raw = self.engine.complete_json(list(messages), schema, params)
                return parse_enrichment(raw, content, labels, notes, self.cfg)
            except _INVALID as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                self.stats["invalid"] += 1
                if attempt == 0:
                    self.stats["repairs"] += 1
                    messages = [*messages, {"role": "assistant", "content": dump(raw)}, repair_request(error)]
        raise PermanentFailure(f"invalid enrichment after one repair attempt: {error}")
