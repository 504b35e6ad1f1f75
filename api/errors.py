"""Errors of the service layer and the one table that maps every error code to an HTTP status.

Import-light (only ``memory.errors``): the SDK uses the same table to turn a JSON error body back
into the exception class the embedded API would have raised.

    EngramError (memory.errors)
     +-- InvalidInput ...        400 (content_too_large 413)
     +-- NotFound                404
     +-- Conflict                409
     +-- StorageError            503
     +-- ServiceError            raised by the service itself
          +-- Unauthorized       401 no key, or an unknown/revoked key
          +-- Forbidden          403 a tenant key on an admin route, or the reverse
          +-- PayloadTooLarge    413 body over the size limit, batch over the batch limit
          +-- ValidationFailed   422 the request does not have the documented shape
          +-- RateLimited        429 the key made more requests than ENGRAM_RATE_LIMIT allows
          +-- NotReady           503 the embedder is still loading
          +-- InternalError      500 a bug; the body never carries a stack trace
          +-- ConnectionFailed   (SDK) the server could not be reached
"""
from __future__ import annotations

from memory import errors as m


class ServiceError(m.EngramError):
    """Base of errors raised by the REST layer (not the memory engine)."""

    code = "service_error"
    status = 500


class Unauthorized(ServiceError):
    code, status = "unauthorized", 401


class Forbidden(ServiceError):
    code, status = "forbidden", 403


class PayloadTooLarge(ServiceError):
    code, status = "payload_too_large", 413


class ValidationFailed(ServiceError, ValueError):
    code, status = "validation_error", 422


class RateLimited(ServiceError):
    """Over the per-key rate limit; ``retry_after``: seconds until the next request would pass."""

    code, status = "rate_limited", 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReady(ServiceError):
    code, status = "not_ready", 503


class InternalError(ServiceError):
    code, status = "internal", 500


class LLMUnavailable(ServiceError):
    """No language model is configured, or the configured one cannot be reached."""

    code, status = "llm_unavailable", 503


class LLMOutputInvalid(ServiceError):
    """The model's answer could not be made to fit the requested JSON schema."""

    code, status = "llm_output_invalid", 502


class ConnectionFailed(ServiceError):
    """Raised by the SDK only: the server could not be reached or the connection broke."""

    code, status = "connection_failed", 0


_ENGINE_STATUS: dict[type[m.EngramError], int] = {
    m.ContentTooLarge: 413,
    m.InvalidInput: 400,
    m.NotFound: 404,
    m.Conflict: 409,
    m.StorageError: 503,
}
_CLASSES: list[type[m.EngramError]] = [
    m.InvalidInput, m.ScopeRequired, m.EmptyContent, m.ContentTooLarge, m.InvalidFilter, m.InvalidTimestamp,
    m.NotFound, m.Conflict, m.StorageError,
    Unauthorized, Forbidden, PayloadTooLarge, ValidationFailed, RateLimited, NotReady, InternalError, LLMUnavailable,
    LLMOutputInvalid,
]
ERROR_CLASSES: dict[str, type[m.EngramError]] = {cls.code: cls for cls in _CLASSES}


def status_of(exc: m.EngramError) -> int:
    """The HTTP status of an Engram error (most specific class first, via the MRO)."""
    if isinstance(exc, ServiceError):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in _ENGINE_STATUS:
            return _ENGINE_STATUS[cls]
    return 500


def error_for(code: str, status: int, message: str) -> m.EngramError:
    """The exception a client raises for a JSON error body ``{code, message}``."""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        cls = {401: Unauthorized, 403: Forbidden, 404: m.NotFound, 409: m.Conflict, 413: PayloadTooLarge,
               422: ValidationFailed, 429: RateLimited, 503: NotReady}.get(status, ServiceError if status < 500 else InternalError)
    exc = cls(message)
    if isinstance(exc, ServiceError):
        exc.status = status
    return exc
