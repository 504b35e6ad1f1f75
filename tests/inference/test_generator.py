"""The decode loop on a tiny random-weight model: limits, stop strings, streaming, cancellation,
and the constraint hook. Constraints here are small real LogitsConstraint implementations."""
from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from inference.errors import ContextOverflow, InvalidParams
from inference.generator import Generator, LogitsConstraint, split_at_stop
from inference.model import TINY_CONFIG, random_model
from inference.params import GenerationParams
from tests.inference import smollm


class ForceSequence:
    """Allows exactly one token per step: the next of ``ids``, then only end-of-sequence."""

    def __init__(self, ids: list[int], eos: int):
        self.ids, self.eos, self.pos, self.calls = ids, eos, 0, []

    def apply(self, logits: torch.Tensor) -> None:
        self.calls.append("apply")
        allowed = self.ids[self.pos] if self.pos < len(self.ids) else self.eos
        keep = logits[allowed].clone()
        logits.fill_(float("-inf"))
        logits[allowed] = keep

    def accept(self, token_id: int) -> None:
        self.calls.append("accept")
        self.pos += 1

    def is_terminated(self) -> bool:
        return self.pos > len(self.ids)


class ForbidTokens:
    def __init__(self, ids: list[int]):
        self.ids = ids

    def apply(self, logits: torch.Tensor) -> None:
        logits[self.ids] = float("-inf")

    def accept(self, token_id: int) -> None:
        assert token_id not in self.ids

    def is_terminated(self) -> bool:
        return False


@pytest.fixture(scope="module")
def tok():
    smollm.require_model()
    return smollm.tokenizer()


@pytest.fixture(scope="module")
def gen(tok) -> Generator:
    # tiny layers, but SmolLM2's vocabulary so that real text can be forced through it
    return Generator(random_model(dataclasses.replace(TINY_CONFIG, vocab_size=tok.vocab_size), "int8"), tok)


def _ids_below(tok, text: str) -> list[int]:
    return tok.encode(text)


@pytest.mark.parametrize(("text", "stops", "expected"), [
    ("hello world", ("STOP",), ("hello world", "", False)),
    ("hello ST", ("STOP",), ("hello ", "ST", False)),
    ("hello STOP more", ("STOP",), ("hello ", "", True)),
    ("a\n\nb", ("\n\n", "b"), ("a", "", True)),
    ("xx S", ("STOP", "SAY"), ("xx ", "S", False)),
    ("plain", (), ("plain", "", False)),
])
def test_split_at_stop(text: str, stops: tuple[str, ...], expected: tuple[str, str, bool]) -> None:
    assert split_at_stop(text, stops) == expected


def test_constraint_protocol_is_runtime_checkable() -> None:
    assert isinstance(ForceSequence([1], 2), LogitsConstraint)


def test_max_tokens_ends_with_length(gen: Generator, tok) -> None:
    s = gen.generate([1, 2, 3], GenerationParams(max_tokens=7), ForbidTokens(tok.eos_token_ids))
    assert s.finish_reason == "length" and len(s.token_ids) == 7
    assert s.text == tok.decode(s.token_ids)


def test_forced_text_streams_in_pieces_and_stops_at_eos(gen: Generator, tok) -> None:
    target = _ids_below(tok, "and the cat is on the mat")
    c = ForceSequence(target, eos=2)
    stream = gen.stream([1, 2, 3], GenerationParams(max_tokens=50), c)
    pieces = list(stream)
    assert "".join(pieces) == "and the cat is on the mat" == stream.text
    assert stream.token_ids == target and stream.finish_reason == "stop"
    assert c.calls[:4] == ["apply", "accept", "apply", "accept"]


def test_stop_string_cuts_text(gen: Generator, tok) -> None:
    c = ForceSequence(_ids_below(tok, "and the cat. The end"), eos=2)
    s = gen.generate([1, 2, 3], GenerationParams(max_tokens=50, stop=(". The",)), c)
    assert s.text == "and the cat" and s.finish_reason == "stop"


def test_seed_reproduces_sampling(gen: Generator, tok) -> None:
    params = GenerationParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=3)
    runs = [gen.generate([5, 6, 7], params, ForbidTokens(tok.eos_token_ids)).token_ids for _ in range(2)]
    assert runs[0] == runs[1]
    greedy = [gen.generate([5, 6, 7], GenerationParams(max_tokens=12), ForbidTokens(tok.eos_token_ids)).token_ids
              for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_cancel_from_consumer_and_from_another_thread(gen: Generator, tok) -> None:
    cancel = threading.Event()
    s = gen.stream([1, 2, 3], GenerationParams(max_tokens=100), ForbidTokens(tok.eos_token_ids), cancel)
    for _ in s:
        cancel.set()
    assert s.finish_reason == "cancelled" and len(s.token_ids) == 1

    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    s = gen.generate([1, 2, 3], GenerationParams(max_tokens=200), ForbidTokens(tok.eos_token_ids), cancel)
    timer.join()
    assert s.finish_reason == "cancelled" and len(s.token_ids) < 200


def test_prompt_errors(gen: Generator) -> None:
    with pytest.raises(InvalidParams):
        gen.stream([], GenerationParams())
    with pytest.raises(ContextOverflow):
        gen.stream([1] * TINY_CONFIG.context_length, GenerationParams())


def test_generation_is_clamped_to_the_context(gen: Generator, tok) -> None:
    prompt = [5] * (TINY_CONFIG.context_length - 4)
    s = gen.generate(prompt, GenerationParams(max_tokens=50), ForbidTokens(tok.eos_token_ids))
    assert s.finish_reason == "length" and len(s.token_ids) == 4


def test_next_prompt_reuses_the_cached_prefix_and_gives_the_same_tokens(tok) -> None:
    model = random_model(dataclasses.replace(TINY_CONFIG, vocab_size=tok.vocab_size), "fp32", seed=4)
    params = GenerationParams(max_tokens=6)
    no_eos = lambda: ForbidTokens(tok.eos_token_ids)  # noqa: E731
    warm = Generator(model, tok)
    first = warm.generate(list(range(10, 40)), params, no_eos())
    assert first.reused_tokens == 0
    # the next turn: the previous prompt and reply, then more text
    follow = list(range(10, 40)) + first.token_ids + [77, 78, 79]
    again = warm.generate(follow, params, no_eos())
    assert again.reused_tokens == 30 + 5  # the last sampled token was never fed
    fresh = Generator(model, tok).generate(follow, params, no_eos())
    assert again.token_ids == fresh.token_ids and fresh.reused_tokens == 0
    # a different prompt reuses only what matches, and a prompt equal to the cache still prefills one token
    assert warm.generate([10, 11, 99], params, no_eos()).reused_tokens == 2
    assert warm.generate([10, 11, 99], params, no_eos()).reused_tokens == 2


def test_cache_growth_keeps_the_prefix(tok) -> None:
    model = random_model(dataclasses.replace(TINY_CONFIG, vocab_size=tok.vocab_size), "fp32", seed=5)
    gen = Generator(model, tok)
    short = gen.generate(list(range(10, 20)), GenerationParams(max_tokens=2), ForbidTokens(tok.eos_token_ids))
    long_prompt = list(range(10, 20)) + short.token_ids[:1] + list(range(100, 160))
    s = gen.generate(long_prompt, GenerationParams(max_tokens=40), ForbidTokens(tok.eos_token_ids))
    fresh = Generator(model, tok).generate(long_prompt, GenerationParams(max_tokens=40), ForbidTokens(tok.eos_token_ids))
    assert s.reused_tokens == 11 and s.token_ids == fresh.token_ids
