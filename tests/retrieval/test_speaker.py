"""Whose words a query asks about, and the factor that marks the other speaker's turns down."""
import pytest

from retrieval.speaker import ASSISTANT, USER, asked_speaker, speaker_factor


@pytest.mark.parametrize(("query", "speaker"), [
    ("How many plants did I buy last month?", USER),
    ("What is my sister's name?", USER),
    ("Where do I usually go running?", USER),
    ("I've been feeling stuck with my paintings. Any ideas?", USER),
    ("Can you suggest some activities that I can do in the evening?", USER),  # asks for new advice
    ("Can you recommend lights for my road bike?", USER),
    ("Which hiking trail did you recommend in Aragón?", ASSISTANT),
    ("What was the name of the trail you once suggested?", ASSISTANT),
    ("How many eggs did you say we need?", ASSISTANT),
    ("You mentioned two-factor authentication; which kinds?", ASSISTANT),
    ("What was your advice on my cover letter?", ASSISTANT),
    ("Can you remind me of the restaurant in Cihampelas Walk?", None),  # either side may have named it
    ("In our previous conversation about Catalonia, which singer came up?", None),
    ("What is the capital of Portugal?", None),
    ("Tell me about Lisbon.", None),                 # a request, not a question about the user
    ("Show me something about jazz history", None),
    ("What do you know about me?", USER),
    ("Tell me what I ordered last time", USER),
    ("", None),
])
def test_asked_speaker(query, speaker):
    assert asked_speaker(query) == speaker


@pytest.mark.parametrize(("role", "asked", "weight", "factor"), [
    ("user", USER, 0.3, 1.0),
    ("assistant", USER, 0.3, 1 / 1.3),
    ("tool", USER, 0.3, 1 / 1.3),
    ("user", ASSISTANT, 0.5, 1 / 1.5),
    ("assistant", ASSISTANT, 0.5, 1.0),
    (None, USER, 0.3, 1.0),           # a plain note: nobody's turn
    ("manager", USER, 0.3, 1.0),      # a caller's own "role" metadata is not a speaker
    ("assistant", None, 0.3, 1.0),    # the query asks about nobody in particular
    ("assistant", USER, 0.0, 1.0),    # switched off
])
def test_speaker_factor(role, asked, weight, factor):
    assert speaker_factor(role, asked, weight) == pytest.approx(factor)
