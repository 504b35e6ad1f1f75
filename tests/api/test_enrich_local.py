"""``enrich`` jobs with the real local engine (SmolLM2-135M, int4, constrained decoding).

The 135M model rarely writes keywords and tags that pass validation (it copies the prompt's example
or repeats itself), so each job must end in one of two checked states: applied (valid fields
stored) or failed with the error recorded and the deterministic fields untouched.
"""

import jsonschema
import pytest

from api.config import EngramConfig
from memory.config import EnrichConfig, MemoryConfig
from memory.enrichment import enrichment_messages, enrichment_schema
from memory.jobs import DONE, FAILED
from tests.inference import smollm

NOTES = ["I moved to Paris in 2021 and I love the bakeries there.",
         "We moved to Lisbon last June, the flat is near the river."]


@pytest.fixture(scope="module")
def engine():
    smollm.require_model()
    return smollm.engine()


@pytest.fixture()
def llm_mem(tmp_path, embedder, clock, engine):
    from api.engram import Engram

    cfg = EngramConfig(graph_llm=False, memory=MemoryConfig(enrich=EnrichConfig(max_tokens=160, neighbours=1)))
    m = Engram(tmp_path / "engram.db", embedder=embedder, clock=clock, llm=engine, workers=0, config=cfg)
    yield m
    m.close()


def test_constrained_answer_validates_against_the_enrichment_schema(engine, llm_mem):
    first, = llm_mem.add(NOTES[0], user_id="u1", timestamp="2023-01-10T10:00:00Z")
    second, = llm_mem.add(NOTES[1], user_id="u1", timestamp="2024-02-10T10:00:00Z")
    schema = enrichment_schema(["N1"])
    from inference.params import GenerationParams

    raw = engine.complete_json(enrichment_messages(second, [(first, 0.6)], {"N1": first.id}), schema,
                               GenerationParams(max_tokens=200))
    jsonschema.validate(raw, schema)
    assert len(raw["keywords"]) >= 3 and len(raw["tags"]) >= 3 and raw["context"].strip()
    assert all(item["note"] == "N1" for item in raw.get("neighbours", []))


def test_enrich_jobs_end_applied_or_failed_visibly(llm_mem):
    notes = [llm_mem.add(text, user_id="u1", timestamp=f"202{3 + i}-02-10T10:00:00Z")[0] for i, text in enumerate(NOTES)]
    before = {n.id: llm_mem.store.get(n.id) for n in notes}  # the deterministic fields, as stored
    assert llm_mem.wait_for_jobs(timeout=600)
    jobs = {j.note_id: j for j in llm_mem.jobs() if j.kind == "enrich"}
    assert len(jobs) == 2
    stats = llm_mem.enrich_jobs.stats
    assert stats["notes"] == 2 and 2 <= stats["calls"] <= 4 and stats["calls"] == 2 + stats["repairs"]
    for note in notes:
        job, stored = jobs[note.id], llm_mem.store.get(note.id)
        entries = [h for h in llm_mem.history(note.id) if h.action == "enrich"]
        if job.state == DONE:
            assert stored.keywords == job.result["keywords"] and len(stored.keywords) >= 3
            assert len([t for t in stored.tags if ":" not in t]) >= 3 and "\n" not in stored.context
            assert entries and entries[0].actor == "llm"
        else:
            assert job.state == FAILED and job.attempts == 1 and "invalid enrichment" in job.last_error
            # its own fields stay deterministic (a later note's evolution may still touch context/tags)
            assert stored.keywords == before[note.id].keywords and not entries
