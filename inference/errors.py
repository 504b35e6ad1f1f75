"""Errors raised by the inference package.

inference/ imports nothing of Engram's other packages, so it owns a small tree of its own;
api/ translates it into the service's error codes at one boundary.

    InferenceError
     +-- InvalidParams        bad sampling parameters or prompt from the caller
     +-- ModelLoadError       a GGUF file that cannot be read or is not a supported architecture
     +-- ContextOverflow      prompt + max_tokens exceed the model's context
     +-- StructuredOutputError  output that does not parse or validate against the schema
     +-- EngineUnavailable    a remote engine that timed out or failed after its retries
     +-- GenerationCancelled  generation stopped by the caller
"""
from __future__ import annotations


class InferenceError(Exception):
    """Base of every error raised by inference/."""


class InvalidParams(InferenceError):
    """The caller gave parameters or a prompt the engine cannot use."""


class ModelLoadError(InferenceError):
    """A model file is missing, unreadable or of an unsupported architecture."""


class ContextOverflow(InferenceError):
    """The prompt and the tokens asked for do not fit in the model's context."""


class StructuredOutputError(InferenceError):
    """Generated text failed to parse or validate against the requested JSON schema."""


class EngineUnavailable(InferenceError):
    """A remote engine failed after its timeout and retries."""


class GenerationCancelled(InferenceError):
    """Generation was cancelled by the caller."""
