"""Request bodies of ``/v1/chat`` and ``/v1/chat/completions`` (pydantic)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.chat.turn import ChatRequest
from api.schemas import ScopeFields


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "assistant", "content": "Lisbon."}]})
    role: Literal["user", "assistant"]
    content: str


class ChatBody(ScopeFields):
    """A message in a memory scope. ``stream``: server-sent events (memories, token..., done)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user_id": "ann", "message": "Where do I live now?", "max_tokens": 64},
        {"user_id": "ann", "message": "And my sister?", "stream": True,
         "history": [{"role": "user", "content": "Where do I live now?"}, {"role": "assistant", "content": "Lisbon."}]},
    ]})
    message: str = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, description="default 128 (the service's limit when lower)")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_k: int | None = Field(None, ge=1, description="memories retrieved (default: the service's)")
    remember: bool = Field(True, description="write the exchange back as notes")
    history: list[Turn] = Field(default_factory=list, description="earlier turns of this conversation")

    def to_request(self) -> ChatRequest:
        return ChatRequest(self.message, **self.scope(), history=[t.model_dump() for t in self.history],
                           max_tokens=self.max_tokens, temperature=self.temperature, top_k=self.top_k,
                           remember=self.remember)


class CompletionMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"role": "user", "content": "Which city do I live in?"},
        {"role": "user", "content": [{"type": "text", "text": "Which city do I live in?"}]}]})
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # OpenAI content parts: keep the text ones
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class CompletionBody(BaseModel):
    """OpenAI's chat completion request; unknown fields are ignored, as OpenAI clients send many."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"model": "engram", "user": "ann", "messages": [{"role": "user", "content": "Where do I live?"}],
         "max_tokens": 64},
    ]})
    model: str = "engram"
    messages: list[CompletionMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    user: str | None = Field(None, description="the memory scope's user_id (or the X-Engram-User header)")
    response_format: dict[str, Any] | None = None
