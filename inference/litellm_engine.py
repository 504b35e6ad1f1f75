"""Remote engines through litellm: OpenAI, Anthropic, Ollama, any OpenAI-compatible server.

Usage::

    engine = LiteLLMEngine("openai/qwen", api_base="http://127.0.0.1:8000/v1", api_key="sk-x")
    engine.generate([{"role": "user", "content": "hi"}])
    engine.complete_json(messages, {"type": "object", ...})

litellm is imported on first use (it takes seconds to import). Entry points must set
``LITELLM_LOCAL_MODEL_COST_MAP=True`` before that, so litellm reads its bundled model map
instead of fetching one from the internet; this module never touches the environment.

Failures are translated here, at one boundary, into inference/errors.py:
- transient (connection errors, timeouts, 408/409/425/429, 5xx): retried ``max_retries`` times
  with exponential backoff, then EngineUnavailable;
- the context window exceeded: ContextOverflow, no retry;
- 400/422: InvalidParams, no retry (the same request would fail again);
- any other 4xx (401, 403, 404, ...): EngineUnavailable at once — the engine is misconfigured.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from inference.engine import Message, Prompt
from inference.errors import (
    ContextOverflow,
    EngineUnavailable,
    InferenceError,
    InvalidParams,
    StructuredOutputError,
)
from inference.json_output import extract_json, json_instruction, parse_and_validate, repair_messages
from inference.params import GenerationParams

__all__ = ["LiteLLMEngine"]

_T = TypeVar("_T")
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
_MAX_BACKOFF_S = 8.0
_JSON_MODES = ("auto", "json_schema", "json_object", "off")


class LiteLLMEngine:
    """An Engine backed by ``litellm.completion`` with timeouts, retries and JSON repair.

    ``json_mode``: "auto" sends the schema as ``response_format`` when litellm knows the model
    supports it, else asks for a JSON object; "json_schema" / "json_object" force one (a vLLM or
    llama.cpp server takes json_schema though litellm cannot know); "off" relies on the prompt.
    ``extra`` is passed to every ``litellm.completion`` call unchanged.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        extra: dict[str, Any] | None = None,
        json_mode: str = "auto",
    ) -> None:
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise InvalidParams("timeout must be > 0, max_retries and backoff >= 0")
        if json_mode not in _JSON_MODES:
            raise InvalidParams(f"json_mode must be one of {_JSON_MODES}")
        self.model_id = model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._extra = dict(extra or {})
        self._json_mode = json_mode

    def generate(self, prompt: Prompt, params: GenerationParams | None = None) -> str:
        """The whole reply. Usage: ``engine.generate("Say hi", GenerationParams(max_tokens=8))``."""
        return self._complete(_messages(prompt), params or GenerationParams())

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]:
        """Reply text pieces as they arrive. Usage: ``for piece in engine.stream("hi"): ...``.

        Only the connection is retried: once a piece has been yielded a failure is final.
        """
        request = self._request(_messages(prompt), params or GenerationParams(), stream=True)
        chunks = self._with_retries(lambda: _litellm().completion(**request))
        try:
            for chunk in chunks:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    yield piece
        except Exception as exc:
            if not _is_remote_error(exc):
                raise
            raise _translate(exc) from exc
        finally:
            _close_stream(chunks)

    def complete_json(
        self, messages: Sequence[Message], schema: dict[str, Any], params: GenerationParams | None = None
    ) -> dict[str, Any]:
        """A dict that validates against ``schema``, after at most one repair retry.

        Usage: ``engine.complete_json(messages, {"type": "object", "required": ["name"], ...})``.
        Raises StructuredOutputError when the repaired reply is still invalid.
        """
        params = params or GenerationParams()
        request = [{"role": "system", "content": json_instruction(schema)}, *messages]
        response_format = self._response_format(schema)
        text = self._complete(request, params, response_format=response_format)
        try:
            return _parse(text, schema)
        except StructuredOutputError as first_error:
            retry = repair_messages(request, text, first_error, schema=schema)
            text = self._complete(retry, params, response_format=response_format)
        try:
            return _parse(text, schema)
        except StructuredOutputError as exc:
            raise StructuredOutputError(f"still invalid after one repair retry: {exc}") from exc

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens the provider will count for ``prompt`` (litellm's tokenizer for the model,
        tiktoken's cl100k when it has none). Usage: ``engine.count_tokens("hello")``."""
        try:
            if isinstance(prompt, str):
                return int(_litellm().token_counter(model=self.model_id, text=prompt))
            return int(_litellm().token_counter(model=self.model_id, messages=list(prompt)))
        except Exception:  # noqa: BLE001 - an estimate beats failing a budget check
            return _estimate_tokens(prompt)

    # -- internals ----------------------------------------------------------------------------

    def _complete(
        self, messages: list[Message], params: GenerationParams, response_format: dict | None = None
    ) -> str:
        request = self._request(messages, params, stream=False, response_format=response_format)
        response = self._with_retries(lambda: _litellm().completion(**request))
        return response.choices[0].message.content or ""

    def _request(
        self, messages: list[Message], params: GenerationParams, *, stream: bool, response_format: dict | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "stream": stream,
            "timeout": self._timeout,
            # Our loop owns retries; neither litellm nor the OpenAI client may retry underneath it.
            "num_retries": 0,
            "max_retries": 0,
            # top_k and repetition_penalty are not OpenAI parameters: drop where unsupported.
            "drop_params": True,
            **_sampling(params),
        }
        if self._api_base is not None:
            request["api_base"] = self._api_base
        if self._api_key is not None:
            request["api_key"] = self._api_key
        if response_format is not None:
            request["response_format"] = response_format
        request.update(self._extra)
        return request

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        mode = self._json_mode
        if mode == "auto":
            mode = "json_schema" if self._supports_schema() else "json_object"
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
        return {"type": "json_object"} if mode == "json_object" else None

    def _supports_schema(self) -> bool:
        try:
            return bool(_litellm().supports_response_schema(model=self.model_id))
        except Exception:  # noqa: BLE001 - unknown models are simply "not known to support it"
            return False

    def _with_retries(self, call: Callable[[], _T]) -> _T:
        for attempt in range(self._max_retries + 1):
            try:
                return call()
            except Exception as exc:
                if not _is_remote_error(exc):
                    raise  # a bug of ours or the caller's is not an unavailable engine
                if not _is_transient(exc) or attempt == self._max_retries:
                    raise _translate(exc) from exc
            time.sleep(min(self._backoff * 2**attempt, _MAX_BACKOFF_S))
        raise AssertionError("unreachable")


def _litellm() -> Any:
    import litellm

    litellm.suppress_debug_info = True  # its "Give Feedback" banner on every exception is noise
    return litellm


def _close_stream(chunks: Any) -> None:
    # A caller that stops iterating (cancellation) must not leave the HTTP response open until
    # garbage collection; litellm's sync wrapper has no close of its own, its inner stream does.
    inner = getattr(chunks, "completion_stream", None)
    close = getattr(inner, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - closing is best effort; the reply is already over
            pass


def _messages(prompt: Prompt) -> list[Message]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(message) for message in prompt]


def _sampling(params: GenerationParams) -> dict[str, Any]:
    options: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature}
    if params.top_p < 1.0:
        options["top_p"] = params.top_p
    if params.top_k > 0:
        options["top_k"] = params.top_k
    if params.repetition_penalty != 1.0:
        options["repetition_penalty"] = params.repetition_penalty
    if params.seed is not None:
        options["seed"] = params.seed
    if params.stop:
        options["stop"] = list(params.stop)
    return options


def _parse(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    return parse_and_validate(extract_json(text) or text, schema)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _is_transient(exc: BaseException) -> bool:
    litellm = _litellm()
    if isinstance(exc, (litellm.Timeout, litellm.APIConnectionError)):
        return True
    status = _status(exc)
    return status is not None and (status in _TRANSIENT_STATUS or status >= 500)


def _is_remote_error(exc: BaseException) -> bool:
    import httpx
    import openai

    # litellm's exceptions subclass the OpenAI client's; raw httpx errors can leak from streams.
    return isinstance(exc, (openai.OpenAIError, httpx.HTTPError))


def _translate(exc: BaseException) -> InferenceError:
    """The one place where litellm's (and the OpenAI client's) errors become ours."""
    if isinstance(exc, InferenceError):
        return exc
    litellm = _litellm()
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ContextOverflow(detail)
    if _is_transient(exc):
        return EngineUnavailable(f"remote engine unavailable: {detail}")
    if _status(exc) in (400, 422):
        return InvalidParams(f"remote engine rejected the request: {detail}")
    return EngineUnavailable(f"remote engine refused the request: {detail}")


def _estimate_tokens(prompt: Prompt) -> int:
    # ~4 characters per token for English BPE vocabularies, plus a few per chat message.
    if isinstance(prompt, str):
        return max(1, len(prompt) // 4)
    return sum(4 + len(m.get("content", "")) // 4 for m in prompt)
