"""Total-spin sectors, their degeneracies (eq. 6) and the parity blocks (host side, exact).

``H`` (eq. 4) commutes with ``S²`` (eq. 5): every sector ``S`` (``S = N/2, N/2 - 1, ... >= 0``)
appears ``g(S) = C(N, N/2-S) - C(N, N/2-S-1)`` times, and the reflection ``m → -m`` splits it
into two parity *blocks* of dimension ``≈ S + 1`` when the model is Z₂-symmetric (a model without
that symmetry keeps each sector whole, one block of dimension ``2S + 1``).  :func:`layout` numbers
the levels of all blocks flat, block after block.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from .checks import MAX_BYTES, check_max_bytes, check_N, guard

#: Bytes per sector of :func:`sectors` (three int64/float64 arrays and extended-precision
#: temporaries).
_BYTES_PER_SECTOR = 96

__all__ = ["Sectors", "sectors", "degeneracy", "Layout", "layout", "block_of", "pack"]


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


def sectors(N: int, *, max_bytes: int | None = MAX_BYTES) -> Sectors:
    """Total-spin sectors ``S = N/2, N/2 - 1, ...`` of ``N`` spins ½ with ``ln g(S)`` (eq. 6).

    Args:
        N: number of spins, an integer ``>= 1``.
        max_bytes: refuse (``ValueError`` with the estimate, before allocating) beyond this much
            memory (about 100 bytes per sector).
    Returns:
        :class:`Sectors` (NumPy arrays of length ``floor(N/2) + 1``).
    Raises:
        ValueError: ``N`` not an integer ``>= 1``, or too much memory.
    """
    N = check_N(N)
    check_max_bytes(max_bytes)
    guard(N, _BYTES_PER_SECTOR * (N // 2 + 1), max_bytes, "the table of sectors")
    two_S = np.arange(N, -1, -2, dtype=np.int64)
    j = (N - two_S) // 2  # number of flipped spins, N/2 - S
    # ln C(N, j) as a running sum of ln((N - i + 1)/i) in extended precision: ~1 ulp of the
    # result (lgamma differences lose ~1e-11 absolute at N = 10^4)
    ld = np.longdouble
    steps = np.log((ld(N) - j[1:] + 1) / j[1:].astype(ld)) if j.size > 1 else np.zeros(0, ld)
    ln_c = np.concatenate([np.zeros(1, ld), np.cumsum(steps)])
    log_g = ln_c + np.log((two_S + 1).astype(ld)) - np.log((N - j + 1).astype(ld))
    return Sectors(two_S=two_S, dim=two_S + 1, log_g=log_g.astype(np.float64))


def degeneracy(N: int, two_S: int, *, max_bytes: int | None = MAX_BYTES) -> int:
    """Exact ``g(S) = C(N, N/2-S) - C(N, N/2-S-1)`` (eq. 6) as a Python integer.

    Args:
        N: number of spins, an integer ``>= 1``.
        two_S: ``2S``, an integer in ``{N, N-2, ..., N mod 2}``.
        max_bytes: refuse beyond this size of the result (``g`` has up to ``N`` bits).
    Raises:
        ValueError: ``N`` or ``two_S`` out of range, or too large a result.
    """
    N = check_N(N)
    check_max_bytes(max_bytes)
    ok = isinstance(two_S, int | np.integer) and not isinstance(two_S, bool)
    if not ok and isinstance(two_S, float | np.floating) and float(two_S).is_integer():
        ok, two_S = True, int(two_S)
    if not (ok and 0 <= two_S <= N and (N - two_S) % 2 == 0):
        raise ValueError(f"two_S must be in {{N, N-2, ..., N mod 2}} for N = {N}; got {two_S!r}")
    guard(N, N // 8 + 1, max_bytes, "the exact degeneracy")
    j = (N - two_S) // 2
    return math.comb(N, j) - (math.comb(N, j - 1) if j >= 1 else 0)


# =========================================================================== layout (host, cached)


class Layout(NamedTuple):
    """The blocks of all sectors and the flat level index (host-side NumPy, per ``N``).

    Z₂-symmetric models (``z2``): two parity blocks per sector (basis ``(|m⟩ ± |-m⟩)/√2``, rows
    ``m >= 0``), even parity first; otherwise one block per sector, the whole sector (rows
    ``m = S, ..., -S``).  Blocks are ordered by ``S`` decreasing; levels are flat, block after
    block, ascending inside a block.  ``start[b]`` is the flat index of block ``b``'s lowest level
    (no per-level tables: ``N = 10^4`` has 2.5·10^7 levels; see :func:`block_of`).
    """

    N: int
    z2: bool
    two_S: np.ndarray  # per block
    parity: np.ndarray  # +1 (symmetric) / -1; 0 for a whole sector (no Z2 symmetry)
    dim: np.ndarray
    start: np.ndarray
    log_g: np.ndarray
    m_lo: np.ndarray  # lowest row m of the block: 0, 1 or ½ (z2), -S (whole sector)
    n_levels: int


@functools.lru_cache(maxsize=8)
def layout(N: int, z2: bool = True) -> Layout:
    """The blocks of ``N`` spins (:class:`Layout`), built in one vectorized pass and cached."""
    sec = sectors(N, max_bytes=None)  # the callers guard the memory of every block
    if not z2:
        two_S, log_g, dim = sec.two_S, sec.log_g, sec.dim
        parity = np.zeros(two_S.size, np.int64)
        low = -two_S / 2.0
    else:
        two_S, log_g = np.repeat(sec.two_S, 2), np.repeat(sec.log_g, 2)
        parity = np.tile(np.array([1, -1], np.int64), sec.two_S.size)
        if N % 2 == 0:  # integer S: S + 1 rows m = 0..S (even), S rows m = 1..S (odd)
            dim = two_S // 2 + (parity > 0)
            low = np.where(parity > 0, 0.0, 1.0)
        else:  # half-integer S: S + ½ rows m = ½..S in both
            dim = (two_S + 1) // 2
            low = np.full(two_S.size, 0.5)
        keep = dim > 0  # the odd block of S = 0 is empty
        two_S, log_g, parity, dim, low = (a[keep] for a in (two_S, log_g, parity, dim, low))
    dim = dim.astype(np.int64)
    start = np.concatenate([[0], np.cumsum(dim)[:-1]]).astype(np.int64)
    return Layout(N=N, z2=bool(z2), two_S=two_S.astype(np.int64), parity=parity, dim=dim,
                  start=start, log_g=log_g.astype(np.float64), m_lo=low,
                  n_levels=int(dim.sum()))


def block_of(lay: Layout, levels):
    """Block of each flat level index."""
    return np.searchsorted(lay.start, levels, side="right") - 1


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

