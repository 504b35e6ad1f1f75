"""``enrich`` jobs with the real local engine (SmolLM2-135M, int4, constrained decoding).

Asked for free-text keywords the 135M model copied the prompt's example or repeated itself, and
every job failed validation. The schema now offers only the note's own words (memory.grounding:
keyword and topic enums, three distinct by construction; the context a run of the note's words),
so its answers pass validation and every job is applied.
"""

import jsonschema
import pytest

from api.config import EngramConfig
from memory.config import EnrichConfig, MemoryConfig
from memory.enrichment import enrichment_messages, enrichment_schema, note_grounding, parse_enrichment
from memory.jobs import DONE
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
    schema = enrichment_schema(["N1"], None, note_grounding(second.content), {"N1": note_grounding(first.content)})
    from inference.params import GenerationParams

    raw = engine.complete_json(enrichment_messages(second, [(first, 0.6)], {"N1": first.id}), schema,
                               GenerationParams(max_tokens=200))
    jsonschema.validate(raw, schema)
    plan = parse_enrichment(raw, second.content, {"N1": first.id}, {first.id: first})  # raises if invalid
    assert len(plan.keywords) == 3 and len(plan.tags) == 3 and plan.context.startswith("The ")
    assert all(item["note"] == "N1" for item in raw.get("neighbours", []))


def test_enrich_jobs_are_applied(llm_mem):
    notes = [llm_mem.add(text, user_id="u1", timestamp=f"202{3 + i}-02-10T10:00:00Z")[0] for i, text in enumerate(NOTES)]
    assert llm_mem.wait_for_jobs(timeout=600)
    jobs = {j.note_id: j for j in llm_mem.jobs() if j.kind == "enrich"}
    assert len(jobs) == 2
    stats = llm_mem.enrich_jobs.stats
    assert stats == {"notes": 2, "calls": 2, "repairs": 0, "invalid": 0}
    for note in notes:
        job, stored = jobs[note.id], llm_mem.store.get(note.id)
        entries = [h for h in llm_mem.history(note.id) if h.action == "enrich"]
        assert job.state == DONE and stored.keywords == job.result["keywords"]
        assert len(stored.keywords) == 3 and all(k.split()[0] in note.content.lower() for k in stored.keywords)
        assert len([t for t in stored.tags if ":" not in t]) == 3 and "\n" not in stored.context
        assert entries and entries[0].actor == "llm"
