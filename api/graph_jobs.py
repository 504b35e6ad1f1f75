"""Job handlers that keep the knowledge graph in step with the notes.

``graph``: (re)ingest a note as an episode, with its event time as the reference time. What an
earlier ingest of the same note said is withdrawn first (with the note's ``contradicts`` links), so
the job is idempotent (a retry after a crash mid-job does not count the note twice) and an edited
note replaces what it said. When the
episode supersedes facts of older notes, ``contradicts`` links go from this note to those notes,
audited in its history — notes and graph tell the same story.

``retract``: the note was deleted; its facts are withdrawn (see ``TemporalGraph.retract_note``), so
no current fact rests on a note that no longer exists.

Usage: ``GraphJobs(store, graph, clock).handlers()`` → ``{"graph": ..., "retract": ...}``.
"""
from __future__ import annotations

from typing import Any

from graph.temporal_graph import TemporalGraph
from memory.clock import Clock
from memory.jobs import Job, JobSpec
from memory.linking import CONTRADICTS
from memory.store import NoteStore
from memory.types import Note, Scope

GRAPH, RETRACT = "graph", "retract"
_NO_GRAPH_ROLES = {"assistant", "system", "tool"}  # their "I" is not the user


def graph_jobs_for(note: Note) -> list[JobSpec]:
    """The graph job a new or edited note needs (none for assistant/system turns)."""
    role = note.metadata.get("role")
    return [] if role in _NO_GRAPH_ROLES else [JobSpec(GRAPH, note.id)]


def retract_job_for(note: Note) -> JobSpec:
    return JobSpec(RETRACT, note.id, {"scope": note.scope.as_dict()})


class GraphJobs:
    """The graph's job handlers over one note store and one graph."""

    def __init__(self, store: NoteStore, graph: TemporalGraph, clock: Clock) -> None:
        self.store = store
        self.graph = graph
        self.clock = clock

    def handlers(self) -> dict[str, Any]:
        return {GRAPH: self.ingest, RETRACT: self.retract}

    def ingest(self, job: Job) -> dict[str, Any]:
        assert job.note_id is not None
        note = self.store.get_many([job.note_id]).get(job.note_id)
        if note is None:
            return {"skipped": "note deleted"}
        withdrawn = self.graph.retract_note(note.id, note.scope)
        if withdrawn:  # re-ingest (an edit, or a retry): the note's old contradictions are recomputed
            self.store.remove_links(note.id, CONTRADICTS, self.clock(), "graph")
        result = self.graph.ingest(note.content, note.id, note.scope, note.event_time)
        superseded = {s.old_fact_id: s.new_fact_id for s in result.superseded}
        links = self.store.add_links(result.note_links(self.clock()), actor="graph",
                                     cause={"cause": "superseded_fact", "facts": superseded, "job": job.id})
        return {"episode": result.episode.id, "facts": len(result.facts), "closed": len(result.closed),
                "contradicts": [lk.target_id for lk in links], "withdrawn": len(withdrawn),
                "error": result.episode.error}

    def retract(self, job: Job) -> dict[str, Any]:
        assert job.note_id is not None
        scope = Scope(**job.payload["scope"])
        return {"withdrawn": len(self.graph.retract_note(job.note_id, scope))}
