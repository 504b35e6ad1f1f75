"""The in-memory networkx view of the graph: derived state, rebuilt from SQL or kept up incrementally.

Nodes are live (unmerged) entities; edges are facts keyed by fact id, closed ones included (their
attributes say so), so ``as_of`` walks need no SQL. ``snapshot()`` gives a comparable form: a
test proves that a rebuild from SQL equals the incrementally maintained view.

Usage: ``view = GraphView.rebuild(store.entities(None), store.facts(None))``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import networkx as nx

from graph.types import Entity, Fact


LEAF_TYPES = frozenset({"value"})


class GraphView:
    """A MultiDiGraph of entities and facts. Not thread-safe on its own; the facade locks."""

    def __init__(self) -> None:
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        self._ends: dict[str, tuple[str, str]] = {}  # fact id → (subject, object), for O(1) removal

    @classmethod
    def rebuild(cls, entities: Iterable[Entity], facts: Iterable[Fact]) -> GraphView:
        """A fresh view from stored rows (merged entities are skipped)."""
        view = cls()
        for e in entities:
            view.upsert_entity(e)
        for f in facts:
            view.upsert_fact(f)
        return view

    def upsert_entity(self, e: Entity) -> None:
        if e.merged_into is not None:
            self.remove_entity(e.id)
            return
        self.g.add_node(e.id, name=e.name, type=e.type, aliases=tuple(e.aliases))

    def remove_entity(self, entity_id: str) -> None:
        if entity_id in self.g:
            self.g.remove_node(entity_id)

    def upsert_fact(self, f: Fact) -> None:
        """Add or replace the edge of a fact (endpoints may have moved by a merge)."""
        self.remove_fact(f.id)
        if f.subject_id not in self.g or f.object_id not in self.g:
            return  # an endpoint is merged away; the merge re-points the fact and upserts it again
        self.g.add_edge(f.subject_id, f.object_id, key=f.id, predicate=f.predicate, valid_at=f.valid_at,
                        invalid_at=f.invalid_at, expired_at=f.expired_at)
        self._ends[f.id] = (f.subject_id, f.object_id)

    def remove_fact(self, fact_id: str) -> None:
        ends = self._ends.pop(fact_id, None)
        if ends is not None and self.g.has_edge(*ends, key=fact_id):
            self.g.remove_edge(*ends, key=fact_id)

    def neighbours(self, entity_id: str, depth: int = 1, as_of: datetime | None = None,
                   now: datetime | None = None) -> dict[str, int]:
        """Entity ids within ``depth`` hops (either direction) over facts valid at ``as_of``, or else
        not closed by ``now`` (still open when ``now`` is None)."""
        hops, _ = self._bfs(entity_id, depth, as_of, now)
        return {n: d for n, d in hops.items() if n != entity_id}

    def path(self, a: str, b: str, as_of: datetime | None = None, now: datetime | None = None) -> list[str]:
        """Fact ids along a shortest path from ``a`` to ``b`` (empty when not connected)."""
        hops, parent = self._bfs(a, None, as_of, now, stop=b)
        if b not in hops or a == b:
            return []
        out, node = [], b
        while node != a:
            node, fact_id = parent[node]
            out.append(fact_id)
        return out[::-1]

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Nodes and edges as plain dicts, for equality checks."""
        nodes = {n: dict(d) for n, d in self.g.nodes(data=True)}
        edges = {k: (u, v, dict(d)) for u, v, k, d in self.g.edges(keys=True, data=True)}
        return nodes, edges

    def _bfs(self, start: str, depth: int | None, as_of: datetime | None, now: datetime | None,
             stop: str | None = None) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
        """Breadth-first over both edge directions, only through facts that hold; touches only the
        neighbourhood (no copy of the graph per query)."""
        if start not in self.g:
            return {}, {}
        hops, parent, frontier = {start: 0}, {}, [start]
        while frontier and (depth is None or hops[frontier[0]] < depth) and stop not in hops:
            nxt = []
            for node in frontier:
                if node != start and self.g.nodes[node].get("type") in LEAF_TYPES:
                    continue  # "34", "4": many facts share a number, which relates nothing
                for other, key, data in self._incident(node):
                    if other not in hops and _holds(data, as_of, now):
                        hops[other], parent[other] = hops[node] + 1, (node, key)
                        nxt.append(other)
            frontier = nxt
        return hops, parent

    def _incident(self, node: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for other, edges in self.g.succ[node].items():
            for key, data in edges.items():
                yield other, key, data
        for other, edges in self.g.pred[node].items():
            for key, data in edges.items():
                yield other, key, data


def _holds(d: dict[str, Any], as_of: datetime | None, now: datetime | None) -> bool:
    if as_of is None:
        return d["invalid_at"] is None or (now is not None and d["invalid_at"] > now)
    starts = d["valid_at"] is None or d["valid_at"] <= as_of
    return starts and (d["invalid_at"] is None or as_of < d["invalid_at"])
