"""The LLM extractor against small deterministic fake engines: validation, repair, failure counting."""
from datetime import UTC, datetime

from graph.extract_llm import SCHEMA, LLMExtractor
from graph.temporal_graph import TemporalGraph
from graph.types import USER
from memory.types import Scope

REF = datetime(2026, 1, 14, 15, 30, tzinfo=UTC)
TEXT = "We moved to Paris last June. My sister Emma says hi. I left Google in 2021."
GOOD = {
    "entities": [{"name": "Paris", "type": "place"}, {"name": "Emma", "type": "person", "role": "sister"}],
    "facts": [
        {"subject": "USER", "predicate": "lives in", "object": "Paris", "sentence": "USER lives in Paris",
         "valid_at": "last June"},
        {"subject": "user", "predicate": "sister", "object": "Emma", "sentence": "Emma is the sister of USER",
         "valid_at": None},
        {"subject": "USER", "predicate": "works_at", "object": "Google", "sentence": "USER works at Google",
         "valid_at": "2021", "negated": True},
    ],
}


class ScriptedEngine:
    """Returns (or raises) the scripted answers in order and records every prompt."""

    def __init__(self, *answers):
        self.answers, self.prompts = list(answers), []

    def complete_json(self, messages, schema):
        assert schema is SCHEMA
        self.prompts.append(list(messages))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_valid_output_is_converted_in_one_call():
    engine = ScriptedEngine(GOOD)
    extractor = LLMExtractor(engine)
    ext = extractor.extract(TEXT, REF)
    assert ext.error is None
    facts = {(f.subject, f.predicate, f.object): f for f in ext.facts}
    paris = facts[(USER, "lives_in", "Paris")]
    assert paris.valid_at == datetime(2025, 6, 1, tzinfo=UTC) and paris.sentence == f"{USER} lives in Paris"
    assert facts[(USER, "works_at", "Google")].negated
    assert facts[(USER, "works_at", "Google")].valid_at == datetime(2021, 1, 1, tzinfo=UTC)
    names = {e.name: e for e in ext.entities}
    assert names["Emma"].role == "sister" and "Google" in names and USER in names
    assert extractor.stats == {"episodes": 1, "calls": 1, "repairs": 0, "failures": 0, "ungrounded": 0}
    assert "2026-01-14" in engine.prompts[0][-1]["content"] and TEXT in engine.prompts[0][-1]["content"]


def test_one_repair_retry_shows_the_model_its_error():
    bad = {"entities": [{"name": "Paris", "type": "city"}], "facts": []}  # "city" is not an allowed type
    engine = ScriptedEngine(bad, GOOD)
    extractor = LLMExtractor(engine)
    ext = extractor.extract(TEXT, REF)
    assert ext.error is None and len(ext.facts) == 3
    assert extractor.stats["calls"] == 2 and extractor.stats["repairs"] == 1
    repair = engine.prompts[1]
    assert repair[-2]["role"] == "assistant" and "city" in repair[-2]["content"]
    assert "invalid" in repair[-1]["content"]


def test_two_failures_are_counted_and_surfaced(caplog):
    engine = ScriptedEngine(ValueError("not JSON"), ["still", "wrong"])
    extractor = LLMExtractor(engine)
    ext = extractor.extract("We moved to Paris.", REF)
    assert ext.facts == [] and "ExtractionError" in ext.error
    assert extractor.stats["failures"] == 1
    assert "LLM extraction failed" in caplog.text


def test_graph_stores_the_episode_when_the_llm_fails(sql_engine, clock):
    graph = TemporalGraph(sql_engine, None, LLMExtractor(ScriptedEngine(ValueError("x"), ValueError("y"))), clock)
    result = graph.ingest("We moved to Paris.", "n1", Scope(user_id="u1"), REF)
    assert result.episode.error and graph.counters["extraction_failures"] == 1
    assert len(graph.store.episodes()) == 1


def test_llm_extraction_builds_the_same_kind_of_graph(sql_engine, clock):
    engine = ScriptedEngine(GOOD)
    graph = TemporalGraph(sql_engine, None, LLMExtractor(engine), clock)
    graph.ingest(TEXT, "n1", Scope(user_id="u1"), REF)
    facts = {f.predicate: str(f) for f in graph.facts("u1", user_id="u1")}
    assert facts["lives_in"] == "u1 lives in Paris (since 2025-06)"
    assert "works_at" not in facts  # an ending with nothing to end adds nothing


def test_names_the_message_does_not_contain_are_dropped_and_counted():
    # A small model copies its few-shot example or invents: those facts never reach the graph.
    extractor = LLMExtractor(ScriptedEngine(GOOD))
    ext = extractor.extract("We moved to Paris last June.", REF)
    assert [(f.predicate, f.object) for f in ext.facts] == [("lives_in", "Paris")]
    assert {e.name for e in ext.entities} == {"Paris", USER}
    assert extractor.stats["ungrounded"] == 4  # Emma, Google and the two facts on them


def test_date_precision_follows_what_the_model_wrote():
    from graph.extract_llm import _precision

    assert [_precision(v, REF) for v in ("2021", "2021-05", "2021-05-03", "last June", "yesterday", None, "soon")] == \
        ["year", "month", "day", "month", "day", None, None]
