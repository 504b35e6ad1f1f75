"""What an LLM may answer as a note's keywords and tags, taken from the note itself.

A 135M model asked for "keywords" in free text copies whatever example it saw or repeats one word;
validation then rejects it. Instead the enrichment schema offers only these candidates as ``enum``
values, so a constrained decoder can only pick words the note contains (grounded by construction)
and the model's job shrinks to choosing among them.

- Keywords: the note's salient phrases (RAKE, ``memory.keywords``) then its other content words,
  best first, dealt into three disjoint groups; the schema's first three keywords come one from each
  group, so three distinct keywords exist by construction (JSON schema's ``uniqueItems`` is not
  enforced by the grammar).
- Tags: three facets with disjoint vocabularies — a life area (the tagging lexicon's categories), a
  kind of memory, and a topic word of the note — so three distinct tags exist by construction too.

- Context: "The user" and a run of the note's own consecutive words (``context_pattern``).

Usage: ``g = grounding("We moved to Lisbon, the flat is by the river.")``; ``g.keyword_groups``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from memory.keywords import extract_keywords
from memory.stopwords import STOPWORDS
from memory.tagging import CATEGORIES

# Kinds of memory, disjoint from the areas; what a note *is* rather than what it is about.
KINDS = ("event", "plan", "fact", "habit", "opinion", "goal", "experience", "question", "request", "feeling",
         "relationship", "change")
AREAS = tuple(c for c in CATEGORIES if c not in KINDS)
GROUPS = 3
_WORD = re.compile(r"[^\W\d_][\w'’\-]*")
_TOPIC = re.compile(r"^[a-z][a-z0-9\-]{2,}$")
_TOKEN = re.compile(r"[^\W_][\w'’\-]*")
_MAX_TOKENS = 80  # words of the note the context may be drawn from (the grammar grows with them)
_MAX_STARTS = 40
CONTEXT_WORDS = 12


@dataclass(frozen=True)
class Grounding:
    """Candidate terms of one note. ``keyword_groups`` is empty when the note has fewer than three
    distinct candidates (nothing to choose three keywords from)."""

    keywords: list[str]
    keyword_groups: list[list[str]]
    topics: list[str]
    words: list[str]
    tokens: list[str]


def grounding(content: str, max_candidates: int = 24, max_chars: int = 40,
              banned: frozenset[str] = frozenset()) -> Grounding:
    """The candidates of ``content`` (``banned``: words a model must not answer, e.g. the schema's own)."""
    phrases = [p for p in extract_keywords(content, top=max_candidates) if _usable(p, max_chars, banned)]
    words = _content_words(content, banned)
    ranked = _unique([*phrases, *words])[:max_candidates]
    groups = [ranked[i::GROUPS] for i in range(GROUPS)] if len(ranked) >= GROUPS else []
    facets = set(AREAS) | set(KINDS)
    topics = _unique([w for w in words if _TOPIC.match(w) and w not in facets])[:max_candidates]
    tokens = [m.group(0) for m in _TOKEN.finditer(content)][:_MAX_TOKENS]
    return Grounding(ranked, groups, topics, _unique(words)[:max_candidates], tokens)


def context_pattern(ground: Grounding) -> str:
    """A regex for the one-line context: "The user" (or "The assistant") and then a run of the
    note's own consecutive words (two to ``CONTEXT_WORDS``, opening on a content word),
    ending in a full stop — an extractive description, grounded by construction. Free text, or
    any of the note's words in any order, let SmolLM2-135M write junk ("Berlin Berlin is moved")."""
    tokens, content = ground.tokens, set(ground.words)
    # Runs open on a content word, so each names something the note says (validation checks that).
    starts = [i for i in range(len(tokens) - 1) if tokens[i].lower() in content][:_MAX_STARTS]
    runs = "|".join(_run(tokens[i:i + CONTEXT_WORDS]) for i in starts) or "[a-z]+ [a-z]+"
    return f"^The (user|assistant) ({runs})\\.$"


def _run(words: list[str]) -> str:
    """``a b( c( d)?)?``: the first two words, then each next one only after the one before it."""
    tail = ""
    for word in reversed(words[2:]):
        tail = f"( {re.escape(word)}{tail})?"
    return f"{re.escape(words[0])} {re.escape(words[1])}{tail}"


def _content_words(content: str, banned: frozenset[str]) -> list[str]:
    """Words of three letters or more that are not stopwords, in order of appearance, lowercased."""
    out = []
    for match in _WORD.finditer(content):
        word = match.group(0).lower().strip("'’-")
        if len(word) > 2 and word not in STOPWORDS and word not in banned:
            out.append(word)
    return out


def _usable(phrase: str, max_chars: int, banned: frozenset[str]) -> bool:
    words = phrase.split()
    # validation grounds a keyword by a content word of three letters or more (enrichment._stems)
    return 2 <= len(phrase) <= max_chars and not (set(words) & banned) and any(len(w) > 2 for w in words)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
