"""Whose words a query asks about: the user's own ("what did I buy?") or the assistant's ("which
trail did you recommend?").

A conversation stored turn by turn holds two kinds of notes. The user's turns say what the user did,
owns and prefers; the assistant's turns are mostly advice, often long and on the same topic, so they
match a question about the user as well as, or better than, the user's own words. A question in the
first person is about the user's turns; one about what "you said" is about the assistant's. The rules
are plain English patterns; when they find neither (or a "remind me" that could be either), the
query asks about nobody in particular and ranking leaves roles alone.
"""
from __future__ import annotations

import re

USER = "user"
ASSISTANT = "assistant"
# The roles of chat turns (api.inputs accepts these); a "role" a caller put in a plain note's
# metadata for its own purposes says nothing about who spoke.
CHAT_ROLES = frozenset({USER, ASSISTANT, "system", "tool"})

# "you recommended", "the trail you once suggested", "did you say", "your advice". Present-tense
# forms only after "did": "can you recommend a hotel?" asks for new advice, not about old words.
_SAID = "said|told|recommended|suggested|mentioned|gave|provided|listed|shared|created|wrote|explained|described"
_SAY = "say|tell|recommend|suggest|mention|give|provide|list|share|create|write|explain|describe"
_ASSISTANT_SAID = re.compile(
    rf"\byou(?:\s+\w+){{0,2}}?\s+(?:{_SAID})\b|\bdid\s+you\s+(?:{_SAY})\b|"
    r"\byour\s+(?:suggestions?|recommendations?|advice|answers?|list)\b",
    re.IGNORECASE,
)
# "remind me of ...", "in our previous chat": could be either side's words.
_EITHER = re.compile(r"\bremind me\b|\b(?:our|the)\s+(?:previous|last|earlier)\s+(?:conversation|chat|discussion)\b",
                     re.IGNORECASE)
# "me" after a request verb ("tell me about Paris", "show me", "give me") only addresses the
# assistant; "what do you know about me" is about the user.
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|my|mine|myself)\b|(?<!tell )(?<!show )(?<!give )(?<!help )"
                           r"(?<!let )\bme\b", re.IGNORECASE)


def asked_speaker(query: str) -> str | None:
    """``"user"``, ``"assistant"`` or None (no preference).

    Usage: ``asked_speaker("How many plants did I buy?")`` → ``"user"``;
    ``asked_speaker("Which hotel did you recommend?")`` → ``"assistant"``."""
    if _ASSISTANT_SAID.search(query):
        return ASSISTANT
    if _EITHER.search(query):
        return None
    if _FIRST_PERSON.search(query):
        return USER
    return None


def speaker_factor(note_role: str | None, asked: str | None, weight: float) -> float:
    """1 for a note the query may be about, 1 / (1 + weight) for a chat turn of another speaker.

    Notes without a role (facts stored as plain text) and queries without a preference are never
    marked down, so a store without chat turns ranks exactly as without this factor."""
    if asked is None or note_role not in CHAT_ROLES or weight <= 0.0 or note_role == asked:
        return 1.0
    return 1.0 / (1.0 + weight)
