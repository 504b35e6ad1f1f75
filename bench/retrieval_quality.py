"""Retrieval quality on LongMemEval_S (dev subset in ../shared/data): BM25 vs dense vs Engram.

For each question: ingest its haystack through ``Engram.add_many`` (one note per turn, timestamp
from the session date, scope = the question), ask the question at ``question_date`` and score the
top hits. Prints one JSON line per (method, question_type) plus an "all" row per method.

    python bench/retrieval_quality.py --limit 30           # stratified subset, 5 per type
    python bench/retrieval_quality.py                      # all 120 questions (long: see docs)
    python bench/retrieval_quality.py --limit 30 --grid    # also score ranking variants (tuning)
    python bench/retrieval_quality.py --details q.jsonl    # also each question's gold sessions and
                                                           # every method's top 10 (what a ranking misses)

    python bench/retrieval_quality.py --graph              # also "engram+graph" on knowledge-update and
                                                           # temporal-reasoning questions (rule extractor)

session_recall@k = |gold sessions ∩ sessions of the top-k turns| / |gold sessions|;
turn_recall@10 = |has_answer turns in the top 10| / |has_answer turns| (questions that have any);
latest_first@10 = share of questions with several gold sessions whose newest one shows up first.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matvecs: threads only spin

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.config import EngramConfig  # noqa: E402
from api.engram import Engram  # noqa: E402
from bench.embed_cache import CachedEmbedder  # noqa: E402
from graph.queries import user_perspective  # noqa: E402
from memory.types import Scope  # noqa: E402
from retrieval.embedder import MiniLMEmbedder, embed_queries  # noqa: E402
from retrieval.ranking import RankingConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "longmemeval_s_dev.json.gz"
CACHE = ROOT / "bench" / ".cache" / "embeddings.sqlite"
KS = (5, 10)


def load_questions(limit: int | None) -> list[dict[str, Any]]:
    """All questions, or a fixed stratified subset: round-robin over types in file order."""
    with gzip.open(DATA, "rt") as fh:
        questions = json.load(fh)
    if limit is None or limit >= len(questions):
        return questions
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        by_type[q["question_type"]].append(q)
    picked: list[dict[str, Any]] = []
    depth = 0
    while len(picked) < limit:
        for qtype in sorted(by_type):
            if depth < len(by_type[qtype]) and len(picked) < limit:
                picked.append(by_type[qtype][depth])
        depth += 1
    return picked


def parse_date(text: str) -> datetime:
    """LongMemEval dates look like '2023/05/20 (Sat) 02:21'."""
    day, _, clock = text.partition(" (")
    return datetime.strptime(f"{day} {clock.split(') ')[-1]}", "%Y/%m/%d %H:%M").replace(tzinfo=UTC)


def haystack_records(q: dict[str, Any]) -> list[dict[str, Any]]:
    records = []
    for sid, date, session in zip(q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"], strict=True):
        when = parse_date(date)
        for turn_idx, turn in enumerate(session):
            if not turn["content"].strip():
                continue
            records.append({"content": turn["content"], "role": turn["role"], "user_id": q["question_id"],
                            "session_id": sid, "timestamp": when.isoformat(),
                            "metadata": {"session": sid, "turn": turn_idx, "has_answer": bool(turn.get("has_answer"))}})
    return records


def scores(ranked_meta: list[dict[str, Any]], q: dict[str, Any], n_answer_turns: int) -> dict[str, float | None]:
    gold = set(q["answer_session_ids"])
    out: dict[str, float | None] = {}
    for k in KS:
        sessions = {m["session"] for m in ranked_meta[:k]}
        out[f"session_recall@{k}"] = len(gold & sessions) / len(gold) if gold else None
    found = sum(1 for m in ranked_meta[:10] if m["has_answer"])
    out["turn_recall@10"] = found / n_answer_turns if n_answer_turns else None
    out["latest_first@10"] = latest_first(ranked_meta[:10], q)
    # The "current fact above the superseded one when the question asks about now": the
    # knowledge-update questions, less those about an earlier state ("Before I bought X, ...").
    asks_now = q["question_type"] == "knowledge-update" and not _ABOUT_THE_PAST.search(q["question"])
    out["now_first@10"] = out["latest_first@10"] if asks_now else None
    return out


_ABOUT_THE_PAST = re.compile(r"\b(?:before|previously|used to|originally|at first|initially|back then)\b", re.I)


def latest_first(ranked_meta: list[dict[str, Any]], q: dict[str, Any]) -> float | None:
    """For a question with several gold sessions (an update and what it updated): 1 when the most
    recent gold session shows up before every older one in the hits, 0 when an older one comes
    first or only older ones show up; None when there is nothing to order."""
    dates = dict(zip(q["haystack_session_ids"], q["haystack_dates"], strict=True))
    gold = [s for s in q["answer_session_ids"] if s in dates]
    if len(gold) < 2:
        return None
    newest = max(gold, key=lambda s: parse_date(dates[s]))
    for m in ranked_meta:
        if m["session"] in gold:
            return 1.0 if m["session"] == newest else 0.0
    return None


def rank_bm25(mem: Engram, q: dict[str, Any]) -> list[str]:
    mask = mem.index.mask(Scope(q["question_id"]))
    rows, _ = mem.index.bm25.search(q["question"], 10, mask)
    return [mem.index.catalog.note_ids[r] for r in rows]


def rank_dense(mem: Engram, q: dict[str, Any], qvec: Any) -> list[str]:
    mask = mem.index.mask(Scope(q["question_id"]))
    return [nid for nid, _ in mem.index.dense(qvec, 10, mask)]


def rank_engram(mem: Engram, q: dict[str, Any], qvec: Any, ranking: RankingConfig) -> list[str]:
    # The ranking step of Engram.search without its recall side effect, so that several ranking
    # variants can be scored on one ingested haystack without reinforcing each other's hits.
    mem.config = replace(mem.config, ranking=ranking)
    hits = mem._rank(q["question"], qvec, Scope(q["question_id"]), None, 10, parse_date(q["question_date"]), False)  # noqa: SLF001
    return [h.id for h in hits]


GRAPH_TYPES = ("knowledge-update", "temporal-reasoning")


def rank_with_graph(mem: Engram, q: dict[str, Any], qvec: Any, settings: dict[str, dict[str, Any]]) -> tuple[dict[str, list[str]], float]:
    """Engram's ranking with the knowledge graph built from the haystack's user turns, once per
    ranking setting (the graph's note list weight, current-first on or off); returns the ids per
    method and the graph-building time per message (ms)."""
    start = time.perf_counter()
    ran = mem.run_jobs()
    per_message = 1000 * (time.perf_counter() - start) / max(ran, 1)
    when = parse_date(q["question_date"])
    scope = Scope(q["question_id"])
    fvec = embed_queries(mem.embedder, [user_perspective(q["question"])])[0]
    base = mem.config
    out = {}
    for name, setting in settings.items():
        ranking = {k: v for k, v in setting.items() if k != "graph_search"}
        mem.config = replace(base, ranking=replace(base.ranking, **ranking),
                             graph_search=replace(base.graph_search, **setting.get("graph_search", {})))
        graph = mem._graph_ranking(q["question"], fvec, scope, None, 10)  # noqa: SLF001
        hits = mem._rank(q["question"], qvec, scope, None, 10, when, False, graph.note_ids if graph else [])  # noqa: SLF001
        out[name] = [h.id for h in hits]
    mem.config = base
    return out, per_message


def graph_variants(grid: bool) -> dict[str, dict[str, Any]]:
    """The graph column with the default ranking, and when tuning: other weights of the graph's
    note list, and the supersession order (current_first) off or alone."""
    out: dict[str, dict[str, Any]] = {"engram+graph": {}}
    if grid:
        out.update({f"engram+graph_w{w}": {"w_graph": w} for w in (0.25, 0.5)})
        out["engram+graph_no_current_first"] = {"current_first": False}
        out["engram+current_first_only"] = {"w_graph": 0.0}
        out.update({f"engram+graph_notes{m}": {"graph_search": {"min_note_score": m}} for m in (0.4, 0.5, 0.6)})
    return out


def variants(grid: bool) -> dict[str, RankingConfig]:
    base = RankingConfig()
    out = {"engram": base}
    if not grid:
        return out
    out["relevance_only"] = replace(base, w_retention=0.0, w_recency=0.0)
    out["no_speaker"] = replace(base, w_speaker=0.0)
    out["pool50"] = replace(base, min_pool=50)
    out["pool50_no_speaker"] = replace(base, min_pool=50, w_speaker=0.0)
    for ws in (0.15, 0.5, 1.0):
        out[f"speaker{ws}"] = replace(base, w_speaker=ws)
    out["pool200"] = replace(base, min_pool=200)
    out["no_mmr"] = replace(base, mmr_lambda=1.0)
    for lam in (0.7, 0.9):
        out[f"mmr{lam}"] = replace(base, mmr_lambda=lam)
    for wb in (0.75, 1.5):
        out[f"rrf_bm25w{wb}"] = replace(base, w_bm25=wb)
    for k in (10, 30):
        out[f"rrf_k{k}"] = replace(base, rrf_k=float(k))
    out["linear_bm25w0.3"] = replace(base, fusion="linear", w_bm25=0.3)
    out["recency0.2"] = replace(base, w_recency=0.2, w_retention=0.0)
    for ws in (0.15, 0.3, 0.5):
        out[f"session{ws}"] = replace(base, w_session=ws)
    for same in (0.3, 0.5, 0.8):
        out[f"spread{same}"] = replace(base, mmr_same_session=same)
        out[f"spread{same}_mmr0.7"] = replace(base, mmr_same_session=same, mmr_lambda=0.7)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="stratified subset of N questions")
    ap.add_argument("--query-int8", choices=("auto", "off"), default="auto",
                    help="queries through the int8 encoder where MiniLM runs in float32 (auto, as shipped) or not")
    ap.add_argument("--grid", action="store_true", help="also score ranking variants")
    ap.add_argument("--types", nargs="+", default=None, help="only these question types")
    ap.add_argument("--graph", action="store_true", help="also score engram+graph on knowledge-update/temporal questions")
    ap.add_argument("--graph-all-types", action="store_true", help="with --graph: score the graph column on every question type")
    ap.add_argument("--details", type=Path, default=None,
                    help="also write one JSON line per question: gold sessions and each method's top-10 sessions")
    args = ap.parse_args()
    questions = load_questions(args.limit)
    if args.types:
        questions = [q for q in questions if q["question_type"] in args.types]
    embedder = CachedEmbedder(MiniLMEmbedder(query_int8="auto" if args.query_int8 == "auto" else False), CACHE)
    methods = ["bm25", "dense", *variants(args.grid), *(graph_variants(args.grid) if args.graph else [])]
    graph_ms: list[float] = []
    per: dict[str, dict[str, list[dict[str, float | None]]]] = {m: defaultdict(list) for m in methods}
    start = time.perf_counter()
    config = EngramConfig(durable=False, persist_index=False)
    details = args.details.open("w") if args.details else None
    for i, q in enumerate(questions, start=1):
        with tempfile.TemporaryDirectory() as tmp:
            # workers=0: graph jobs stay queued unless this question's graph column runs them.
            mem = Engram(Path(tmp) / "q.db", embedder=embedder, config=config, workers=0)
            records = haystack_records(q)
            mem.add_many(records, batch_size=512)
            n_answer = sum(1 for r in records if r["metadata"]["has_answer"])
            qvec = embed_queries(embedder, [q["question"]])[0]
            ranked = {"bm25": rank_bm25(mem, q), "dense": rank_dense(mem, q, qvec)}
            for name, cfg in variants(args.grid).items():
                ranked[name] = rank_engram(mem, q, qvec, cfg)
            if args.graph and (args.graph_all_types or q["question_type"] in GRAPH_TYPES):
                mem.config = config
                by_weight, ms = rank_with_graph(mem, q, qvec, graph_variants(args.grid))
                ranked.update(by_weight)
                graph_ms.append(ms)
            notes = mem.store.get_many(list({nid for ids in ranked.values() for nid in ids}))
            for method, ids in ranked.items():
                per[method][q["question_type"]].append(scores([notes[n].metadata for n in ids], q, n_answer))
            if details is not None:
                details.write(json.dumps(_details(q, ranked, notes)) + "\n")
            mem.close()
        print(f"[{i}/{len(questions)}] {q['question_type']:<26} {len(records)} turns, "
              f"{time.perf_counter() - start:.0f}s, cache hits {embedder.hits} misses {embedder.misses}",
              file=sys.stderr)
    if details is not None:
        details.close()
    subset = f"stratified-{len(questions)}" if args.limit else "all-120"
    if args.types:
        subset += f" ({', '.join(args.types)}: {len(questions)})"
    print(json.dumps({"embedder_dtype": embedder.inner.dtype, "query_encoder": embedder.inner.query_forward}))
    if graph_ms:
        print(json.dumps({"graph_build_ms_per_message": round(sum(graph_ms) / len(graph_ms), 2),
                          "questions": len(graph_ms), "extractor": "rules"}))
    for method in methods:
        for qtype, rows in sorted(per[method].items()):
            print(json.dumps(_row(method, qtype, rows, subset)))
        everything = [r for rows in per[method].values() for r in rows]
        print(json.dumps(_row(method, "all", everything, subset)))


def _details(q: dict[str, Any], ranked: dict[str, list[str]], notes: dict[str, Any]) -> dict[str, Any]:
    """One question's outcome per method, for looking at what a ranking misses."""
    out: dict[str, Any] = {"question_id": q["question_id"], "question_type": q["question_type"],
                           "question": q["question"], "gold": q["answer_session_ids"], "methods": {}}
    for method, ids in ranked.items():
        out["methods"][method] = [[notes[n].metadata["session"], notes[n].metadata["turn"], notes[n].metadata["has_answer"]]
                                  for n in ids]
    return out


def _row(method: str, qtype: str, rows: list[dict[str, float | None]], subset: str) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "question_type": qtype, "questions": len(rows), "subset": subset}
    for key in ("session_recall@5", "session_recall@10", "turn_recall@10", "latest_first@10", "now_first@10"):
        vals = [r[key] for r in rows if r[key] is not None]
        out[key] = round(sum(vals) / len(vals), 4) if vals else None
    return out


if __name__ == "__main__":
    main()
