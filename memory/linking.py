"""Zettelkasten decisions without an LLM: which neighbours to link, and how they evolve.

A-MEM lets an LLM decide; its system code then applies the updates to the wrong notes because
it indexes neighbours by position in a local list. Here every decision is keyed by note id.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from memory.config import LinkingConfig
from memory.types import Link, Note

RELATED = "related"
CONTRADICTS = "contradicts"
DERIVED_FROM = "derived_from"
LINK_KINDS = frozenset({RELATED, CONTRADICTS, DERIVED_FROM})


@dataclass(frozen=True)
class Evolution:
    """New keywords/tags for a neighbour, caused by note ``cause_id``, with the values they replace
    (what the neighbour's history records as old)."""

    note_id: str
    keywords: list[str]
    tags: list[str]
    cause_id: str
    old_keywords: list[str]
    old_tags: list[str]


@dataclass(frozen=True)
class Neighbour:
    """What evolution reads and changes of a note: read for every close neighbour of a batch."""

    id: str
    content: str
    keywords: list[str]
    tags: list[str]

    @staticmethod
    def of(note: Note) -> Neighbour:
        return Neighbour(note.id, note.content, list(note.keywords), list(note.tags))


def links_for(new: Note, neighbours: list[tuple[str, float]], cfg: LinkingConfig, now: datetime) -> list[Link]:
    """``related`` links from ``new`` to neighbours at or above the link threshold."""
    return [Link(new.id, nid, RELATED, round(sim, 4), now)
            for nid, sim in neighbours if nid != new.id and sim >= cfg.link_threshold]


def evolve(neighbour: Neighbour, new: Note, similarity: float, cfg: LinkingConfig) -> Evolution | None:
    """How ``neighbour`` changes because ``new`` arrived; None when nothing changes.

    Keywords: the new note's keywords that occur in the neighbour's own text (grounded, never
    invented). Tags: the new note's topic tags, only for close neighbours. Content never changes.
    """
    if similarity < cfg.evolve_threshold or neighbour.id == new.id:
        return None
    text = neighbour.content.lower()
    keywords = list(neighbour.keywords)
    for kw in new.keywords:
        if len(keywords) >= cfg.max_keywords:
            break
        if kw not in keywords and kw in text:
            keywords.append(kw)
    tags = list(neighbour.tags)
    for tag in new.tags:
        if len(tags) >= cfg.max_tags:
            break
        if tag not in tags and not tag.startswith("role:"):
            tags.append(tag)
    if keywords == neighbour.keywords and tags == neighbour.tags:
        return None
    return Evolution(neighbour.id, keywords, tags, new.id, list(neighbour.keywords), list(neighbour.tags))


@dataclass(frozen=True)
class Linked:
    """What an insert's transaction made of a ``LinkPlan``: the links it stored and the evolutions
    it applied, in order."""

    links: list[Link]
    evolutions: list[Evolution]


@dataclass(frozen=True)
class LinkPlan:
    """A batch's links (``note.links``) and close neighbours (at or above the evolve threshold),
    found by vector search before its transaction. Inside it (``decide``), against the neighbours
    as that transaction reads them:
    - links to notes deleted since the search (by another process, whose delete this process's
      index has not seen yet) are dropped: stored, they would fail the foreign key, and the whole
      add with it;
    - the evolutions are decided. Decided from an earlier read, a change that another process
      committed in between would be overwritten, and history would show stale old values.
    ``close[i]`` belongs to ``notes[i]``."""

    notes: Sequence[Note]
    close: Sequence[Sequence[tuple[str, float]]]
    cfg: LinkingConfig

    def stored_ids(self) -> list[str]:
        """The link targets and close neighbours that are not notes of the batch, in id order (the
        order rows are locked in, where the database locks them)."""
        batch = {note.id for note in self.notes}
        named = {link.target_id for note in self.notes for link in note.links}
        named.update(nid for near in self.close for nid, _ in near)
        return sorted(named - batch)

    def decide(self, stored: Mapping[str, Neighbour]) -> Linked:
        """``stored``: the notes of ``stored_ids`` as read (a deleted one is absent)."""
        batch = {note.id for note in self.notes}
        links = [link for note in self.notes for link in note.links
                 if link.target_id in batch or link.target_id in stored]
        return Linked(links, self._evolutions(stored))

    def _evolutions(self, stored: Mapping[str, Neighbour]) -> list[Evolution]:
        """Every change, in order: a neighbour changed twice in a batch has two, the second built on
        the first."""
        current = {**stored, **{note.id: Neighbour.of(note) for note in self.notes}}
        changes: list[Evolution] = []
        for note, near in zip(self.notes, self.close, strict=True):
            for nid, sim in near:
                change = evolve(current[nid], note, sim, self.cfg) if nid in current else None
                if change is not None:
                    changes.append(change)
                    current[nid] = replace(current[nid], keywords=change.keywords, tags=change.tags)
        return changes
