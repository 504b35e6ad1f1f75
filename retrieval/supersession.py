"""Current first: a note that supersedes another never ranks below it.

When the knowledge graph closes a fact because a newer note contradicts it (or the LLM evolution
says a new note makes a neighbour untrue), the memory gets a ``contradicts`` link from the newer
note to the older one. Relevance alone often ranks the older note first: it was recalled more,
or states the fact in more words. So the newer note goes right in front of the first note it
supersedes (also in an ``as_of`` search, whose candidates are only notes told by then); it must
already be among the candidates the retrievers found for the query, so an unrelated note never
enters the list through a link.

Usage: ``current_first([3, 0, 1], {0: [1]}, top_k=2)`` → ``[3, 1]`` (1 supersedes 0).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence


def current_first(order: Sequence[int], newer_of: Mapping[int, Sequence[int]], top_k: int) -> list[int]:
    """``order`` (best first) with every item preceded by the items that supersede it (and theirs,
    newest first), keeping the first ``top_k``. ``newer_of[i]`` lists the items that supersede
    ``i``, placed in that order; a cycle of links cannot loop."""
    out: list[int] = []
    placed: set[int] = set()

    def place(item: int, path: frozenset[int]) -> None:
        if item in placed or item in path:
            return
        for newer in newer_of.get(item, ()):
            place(newer, path | {item})
        placed.add(item)
        out.append(item)

    for item in order:
        place(item, frozenset())
        if len(out) >= top_k:
            break
    return out[:top_k]
