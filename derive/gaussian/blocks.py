"""Blocks of rows and one BLAS thread: how the float64 evaluators walk large arrays.

Elementwise numpy code on a 1000 × 1000 array makes a fresh 8 MB temporary per operation, and
on this kind of machine allocating and faulting in those pages costs about as much as the
arithmetic.  Evaluated by blocks of rows of about :data:`BLOCK` elements, the temporaries are
reused from the heap (and stay in cache).

>>> row_blocks((5, 60000))
[slice(0, 2, None), slice(2, 4, None), slice(4, 6, None)]
"""

from __future__ import annotations

import functools
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


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas(function):
    """Run `function` with BLAS limited to one thread for the duration of the call (threadpoolctl,
    restored afterwards; nothing changes for other code).

    The matrix products of the tables (16 x 20 per patch), of the Hermite projections (a few
    hundred rows per block) and of small simulated networks cannot be sped up by threads, and on a
    loaded machine the threads spin against each other: a cold phase diagram took 20 s with two
    BLAS threads and 1.8 s with one."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _controller().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper
