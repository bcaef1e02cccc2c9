"""The filter shape, named once: square ``k x k`` kernels, ``k`` odd and at least 3, ``d = k²``
values per filter (the study: 3x3, 9 values).

Every other module derives what it needs from a :class:`FilterShape` or from the width ``d`` of
the arrays it is handed (a row of the filter array, a PCA mean, a column of per-layer sums): the
bytes of a stored row, the pixel and component names of the tables (``w0..w{d-1}``,
``c0..c{d-1}``), the tiles of the figures (``k x k``). A DB's shape is read from its filter
dataset (:func:`FilterShape.of_dataset`): ``(N, k, k)`` as published, or ``(N, k²)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The study's kernel side: 3x3 filters.
STUDY_SIDE = 3


@dataclass(frozen=True)
class FilterShape:
    """A square ``side x side`` filter (``side`` odd, >= 3).

    Examples
    --------
    >>> s = FilterShape.parse("5x5")
    >>> s.side, s.size, s.label, s.pixels[:3]
    (5, 25, '5x5', ['w0', 'w1', 'w2'])
    >>> FilterShape.of_width(9).label
    '3x3'
    """

    side: int

    def __post_init__(self):
        k = self.side
        if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
            raise ValueError(f"kernel size {k!r}: expected an odd number >= 3 (3x3, 5x5, 7x7, ...)")

    @property
    def size(self) -> int:
        """Values per filter, ``d = side²``."""
        return self.side * self.side

    @property
    def label(self) -> str:
        """``"{k}x{k}"``."""
        return f"{self.side}x{self.side}"

    @property
    def pixels(self) -> list[str]:
        """Column names of the filter values in row-major pixel order: ``w0 .. w{d-1}``."""
        return [f"w{i}" for i in range(self.size)]

    @property
    def components(self) -> list[str]:
        """Column names of the PCA coefficients: ``c0 .. c{d-1}``."""
        return [f"c{i}" for i in range(self.size)]

    def row_bytes(self, itemsize: int) -> int:
        """Bytes of one stored filter of values of ``itemsize`` bytes."""
        return self.size * int(itemsize)

    @classmethod
    def parse(cls, text: str) -> FilterShape:
        """A shape from ``"KxK"`` (e.g. ``"5x5"``); one clear ValueError otherwise."""
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
        if not m:
            raise ValueError(f"kernel size {text!r}: expected KxK with K odd and >= 3 (3x3, 5x5, 7x7, ...)")
        a, b = int(m.group(1)), int(m.group(2))
        if a != b:
            raise ValueError(f"kernel size {text!r}: only square kernels are analysed (expected KxK, K odd >= 3)")
        if a < 3 or a % 2 == 0:
            raise ValueError(f"kernel size {text!r}: expected K odd and >= 3 (3x3, 5x5, 7x7, ...)")
        return cls(a)

    @classmethod
    def of_width(cls, d: int) -> FilterShape:
        """The shape whose filters have ``d`` values (``d`` the square of an odd number >= 3)."""
        d = int(d)
        k = math.isqrt(d) if d > 0 else 0
        if k * k != d or k < 3 or k % 2 == 0:
            raise ValueError(f"{d} values per filter: expected k² values with k odd and >= 3 (9, 25, 49, ...)")
        return cls(k)

    @classmethod
    def of_dataset(cls, shape: tuple) -> FilterShape:
        """The shape of a filter dataset of array shape ``(N, k, k)`` or ``(N, k²)``.

        Raises
        ------
        ValueError
            For any other array shape (the message names the shape and what is expected).
        """
        shape = tuple(int(v) for v in shape)
        want = "(N, k, k) or (N, k*k) with k odd and >= 3, e.g. (N, 3, 3) or (N, 9)"
        try:
            if len(shape) == 3 and shape[1] == shape[2]:
                return cls(shape[1])
            if len(shape) == 2:
                return cls.of_width(shape[1])
        except ValueError:
            pass
        raise ValueError(f"shape {shape}, expected {want}")


#: The study's shape (3x3).
STUDY = FilterShape(STUDY_SIDE)


def width_of(arr, axis: int = -1) -> int:
    """The filter width ``d`` of an array whose axis ``axis`` runs over the values of a filter."""
    return int(arr.shape[axis])
