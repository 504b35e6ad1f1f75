"""Note construction: keywords, tags and a one-line context, with or without an LLM.

The deterministic builder always runs, so a note is searchable the moment it is added. An
``Enricher`` (an LLM, wired in by api/) may refine the draft later; this module only defines the
seam so memory/ never imports a model.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from memory.keywords import extract_keywords
from memory.tagging import category_tags
from memory.types import NoteDraft

_CONTEXT_CHARS = 160


class Enricher(Protocol):
    """Refines a draft (e.g. with an LLM). Must never change ``content``."""

    def enrich(self, draft: NoteDraft, metadata: dict[str, Any]) -> NoteDraft: ...


def build_draft(content: str, *, event_time: datetime, metadata: dict[str, Any]) -> NoteDraft:
    """The no-LLM draft of a note. Usage: ``build_draft("I moved to Paris", event_time=t, metadata={})``."""
    keywords = extract_keywords(content)
    tags = _tags(content, metadata)
    context = _context(content, keywords, event_time, metadata)
    return NoteDraft(content=content, keywords=keywords, tags=tags, context=context)


def _tags(content: str, metadata: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    role = metadata.get("role")
    if isinstance(role, str) and role:
        tags.append(f"role:{role}")
    tags.extend(category_tags(content))
    return tags


def _context(content: str, keywords: list[str], event_time: datetime, metadata: dict[str, Any]) -> str:
    who = metadata.get("role") if isinstance(metadata.get("role"), str) else "note"
    about = ", ".join(keywords[:3]) if keywords else _first_words(content)
    line = f"{who} on {event_time:%Y-%m-%d}: about {about}"
    return line[:_CONTEXT_CHARS]


def _first_words(content: str, n: int = 8) -> str:
    return " ".join(content.split()[:n])
