"""Search favours the turns of the speaker a query asks about (real MiniLM, SQLite and PostgreSQL:
the role is read from the notes' JSON metadata in SQL)."""
from dataclasses import replace
from datetime import timedelta

import pytest

from memory.types import Scope
from retrieval.ranking import RankingConfig
from tests.helpers import T0

TURNS = [
    {"role": "user", "content": "I finally bought a road bike, a used Trek, and I ride it to work now."},
    {"role": "assistant", "content": "A road bike is a great way to get to work! For commuting on a road bike, "
                                     "fenders, bright lights and a rear rack make the ride much easier."},
    {"role": "user", "content": "My sister Ines lives in Lisbon and I visit her every summer."},
]
NOW = T0 + timedelta(days=3)


@pytest.fixture()
def chat(mem):
    mem.add(TURNS, user_id="ann", session_id="s1", timestamp=T0)
    return mem


def _scores(mem, query, w_speaker):
    """Roles in rank order, and each hit's score by its first three words. The ranking step
    without search's recall, which would change the retention of the second ranking's notes."""
    mem.config = replace(mem.config, ranking=RankingConfig(w_speaker=w_speaker))
    hits = mem._rank(query, mem.embedder.embed([query])[0], Scope("ann"), None, 3, NOW, False)  # noqa: SLF001
    return [h.metadata.get("role") for h in hits], {" ".join(h.content.split()[:3]): h.score for h in hits}


def test_a_question_about_the_user_marks_the_assistants_turns_down(chat):
    plain_roles, plain = _scores(chat, "What road bike do I ride to work?", 0.0)
    roles, scored = _scores(chat, "What road bike do I ride to work?", 0.3)
    assert roles[0] == "user" and "assistant" in plain_roles
    assistant = "A road bike"  # the assistant's turn
    assert scored[assistant] == pytest.approx(plain[assistant] / 1.3)
    assert all(scored[k] == pytest.approx(plain[k]) for k in scored if k != assistant)
    factors = {h.metadata["role"]: h.speaker_factor for h in chat.search("What road bike do I ride to work?",
                                                                          user_id="ann", now=NOW, top_k=3)}
    assert factors == {"user": 1.0, "assistant": pytest.approx(1 / 1.3)}


def test_a_question_about_what_the_assistant_said_marks_the_users_turns_down(chat):
    roles, scored = _scores(chat, "What did you suggest for commuting on my road bike?", 0.3)
    _, plain = _scores(chat, "What did you suggest for commuting on my road bike?", 0.0)
    assert roles[0] == "assistant"
    assert scored["I finally bought"] == pytest.approx(plain["I finally bought"] / 1.3)


def test_notes_without_a_speaker_rank_as_before(mem):
    mem.add("Ann rides a used Trek road bike to work.", user_id="ann", timestamp=T0)
    mem.add("Road bikes need new tyres every few thousand kilometres.", user_id="ann", timestamp=T0)
    _, plain = _scores(mem, "What road bike do I ride?", 0.0)
    _, scored = _scores(mem, "What road bike do I ride?", 0.3)
    assert scored == pytest.approx(plain)
