"""JSON-schema constrained decoding: xgrammar turns a schema into a per-step token mask.

Usage::

    constraint = JsonSchemaConstraint.compile(schema, vocab_tokens, [eos_id], vocab_size,
                                              special_token_ids=specials, max_tokens=256)
    for _ in range(256):
        if constraint.is_terminated():
            break
        logits = model_step(...)            # [vocab_size] float32
        constraint.apply(logits)            # disallowed tokens -> -inf, in place
        token = sample(logits)
        constraint.accept(token)

The text decoded from the accepted tokens (stop token excluded) is compact JSON that parses and
validates against the schema, whatever the logits were — this is what lets a 135M model do
extraction.

The mask alone guarantees every prefix can be completed, not that a weak model finishes before
max_tokens (SmolLM2 happily writes digits into a string forever). Pass ``max_tokens`` and the
constraint reserves a closing budget: ``reserve`` = 2 x the tokens the schema needs to close
from the start (measured once per schema by a dry run) + 8. Inside the reserve, text the grammar
forces (keys, punctuation) is taken as the longest token that spells it, and otherwise each step
keeps only the allowed tokens of the most closing kind that exists — in a string, tokens that end
it; outside, the stop token, then '}'/']', then a quote, then a comma — so strings, numbers and
optional fields end, and arrays stop at minItems. The model still chooses among those, so the
JSON stays its own where it can.

Two kinds of token are never allowed, whatever the grammar says:
- special tokens (``<|im_start|>``, ``<file_sep>``, ...): their text would appear inside JSON
  strings while the detokenizer drops it. Pass ``special_token_ids`` (GGUF token_type 3) or let a
  pattern find them; a false positive only removes one spelling of some text, never all of them.
- tokens holding a control byte (< 0x20): JSON forbids raw control characters in strings, and in
  compact output there is no whitespace outside strings but spaces, so such a token is never
  valid JSON (xgrammar's string rule lets a raw tab through). It also stops newline loops.

Compiled grammars are cached per (schema, vocabulary); the vocabulary's tables are built once.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xgrammar as xgr

from inference.errors import InvalidParams, StructuredOutputError

__all__ = ["JsonSchemaConstraint", "token_bytes"]

_SPECIAL_PATTERN = re.compile(r"^<[|/]?[A-Za-z0-9_.:\-]+[|]?>$")  # <|im_end|>, <s>, </s>
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_MAX_GRAMMARS_PER_VOCAB = 128
_MAX_VOCABS = 4
_NUMPY_FLOATS = (torch.float32, torch.float16, torch.float64)
_DRY_RUN_LIMIT = 512  # tokens a dry run may take to close a schema before we stop measuring


class JsonSchemaConstraint:
    """A LogitsConstraint that keeps decoding inside one JSON schema (see module docstring)."""

    def __init__(
        self, matcher: xgr.GrammarMatcher, vocab: _Vocabulary, stop_ids: Sequence[int], closing_after: int | None
    ) -> None:
        self._matcher = matcher
        self._vocab = vocab
        self._vocab_size = vocab.vocab_size
        self._bitmask = xgr.allocate_token_bitmask(1, self._vocab_size)
        self._stop_ids = torch.tensor(list(stop_ids), dtype=torch.long)
        self._closing_after = closing_after  # accepted tokens after which we steer to a close
        self._accepted = 0
        self._lexer = _StringTracker()

    @classmethod
    def compile(
        cls,
        schema: dict[str, Any],
        vocab_tokens: list[str],
        eos_token_ids: list[int],
        vocab_size: int,
        *,
        special_token_ids: Iterable[int] | None = None,
        max_tokens: int | None = None,
    ) -> JsonSchemaConstraint:
        """Build a fresh constraint (cheap after the first call for a schema and vocabulary).

        Usage: ``JsonSchemaConstraint.compile(schema, tokens, [2], 49152, max_tokens=256)``.
        ``vocab_tokens`` are the raw GGUF strings: byte-level BPE ('Ġthe') or SentencePiece with
        byte fallback ('▁the', '<0x0A>'). ``max_tokens``: the generator's budget; given, the
        JSON is steered to close inside it (module docstring). Raises InvalidParams for an
        unusable schema or vocabulary.
        """
        if not eos_token_ids:
            raise InvalidParams("constrained decoding needs at least one stop token id")
        vocab = _vocabulary(vocab_tokens, tuple(eos_token_ids), vocab_size, special_token_ids)
        compiled = vocab.grammar(schema)
        matcher = xgr.GrammarMatcher(compiled.grammar, override_stop_tokens=list(eos_token_ids))
        closing_after = None if max_tokens is None else max(0, max_tokens - (2 * compiled.closing_tokens + 8))
        return cls(matcher, vocab, eos_token_ids, closing_after)

    @torch.inference_mode()  # logits made under inference_mode may only be edited inside it
    def apply(self, logits: torch.Tensor) -> None:
        """Set every token the grammar forbids next to -inf, in place. ``logits``: [vocab_size].

        Usage: ``constraint.apply(logits)`` before sampling.
        """
        assert logits.dim() == 1 and logits.shape[0] >= self._vocab_size, logits.shape
        if logits.shape[0] > self._vocab_size:  # padded embedding rows are never real tokens
            logits[self._vocab_size:] = float("-inf")
        if self._matcher.is_terminated():
            _keep_only(logits, self._stop_ids)
            return
        head = logits[: self._vocab_size]
        if self._matcher.fill_next_token_bitmask(self._bitmask):  # False: everything allowed
            _apply_bitmask(head, self._bitmask)
        if self._closing_after is not None and self._accepted >= self._closing_after:
            _steer_to_close(head, self._matcher, self._vocab, self._lexer.in_string)

    def accept(self, token_id: int) -> None:
        """Advance the grammar by one sampled token. Usage: ``constraint.accept(token)``.

        Raises StructuredOutputError if the token breaks the grammar (the sampler ignored apply).
        """
        if not self._matcher.accept_token(int(token_id)):
            raise StructuredOutputError(f"token {token_id} is not allowed by the JSON schema here")
        self._accepted += 1
        self._lexer.feed(self._vocab.token_bytes(token_id))

    def is_terminated(self) -> bool:
        """True once the JSON is complete and a stop token was accepted."""
        return self._matcher.is_terminated()


def _apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    # Unpacking with numpy and one masked copy is ~4x faster than xgrammar's CPU kernel, which
    # tests bit by bit (measured on SmolLM2 JSON masks: ~40 us vs ~190 us per token).
    # Bit j of int32 word w is token 32*w + j; on a little-endian host that is byte order too.
    assert sys.byteorder == "little"
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little")[: logits.shape[0]]
    if logits.dtype in _NUMPY_FLOATS and logits.is_contiguous():
        np.copyto(logits.numpy(), -np.inf, where=bits == 0)
    else:  # bfloat16 has no numpy dtype
        logits.masked_fill_(torch.from_numpy(bits == 0), float("-inf"))


class _StringTracker:
    """Whether the JSON written so far ends inside a string. The grammar guarantees the text is
    a valid JSON prefix, so quotes and backslashes are all a lexer needs to look at."""

    def __init__(self) -> None:
        self.in_string = False
        self._escaped = False

    def feed(self, data: bytes) -> None:
        for byte in data:
            if self._escaped:
                self._escaped = False
            elif self.in_string and byte == 0x5C:  # backslash
                self._escaped = True
            elif byte == 0x22:  # quote
                self.in_string = not self.in_string


def _steer_to_close(
    logits: torch.Tensor, matcher: xgr.GrammarMatcher, vocab: _Vocabulary, in_string: bool
) -> None:
    try:
        forced = matcher.find_jump_forward_string().encode("utf-8")
    except UnicodeDecodeError:
        # Inside a multi-byte character xgrammar's forced string starts mid-UTF-8 and its FFI
        # cannot return it; fall back to the closing tiers, which are always valid.
        forced = b""
    token = vocab.longest_prefix_token(forced, logits) if forced else None
    if token is not None:
        _keep_only(logits, torch.tensor([token]))
    else:
        _keep_most_closing(logits, vocab.closing_tiers(in_string))


def _keep_most_closing(logits: torch.Tensor, tiers: Sequence[torch.Tensor]) -> None:
    allowed = torch.isfinite(logits)
    for tier in tiers:
        chosen = allowed & tier
        if chosen.any():
            logits.masked_fill_(~chosen, float("-inf"))
            return


def _keep_only(logits: torch.Tensor, token_ids: torch.Tensor) -> None:
    kept = logits[token_ids].clone()
    logits.fill_(float("-inf"))
    logits[token_ids] = kept


@dataclass(frozen=True)
class _Compiled:
    grammar: xgr.CompiledGrammar
    closing_tokens: int  # tokens the dry run needed to close the JSON from its start


class _Vocabulary:
    """One tokenizer's xgrammar tables plus an LRU of the grammars compiled against them."""

    def __init__(self, encoded: list[bytes], stop_ids: tuple[int, ...], vocab_size: int) -> None:
        info = xgr.TokenizerInfo(encoded, xgr.VocabType.RAW, vocab_size=vocab_size, stop_token_ids=list(stop_ids))
        # The compiler's own cache is off: ours below is bounded and keyed by the schema text.
        self._compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)
        self._grammars: OrderedDict[str, _Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self.vocab_size = vocab_size
        self.stop_ids = stop_ids
        self._encoded = encoded
        self._tiers = _closing_tiers(encoded, stop_ids, vocab_size)
        self._id_by_bytes = {text: i for i, text in reversed(list(enumerate(encoded))) if text}
        self._longest = max(map(len, encoded), default=0)

    def longest_prefix_token(self, text: bytes, logits: torch.Tensor) -> int | None:
        """The allowed (finite-logit) token spelling the longest prefix of ``text``, if any."""
        for n in range(min(len(text), self._longest), 0, -1):
            token = self._id_by_bytes.get(text[:n])
            if token is not None and torch.isfinite(logits[token]):
                return token
        return None

    def token_bytes(self, token_id: int) -> bytes:
        return self._encoded[token_id] if token_id < len(self._encoded) else b""

    def closing_tiers(self, in_string: bool) -> list[torch.Tensor]:
        return self._tiers[in_string]

    def grammar(self, schema: dict[str, Any]) -> _Compiled:
        key = _schema_text(schema)
        with self._lock:
            if key in self._grammars:
                self._grammars.move_to_end(key)
                return self._grammars[key]
        compiled = self._compile(key)
        with self._lock:
            self._grammars[key] = compiled
            while len(self._grammars) > _MAX_GRAMMARS_PER_VOCAB:
                self._grammars.popitem(last=False)
        return compiled

    def _compile(self, schema_text: str) -> _Compiled:
        try:
            # Compact output: no free whitespace means no whitespace loops from a weak model.
            grammar = self._compiler.compile_json_schema(schema_text, any_whitespace=False)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise InvalidParams(f"unsupported JSON schema: {exc}") from exc
        return _Compiled(grammar, self._closing_tokens(grammar))

    def _closing_tokens(self, grammar: xgr.CompiledGrammar) -> int:
        """Dry run: always take the lowest-id token of the most closing tier; count the steps."""
        matcher = xgr.GrammarMatcher(grammar, override_stop_tokens=list(self.stop_ids))
        bitmask = xgr.allocate_token_bitmask(1, self.vocab_size)
        lexer = _StringTracker()
        for step in range(1, _DRY_RUN_LIMIT + 1):
            logits = torch.zeros(self.vocab_size)
            if matcher.fill_next_token_bitmask(bitmask):
                _apply_bitmask(logits, bitmask)
            _steer_to_close(logits, matcher, self, lexer.in_string)
            allowed = torch.isfinite(logits).nonzero().flatten().tolist()
            token = max(allowed, key=lambda i: len(self.token_bytes(i)))  # fewest tokens to close
            matcher.accept_token(token)
            lexer.feed(self.token_bytes(token))
            if matcher.is_terminated():
                return step
        return _DRY_RUN_LIMIT


def _closing_tiers(
    encoded: list[bytes], stop_ids: tuple[int, ...], vocab_size: int
) -> dict[bool, list[torch.Tensor]]:
    """Token classes, most closing first, for text outside a string (False) and inside (True).

    Outside: the stop token; closes a container without a quote, comma or opener ('}', ']}');
    a quote without comma or opener ('"', '""'); a comma without opener. Inside: ends the
    string without a comma or opener ('"', 'ly"', '"}'); any quote. Tokens with a backslash
    are left out inside: '\\"' keeps the string open.
    """
    names = ("close", "quote", "comma", "ends", "ends_any")
    tiers: dict[str, list[bool]] = {name: [False] * vocab_size for name in names}
    for i, text in enumerate(encoded):
        opens, comma, quote = b"{" in text or b"[" in text, b"," in text, b'"' in text
        if not opens:
            tiers["close"][i] = (b"}" in text or b"]" in text) and not quote and not comma
            tiers["quote"][i] = quote and not comma
            tiers["comma"][i] = comma
        if quote and b"\\" not in text:
            tiers["ends"][i] = not comma and not opens
            tiers["ends_any"][i] = True
    stop = torch.zeros(vocab_size, dtype=torch.bool)
    stop[list(stop_ids)] = True
    as_tensor = {name: torch.tensor(flags, dtype=torch.bool) for name, flags in tiers.items()}
    return {
        False: [stop, as_tensor["close"], as_tensor["quote"], as_tensor["comma"]],
        True: [as_tensor["ends"], as_tensor["ends_any"]],
    }


def _schema_text(schema: dict[str, Any]) -> str:
    if not isinstance(schema, dict):
        raise InvalidParams(f"JSON schema must be a dict, got {type(schema).__name__}")
    try:
        # Not sort_keys: xgrammar emits properties in the schema's declared order.
        return json.dumps(schema, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParams(f"JSON schema is not serialisable: {exc}") from exc


_vocabs: OrderedDict[str, _Vocabulary] = OrderedDict()
_last_list: tuple[object, tuple[Any, ...], str] | None = None  # (list object, args, key)
_vocabs_lock = threading.Lock()


def _vocabulary(
    tokens: list[str], eos: tuple[int, ...], vocab_size: int, special: Iterable[int] | None
) -> _Vocabulary:
    special_ids = None if special is None else tuple(sorted(set(special)))
    key = _vocab_key(tokens, (eos, vocab_size, special_ids))
    with _vocabs_lock:
        if key in _vocabs:
            _vocabs.move_to_end(key)
            return _vocabs[key]
    vocab = _Vocabulary(_encoded_vocab(tokens, eos, vocab_size, special_ids), eos, vocab_size)
    with _vocabs_lock:
        _vocabs[key] = vocab
        while len(_vocabs) > _MAX_VOCABS:
            _vocabs.popitem(last=False)
    return vocab


def _vocab_key(tokens: list[str], args: tuple[Any, ...]) -> str:
    global _last_list
    last = _last_list
    # Hashing 50k strings costs ~4 ms; the same list object passed again skips it.
    if last is not None and last[0] is tokens and last[1] == args:
        return last[2]
    digest = hashlib.blake2b("\x00".join(tokens).encode("utf-8", "surrogatepass"), digest_size=16)
    key = f"{digest.hexdigest()}:{args!r}"
    _last_list = (tokens, args, key)
    return key


def _encoded_vocab(
    tokens: list[str], eos: tuple[int, ...], vocab_size: int, special: tuple[int, ...] | None
) -> list[bytes]:
    if vocab_size < len(tokens):
        raise InvalidParams(f"vocab_size {vocab_size} < {len(tokens)} vocabulary tokens")
    if any(not 0 <= i < len(tokens) for i in eos):
        raise InvalidParams(f"stop token ids {list(eos)} outside the vocabulary")
    banned = set(special) if special is not None else _special_by_pattern(tokens)
    kind = _vocab_kind(tokens)
    encoded = [b"" if i in banned else token_bytes(t, kind) for i, t in enumerate(tokens)]
    # An empty token is special to xgrammar: the mask never allows it.
    return [b"" if any(b < 0x20 for b in e) else e for e in encoded]


def _special_by_pattern(tokens: Sequence[str]) -> set[int]:
    return {i for i, t in enumerate(tokens) if _SPECIAL_PATTERN.match(t) and not _BYTE_FALLBACK.match(t)}


def _vocab_kind(tokens: Sequence[str]) -> str:
    has_fallback = any(_BYTE_FALLBACK.match(t) for t in tokens[:1024])
    has_spm_space = any(t.startswith("\u2581") for t in tokens)
    return "byte_fallback" if has_fallback and has_spm_space else "byte_level"


def token_bytes(token: str, kind: str = "byte_level") -> bytes:
    """The bytes a vocabulary token stands for. Usage: ``token_bytes('Ġthe') == b' the'``.

    ``kind``: "byte_level" (GPT-2 BPE alphabet) or "byte_fallback" (SentencePiece, '<0x0A>').
    """
    if kind == "byte_fallback":
        match = _BYTE_FALLBACK.match(token)
        if match:
            return bytes([int(match.group(1), 16)])
        return token.replace("\u2581", " ").encode("utf-8")
    table = _unicode_to_byte()
    return b"".join(bytes([table[c]]) if c in table else c.encode("utf-8") for c in token)


_UNICODE_TO_BYTE: dict[str, int] = {}


def _unicode_to_byte() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: printable bytes stand for themselves, the other 68
    bytes were shifted to code points 256 and up so every token is printable text."""
    if not _UNICODE_TO_BYTE:
        printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
        shifted = [b for b in range(256) if b not in printable]
        table = {chr(b): b for b in printable}
        table.update({chr(256 + n): b for n, b in enumerate(shifted)})
        _UNICODE_TO_BYTE.update(table)
    return _UNICODE_TO_BYTE
