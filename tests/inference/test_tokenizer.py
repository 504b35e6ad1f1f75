"""Tokenizer from the GGUF vocabulary: round trips, special tokens, streaming, HF agreement."""
from __future__ import annotations

import pytest

from tests.inference import smollm

UNICODE_TEXTS = [
    "Héllo wörld — naïve café, 東京 🤖 emoji!",
    "Numbers 1234567 and 3.14159; tabs\tand\n\nnewlines   with  spaces ",
    "Ελληνικά, русский, العربية, עברית, हिन्दी",
    "family 👨‍👩‍👧, flags 🇫🇷, combining é, CRLF\r\nline, NBSP here, math ∑∫√",
    "",
]


@pytest.fixture(scope="module")
def tok():
    smollm.require_model()
    return smollm.tokenizer()


@pytest.mark.parametrize("text", UNICODE_TEXTS)
def test_round_trip_unicode(tok, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_round_trip_real_text(tok) -> None:
    for para in smollm.hotpot_text(12):
        assert tok.decode(tok.encode(para)) == para


def test_vocab_and_special_tokens(tok) -> None:
    assert tok.vocab_size == 49152 and tok.vocab_tokens[1] == "<|im_start|>"
    assert tok.encode("<|im_start|>user\nhi<|im_end|>") == [1, 4093, 198, 6004, 2]
    assert 2 in tok.eos_token_ids and 0 in tok.eos_token_ids  # <|im_end|> and <|endoftext|>
    assert tok.token_id("Ġthe") == tok.vocab_tokens.index("Ġthe")


def test_digits_are_split_one_by_one(tok) -> None:
    # tokenizer.ggml.pre = "smollm": each digit is its own pre-token
    ids = tok.encode("2024")
    assert [tok.decode([i]) for i in ids] == ["2", "0", "2", "4"]


@pytest.mark.parametrize("text", UNICODE_TEXTS[:4])
def test_stream_decoder_emits_whole_characters_that_add_up(tok, text: str) -> None:
    dec = tok.stream_decoder()
    pieces = [dec.push(i) for i in tok.encode(text)] + [dec.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_matches_hf_tokenizer_on_real_text(tok) -> None:
    from transformers import AutoTokenizer

    path = smollm.gguf_file().path
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for text in smollm.hotpot_text(12) + UNICODE_TEXTS:
        assert tok.encode(text) == hf.encode(text, add_special_tokens=False)
