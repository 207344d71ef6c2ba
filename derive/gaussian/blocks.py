"""Blocks of rows: how the float64 evaluators walk large arrays.

Elementwise numpy code on a 1000 × 1000 array makes a fresh 8 MB temporary per operation, and
on this kind of machine allocating and faulting in those pages costs about as much as the
arithmetic.  Evaluated by blocks of rows of about :data:`BLOCK` elements, the temporaries are
reused from the heap (and stay in cache).

>>> row_blocks((5, 60000))
[slice(0, 2, None), slice(2, 4, None), slice(4, 6, None)]
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 1 << 17
"""Elements per block (1 MiB of float64: measured best for the 1000 × 1000 Grams of ReLU)."""


def row_blocks(shape: tuple) -> list:
    """Slices of the first axis of `shape`, each holding about :data:`BLOCK` elements."""
    if not shape:
        return [Ellipsis]
    rows = max(1, BLOCK // math.prod(shape[1:]))
    return [slice(start, start + rows) for start in range(0, shape[0], rows)]


def rows_of(array: np.ndarray, rows, ndim: int) -> np.ndarray:
    """The block `rows` of an array broadcast to `ndim` dimensions (all of it when the array
    does not extend along the first axis: length 1 there, or fewer dimensions)."""
    return array[rows] if array.ndim == ndim and array.shape[0] > 1 else array
