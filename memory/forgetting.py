"""The forgetting curve: retention R = exp(-Δt / S), written once.

Δt is days since the last recall (or since ``event_time`` if never recalled) and S is the note's
strength in days. MemoryBank's code computes exp(-t / 5*S), i.e. exp(-(t/5)·S), so its strong
memories fade *faster*; here S divides Δt, so a larger S always means slower fading.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ForgettingConfig:
    """Tunable constants of the curve (days). Defaults: importance 0.5 starts at S = 30 days, so an untouched note is archived after ~3 months."""

    base_strength_days: float = 30.0
    recall_increment_days: float = 1.0
    recall_growth: float = 1.0
    archive_threshold: float = 0.05


def retention(elapsed_days: float, strength_days: float) -> float:
    """R = exp(-Δt / S). Future times count as Δt = 0. Usage: ``retention(3.0, 7.0)``."""
    if strength_days <= 0:
        raise ValueError("strength must be positive")
    return math.exp(-max(elapsed_days, 0.0) / strength_days)


def initial_strength(importance: float, cfg: ForgettingConfig) -> float:
    """S of a new note: importance 0 → half the base strength, 1 → 1.5x the base."""
    return cfg.base_strength_days * (0.5 + min(max(importance, 0.0), 1.0))


def reinforce(strength_days: float, retention_now: float, cfg: ForgettingConfig) -> float:
    """S after one recall.

    A fixed increment (MemoryBank's +1) plus growth proportional to how much had faded: recalling
    a nearly forgotten note strengthens it more than recalling one just seen (spacing effect).
    """
    faded = 1.0 - min(max(retention_now, 0.0), 1.0)
    return strength_days + cfg.recall_increment_days + strength_days * cfg.recall_growth * faded
