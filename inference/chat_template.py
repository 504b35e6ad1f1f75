"""Render a chat prompt with the model's own template (``tokenizer.chat_template`` in the GGUF).

Usage: ``tpl = ChatTemplate.from_gguf(gf.metadata); text = tpl.render(messages)``.

Templates are Jinja2 written for HF transformers; they run in a sandbox with the same
whitespace options and helpers (``raise_exception``). A model without a template gets ChatML.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.errors import InvalidParams

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)
ROLES = ("system", "user", "assistant", "tool")


class ChatTemplate:
    """A compiled chat template. Usage: ``ChatTemplate(src).render([{"role": "user", "content": "hi"}])``."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        self.source = source
        self._template = env.from_string(source)
        self._special = {"bos_token": bos_token, "eos_token": eos_token}

    @classmethod
    def from_gguf(cls, meta: dict[str, Any]) -> ChatTemplate:
        tokens = meta.get("tokenizer.ggml.tokens") or []

        def token(key: str) -> str:
            i = meta.get(key)
            return tokens[i] if i is not None and 0 <= i < len(tokens) else ""

        source = meta.get("tokenizer.chat_template") or CHATML
        return cls(source, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Messages -> prompt text ending, by default, where the assistant's reply begins."""
        validate_messages(messages)
        return self._template.render(
            messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **self._special
        )


def validate_messages(messages: Sequence[dict[str, str]]) -> None:
    """Raise InvalidParams unless every message is {"role": known role, "content": str}."""
    if not messages:
        raise InvalidParams("messages must not be empty")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InvalidParams(f"bad message {m!r}: need role in {ROLES} and string content")


def _raise(message: str) -> None:
    raise InvalidParams(f"chat template: {message}")
