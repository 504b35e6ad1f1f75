"""The ``enrich`` job through Engram on a real SQLite file and the real embedder, with a small
scripted engine (the real local model is exercised in test_enrich_local.py)."""
import jsonschema

from api.config import EngramConfig
from api.engram import Engram
from inference.errors import StructuredOutputError
from memory.jobs import DONE, FAILED, QUEUED
from tests.helpers import T0


class ScriptedEngine:
    """Answers from a script; each answer must validate against the schema it is asked with, as a
    constrained decoder guarantees. Records every call."""

    model_id = "scripted"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def complete_json(self, messages, schema, params=None):
        self.calls.append((messages, schema, params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        answer = answer(schema) if callable(answer) else answer
        jsonschema.validate(answer, schema)
        return answer


def _mem(tmp_path, embedder, clock, engine):
    return Engram(tmp_path / "engram.db", embedder=embedder, clock=clock, llm=engine, workers=0,
                  config=EngramConfig(graph_llm=False))


# Answers inside the grounded schema (memory.grounding): keywords one from each candidate group of
# the note, tags an area, a kind and a topic word of the note, the context naming a word of it.
FIRST = {"keywords": ["paris", "bakeries", "moved"], "tags": ["home", "change", "bakeries"],
         "context": "The user moved to Paris in 2021 for the bakeries."}


def _second(schema):
    (label,) = schema["properties"]["neighbours"]["prefixItems"][0]["properties"]["note"]["enum"]
    return {"keywords": ["lisbon", "flat", "moved"], "tags": ["home", "change", "river"],
            "context": "The user flat is by the river.",
            "neighbours": [{"note": label, "link": True, "kind": "contradicts",
                            "new_context": "The user moved to Paris in 2021.", "new_tags": ["home", "event"]}]}


def test_enrichment_is_applied_and_neighbours_evolve_by_id(tmp_path, embedder, clock):
    engine = ScriptedEngine([FIRST, _second])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        paris, = mem.add([{"role": "user", "content": "I moved to Paris in 2021 for the bakeries."}], user_id="u1",
                         timestamp="2023-01-10T10:00:00Z")
        assert {j.kind for j in mem.jobs(state=QUEUED)} == {"graph", "enrich"}
        deterministic = mem.store.get(paris.id)
        mem.run_jobs()
        lisbon, = mem.add([{"role": "user", "content": "We moved to Lisbon, our flat is by the river."}], user_id="u1",
                          timestamp="2024-02-10T10:00:00Z")
        assert mem.wait_for_jobs(timeout=30)
        assert all(j.state == DONE for j in mem.jobs())
        new = mem.store.get(lisbon.id)
        assert new.keywords == ["lisbon", "flat", "moved"]
        assert new.context == "The user flat is by the river."
        assert new.tags == ["role:user", "home", "change", "river"]
        old = mem.store.get(paris.id)
        assert old.content == deterministic.content  # content is never rewritten
        assert old.context == "The user moved to Paris in 2021." and old.tags == ["role:user", "home", "change", "bakeries", "event"]
        evolve = [h for h in mem.history(paris.id) if h.action == "evolve" and h.actor == "llm"]
        assert evolve[-1].new["cause"] == lisbon.id
        assert evolve[-1].old["context"] == "The user moved to Paris in 2021 for the bakeries."
        assert any(lk.kind == "contradicts" and lk.source_id == lisbon.id for lk in mem.links(paris.id))
        neighbour_text = engine.calls[1][0][-1]["content"]
        assert "NEIGHBOUR N1" in neighbour_text and paris.id not in neighbour_text  # labels, not ids


def test_one_repair_then_applied(tmp_path, embedder, clock):
    engine = ScriptedEngine([StructuredOutputError("ran out of tokens"), FIRST])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        note, = mem.add("I moved to Paris in 2021 for the bakeries.", user_id="u1", timestamp=T0)
        mem.wait_for_jobs(timeout=30)
        assert mem.store.get(note.id).keywords == FIRST["keywords"]
        assert mem.enrich_jobs.stats["repairs"] == 1 and len(engine.calls) == 2
        assert "not usable" in engine.calls[1][0][-1]["content"]


def test_invalid_twice_fails_the_job_and_keeps_the_deterministic_fields(tmp_path, embedder, clock):
    engine = ScriptedEngine([StructuredOutputError("ran out of tokens"), {**FIRST, "tags": ["type", "array", "items"]}])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        note, = mem.add("I moved to Paris in 2021 for the bakeries.", user_id="u1", timestamp=T0)
        before = mem.store.get(note.id)
        assert mem.wait_for_jobs(timeout=30)  # failed is a finished state
        (job,) = mem.jobs(state=FAILED)
        assert job.kind == "enrich" and job.attempts == 1 and "invalid enrichment" in job.last_error
        after = mem.store.get(note.id)
        assert (after.keywords, after.tags, after.context) == (before.keywords, before.tags, before.context)
        assert not [h for h in mem.history(note.id) if h.action == "enrich"]


def test_an_engine_outage_is_retried_with_backoff(tmp_path, embedder, clock):
    engine = ScriptedEngine([ConnectionError("engine unreachable"), FIRST])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        note, = mem.add("I moved to Paris in 2021 for the bakeries.", user_id="u1", timestamp=T0)
        mem.run_jobs()
        (job,) = [j for j in mem.jobs() if j.kind == "enrich"]
        assert job.state == QUEUED and "ConnectionError" in job.last_error
        clock.advance(seconds=mem.config.memory.jobs.backoff_s)
        mem.run_jobs()
        assert mem.job_store.get(job.id).state == DONE and mem.store.get(note.id).keywords == FIRST["keywords"]


def test_the_engine_is_asked_under_the_note_s_own_words(tmp_path, embedder, clock):
    engine = ScriptedEngine([FIRST])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        mem.add("I moved to Paris in 2021 for the bakeries.", user_id="u1", timestamp=T0)
        mem.wait_for_jobs(timeout=30)
    (messages, schema, _), = engine.calls
    assert [m["role"] for m in messages] == ["system", "user"]  # no worked example to copy
    groups = [item["enum"] for item in schema["properties"]["keywords"]["prefixItems"]]
    assert groups == [["paris"], ["bakeries"], ["moved"]]
    assert schema["properties"]["tags"]["prefixItems"][2]["enum"] == ["moved", "paris", "bakeries"]


def test_a_note_with_too_few_words_of_its_own_is_skipped(tmp_path, embedder, clock):
    engine = ScriptedEngine([])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        note, = mem.add("ok, thanks!", user_id="u1", timestamp=T0)
        assert mem.wait_for_jobs(timeout=30)
        (job,) = [j for j in mem.jobs() if j.kind == "enrich"]
        assert job.state == DONE and "skipped" in job.result and not engine.calls


def test_without_an_engine_no_enrich_job_is_queued(mem):
    mem.add("I moved to Paris in 2021 for the bakeries.", user_id="u1", timestamp=T0)
    assert [j.kind for j in mem.jobs()] == ["graph"]


def test_a_deleted_note_is_skipped(tmp_path, embedder, clock):
    engine = ScriptedEngine([FIRST])
    with _mem(tmp_path, embedder, clock, engine) as mem:
        note, = mem.add("I moved to Paris in 2021 for the bakeries.", user_id="u1", timestamp=T0)
        mem.delete(note.id)
        mem.wait_for_jobs(timeout=30)
        assert engine.calls == [] and all(j.state == DONE for j in mem.jobs())
