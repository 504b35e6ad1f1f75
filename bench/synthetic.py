"""Synthetic but realistic chat-memory text for load and latency benchmarks (deterministic)."""
from __future__ import annotations

import random

PEOPLE = ["my sister", "my brother", "my mom", "my dad", "my friend Alex", "my boss", "my partner", "my neighbour",
          "my colleague Priya", "my cousin Leo", "my daughter", "my son", "my roommate", "my coach", "my doctor"]
PLACES = ["Lisbon", "Tokyo", "Berlin", "the lake house", "Chicago", "the office", "the gym", "Barcelona", "Seattle",
          "the farmers market", "the library", "Mexico City", "the beach", "Montreal", "the new cafe downtown"]
THINGS = ["a road bike", "a sourdough starter", "a standing desk", "noise-cancelling headphones", "a used Honda Civic",
          "a Kindle", "hiking boots", "a vintage camera", "an espresso machine", "a yoga mat", "a 3D printer",
          "concert tickets", "a houseplant", "a gaming laptop", "a cast iron pan"]
ACTIVITIES = ["training for a half marathon", "learning Spanish", "taking pottery classes", "renovating the kitchen",
              "planning a wedding", "studying for the AWS exam", "writing a novel", "learning to surf",
              "volunteering at the animal shelter", "saving for a house", "practising piano", "doing a keto diet",
              "organising a book club", "fostering kittens", "building a treehouse"]
FEELINGS = ["excited", "stressed", "nervous", "happy", "tired", "proud", "worried", "relieved", "curious", "frustrated"]
WHEN = ["yesterday", "last weekend", "this morning", "two weeks ago", "last month", "on Tuesday", "tonight",
        "over the holidays", "in March", "next Friday"]

TEMPLATES = [
    "I went to {place} with {person} {when} and it was great.",
    "{person} recommended {thing}, so I finally bought it {when}.",
    "I've been {activity} since {when} and I'm feeling {feeling} about it.",
    "Can you remind me that {person} is visiting {place} {when}?",
    "I'm {feeling} because {person} and I are {activity}.",
    "My {thing} broke {when}; I need to find a repair shop near {place}.",
    "We're thinking about moving to {place}; {person} says the rent is lower there.",
    "Quick note: I spent about {n} dollars on {thing} {when}.",
    "I finished {n} sessions of {activity} and {person} joined me for the last one.",
    "What should I pack for a trip to {place} {when}? {person} is coming too.",
    "I really don't like {thing}, it's overrated, but {person} loves it.",
    "Reminder for myself: call {person} about {activity} before {when}.",
]
QUESTIONS = [
    "When did I go to {place}?", "What did {person} recommend?", "How is my {activity} going?",
    "Who is visiting {place}?", "How much did I spend on {thing}?", "What broke recently?",
    "Where are we thinking of moving?", "What do I think about {thing}?",
]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(place=rng.choice(PLACES), person=rng.choice(PEOPLE), thing=rng.choice(THINGS),
                           activity=rng.choice(ACTIVITIES), feeling=rng.choice(FEELINGS), when=rng.choice(WHEN),
                           n=rng.randint(2, 400))


def notes(n: int, seed: int = 0) -> list[str]:
    """``n`` chat-like memory sentences. Usage: ``notes(10_000)``."""
    rng = random.Random(seed)
    return [_fill(rng.choice(TEMPLATES), rng) for _ in range(n)]


def questions(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [_fill(rng.choice(QUESTIONS), rng) for _ in range(n)]
