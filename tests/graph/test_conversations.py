"""Hand-written conversations through TemporalGraph on a real SQLite file with the real embedder."""
from datetime import UTC, datetime

from graph.types import Fact
from memory.types import Scope

U = {"user_id": "u1"}


def objects(facts: list[Fact], predicate: str) -> list[str]:
    return [f.object_name for f in facts if f.predicate == predicate]


def test_moving_cities_twice(chat, graph):
    chat.say("I live in Berlin.", "2022-03-01T10:00:00Z")
    r2 = chat.say("We moved to Paris last June.", "2024-02-10T10:00:00Z")
    r3 = chat.say("Big news: I moved to Lisbon two weeks ago!", "2025-09-16T10:00:00Z")

    now = graph.facts("u1", **U)
    assert objects(now, "lives_in") == ["Lisbon"]
    assert str([f for f in now if f.predicate == "lives_in"][0]) == "u1 lives in Lisbon (since 2025-09-02, previously Paris)"
    assert objects(graph.facts("u1", as_of="2023-01-01", **U), "lives_in") == ["Berlin"]
    assert objects(graph.facts("u1", as_of="2024-01-01", **U), "lives_in") == ["Paris"]
    assert objects(graph.facts("u1", as_of="2021-01-01", **U), "lives_in") == []

    timeline = [(f.object_name, f.valid_at, f.invalid_at) for f in graph.history("u1", **U)]
    assert timeline == [
        ("Berlin", datetime(2022, 3, 1, 10, tzinfo=UTC), datetime(2023, 6, 1, tzinfo=UTC)),
        ("Paris", datetime(2023, 6, 1, tzinfo=UTC), datetime(2025, 9, 2, tzinfo=UTC)),
        ("Lisbon", datetime(2025, 9, 2, tzinfo=UTC), None),
    ]
    # The episode that superseded a fact names the note behind the old fact, for note links.
    assert r2.superseded_note_ids == ["n0"] and r3.superseded_note_ids == ["n1"]
    assert r3.superseded[0].new_note_ids == ("n2",)
    # Facts are never deleted: all three stay, two closed with a system retirement time.
    every = graph.facts("u1", include_expired=True, **U)
    assert len(objects(every, "lives_in")) == 3
    assert sum(f.expired_at is not None for f in every if f.predicate == "lives_in") == 2


def test_changing_jobs(chat, graph):
    chat.say("I work at Google as a backend engineer.", "2021-05-01T09:00:00Z")
    chat.say("I got a new job at Microsoft two weeks ago.", "2023-04-15T09:00:00Z")
    chat.say("I left Microsoft yesterday.", "2024-10-02T09:00:00Z")
    assert objects(graph.facts("u1", **U), "works_at") == []
    assert objects(graph.facts("u1", as_of="2022-01-01", **U), "works_at") == ["Google"]
    assert objects(graph.facts("u1", as_of="2024-01-01", **U), "works_at") == ["Microsoft"]
    chat.say("I just joined Airbus.", "2024-11-04T09:00:00Z")
    assert objects(graph.facts("u1", **U), "works_at") == ["Airbus"]
    history = [(f.object_name, f.invalid_at) for f in graph.history("u1", **U) if f.predicate == "works_at"]
    assert history == [("Google", datetime(2023, 4, 1, tzinfo=UTC)), ("Microsoft", datetime(2024, 10, 1, tzinfo=UTC)),
                       ("Airbus", None)]


def test_a_fact_stated_then_corrected(chat, graph):
    chat.say("I work at Amazon.", "2025-01-10T09:00:00Z")
    r = chat.say("Sorry, I meant I work at Apple.", "2025-01-10T09:05:00Z")
    assert objects(graph.facts("u1", **U), "works_at") == ["Apple"]
    # The wrong value never held: no time shows Amazon, and Apple holds from when Amazon was said.
    assert objects(graph.facts("u1", as_of="2025-01-10T09:02:00Z", **U), "works_at") == ["Apple"]
    amazon = [f for f in graph.history("u1", **U) if f.object_name == "Amazon"][0]
    assert amazon.invalid_at == amazon.valid_at and amazon.superseded_by == r.facts[0].id
    assert r.superseded_note_ids == ["n0"]
    assert "previously" not in str(graph.facts("u1", **U)[0])  # Amazon never held, so it came before nothing


def test_two_people_with_the_same_first_name(chat, graph):
    chat.say("My sister Emma lives in Oslo.", "2025-03-01T10:00:00Z")
    chat.say("My colleague Emma is vegan.", "2025-03-02T10:00:00Z")
    graph.ingest("My friend Emma works at Spotify.", "x1", Scope(user_id="u2"), "2025-03-03T10:00:00Z")

    emmas = [e for e in graph.entities(**U) if e.name == "Emma"]
    assert sorted(e.attributes["role"] for e in emmas) == ["colleague", "sister"]
    sister = next(e for e in emmas if e.attributes["role"] == "sister")
    assert objects(graph.facts(sister.id, **U), "lives_in") == ["Oslo"]
    assert objects(graph.facts(sister.id, **U), "diet") == []
    # The other user's Emma is another entity in another graph.
    assert [e.attributes["role"] for e in graph.entities(user_id="u2") if e.name == "Emma"] == ["friend"]
    assert objects(graph.facts("Emma", user_id="u2"), "works_at") == ["Spotify"]
    # A later "my sister Emma" goes to the sister, not to the more recent colleague.
    chat.say("My sister Emma moved to Bergen.", "2025-04-01T10:00:00Z")
    assert objects(graph.facts(sister.id, **U), "lives_in") == ["Bergen"]


def test_relative_dates_use_the_message_time(chat, graph):
    chat.say("I adopted a dog named Rex three weeks ago.", "2025-06-22T18:00:00Z")
    chat.say("We moved to Porto last March.", "2025-06-22T18:01:00Z")
    chat.say("I became vegetarian yesterday.", "2025-06-22T18:02:00Z")
    facts = {f.predicate: f for f in graph.facts("u1", **U)}
    assert facts["has_pet"].valid_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert facts["lives_in"].valid_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert facts["diet"].valid_at == datetime(2025, 6, 21, tzinfo=UTC)


def test_acronym_and_full_name_are_one_entity(chat, graph):
    chat.say("I studied at NYU.", "2025-01-01T10:00:00Z")
    chat.say("New York University invited me to a reunion.", "2025-02-01T10:00:00Z")
    orgs = [e for e in graph.entities(**U) if e.type == "organization"]
    assert [(e.name, e.aliases) for e in orgs] == [("NYU", ["New York University"])]
    assert objects(graph.facts("New York University", **U), "studied_at") == ["NYU"]


def test_search_facts_prefers_current_facts(chat, graph):
    chat.say("I live in Berlin.", "2022-03-01T10:00:00Z")
    chat.say("I moved to Madrid.", "2024-03-01T10:00:00Z")
    chat.say("I love flamenco.", "2024-03-02T10:00:00Z")
    hits = graph.search_facts(None, "which city does the user live in?", Scope(user_id="u1"), k=3)
    assert hits[0][0].object_name == "Madrid"
    assert "Berlin" not in [f.object_name for f, _ in hits]
    old = graph.search_facts(None, "which city does the user live in?", Scope(user_id="u1"), k=1, as_of="2023-01-01")
    assert old[0][0].object_name == "Berlin"


def test_neighbours_and_paths(chat, graph):
    chat.say("My sister Emma lives in Oslo. She works at Equinor.", "2025-03-01T10:00:00Z")
    near = {e.name: hops for e, hops in graph.neighbours("u1", 2, **U)}
    assert near == {"Emma": 1, "Oslo": 2, "Equinor": 2}
    path = graph.path("u1", "Equinor", **U)
    assert [f.predicate for f in path] == ["sister", "works_at"]


def test_graph_expansion_for_retrieval(chat, graph):
    chat.say("My sister Emma lives in Oslo and works at Equinor.", "2025-03-01T10:00:00Z")
    chat.say("I live in Bergen.", "2025-03-02T10:00:00Z")
    found = {e.name for e in graph.entities_in("where does emma work these days?", **U)}
    assert found == {"Emma"}
    assert {e.name for e in graph.entities_in("Where do I live?", **U)} == {"u1"}
    around = [(f.predicate, d) for f, d in graph.around("Emma", 1, **U)]
    assert sorted(around) == [("lives_in", 0), ("sister", 0), ("works_at", 0)]
    two = [(f.fact, d) for f, d in graph.around("Emma", 2, **U)]
    assert ("u1 lives in Bergen", 1) in two and two[0][1] == 0


def test_a_planned_move_keeps_the_current_city_until_the_day(chat, graph, clock):
    chat.say("I live in Berlin.", "2025-01-10T10:00:00Z")
    chat.say("I'm moving to Lisbon next month.", "2025-03-05T10:00:00Z")
    # Until April both are "current": Berlin ends ahead, Lisbon is the newest knowledge.
    now = {f.object_name: str(f) for f in graph.facts("u1", **U) if f.predicate == "lives_in"}
    assert now == {"Berlin": "u1 lives in Berlin (since 2025-01-10, until 2025-04)",
                   "Lisbon": "u1 lives in Lisbon (since 2025-04, previously Berlin)"}
    clock.set(datetime(2025, 5, 1, tzinfo=UTC))
    assert objects(graph.facts("u1", **U), "lives_in") == ["Lisbon"]
    assert objects(graph.facts("u1", as_of="2025-03-20", **U), "lives_in") == ["Berlin"]


def test_the_user_named_by_name_is_the_user(chat, graph):
    chat.say("Hi! My name is Ann.", "2025-01-10T10:00:00Z")
    chat.say("Ann lives in Rome, by the way.", "2025-01-11T10:00:00Z")
    user = graph.find_entity("Ann", **U)
    assert user.name == "u1" and user.aliases == ["Ann"]
    assert [e.name for e in graph.entities(**U) if e.type == "person"] == ["u1"]
    assert objects(graph.facts("Ann", **U), "lives_in") == ["Rome"]
    assert graph.view.snapshot() == graph.rebuild_view().snapshot()


def test_two_moves_in_one_message(chat, graph):
    chat.say("I live in Berlin.", "2020-01-10T10:00:00Z")
    chat.say("I moved to Paris in 2021. Then I moved to Rome last year.", "2025-01-10T10:00:00Z")
    timeline = [(f.object_name, f.valid_at.year, f.invalid_at and f.invalid_at.year) for f in graph.history("u1", **U)]
    assert timeline == [("Berlin", 2020, 2021), ("Paris", 2021, 2024), ("Rome", 2024, None)]


def test_since_restates_an_earlier_start(chat, graph):
    chat.say("I live in Berlin.", "2019-01-10T10:00:00Z")
    chat.say("I live in Paris now.", "2023-06-01T10:00:00Z")
    r = chat.say("I've lived in Paris since 2021.", "2024-01-10T10:00:00Z")
    assert objects(graph.facts("u1", as_of="2022-01-01", **U), "lives_in") == ["Paris"]
    timeline = [(f.object_name, f.valid_at.year, f.invalid_at and f.invalid_at.year) for f in graph.history("u1", **U)]
    assert timeline == [("Berlin", 2019, 2021), ("Paris", 2021, None)]
    assert r.facts == [] and r.superseded_note_ids == ["n0"]
    assert graph.view.snapshot() == graph.rebuild_view().snapshot()


def test_counts_are_updated_not_accumulated(chat, graph):
    chat.say("I lead a team of 4 engineers in my new role.", "2023-05-25T10:00:00Z")
    chat.say("I'm 34 years old.", "2023-05-26T10:00:00Z")
    chat.say("I now lead a team of five engineers, it's been great.", "2023-05-27T10:00:00Z")
    team = [str(f) for f in graph.facts("u1", **U) if f.predicate == "count_lead_engineers"]
    assert team == ["u1 lead a team of five engineers (since 2023-05-27, previously 4)"]
    hits = graph.search_facts(None, "How many engineers do I lead?", Scope(user_id="u1"), k=1)
    assert hits[0][0].object_name == "five"


def test_an_ordinal_and_a_longer_duration_update_the_earlier_statement(chat, graph):
    chat.say("I've completed 3 pottery classes so far, and I've been using my Kindle for 6 months.", "2023-04-02T10:00:00Z")
    chat.say("I just finished my 4th pottery class!", "2023-05-07T10:00:00Z")
    chat.say("Funny, I've been using my Kindle for 7 months now.", "2023-05-20T10:00:00Z")
    current = {f.predicate: f.object_name for f in graph.facts("u1", **U)}
    assert current["count_completed_pottery_classes"] == "4"
    assert current["duration_using_kindle"] == "7 months"
    before = {f.predicate: f.object_name for f in graph.facts("u1", as_of="2023-04-30", **U)}
    assert before["count_completed_pottery_classes"] == "3" and before["duration_using_kindle"] == "6 months"


def test_news_about_the_past_is_closed_on_arrival(chat, graph):
    chat.say("I live in Paris.", "2023-03-01T10:00:00Z")
    r = chat.say("We moved to Berlin in 2019, before all that.", "2023-04-01T10:00:00Z")
    assert objects(graph.facts("u1", **U), "lives_in") == ["Paris"]
    assert objects(graph.facts("u1", as_of="2020-06-01", **U), "lives_in") == ["Berlin"]
    berlin = r.facts[0]
    assert berlin.invalid_at == datetime(2023, 3, 1, 10, tzinfo=UTC)
    assert [(s.old_note_ids, s.new_note_ids) for s in r.superseded] == [(("n1",), ("n0",))]


def test_first_person_queries_are_asked_from_the_user_perspective():
    from graph.queries import user_perspective

    assert user_perspective("Where do I live now?") == "Where do User live now?"
    assert user_perspective("what's my job? I'm curious") == "what's User's job? User is curious"
    assert user_perspective("Is the US near us?") == "Is the US near User?"


def test_superseded_notes_become_contradicts_links(chat, graph, clock):
    from memory.linking import CONTRADICTS

    chat.say("I work at Google.", "2024-01-10T10:00:00Z")
    r = chat.say("I got a new job at Airbus.", "2025-01-10T10:00:00Z")
    links = r.note_links(clock())
    assert [(l.source_id, l.target_id, l.kind) for l in links] == [("n1", "n0", CONTRADICTS)]


def test_dates_render_as_precisely_as_they_were_said(chat, graph):
    chat.say("I moved to Paris in 2021.", "2023-01-10T10:00:00Z")
    chat.say("We moved to Lisbon last June.", "2024-02-10T10:00:00Z")
    chat.say("I moved to Rome two weeks ago.", "2025-09-15T10:00:00Z")  # the 1st of September: a day
    rendered = [str(f) for f in graph.history("u1", **U)]
    assert rendered == ["u1 lives in Paris (since 2021, until 2023-06)",
                        "u1 lives in Lisbon (since 2023-06, until 2025-09-01, previously Paris)",
                        "u1 lives in Rome (since 2025-09-01, previously Lisbon)"]
