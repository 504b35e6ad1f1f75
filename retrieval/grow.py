"""A numpy array with amortised O(1) append, of scalars or of fixed-width rows (the catalog's
columns, the vector matrix).

Capacity doubles when full, and a load keeps as much room again, so that the first append after
a load does not copy everything (at 100k vectors ~0.1-0.4 s, inside someone's request). Unused
capacity is zeros from ``np.zeros``, whose pages are never faulted in: it costs address space,
not memory.
"""
from __future__ import annotations

import numpy as np


class GrowArray:
    """Usage: ``a = GrowArray(np.int32)``; ``a.append(3)``; ``m = GrowArray(np.float32, width=384)``;
    ``m.extend(vectors)``; ``a.view`` is the filled part (a C-contiguous view)."""

    def __init__(self, dtype: type | np.dtype, capacity: int = 1024, width: int | None = None) -> None:
        self._row = () if width is None else (width,)
        self._min_capacity = capacity
        self._data = np.zeros((capacity, *self._row), dtype=dtype)
        self.size = 0

    def append(self, value: object) -> None:
        self._reserve(self.size + 1)
        self._data[self.size] = value
        self.size += 1

    def extend(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        self._reserve(end)
        self._data[self.size : end] = values
        self.size = end

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.size]

    @property
    def capacity(self) -> int:
        """Rows held before the next append copies everything."""
        return len(self._data)

    def load(self, values: np.ndarray) -> None:
        """Replace the contents with a copy of ``values``, with as much room again (at least the
        capacity it was made with: the catalog loads one small list per scope value, and a floor
        of 1,024 rows each cost 8 kB a session, ~800 MB for 100k sessions)."""
        values = np.asarray(values, dtype=self._data.dtype)
        self._data = np.zeros((max(2 * len(values), self._min_capacity), *self._row), dtype=self._data.dtype)
        self._data[: len(values)] = values
        self.size = len(values)

    def _reserve(self, size: int) -> None:
        if size > len(self._data):
            grown = np.zeros((max(size, 2 * len(self._data), 1), *self._row), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
