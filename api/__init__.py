"""api: composition and faces. ``from api import Engram`` is the embedded entry point.

Import-light: the SDK (``api.client``, later) must not pull in torch, faiss or sqlalchemy, so
``Engram`` is resolved lazily.
"""
from typing import Any

__all__ = ["Engram"]


def __getattr__(name: str) -> Any:
    if name == "Engram":
        from api.engram import Engram

        return Engram
    raise AttributeError(name)
