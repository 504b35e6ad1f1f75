"""Chat prompts rendered with the GGUF's own Jinja template."""
from __future__ import annotations

import pytest

from inference.chat_template import CHATML, ChatTemplate
from inference.errors import InvalidParams
from tests.inference import smollm


@pytest.fixture(scope="module")
def template() -> ChatTemplate:
    smollm.require_model()
    return ChatTemplate.from_gguf(smollm.gguf_file().metadata)


def test_smollm_template_adds_default_system_and_generation_prompt(template: ChatTemplate) -> None:
    text = template.render([{"role": "user", "content": "Hi"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_own_system_message_replaces_default(template: ChatTemplate) -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = template.render(msgs, add_generation_prompt=False)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"


def test_same_as_hf_apply_chat_template(template: ChatTemplate) -> None:
    from transformers import AutoTokenizer

    path = smollm.gguf_file().path
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert template.render(msgs) == hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("bad", [[], [{"role": "wizard", "content": "x"}], [{"role": "user"}], ["hi"]])
def test_bad_messages_are_caller_errors(bad) -> None:
    with pytest.raises(InvalidParams):
        ChatTemplate(CHATML).render(bad)


def test_raise_exception_in_template_is_typed() -> None:
    tpl = ChatTemplate("{{ raise_exception('only user turns') }}")
    with pytest.raises(InvalidParams, match="only user turns"):
        tpl.render([{"role": "user", "content": "x"}])
