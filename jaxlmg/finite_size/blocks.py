"""Total-spin sectors, their degeneracies (eq. 6) and the parity blocks (host side, exact).

``H`` (eq. 4) commutes with ``S²`` (eq. 5): every sector ``S`` (``S = N/2, N/2 - 1, ... >= 0``)
appears ``g(S) = C(N, N/2-S) - C(N, N/2-S-1)`` times, and the reflection ``m → -m`` splits it
into two parity *blocks* of dimension ``≈ S + 1``.  :func:`layout` numbers the levels of all
blocks flat, block after block.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from .checks import check_N

__all__ = ["Sectors", "sectors", "degeneracy", "Layout", "layout", "block_of", "m_lo", "pack"]


class Sectors(NamedTuple):
    """The total-spin sectors of ``N`` spins ½, ``S`` decreasing (eq. 6).

    Attributes:
        two_S: ``2S`` per sector, int64, ``N, N-2, ..., N mod 2``.
        dim: ``2S + 1``, the dimension of the sector.
        log_g: ``ln g(S)``, float64, with ``g(S) = C(N, N/2-S) - C(N, N/2-S-1)`` (eq. 6)
            ``= C(N, N/2-S) (2S+1)/(N/2+S+1)``.
    """

    two_S: np.ndarray
    dim: np.ndarray
    log_g: np.ndarray



def sectors(N: int) -> Sectors:
    """Total-spin sectors ``S = N/2, N/2 - 1, ...`` of ``N`` spins ½ with ``ln g(S)`` (eq. 6).

    Args:
        N: number of spins, an integer ``>= 1``.
    Returns:
        :class:`Sectors` (NumPy arrays of length ``floor(N/2) + 1``).
    """
    N = check_N(N)
    two_S = np.arange(N, -1, -2, dtype=np.int64)
    j = (N - two_S) // 2  # number of flipped spins, N/2 - S
    # ln C(N, j) as a running sum of ln((N - i + 1)/i) in extended precision: ~1 ulp of the
    # result (lgamma differences lose ~1e-11 absolute at N = 10^4)
    ld = np.longdouble
    steps = np.log((ld(N) - j[1:] + 1) / j[1:].astype(ld)) if j.size > 1 else np.zeros(0, ld)
    ln_c = np.concatenate([np.zeros(1, ld), np.cumsum(steps)])
    log_g = ln_c + np.log((two_S + 1).astype(ld)) - np.log((N - j + 1).astype(ld))
    return Sectors(two_S=two_S, dim=two_S + 1, log_g=log_g.astype(np.float64))


def degeneracy(N: int, two_S: int) -> int:
    """Exact ``g(S)`` (eq. 6) as a Python integer; ``two_S = 2S``."""
    N = check_N(N)
    if not (0 <= two_S <= N and (N - two_S) % 2 == 0):
        raise ValueError(f"two_S must be in {{N, N-2, ..., N mod 2}} for N = {N}; got {two_S!r}")
    j = (N - two_S) // 2
    return math.comb(N, j) - (math.comb(N, j - 1) if j >= 1 else 0)


# =========================================================================== layout (host, cached)


class Layout(NamedTuple):
    """Parity blocks of all sectors and the flat level index (host-side NumPy, per ``N``).

    Blocks are ordered by ``S`` decreasing, even parity first; levels are flat, block after block,
    ascending inside a block.  ``start[b]`` is the flat index of block ``b``'s lowest level (no
    per-level tables: ``N = 10^4`` has 2.5·10^7 levels; see :func:`block_of`).
    """

    N: int
    two_S: np.ndarray  # per block
    parity: np.ndarray  # +1 (symmetric) / -1
    dim: np.ndarray
    start: np.ndarray
    log_g: np.ndarray
    n_levels: int


@functools.lru_cache(maxsize=8)
def layout(N: int) -> Layout:
    sec = sectors(N)
    rows = []
    for tS, lg in zip(sec.two_S, sec.log_g, strict=True):
        if N % 2 == 0:
            S = tS // 2
            rows.append((tS, +1, S + 1, lg))
            if S >= 1:
                rows.append((tS, -1, S, lg))
        else:
            d = (tS + 1) // 2
            rows.append((tS, +1, d, lg))
            rows.append((tS, -1, d, lg))
    two_S, parity, dim, log_g = (np.array(c) for c in zip(*rows, strict=True))
    start = np.concatenate([[0], np.cumsum(dim)[:-1]]).astype(np.int64)
    n_levels = int(dim.sum())
    return Layout(N=N, two_S=two_S.astype(np.int64), parity=parity.astype(np.int64),
                   dim=dim.astype(np.int64), start=start, log_g=log_g.astype(np.float64),
                   n_levels=n_levels)


def block_of(lay: Layout, levels):
    """Block of each flat level index."""
    return np.searchsorted(lay.start, levels, side="right") - 1


def m_lo(N: int, parity):
    """Smallest ``m >= 0`` in a block: 0 (even, integer S), 1 (odd, integer S), ½ (half-integer)."""
    if N % 2:
        return np.full(np.shape(parity), 0.5)
    return np.where(np.asarray(parity) > 0, 0.0, 1.0)



def pack(lay: Layout, blocks, counts, L: int) -> list[np.ndarray]:
    """Chunks of whole blocks: the lowest ``counts[i]`` levels of ``blocks[i]``, greedily packed."""
    out, cur, size = [], [], 0
    for b, c in zip(blocks, counts, strict=True):
        if c <= 0:
            continue
        if size + c > L and cur:
            out.append(np.concatenate(cur))
            cur, size = [], 0
        cur.append(lay.start[b] + np.arange(c))
        size += c
    if cur:
        out.append(np.concatenate(cur))
    return out

