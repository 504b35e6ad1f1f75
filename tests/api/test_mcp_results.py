"""Shapes of MCP tool results (the REST shapes plus retention, links, score), on real notes, hits
and facts of a real Engram; times stay datetimes until the server writes the JSON."""
import json

from api.mcp_results import fact_json, hit_json, note_json


def test_shapes_are_json_and_carry_the_forgetting_curve(mem, clock):
    note = mem.add("I moved to Lisbon in May.", user_id="ann", timestamp="2025-12-01T09:00:00Z")[0]
    shaped = note_json(note, now=clock())
    assert json.dumps(shaped, default=str)
    assert shaped["event_time"].isoformat() == "2025-12-01T09:00:00+00:00" and 0.0 < shaped["retention"] < 1.0
    assert note_json(mem.get(note.id), now=clock())["retention"] == 1.0  # a get is a recall: the clock restarts

    hit = mem.search("where did ann move", user_id="ann", include_facts=False)[0]
    shaped_hit = hit_json(hit)
    assert {"id", "content", "score", "retention", "event_time", "created_at", "links", "user_id"} <= set(shaped_hit)
    assert shaped_hit["kind"] == "note" and shaped_hit["links"] == [] and json.dumps(shaped_hit, default=str)


def test_fact_shapes(mem):
    mem.add("I live in Berlin.", user_id="u1", timestamp="2022-03-01T10:00:00Z")
    assert mem.wait_for_jobs(timeout=120)
    fact, score = mem.graph.search_facts(query_text="where does the user live", scope=None, k=1)[0]
    shaped = fact_json(fact, score)
    assert shaped["object"] == "Berlin" and shaped["current"] is True and shaped["score"] == score
    assert shaped["rendered"] == str(fact) and shaped["valid_at"].isoformat().startswith("2022-03-01")
