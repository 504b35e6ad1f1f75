"""Tokenizer built from a GGUF file's vocabulary and merges (byte-level BPE, GPT-2 family).

Usage: ``tok = Tokenizer.from_gguf(gf.metadata)``; ``ids = tok.encode("hi")``; ``tok.decode(ids)``;
streaming: ``dec = tok.stream_decoder(); piece = dec.push(token_id)``.

The BPE itself runs in the ``tokenizers`` library; this module only assembles it from the GGUF
keys ``tokenizer.ggml.*`` and chooses the pre-tokenizer named by ``tokenizer.ggml.pre``.
"""
from __future__ import annotations

import functools
import itertools
from array import array
from typing import Any

from inference.errors import ModelLoadError

CONTROL, USER_DEFINED = 3, 4  # GGUF token types that are matched whole in text
# End-of-turn tokens of common chat formats; any present as a control token stops generation.
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>", "</s>")
# llama.cpp's pre-tokenizer names -> how text is split before BPE
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


class Tokenizer:
    """Byte-level BPE with the GGUF's special tokens.

    ``vocab_tokens`` are the raw GGUF token strings (byte-level alphabet, e.g. "Ġthe"), which is
    what grammar engines such as xgrammar expect.
    """

    def __init__(self, backend: Any, vocab_tokens: list[str], special_ids: list[int],
                 eos_token_ids: list[int], bos_token_id: int | None, add_bos: bool):
        self._tk = backend
        self._vocab_size = len(vocab_tokens)
        # Only constrained decoding reads the token strings (as a list, built on first use). The
        # BPE backend holds them already, so they are kept here only when it cannot give them
        # all back (a vocabulary with duplicate strings): as a list of 49k str objects they
        # were 4.3 MiB of SmolLM2's resident engine.
        self._vocab_text, self._vocab_ends = "", array("l")
        if backend.get_vocab_size(with_added_tokens=False) != len(vocab_tokens):
            self._vocab_text = "".join(vocab_tokens)
            self._vocab_ends = array("l", itertools.accumulate(len(t) for t in vocab_tokens))
        self.special_ids = special_ids
        self.eos_token_ids = eos_token_ids
        self.bos_token_id = bos_token_id
        self.add_bos = add_bos

    @classmethod
    def from_gguf(cls, meta: dict[str, Any]) -> Tokenizer:
        kind = meta.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ModelLoadError(f"tokenizer model {kind!r} is not supported (only byte-level BPE 'gpt2')")
        tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
        types = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))
        special_ids = [i for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED)]
        backend = _build_backend(tokens, list(meta["tokenizer.ggml.merges"]), meta.get("tokenizer.ggml.pre"),
                                 [tokens[i] for i in special_ids])
        eos = _eos_ids(meta, tokens, types)
        bos = meta.get("tokenizer.ggml.bos_token_id")
        return cls(backend, tokens, special_ids, eos, bos, bool(meta.get("tokenizer.ggml.add_bos_token", False)))

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @functools.cached_property
    def vocab_tokens(self) -> list[str]:
        """The raw GGUF token strings by id (one list object, so callers may cache on identity)."""
        if not self._vocab_ends:
            return [self._tk.id_to_token(i) for i in range(self._vocab_size)]
        text, ends = self._vocab_text, self._vocab_ends
        return [text[a:b] for a, b in zip(itertools.chain((0,), ends), ends)]

    def encode(self, text: str) -> list[int]:
        """Text -> token ids; special-token strings such as "<|im_start|>" map to their ids."""
        ids = self._tk.encode(text, add_special_tokens=False).ids
        if self.add_bos and self.bos_token_id is not None:
            ids = [self.bos_token_id, *ids]
        return ids

    def decode(self, ids: list[int], skip_special: bool = False) -> str:
        return self._tk.decode(list(ids), skip_special_tokens=skip_special)

    def token_id(self, token: str) -> int | None:
        return self._tk.token_to_id(token)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)


class StreamDecoder:
    """Incremental detokenization: text appears only once its UTF-8 bytes are complete.

    Usage: ``dec = tok.stream_decoder(); for t in ids: print(dec.push(t), end="")``.
    A window of earlier tokens is re-decoded with each new one because byte-level BPE (and
    leading-space handling) makes a token's text depend on its neighbours.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the re-decoded window
        self._read = 0  # tokens already turned into emitted text

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        done = self._tok.decode(self._ids[self._prefix : self._read])
        full = self._tok.decode(self._ids[self._prefix :])
        if full.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more bytes
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return full[len(done) :]

    def flush(self) -> str:
        """Whatever is still held back (an unfinished character decodes to U+FFFD)."""
        done = self._tok.decode(self._ids[self._prefix : self._read])
        full = self._tok.decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return full[len(done) :]


def _build_backend(tokens: list[str], merges: list[str], pre: str | None, specials: list[str]) -> Any:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tk = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm",):  # digits one by one, then the GPT-2 split
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("llama-bpe", "llama3", "smaug-bpe"):
        split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated")
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:  # "gpt2", "default" and unknown names: the GPT-2 regex
        tk.pre_tokenizer = byte_level
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tk


def _eos_ids(meta: dict[str, Any], tokens: list[str], types: list[int]) -> list[int]:
    ids = [meta.get("tokenizer.ggml.eos_token_id"), meta.get("tokenizer.ggml.eot_token_id")]
    ids += [i for i, t in enumerate(tokens) if t in END_TOKENS and types[i] == CONTROL]
    return sorted({int(i) for i in ids if i is not None})
