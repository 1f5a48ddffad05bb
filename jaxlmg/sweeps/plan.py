"""How a sweep's grid is cut into chunks, and the padded inputs of one chunk (no JAX, no disk)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["ChunkPlan", "chunk_inputs", "padded_size", "plan_chunks"]


class ChunkPlan(NamedTuple):
    """How a grid is cut into chunks.

    Attributes:
        shape: grid shape.
        block: shape of one chunk (= the Zarr chunk shape); chunks at the upper edge of the
            split axis may be smaller (they are padded for the computation).
        counts: number of chunks along each axis (``ceil(shape / block)``).
    """

    shape: tuple[int, ...]
    block: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def n_chunks(self) -> int:
        return math.prod(self.counts)

    @property
    def block_points(self) -> int:
        return math.prod(self.block)

    def region(self, i: int) -> tuple[slice, ...]:
        """Index region of chunk ``i`` (C order over ``counts``)."""
        idx = np.unravel_index(i, self.counts)
        return tuple(slice(j * b, min((j + 1) * b, n))
                     for j, b, n in zip(idx, self.block, self.shape, strict=True))

    def points(self, i: int) -> int:
        return math.prod(s.stop - s.start for s in self.region(i))


def plan_chunks(shape, chunk_size: int) -> ChunkPlan:
    """Cut ``shape`` into C-order blocks ``(1, ..., 1, b, n_{k+1}, ...)`` of ``<= chunk_size``
    points.

    ``k`` is the first axis such that the trailing axes ``k+1, ...`` hold at most ``chunk_size``
    points (the last axis is cut when it alone is larger), and ``b`` is as large as allowed.
    """
    shape = tuple(int(n) for n in shape)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    d = len(shape)
    k = d - 1
    while k > 0 and math.prod(shape[k:]) <= chunk_size:
        k -= 1
    trailing = math.prod(shape[k + 1:])
    b = max(1, min(shape[k], chunk_size // trailing))
    block = (1,) * k + (b,) + shape[k + 1:]
    counts = tuple(-(-n // c) for n, c in zip(shape, block, strict=True))
    return ChunkPlan(shape, block, counts)


def padded_size(points: int, n_devices: int) -> int:
    """Points per padded chunk: a multiple of ``n_devices`` whose per-device part is rounded up
    to 4 significant bits (``m * 2**e``, ``8 <= m < 16``; at most 1/8 wasted), so that specs with
    similar chunk sizes share one compiled executable."""
    per = -(-points // n_devices)
    e = max(0, per.bit_length() - 4)
    per = -(-per >> e) << e if e else per
    return per * n_devices


def chunk_inputs(coords: list[np.ndarray], region, padded: int, dtype) -> list[np.ndarray]:
    """Flattened (C order) grid points of ``region``, padded with copies of the last point."""
    sub = [c[r] for c, r in zip(coords, region, strict=True)]
    mesh = np.meshgrid(*sub, indexing="ij")
    out = []
    for m in mesh:
        flat = m.reshape(-1).astype(dtype)
        out.append(np.pad(flat, (0, padded - flat.size), mode="edge"))
    return out
