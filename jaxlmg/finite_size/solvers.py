"""Exact finite-N spectrum and thermodynamics of the extended LMG model (eqs. 1, 4-10).

``H = -(4J/N)(Sᶻ)² - 2h Sˣ - (16K/N³)(Sᶻ)⁴`` (eq. 4) commutes with the total spin ``S²`` (eq. 5).
Every sector ``S`` (``S = N/2, N/2 - 1, ... >= 0``; half-integers for odd ``N``) appears
``g(S) = C(N, N/2-S) - C(N, N/2-S-1)`` times (eq. 6), and ``H`` restricted to it is a real
symmetric tridiagonal matrix in the ``Sᶻ = m`` basis,

    ``⟨m|H|m⟩ = -(4J/N) m² - (16K/N³) m⁴``,   ``⟨m+1|H|m⟩ = -h sqrt(S(S+1) - m(m+1))``.

The reflection ``m → -m`` commutes with it, so each sector splits into two parity *blocks* (basis
``(|m⟩ ± |-m⟩)/√2``) of dimension ``≈ S + 1``; the partition function (eq. 9) and the density of
states (eq. 10) are sums over the levels of all blocks, each level weighted by ``g(S)``.  All
weights are handled as ``ln g(S)`` (``g`` overflows float64 for ``N`` of a few thousand).

Eigenvalue algorithm (all levels of all blocks: ``O(N³/12)`` row operations per pass over the
spectrum, vectorized over levels; no dense matrices, no eigenvectors):

* **One kernel** (:func:`_sweep_chunk`): for a chunk of ``L`` *lanes* (a block and a trial
  energy ``x`` each), the three-term recurrence of the characteristic polynomial
  ``p(x) = det(T - x)`` over the rows of the block, with ``p'`` and ``p''`` (or ``p'`` only),
  divided by its largest entry every 8 rows (no divisions in the rows).  It gives the Sturm
  count (levels below ``x``: sign changes of ``p``), ``G = p'/p = Σ 1/(x - λ)`` and
  ``H = Σ 1/(x - λ)²``.  All device work is on chunks of fixed size (one compilation per
  kernel); the host dispatches chunks asynchronously.
* **Laguerre's method with Sturm safeguards.**  For a polynomial with real roots, Laguerre's two
  points from ``x`` lie between ``x`` and the neighbouring roots and converge to them
  cubically and monotonically; the count says which root a lane is converging to, and, with the
  sign of ``G``, certifies it.
* **Multisection from scratch** (:func:`_shared_chunk`): lanes start on a grid of the block's
  spectral interval; after each sweep every point of known count (evaluated points and their
  Laguerre points) is shared among the lanes of its block, so each lane gets the tightest bracket
  known, then continues Laguerre, bisects, or moves to its rank in a bracket with several
  levels.  The few lanes left after ~10 sweeps finish in compact batches of their own
  (:func:`_local_chunk`).
* **Continuation in S** (:func:`_solve_full`): level ``k`` of a block is a smooth function of
  ``S``, so the blocks on a coarse grid of ``S`` (every 64th sector, plus the small sectors) are
  solved from scratch and the others, in a dyadic refinement, start from an 8-point Lagrange
  prediction off the blocks already solved (error far below the level spacing away from
  separatrices).  One Laguerre (coarse steps) or Newton (spacing <= 4 sectors, 94% of the
  levels) sweep then certifies and polishes each level (:func:`_refine_chunk`); the ~0.5% it
  does not accept go to the lane-local solver with brackets from their accepted neighbours.
  Net cost: about 1.1 sweeps over the whole spectrum, most of them the cheaper Newton sweep.
* **Energy windows** (:func:`_solve_window`): only the levels below a cutoff, e.g. for low
  temperatures, where a rigorous bound (from certified bounds on the lowest level of every
  block, :func:`_block_bounds`) shows that the rest weighs less than ``e^-40`` of ``Z``.  This
  makes ``N = 10^4 - 2·10^4`` cheap at low ``T``.

Thermal averages of ``(Sᶻ)²`` and ``(Sᶻ)⁴`` use the per-level expectation values
``⟨m²⟩ = -∂λ/∂(4J/N)`` and ``⟨m⁴⟩ = -∂λ/∂(16K/N³)`` (Hellmann-Feynman), obtained exactly from
derivative recurrences at the converged levels: no eigenvectors are needed.

Public functions take concrete (not traced) arguments: the integer ``N`` fixes every shape and the
host drives the iterations (their number is data dependent); the kernels are jitted on
fixed-size chunks, so calls with any ``N`` (up to ``N ≈ 8000``, where a block outgrows a chunk)
reuse the same compiled code.  Results are JAX arrays (float64).
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from .._host import cpu_cores
from .._validate import check

__all__ = [
    "Sectors",
    "Spectrum",
    "FiniteSizeThermo",
    "DensityOfStates",
    "Extrapolation",
    "MeanFieldComparison",
    "sectors",
    "degeneracy",
    "spectrum",
    "free_energy",
    "entropy",
    "extrapolate",
    "mean_field_comparison",
    "estimate_bytes",
]

#: Rows between two rescalings of the recurrence, and rows per (unrolled) loop iteration: XLA
#: fuses an unrolled body into one loop over the lanes, but duplicates work beyond ~2 rows.
_R = 8
_U = 4
#: Coarse spacing (in sectors) of the blocks solved from scratch; the others are predicted.
_COARSE = 64
#: Largest lane chunk (lanes of one chunk stay in cache during a sweep).
_CHUNK = 4096
#: Lanes per chunk of the lane-local solver: most lanes need 1-2 passes (first stage, chunks of
#: ``_LOCAL_CHUNK``, at most ``_LOCAL_FIRST`` passes); the few left (clusters of nearly
#: degenerate levels, bisected) finish in small chunks that iterate only for themselves.
_LOCAL_CHUNK = 1024
_LOCAL_FIRST = 3
_STRAGGLER_CHUNK = 64
#: Default memory limit of one call (bytes), see :func:`estimate_bytes`.
MAX_BYTES = 4 * 2**30
_EPS = float(np.finfo(np.float64).eps)


# =========================================================================== sectors (host, exact)


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


def _check_N(N) -> int:
    ok = isinstance(N, int | np.integer) and not isinstance(N, bool)
    if not ok and isinstance(N, float | np.floating) and float(N).is_integer():
        ok, N = True, int(N)
    if not ok or int(N) < 1:
        raise ValueError(f"N must be an integer in [1, inf) (number of spins); got {N!r}")
    return int(N)


def sectors(N: int) -> Sectors:
    """Total-spin sectors ``S = N/2, N/2 - 1, ...`` of ``N`` spins ½ with ``ln g(S)`` (eq. 6).

    Args:
        N: number of spins, an integer ``>= 1``.
    Returns:
        :class:`Sectors` (NumPy arrays of length ``floor(N/2) + 1``).
    """
    N = _check_N(N)
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
    N = _check_N(N)
    if not (0 <= two_S <= N and (N - two_S) % 2 == 0):
        raise ValueError(f"two_S must be in {{N, N-2, ..., N mod 2}} for N = {N}; got {two_S!r}")
    j = (N - two_S) // 2
    return math.comb(N, j) - (math.comb(N, j - 1) if j >= 1 else 0)


# =========================================================================== layout (host, cached)


class _Layout(NamedTuple):
    """Parity blocks of all sectors and the flat level index (host-side NumPy, per ``N``).

    Blocks are ordered by ``S`` decreasing, even parity first; levels are flat, block after block,
    ascending inside a block.  ``start[b]`` is the flat index of block ``b``'s lowest level (no
    per-level tables: ``N = 10^4`` has 2.5·10^7 levels; see :func:`_block_of`).
    """

    N: int
    two_S: np.ndarray  # per block
    parity: np.ndarray  # +1 (symmetric) / -1
    dim: np.ndarray
    start: np.ndarray
    log_g: np.ndarray
    n_levels: int


@functools.lru_cache(maxsize=8)
def _layout(N: int) -> _Layout:
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
    return _Layout(N=N, two_S=two_S.astype(np.int64), parity=parity.astype(np.int64),
                   dim=dim.astype(np.int64), start=start, log_g=log_g.astype(np.float64),
                   n_levels=n_levels)


def _block_of(lay: _Layout, levels):
    """Block of each flat level index."""
    return np.searchsorted(lay.start, levels, side="right") - 1


def _m_lo(N: int, parity):
    """Smallest ``m >= 0`` in a block: 0 (even, integer S), 1 (odd, integer S), ½ (half-integer)."""
    if N % 2:
        return np.full(np.shape(parity), 0.5)
    return np.where(np.asarray(parity) > 0, 0.0, 1.0)


# =========================================================================== lane chunks (host)


class _Chunk(NamedTuple):
    """``L`` lanes (one trial energy each, on one block), the unit of all device work.

    Per lane (shape ``(L,)``): ``S``, ``SS1 = S(S+1)``, ``c0`` (2 for the coupling into ``m = 0``
    in the even block of an integer ``S``, else 1), ``hs`` (``∓(S+½)``: parity shift of the
    ``m = ½`` diagonal, in units of ``h``), ``m_lo`` (lowest row), ``n`` (block dimension),
    ``k`` (level index in the block), ``lev`` (flat level index; -1 for padding), ``bstart``
    (flat index of the block's level 0), ``first``/``nb`` (position of the block's first lane in
    this chunk and its number of lanes here; only meaningful when chunks hold whole blocks).
    Scalars: ``m0`` (``m`` of the first row, the largest ``S``), ``npro`` (masked rows from the
    top, where blocks of smaller ``S`` are still inactive), ``nmain`` (octets of unmasked rows
    down to ``m = 1`` or ``1½``) and ``half`` (half-integer spins); see :func:`_sweep_chunk`.
    """

    S: Any
    SS1: Any
    c0: Any
    hs: Any
    m_lo: Any
    n: Any
    k: Any
    lev: Any
    bstart: Any
    first: Any
    nb: Any
    m0: Any
    npro: Any
    nmain: Any
    half: Any


def _bucket(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def _make_chunks(lay: _Layout, levels, L: int) -> list[_Chunk]:
    """The chunks of ``L`` consecutive entries of the flat ``levels`` (``levels[0:L]``,
    ``levels[L:2L]``, ...; blocks contiguous and ``S`` decreasing inside each), built in one
    vectorized pass (NumPy: the jitted kernels take them as they are, one transfer per call)."""
    levels = np.asarray(levels, np.int64)
    n = levels.size
    assert n > 0
    nc = -(-n // L)
    # padding lanes (the end of the last chunk) copy the last real lane's block (smallest S):
    # the unmasked main rows then compute a harmless polynomial there; they are marked by
    # lev = -1 and their results are never used
    padded = np.concatenate([levels, np.full(nc * L - n, levels[-1])]).reshape(nc, L)
    real = (np.arange(nc * L) < n).reshape(nc, L)
    blk = _block_of(lay, padded)
    S = lay.two_S[blk] / 2.0
    P = lay.parity[blk]
    half = (lay.N % 2) == 1
    # the lanes of one block in one chunk: position of the first (`first`) and count (`nb`)
    grp_id = np.where(real, blk, -1)
    brk = np.ones((nc, L), bool)
    brk[:, 1:] = grp_id[:, 1:] != grp_id[:, :-1]
    ar = np.broadcast_to(np.arange(L), (nc, L))
    first = np.maximum.accumulate(np.where(brk, ar, 0), axis=1)
    nxt = np.minimum.accumulate(np.where(brk, ar, L)[:, ::-1], axis=1)[:, ::-1]
    nxt = np.concatenate([nxt[:, 1:], np.full((nc, 1), L)], axis=1)
    # rows: a masked prologue from the largest S down, unmasked main octets down to m = 1 (1½)
    mb = 1.5 if half else 1.0
    S_max, S_min = S.max(axis=1), S.min(axis=1)
    nmain = np.where(S_min >= mb, (S_min - mb + 1) // _R, 0).astype(np.int64)
    npro = np.maximum((S_max - mb + 1).astype(np.int64) - _R * nmain, 0)
    start = lay.start[blk]
    fields = dict(
        S=S, SS1=S * (S + 1), c0=np.where((not half) & (P > 0), 2.0, 1.0),
        hs=np.where(half, -P * (S + 0.5), 0.0), m_lo=_m_lo(lay.N, P),
        n=lay.dim[blk].astype(np.float64), k=np.where(real, padded - start, 0).astype(np.int32),
        lev=np.where(real, padded, -1), bstart=np.where(real, start, -1),
        first=np.where(real, first, 0).astype(np.int32),
        nb=np.where(real, nxt - first, 1).astype(np.int32))
    return [_Chunk(**{f: a[c] for f, a in fields.items()}, m0=np.float64(S_max[c]),
                   npro=np.int32(npro[c]), nmain=np.int32(nmain[c]), half=np.bool_(half))
            for c in range(nc)]


def _make_chunk(lay: _Layout, levels, L: int) -> _Chunk:
    """The chunk of the flat ``levels`` (``0 < size <= L``; see :func:`_make_chunks`)."""
    assert np.size(levels) <= L
    return _make_chunks(lay, levels, L)[0]


def _pack(lay: _Layout, blocks, counts, L: int) -> list[np.ndarray]:
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


# =========================================================================== the kernel


class _Coef(NamedTuple):
    """Matrix coefficients of one parameter point: diagonal ``-(J4 m² + K16 m⁴)``, field ``h``."""

    J4: Any  # 4J/N
    K16: Any  # 16K/N³
    h: Any


def _coef(N, h, K, J) -> _Coef:
    return _Coef(J4=4.0 * J / N, K16=16.0 * K / N**3, h=h)


def _rescale(vals):
    """Divide all by the largest magnitude (one division per lane every ``_R`` rows)."""
    mx = functools.reduce(jnp.maximum, [jnp.abs(v) for v in vals])
    s = 1.0 / jnp.where(mx > 0, mx, 1.0)
    return [v * s for v in vals]


def _sweep_chunk(coef: _Coef, ln, x, mode: str):
    """The recurrence over the rows of one chunk of lanes (``(L,)``).

    Rows are visited from ``m = S_max`` down; a lane is active on the rows ``m_lo <= m <= S`` of
    its block.  ``p_m = α_m p_{m+1} - c_m p_{m+2}`` with ``α_m = a_m - x`` and ``c_m = b_m²`` the
    squared coupling of rows ``m`` and ``m + 1``, together with its derivatives: ``p'``, ``p''``
    (``mode="laguerre"``), ``p'`` (``"newton"``) or ``p'``, ``∂p/∂J4``, ``∂p/∂K16``
    (``"observables"``).  The sign changes of ``p`` count the levels below ``x``.  An exact zero
    of a leading minor needs no special case: the coupling of the next row is nonzero, so its
    neighbours have opposite signs (``p_{m-1} = -c_{m-1} p_{m+1}``) and the triple holds one sign
    change whichever sign the zero is given; only a zero of ``p`` itself (``x`` a level) is
    flagged, by :func:`_evaluate`.

    Three stages, so that the bulk of the rows needs no per-lane masks:

    * ``ln.npro`` *prologue* rows from ``S_max`` down, where the lanes of smaller blocks are
      still inactive (they run ``α = 1, c = 0`` without source terms, which leaves their state
      unchanged); rescaled every row;
    * ``_R·ln.nmain`` *main* rows down to ``m = 1`` (``1½`` for half-integer spins), active on
      every lane, with ``α`` and ``c`` a scalar plus a per-lane constant; the state is divided by
      its largest entry every ``_R`` rows (no overflow, no divisions in the rows);
    * the *last* row, the only one where the two parity blocks differ: ``m = 0`` (integer ``S``;
      even block only, coupling ``2b_0²``) or ``m = ½`` (diagonal shifted by ``∓h(S+½)``).
    """
    h2 = coef.h * coef.h
    hSS1 = h2 * ln.SS1
    L = x.shape[0]
    nq = {"laguerre": 3, "newton": 2, "observables": 4}[mode]
    half = ln.half  # scalar: half-integer spins (odd N)

    def step(cur, prev, cnt, al, c, on, m2):
        p1 = cur[0]
        if mode == "laguerre":  # p, p', p''
            src = (0.0, -on * p1, -2.0 * on * cur[1])
        elif mode == "newton":  # p, p'
            src = (0.0, -on * p1)
        else:  # p, p', dp/dJ4 (dα/dJ4 = -m²), dp/dK16 (dα/dK16 = -m⁴)
            src = (0.0, -on * p1, -(on * m2) * p1, -(on * m2 * m2) * p1)
        new = [al * q1 - c * q0 + s for q1, q0, s in zip(cur, prev, src, strict=True)]
        cnt = cnt + ((new[0] < 0) != (p1 < 0)).astype(jnp.int32)
        return tuple(new), cur, cnt

    def diag(m):
        m2 = m * m
        return -(coef.J4 * m2 + coef.K16 * m2 * m2), m2

    def rescale(carry):
        cur, prev, cnt = carry
        both = _rescale([*cur, *prev])
        return tuple(both[:nq]), tuple(both[nq:]), cnt

    def masked_row(i, carry):
        m = ln.m0 - i.astype(x.dtype)
        a, m2 = diag(m)
        act = m <= ln.S
        c = jnp.where(act, hSS1 - h2 * m * (m + 1.0), 0.0)
        al = jnp.where(act, a - x, 1.0)
        return rescale(step(*carry, al, c, act.astype(x.dtype), m2))

    def main_rows(i, carry):
        mtop = ln.m0 - ln.npro.astype(x.dtype) - _U * i.astype(x.dtype)
        for r in range(_U):
            m = mtop - r
            a, m2 = diag(m)
            carry = step(*carry, a - x, hSS1 - h2 * m * (m + 1.0), 1.0, m2)
        return carry

    def octet(i, carry):
        return rescale(jax.lax.fori_loop(_R // _U * i, _R // _U * (i + 1), main_rows, carry))

    zero = jnp.zeros(L)
    carry = ((jnp.ones(L),) + (zero,) * (nq - 1), (zero,) * nq, jnp.zeros(L, jnp.int32))
    carry = jax.lax.fori_loop(0, ln.npro, masked_row, carry)
    carry = jax.lax.fori_loop(0, ln.nmain, octet, carry)
    # the last row: m = 1/2 (half-integer S, all lanes) or m = 0 (even blocks of integer S)
    m = jnp.where(half, 0.5, 0.0)
    a, m2 = diag(m)
    act = half | (ln.m_lo == 0.0)
    c = jnp.where(act, (hSS1 - h2 * m * (m + 1.0)) * ln.c0, 0.0)
    al = jnp.where(act, a - x + coef.h * ln.hs, 1.0)
    cur, _, cnt = step(*carry, al, c, act.astype(x.dtype), m2)
    return cur, cnt


def _evaluate(coef: _Coef, ch: _Chunk, x, mode: str = "laguerre"):
    """:func:`_sweep_chunk` for one chunk, reduced to what the solvers use (shapes ``(L,)``).

    Returns:
        ``mode="laguerre"``: ``(count, G, H, exact)``: ``count`` the number of levels ``< x``,
        ``G = p'/p = Σ 1/(x - λ)``, ``H = G² - p''/p = Σ 1/(x - λ)²``, ``exact`` where
        ``p(x) == 0``.  ``mode="newton"``: the same without ``H`` (``None``; cheaper).
        ``mode="observables"``: ``(m2, m4)``: ``⟨m²⟩ = (∂p/∂J4)/p'`` and ``⟨m⁴⟩ = (∂p/∂K16)/p'``,
        the Hellmann-Feynman expectation values ``-∂λ/∂J4``, ``-∂λ/∂K16`` (exact at ``x = λ``).
    """
    q, cnt = _sweep_chunk(coef, ch, x, mode)
    if mode in ("laguerre", "newton"):
        p, u = q[0], q[1]
        exact = p == 0
        ps = jnp.where(exact, 1.0, p)
        G = u / ps
        H = G * G - q[2] / ps if mode == "laguerre" else None
        return cnt, G, H, exact
    _, u, a, b = q
    us = jnp.where(u == 0, 1.0, u)
    return a / us, b / us


def _laguerre_points(x, n, G, H, exact):
    """Laguerre's points above and below ``x`` (``up >= x >= dn``) for a real-rooted degree-``n``
    polynomial with ``G = p'/p``, ``H = G² - p''/p``: ``up`` lies in ``(x, next root above]`` and
    ``dn`` in ``[next root below, x)``.  ``±inf`` where no root lies on that side."""
    disc = jnp.maximum((n - 1.0) * (n * H - G * G), 0.0)
    s = jnp.sqrt(disc)
    q = (n - 1.0) * H - G * G  # (s² - G²)/n, the stable denominator when s ≈ |G|
    up_a = n / jnp.where(s - G > 0, s - G, 1.0)
    up_b = (s + G) / jnp.where(q > 0, q, 1.0)
    up_step = jnp.where(G < 0, up_a, jnp.where(q > 0, up_b, jnp.inf))
    dn_a = n / jnp.where(s + G > 0, s + G, 1.0)
    dn_b = (s - G) / jnp.where(q > 0, q, 1.0)
    dn_step = jnp.where(G > 0, dn_a, jnp.where(q > 0, dn_b, jnp.inf))
    up = jnp.where(exact, x, x + up_step)
    dn = jnp.where(exact, x, x - dn_step)
    return up, dn


# =========================================================================== solvers (one chunk)


def _bounds(coef: _Coef, S):
    """Interval strictly containing the spectrum of a block of spin ``S`` (Weyl: the diagonal part
    lies in ``[a(S), 0]``, ``-2h Sˣ`` in ``[-2hS, 2hS]``), and the block's energy scale."""
    a_S = -(coef.J4 * S * S + coef.K16 * S**4)
    scale = -a_S + 2.0 * coef.h * S + coef.J4 + coef.K16 + coef.h
    margin = 1e-6 * scale
    return a_S - 2.0 * coef.h * S - margin, 2.0 * coef.h * S + margin, scale


#: A Laguerre step below this fraction of the block's energy scale ends a lane's iteration
#: (convergence is cubic: the next error would be ~(step)³/gap², below float64 resolution).
_TOL_STEP = 1e-10
#: Brackets narrower than this many ulps of the energy scale are converged (degenerate levels).
_TOL_BRACKET = 8.0
#: A predicted level is accepted after one Laguerre pass when the step is below this fraction of
#: the distance to the neighbouring predictions (error after it ~1e-15 of the level spacing).
_TOL_ACCEPT = 1e-5
#: Refinement steps with a stencil spacing up to this use Newton (p, p') instead of Laguerre.
_NEWTON_SPACING = 8


def _converged(x, k, cnt, G, up, dn, exact, tol):
    """Lanes whose evaluation at ``x`` sits next to level ``k`` on the correct side with a tiny
    Laguerre step: the count says on which side of level ``k`` the point is, the sign of ``G``
    that level ``k`` (not a neighbour) dominates."""
    conv_up = (cnt == k) & ((G < 0) | exact) & (up - x <= tol)
    conv_dn = (cnt == k + 1) & ((G > 0) | exact) & (x - dn <= tol)
    return conv_up | conv_dn, jnp.where(conv_up, up, dn)


class _Shared(NamedTuple):
    x: Any
    EL: Any  # per lane k: largest known point with exactly k levels below (start from below)
    EU: Any  # per lane k: smallest known point with exactly k + 1 levels below (from above)
    val: Any
    done: Any


@jax.jit
def _shared_chunk(coef: _Coef, ch: _Chunk, lo_x, hi_x, max_passes, tail):
    """Levels of whole blocks from scratch: multisection with shared brackets + Laguerre.

    The chunk holds the lowest ``nb`` levels of each of its blocks (all of them unless
    ``hi_x`` is finite: then ``hi_x`` is a point with exactly ``nb`` levels below it; a finite
    ``lo_x`` is a point with no level below, else the Weyl bound is used).  Lanes start on a
    uniform grid (level 0 at ``lo``: Laguerre from below).  After each sweep, every point of
    known count (each evaluated point ``x`` with count ``c``, and its Laguerre points
    ``up``/``dn``, which have the same count) goes to the lane of its block that it bounds best:
    a point with ``c`` levels below is a lower start for level ``c`` and an upper start for
    level ``c - 1``.  A lane then continues
    Laguerre from the best start on its side, bisects an isolating bracket, or moves to its rank
    inside a bracket that holds several levels.  Stops when at most ``tail`` lanes are left or
    after ``max_passes`` sweeps.

    Returns:
        ``(val, done, x, LB, cLB, UB, cUB)``: values, convergence, and for the lanes left the
        next point and a bracket ``LB < λ_k < UB`` with ``cLB``/``cUB`` levels below its ends.
    """
    lo0, hi0, scale = _bounds(coef, ch.S)
    lo0 = jnp.where(jnp.isfinite(lo_x), lo_x, lo0)
    hi0 = jnp.where(jnp.isfinite(hi_x), hi_x, hi0)
    k, first, nb = ch.k, ch.first, ch.nb
    L = k.shape[0]
    ar = jnp.arange(L, dtype=jnp.int32)
    valid = ch.lev >= 0
    st = _Shared(x=lo0 + k / nb * (hi0 - lo0), EL=jnp.full(L, -jnp.inf),
                 EU=jnp.full(L, jnp.inf), val=jnp.full(L, jnp.nan), done=~valid)
    aux = (lo0, jnp.zeros(L, jnp.int32), hi0, nb)

    def body(carry):
        it, st, _ = carry
        x = st.x
        cnt, G, H, exact = _evaluate(coef, ch, x)
        up, dn = _laguerre_points(x, ch.n, G, H, exact)
        newly, v = _converged(x, k, cnt, G, up, dn, exact, _TOL_STEP * scale)
        newly = newly & ~st.done
        val = jnp.where(newly, v, st.val)
        # share the points of known count with the lanes of their block
        iL = jnp.where(valid & (cnt < nb) & jnp.isfinite(up), first + cnt, L)
        EL = st.EL.at[iL].max(up, mode="drop")
        iU = jnp.where(valid & (cnt >= 1) & (cnt <= nb) & jnp.isfinite(dn), first + cnt - 1, L)
        EU = st.EU.at[iU].min(dn, mode="drop")
        lastL = jax.lax.cummax(jnp.where(jnp.isfinite(EL), ar, -1))
        inL = lastL >= first
        LB = jnp.where(inL, EL[jnp.maximum(lastL, 0)], lo0)
        cLB = jnp.where(inL, lastL - first, 0)
        firstU = jax.lax.cummin(jnp.where(jnp.isfinite(EU), ar, L), reverse=True)
        inU = firstU < first + nb
        UB = jnp.where(inU, EU[jnp.minimum(firstU, L - 1)], hi0)
        cUB = jnp.where(inU, firstU - first + 1, nb)
        narrow = ~st.done & ~newly & (UB - LB <= _TOL_BRACKET * _EPS * scale)
        val = jnp.where(narrow, 0.5 * (LB + UB), val)
        done = st.done | newly | narrow
        good_up = (cnt == k) & (G < 0) & jnp.isfinite(up)
        good_dn = (cnt == k + 1) & (G > 0) & jnp.isfinite(dn)
        frac = (k + 0.5 - cLB) / jnp.maximum(cUB - cLB, 1)
        guess = jnp.where((cLB == k) & (cUB == k + 1), 0.5 * (LB + UB), LB + (UB - LB) * frac)
        guess = jnp.where((cLB == k) & (LB != x) & (cUB != k + 1), LB, guess)
        guess = jnp.where((cUB == k + 1) & (UB != x) & (cLB != k), UB, guess)
        x_new = jnp.where(good_up, LB, jnp.where(good_dn, UB, guess))
        x_new = jnp.where(done, x, x_new)
        return it + 1, _Shared(x=x_new, EL=EL, EU=EU, val=val, done=done), (LB, cLB, UB, cUB)

    def cond(carry):
        it, st, _ = carry
        return (it < max_passes) & (jnp.sum(~st.done) > tail)

    _, st, (LB, cLB, UB, cUB) = jax.lax.while_loop(cond, body, (0, st, aux))
    return st.val, st.done, st.x, LB, cLB, UB, cUB


@jax.jit
def _local_chunk(coef: _Coef, ch: _Chunk, x0, lo, clo, hi, chi, max_passes):
    """Lane-local safeguarded Laguerre iteration (no sharing), for the few lanes left over.

    Each lane keeps a bracket ``lo < λ_k < hi`` with ``clo <= k < chi`` levels below its ends,
    and steps from its point with Laguerre when the evaluation is on the correct side of level
    ``k``; otherwise it bisects an isolating bracket or moves to its rank inside the bracket.
    """
    _, _, scale = _bounds(coef, ch.S)
    k = ch.k
    L = k.shape[0]
    inside = jnp.isfinite(x0) & (x0 >= lo) & (x0 <= hi)
    x0 = jnp.where(inside, x0, 0.5 * (lo + hi))
    init = (0, x0, lo, clo, hi, chi, jnp.full(L, jnp.nan), ch.lev < 0)

    def body(carry):
        it, x, lo, clo, hi, chi, val, done = carry
        cnt, G, H, exact = _evaluate(coef, ch, x)
        up, dn = _laguerre_points(x, ch.n, G, H, exact)
        newly, v = _converged(x, k, cnt, G, up, dn, exact, _TOL_STEP * scale)
        newly = newly & ~done
        val = jnp.where(newly, v, val)
        below = cnt <= k  # x, and its Laguerre point `up`, lie below level k
        cand = jnp.where(jnp.isfinite(up), up, x)
        raise_lo = below & (cand > lo)
        lo, clo = jnp.where(raise_lo, cand, lo), jnp.where(raise_lo, cnt, clo)
        cand = jnp.where(jnp.isfinite(dn), dn, x)
        lower_hi = ~below & (cand < hi)
        hi, chi = jnp.where(lower_hi, cand, hi), jnp.where(lower_hi, cnt, chi)
        narrow = ~done & ~newly & (hi - lo <= _TOL_BRACKET * _EPS * scale)
        val = jnp.where(narrow, 0.5 * (lo + hi), val)
        done = done | newly | narrow
        good_up = (cnt == k) & (G < 0) & jnp.isfinite(up)
        good_dn = (cnt == k + 1) & (G > 0) & jnp.isfinite(dn)
        # isolated level: Laguerre's point on the correct side, but at least bisection's progress
        mid = 0.5 * (lo + hi)
        iso = jnp.where(cnt == k, jnp.maximum(up, mid),
                        jnp.where(cnt == k + 1, jnp.minimum(dn, mid), mid))
        frac = (k + 0.5 - clo) / jnp.maximum(chi - clo, 1)
        guess = jnp.where((clo == k) & (chi == k + 1), iso, lo + (hi - lo) * frac)
        x_new = jnp.where(good_up, up, jnp.where(good_dn, dn, guess))
        x_new = jnp.where(done, x, jnp.clip(x_new, lo, hi))
        return it + 1, x_new, lo, clo, hi, chi, val, done

    def cond(carry):
        return (carry[0] < max_passes) & ~jnp.all(carry[-1])

    _, x, lo, clo, hi, chi, val, done = jax.lax.while_loop(cond, body, init)
    return jnp.where(done, val, 0.5 * (lo + hi)), done, x, lo, clo, hi, chi


@functools.partial(jax.jit, static_argnames=("mode",))
def _refine_chunk(coef: _Coef, ch: _Chunk, x, mode: str = "laguerre"):
    """One pass at predicted levels: accept (certified by the count and the sign of ``G``,
    polished by a Laguerre or Newton step), and seed the lanes not accepted.

    With the count ``c`` and ``G = Σ 1/(x - λ)`` at ``x``: if ``c = k`` and ``G < 0``, level ``k``
    lies in ``(x, x + (n - k)/|G|]`` (the levels above ``x`` outweigh those below), and the
    Laguerre point ``up`` or the Newton point ``x - 1/G`` approaches it from below; symmetrically
    for ``c = k + 1``, ``G > 0``.  ``mode="newton"`` (quadratic, cheaper sweep) is used where the
    predictions are very good, with a tolerance ``_TOL_ACCEPT²``.

    Returns ``(val, ok, x0, lo, clo, hi, chi)``; for the lanes not accepted, a start point and a
    bracket bounded by the nearest accepted levels of the same block in this chunk and by the
    point just evaluated.
    """
    k, bs = ch.k, ch.bstart
    L = k.shape[0]
    ar = jnp.arange(L, dtype=jnp.int32)
    lo, hi, scale = _bounds(coef, ch.S)
    cnt, G, H, exact = _evaluate(coef, ch, x, mode=mode)
    if mode == "laguerre":
        up, dn = _laguerre_points(x, ch.n, G, H, exact)
    else:
        newton = x - 1.0 / jnp.where(G == 0, jnp.inf, G)
        newton = jnp.where(exact, x, newton)
        up = jnp.where(G < 0, newton, x)
        dn = jnp.where(G > 0, newton, x)
    # acceptance: a small step relative to the spacing of the predictions
    same_l = jnp.roll(bs, 1) == bs
    same_r = jnp.roll(bs, -1) == bs
    left = jnp.where(same_l & (ar > 0), jnp.abs(x - jnp.roll(x, 1)), jnp.inf)
    right = jnp.where(same_r & (ar < L - 1), jnp.abs(jnp.roll(x, -1) - x), jnp.inf)
    gap = jnp.minimum(left, right)
    gap = jnp.where(jnp.isfinite(gap), gap, scale)
    tol = jnp.minimum((_TOL_ACCEPT if mode == "laguerre" else _TOL_ACCEPT**1.5) * gap, 1e-3 * scale)
    ok, val = _converged(x, k, cnt, G, up, dn, exact, tol)
    ok = ok & (ch.lev >= 0)
    # seeds for the others
    margin = 64 * _EPS * scale
    below = jnp.concatenate([jnp.array([-1], jnp.int32),
                             jax.lax.cummax(jnp.where(ok, ar, -1))[:-1]])
    has_b = (below >= 0) & (bs[jnp.maximum(below, 0)] == bs)
    lo = jnp.where(has_b, val[jnp.maximum(below, 0)] + margin, lo)
    clo = jnp.where(has_b, k[jnp.maximum(below, 0)] + 1, 0)
    above = jnp.concatenate([jax.lax.cummin(jnp.where(ok, ar, L), reverse=True)[1:],
                             jnp.array([L], jnp.int32)])
    has_a = (above < L) & (bs[jnp.minimum(above, L - 1)] == bs)
    hi = jnp.where(has_a, val[jnp.minimum(above, L - 1)] - margin, hi)
    chi = jnp.where(has_a, k[jnp.minimum(above, L - 1)], ch.n.astype(jnp.int32))
    # the evaluated point bounds level k; Laguerre's points do too (not Newton's: it may overshoot)
    own = jnp.where(jnp.isfinite(up), up, x) if mode == "laguerre" else x
    use = (cnt <= k) & (own > lo) & (own < hi)
    lo, clo = jnp.where(use, own, lo), jnp.where(use, cnt, clo)
    own = jnp.where(jnp.isfinite(dn), dn, x) if mode == "laguerre" else x
    use = (cnt > k) & (own < hi) & (own > lo)
    hi, chi = jnp.where(use, own, hi), jnp.where(use, cnt, chi)
    frac = (k + 0.5 - clo) / jnp.maximum(chi - clo, 1)
    x0 = lo + (hi - lo) * jnp.clip(frac, 0.0, 1.0)
    x0 = jnp.where((cnt == k) & (G < 0), up, jnp.where((cnt == k + 1) & (G > 0), dn, x0))
    return val, ok, x0, lo, clo, hi, chi


@jax.jit
def _count_chunk(coef: _Coef, ch: _Chunk, x):
    """Number of levels below ``x`` in each lane's block."""
    return _evaluate(coef, ch, x)[0]


@jax.jit
def _observables_chunk(coef: _Coef, ch: _Chunk, x):
    """``(⟨m²⟩, ⟨m⁴⟩)`` of the levels ``x`` (Hellmann-Feynman, see :func:`_evaluate`)."""
    return _evaluate(coef, ch, x, mode="observables")


# =========================================================================== drivers (host)


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor | None:
    """Worker threads for the chunks on CPU (one per core), ``None`` on accelerators.

    One XLA:CPU program runs on one core, and the kernels' row loops are serial, so independent
    chunks go to one thread per core (JAX releases the GIL while a program runs); on a GPU or TPU
    the host already dispatches asynchronously and the device is busy with one chunk at a time.
    """
    if jax.default_backend() != "cpu":
        return None
    cores = cpu_cores()
    return ThreadPoolExecutor(max_workers=cores) if cores > 1 else None


def _run_chunks(fn, coef: _Coef, lay: _Layout, levels, L: int, columns, extra=()):
    """``fn(coef, chunk, *column slices, *extra)`` for each chunk of ``L`` lanes of the flat
    ``levels``, spread over the cores (:func:`_map_chunks`; each chunk's table is built in its
    worker thread, next to the kernels).  ``columns``: ``(array over levels, fill)`` pairs, padded
    with their fill and cut like the levels.  Returns the list of per-chunk results (NumPy)."""
    n = np.size(levels)
    size = -(-n // L) * L
    padded = []
    for a, fill in columns:
        out = np.full(size, fill, np.asarray(a).dtype)
        out[:n] = a
        padded.append(out)

    def one(i):
        sl = slice(i, i + L)
        return fn(coef, _make_chunk(lay, levels[sl], L), *(a[sl] for a in padded), *extra)

    return _map_chunks(one, [(i,) for i in range(0, n, L)])


def _map_chunks(fn, calls):
    """``[fn(*args) for args in calls]``, the chunks spread over the cores (:func:`_pool`);
    results as NumPy (tuples of arrays stay tuples)."""

    def one(args):
        return jax.tree_util.tree_map(np.asarray, fn(*args))

    pool = _pool()
    if pool is None or len(calls) <= 1:
        return [one(a) for a in calls]
    return list(pool.map(one, calls))


class _Step(NamedTuple):
    """One refinement step: ``targets`` (``(nb,)`` blocks) predicted from ``sources``
    (``(nb, _STENCIL)`` blocks) with Lagrange ``weights`` (``(nb, _STENCIL)``) at spacing ``d``."""

    targets: np.ndarray
    sources: np.ndarray
    weights: np.ndarray
    d: int


class _Plan(NamedTuple):
    base_blocks: np.ndarray
    steps: tuple  # of _Step (per-block tables: O(blocks) memory, not O(levels))


def _stencil_weights(j, js):
    return np.array([np.prod([(j - b) / (a - b) for b in js if b != a]) for a in js])


#: Points of the Lagrange stencils that predict the levels of a block from solved blocks.
_STENCIL = 8


def _stencil(j: int, d: int, jmax: int) -> list[int] | None:
    """Sector offsets ``j'`` of the ``_STENCIL`` blocks that predict block ``j`` at spacing ``d``:
    ``j ± d, j ± 3d, ...``, shifted in steps of ``2d`` to stay at ``j' >= 0`` (near ``S = N/2``);
    ``None`` if that reaches beyond the last sector ``jmax``."""
    js = [j + (2 * i + 1) * d for i in range(-_STENCIL // 2, _STENCIL // 2)]
    while js[0] < 0:
        js = [x + 2 * d for x in js]
    return js if js[-1] <= jmax else None


def _need(j: int, d: int, jmax: int) -> float:
    """Fewest levels block ``j`` must have for its stencil (the farthest neighbour, ``S`` smaller
    by ``j' - j``, has about ``j' - j`` fewer levels; level ``k`` is counted from the nearer end
    of the block): the block is solved from scratch below this."""
    js = _stencil(j, d, jmax)
    return np.inf if js is None else 2 * (js[-1] - j) + 8


@functools.lru_cache(maxsize=8)
def _plan(N: int) -> _Plan:
    """Which blocks are solved from scratch and how the others are predicted (host, per ``N``).

    Blocks whose sector offset ``j = N/2 - S`` is a multiple of ``_COARSE``, and the blocks too
    small for their stencil (:func:`_need`), are solved from scratch.  Then, for
    ``d = _COARSE/2, ..., 1``, the blocks with ``j ≡ d (mod 2d)`` are predicted level by level
    (level ``k`` counted from the bottom in the lower half of the block, from the top in the
    upper half) by ``_STENCIL``-point Lagrange interpolation in ``j`` from the same-parity blocks
    at ``j ± d, j ± 3d, j ± 5d, j ± 7d`` (shifted towards larger ``j`` near ``S = N/2``), all
    solved before.  (8 points instead of 4: ~10x fewer predictions fail the one-pass acceptance.)
    """
    lay = _layout(N)
    jb = (N - lay.two_S) // 2
    D = _COARSE
    # the level of refinement of each block: the spacing d of its stencil
    d_of = np.where(jb % D == 0, 0, np.gcd(jb, D))
    # a stencil of spacing d needs the neighbours to have the levels it interpolates
    jmax = int(jb.max())
    need = np.array([_need(int(j), int(d), jmax) if d else 0
                     for j, d in zip(jb, d_of, strict=True)])
    base = (jb % D == 0) | (lay.dim < need)
    index = {(int(j), int(p)): b for b, (j, p) in enumerate(zip(jb, lay.parity, strict=True))}
    done = base.copy()
    steps = []
    d = D // 2
    while d >= 1:
        targets = np.flatnonzero(~done & (jb % (2 * d) == d))
        if targets.size:
            sources, weights = [], []
            for b in targets:
                j, P, n = int(jb[b]), int(lay.parity[b]), int(lay.dim[b])
                js = _stencil(j, d, jmax)
                blocks = [index[(jj, P)] for jj in js]
                assert all(done[bb] for bb in blocks), (N, j, d)
                # every level k has its partner (same k from the nearer end) in every source
                for bb in blocks:
                    ni = int(lay.dim[bb])
                    assert (n + 1) // 2 <= ni and (n + 1) // 2 + ni - n >= 0, (N, j, d, n, ni)
                sources.append(blocks)
                weights.append(_stencil_weights(j, js))
            steps.append(_Step(targets=targets, sources=np.array(sources, np.int64),
                               weights=np.array(weights), d=d))
            done[targets] = True
        d //= 2
    assert done.all()
    return _Plan(base_blocks=np.flatnonzero(base), steps=tuple(steps))


#: Sweeps of the shared multisection before its last lanes go to the lane-local solver.
_SHARED_PASSES = 12
_LOCAL_PASSES = 200


def _shared(lay: _Layout, coef: _Coef, packs, lo_b=None, hi_b=None):
    """Run :func:`_shared_chunk` on chunks of whole blocks; finish leftovers locally.

    ``packs``: list of flat level arrays, each the lowest levels of whole blocks (all of them
    unless ``hi_b`` is given).  ``lo_b``/``hi_b``: optional per-block points with no level below
    / exactly the packed number of levels below (default: the Weyl bounds).
    Returns ``(levels, values, converged)`` (concatenated, NumPy).
    """
    L = max(_CHUNK, _bucket(max(p.size for p in packs)))

    def one(lv):
        ch = _make_chunk(lay, lv, L)
        blk = _block_of(lay, lv)
        lx, hx = np.full(L, -np.inf), np.full(L, np.inf)
        if lo_b is not None:
            lx[: lv.size] = lo_b[blk]
        if hi_b is not None:
            hx[: lv.size] = hi_b[blk]
        tail = int(0.01 * lv.size)
        return _shared_chunk(coef, ch, lx, hx, _SHARED_PASSES, tail)

    results = _map_chunks(one, [(lv,) for lv in packs])
    levs, vals, oks, rest = [], [], [], []
    for lv, res in zip(packs, results, strict=True):
        val, done, x, LB, cLB, UB, cUB = (a[: lv.size] for a in res)
        left = ~done
        if left.any():
            rest.append((lv[left], x[left], LB[left], cLB[left], UB[left], cUB[left]))
        levs.append(lv[done])
        vals.append(val[done])
        oks.append(np.ones(int(done.sum()), bool))
    if rest:
        r = [np.concatenate(c) for c in zip(*rest, strict=True)]
        v, ok = _local(lay, coef, *r)
        levs.append(r[0])
        vals.append(v)
        oks.append(ok)
    return np.concatenate(levs), np.concatenate(vals), np.concatenate(oks)


def _local(lay: _Layout, coef: _Coef, lev, x0, lo, clo, hi, chi):
    """Finish lanes with :func:`_local_chunk` (any levels, with start points and brackets).

    Two stages: all lanes for at most ``_LOCAL_FIRST`` passes in chunks of ``_LOCAL_CHUNK``,
    then the lanes left over in chunks of ``_STRAGGLER_CHUNK``, each iterating only until its
    own lanes have converged (a chunk costs its size times its slowest lane's passes).
    Returns ``(values, converged)`` in the order of ``lev``.
    """
    order = np.argsort(lev, kind="stable")
    state = [a[order] for a in (lev, x0, lo, clo, hi, chi)]
    vals = np.full(lev.size, np.nan)
    oks = np.zeros(lev.size, bool)
    todo = np.arange(lev.size)
    for L, passes in ((_LOCAL_CHUNK, _LOCAL_FIRST), (_STRAGGLER_CHUNK, _LOCAL_PASSES)):
        lv, x0_, lo_, clo_, hi_, chi_ = (a[todo] for a in state)

        results = _run_chunks(_local_chunk, coef, lay, lv, L, ((x0_, 0.0), (lo_, -1.0), (clo_, 0),
                                                               (hi_, 1.0), (chi_, 1)), (passes,))
        res = [np.concatenate([r[j] for r in results])[: lv.size] for j in range(7)]
        vals[todo], oks[todo] = res[0], res[1]
        for a, new in zip(state[1:], res[2:], strict=True):
            a[todo] = new
        todo = todo[~res[1]]
        if not todo.size:
            break
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    return vals[inv], oks[inv]


class _Targets(NamedTuple):
    """The flat levels of a step's target blocks, with what predicting them needs (NumPy)."""

    lev: np.ndarray  # (n,) flat level index
    k: np.ndarray  # (n,) level index inside the block
    seg: np.ndarray  # (n,) segment: 2 * (target row) + (upper half)
    base: np.ndarray  # (2 * n_targets, _STENCIL) flat index of source level k = base + k


def _targets(lay: _Layout, step: _Step) -> _Targets:
    """Level ``k`` of a target block is predicted (:func:`_predict`) from level ``k`` of each
    source block, counted from the nearer end: each target block is two segments, its lower half
    (source level ``k``) and its upper half (source level ``k + n_src - n``)."""
    n = lay.dim[step.targets]
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    seg = np.repeat(np.arange(2 * n.size), np.stack([(n + 1) // 2, n // 2], axis=1).ravel())
    src = step.sources
    base = np.stack([lay.start[src], lay.start[src] + lay.dim[src] - n[:, None]], axis=1)
    return _Targets(lev=np.repeat(lay.start[step.targets], n) + k, k=k, seg=seg,
                    base=base.reshape(2 * n.size, -1))


def _predict(step: _Step, tg: _Targets, levels):
    """Lagrange predictions of the target levels ``tg.lev`` from the solved ``levels``."""
    vals = levels[tg.base[tg.seg] + tg.k[:, None]]
    return np.einsum("ij,ij->i", step.weights[tg.seg // 2], vals)


def _solve_full(N: int, coef: _Coef):
    """All levels of all blocks at one parameter point: ``(levels, converged)``, flat NumPy."""
    lay, plan = _layout(N), _plan(N)
    L = _CHUNK
    levels = np.full(lay.n_levels, np.nan)
    conv = np.zeros(lay.n_levels, bool)
    Lb = max(L, _bucket(int(lay.dim.max())))
    packs = _pack(lay, plan.base_blocks, lay.dim[plan.base_blocks], Lb)
    lv, v, ok = _shared(lay, coef, packs)
    levels[lv], conv[lv] = v, ok
    for step in plan.steps:
        mode = "newton" if step.d <= _NEWTON_SPACING else "laguerre"
        tg = _targets(lay, step)
        lev = tg.lev
        results = _run_chunks(functools.partial(_refine_chunk, mode=mode), coef, lay, lev, L,
                              ((_predict(step, tg, levels), 0.0),))
        res = [np.concatenate([r[j] for r in results])[: lev.size] for j in range(7)]
        val, good = res[0], res[1]
        levels[lev[good]], conv[lev[good]] = val[good], True
        miss = ~good
        if miss.any():
            v2, ok2 = _local(lay, coef, lev[miss], *(r[miss] for r in res[2:]))
            levels[lev[miss]], conv[lev[miss]] = v2, ok2
    return levels, conv


def _per_block(lay: _Layout, coef: _Coef, fn, x_of_block):
    """A one-lane-per-block chunk function at ``x_of_block`` (on lane ``k = 0`` of each block)."""
    L = _CHUNK
    lev0 = lay.start

    res = _run_chunks(fn, coef, lay, lev0, L, ((x_of_block, 0.0),))
    return np.concatenate(res)[: lev0.size]


def _block_bounds(N: int, coef: _Coef):
    """Certified bounds ``lb < λ_0(b) < ub`` on the lowest level of every block (NumPy).

    Trial points around the classical minimum ``min_θ [a(S cosθ) - 2hS sinθ]`` of each block,
    with a margin for the zero-point energy: ``lb`` is certified by a Sturm count of 0, ``ub``
    by a count of at least 1; blocks that fail retry with a 4x larger margin (``lb`` falls back
    to the Weyl bound, ``ub`` to the top of the block).
    """
    lay = _layout(N)
    S = lay.two_S / 2.0
    th = np.linspace(0.0, 0.5 * np.pi, 513)
    mz = S[:, None] * np.cos(th)[None, :]
    e_cl = np.min(-(coef.J4 * mz**2 + coef.K16 * mz**4) - 2 * coef.h * S[:, None] * np.sin(th),
                  axis=1)
    weyl, top, scale = (np.asarray(a) for a in _bounds(coef, S))
    out = []
    for sign, fallback in ((-1.0, weyl), (1.0, top)):
        margin = 2.0 * (N * (coef.J4 + coef.K16) / 4.0 + coef.h) + 1e-9 * scale
        res = np.full(S.size, np.nan)
        todo = np.ones(S.size, bool)
        for _ in range(6):
            trial = np.clip(e_cl + sign * margin, weyl, top)
            cnt = _per_block(lay, coef, _count_chunk, trial)
            ok = todo & ((cnt == 0) if sign < 0 else (cnt >= 1))
            res[ok] = trial[ok]
            todo &= ~ok
            if not todo.any():
                break
            margin = 4.0 * margin
        res[todo] = fallback[todo]
        out.append(res)
    return out[0], out[1]


def _solve_window(N: int, coef: _Coef, e_cut: float, lb=None, max_bytes=None):
    """The levels below ``e_cut`` (total energy) of every block: ``(levels, values, converged)``;
    ``lb``: certified lower bounds of the blocks (:func:`_block_bounds`, computed if absent)."""
    lay = _layout(N)
    counts = _per_block(lay, coef, _count_chunk, np.full(lay.dim.size, e_cut))
    _guard(N, _window_bytes(lay, int(counts.sum())), max_bytes, "the levels below the window")
    blocks = np.flatnonzero(counts > 0)
    if not blocks.size:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
    if lb is None:
        lb = _block_bounds(N, coef)[0]
    L = max(_CHUNK, _bucket(int(counts.max())))
    packs = _pack(lay, blocks, counts[blocks], L)
    lv, v, ok = _shared(lay, coef, packs, lo_b=lb, hi_b=np.full(lay.dim.size, e_cut))
    order = np.argsort(lv, kind="stable")
    return lv[order], v[order], ok[order]


def _ground(N: int, coef: _Coef):
    """Lowest level of the ``S = N/2`` blocks (the ground state of ``H`` for ``J > 0``)."""
    lay = _layout(N)
    blocks = np.flatnonzero(lay.two_S == N)
    packs = [lay.start[blocks]]
    _, v, _ = _shared(lay, coef, packs)
    return float(v.min())


def _observables(N: int, coef: _Coef, lev, vals):
    """``⟨m²⟩`` and ``⟨m⁴⟩`` of the given levels (flat level indices ``lev``, values ``vals``)."""
    lay = _layout(N)
    L = _CHUNK
    order = np.argsort(lev, kind="stable")
    lev_s, val_s = lev[order], vals[order]
    outs = _run_chunks(_observables_chunk, coef, lay, lev_s, L, ((val_s, 0.0),))
    m2 = np.concatenate([o[0] for o in outs])[: lev.size] if outs else np.zeros(0)
    m4 = np.concatenate([o[1] for o in outs])[: lev.size] if outs else np.zeros(0)
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    return m2[inv], m4[inv]
# =========================================================================== public API


class Spectrum(NamedTuple):
    """Exact levels of ``H`` (eq. 4) at each parameter point.

    Levels are flat along the last axis: block after block (``S`` decreasing, the even parity
    block ``(|m⟩ + |-m⟩)/√2`` of a sector before the odd one), ascending inside a block.  Each
    level is ``g(S)``-fold degenerate in the ``2^N``-dimensional Hilbert space (eq. 6), so that
    ``Σ exp(log_g) = 2^N`` over a full spectrum.  Array shapes: the broadcast shape of
    ``(h, K, J)`` (and ``e_max``), then ``n`` levels.

    Attributes:
        energy: total energies ``E`` (energy units; ``E/N`` is the energy per spin); NaN where
            ``mask`` is False.
        log_g: ``ln g(S)`` of each level (eq. 6).
        two_S: ``2S`` of each level (int).
        parity: ``+1``/``-1``, the reflection ``Sᶻ → -Sᶻ`` eigenvalue in the sector's Dicke basis.
        mask: the level is computed (False only for padding of windowed spectra, ``e_max``).
        Sz2, Sz4: per-level ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩`` (``observables=True``; else ``None``).
        e_max: the energy-per-spin cutoff used (``inf``: full spectrum).
        status: :class:`jaxlmg.Status` per point (``NOT_CONVERGED`` if a level did not
            converge; such a level is the midpoint of its last bracket).
        N: number of spins.
    """

    energy: Any
    log_g: Any
    two_S: Any
    parity: Any
    mask: Any
    Sz2: Any
    Sz4: Any
    e_max: Any
    status: Any
    N: int


class FiniteSizeThermo(NamedTuple):
    """Exact canonical thermodynamics of ``N`` spins (eqs. 7, 9), per spin, at each point.

    All fields have the broadcast shape of ``(h, K, T, J)``; energies in the units of ``J``,
    entropies in nats, ``k_B = 1``.

    Attributes:
        f: free energy per spin ``-T ln Z / N`` (``E_0/N`` at ``T = 0``).
        energy: ``⟨H⟩/N``.
        entropy: ``(ln Z + ⟨H⟩/T)/N`` (``ln g_0 / N`` at ``T = 0``: ground-state degeneracy).
        specific_heat: ``(⟨H²⟩ - ⟨H⟩²)/(N T²)`` (0 at ``T = 0``).
        Mz2: ``⟨Mz²⟩`` with ``Mz = 2Sᶻ/N`` (the mean field's ``Mz²`` as ``N → ∞``), i.e.
            ``4⟨(Sᶻ)²⟩/N²``; NaN if ``magnetization=False``.
        binder: Binder cumulant ``U = 1 - ⟨(Sᶻ)⁴⟩/(3⟨(Sᶻ)²⟩²)`` (2/3 in an ordered phase, 0
            for a Gaussian paramagnet); NaN if ``magnetization=False``.
        log_Z: ``ln Z`` (``-E_0/T``-dominated at low ``T``; ``-inf`` never occurs).
        log_tail: an upper bound on ``ln(Z_omitted / Z)``, the relative weight of the levels
            not computed (``-inf`` when the whole spectrum was used).
        status: :class:`jaxlmg.Status` per point; the other fields are NaN where it is not
            ``OK`` (a level did not converge).
    """

    f: Any
    energy: Any
    entropy: Any
    specific_heat: Any
    Mz2: Any
    binder: Any
    log_Z: Any
    log_tail: Any
    status: Any


class DensityOfStates(NamedTuple):
    """Microcanonical quantities of ``N`` spins from the exact levels (eqs. 8, 10).

    Shapes: broadcast shape of ``(h, K, J)``, then ``n_bins = len(eps_edges) - 1``.

    Attributes:
        eps: bin centres (energy per spin).
        log_count: ``ln`` of the number of states (with multiplicity ``g(S)``) with
            ``E/N`` in the bin; ``-inf`` for an empty bin.
        log_density: ``ln Ω``, the density of states per unit total energy (eq. 8) averaged
            over the bin: ``log_count - ln(N Δε)``.
        entropy: ``log_count / N``, the microcanonical entropy per spin (nats).
        beta: ``dσ/dε`` from centred differences of ``entropy`` between neighbouring bins
            (``(σ_{j+1} - σ_{j-1})/(ε_{j+1} - ε_{j-1})``); NaN at the end bins and next to empty
            bins.
        temperature: ``1/beta``: the finite-N microcanonical caloric curve ``T(ε)``.
        log_total: ``ln`` of the number of states counted (``N ln 2`` when the bins cover the
            spectrum).
        status: :class:`jaxlmg.Status` per point.
    """

    eps: Any
    log_count: Any
    log_density: Any
    entropy: Any
    beta: Any
    temperature: Any
    log_total: Any
    status: Any


class Extrapolation(NamedTuple):
    """Least-squares fit of finite-size data (see :func:`extrapolate`).

    Attributes:
        limit: the ``N → ∞`` value ``a``.
        coef: all fitted coefficients, shape ``(n_terms, ...)`` (``a`` first).
        form: the fitted form.
        residual: largest absolute residual of the fit.
    """

    limit: Any
    coef: Any
    form: str
    residual: Any


class MeanFieldComparison(NamedTuple):
    """Finite-N free energies against the mean field (see :func:`mean_field_comparison`).

    Attributes:
        Ns: the sizes.
        f: exact free energy per spin, shape ``(len(Ns), *shape)``.
        f_mean_field: canonical mean field ``jaxlmg.canonical(h, K, T, J).f`` (eq. 19).
        difference: ``f - f_mean_field``.
        scaled: ``difference · N / ln N``, bounded if the finite-size correction is
            ``O(ln N / N)``.
        extrapolated: :class:`Extrapolation` of ``f`` to ``N → ∞``.
    """

    Ns: Any
    f: Any
    f_mean_field: Any
    difference: Any
    scaled: Any
    extrapolated: Any


def _concrete(name, x):
    if isinstance(x, jax.core.Tracer):
        raise TypeError(f"jaxlmg.finite_size needs concrete values; {name} is traced (the number "
                        "of levels and iterations depends on the data: call it outside jit/vmap)")
    return np.asarray(x, np.float64)


def _check_params(h, K, J):
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    return _concrete("h", h), _concrete("K", K), _concrete("J", J)


#: Bytes per level of the working arrays of a full spectrum (layout, plan, values).
_BYTES_PER_LEVEL = 200


def estimate_bytes(N: int, n_points: int = 1, observables: bool = False) -> int:
    """Memory for the full spectrum of ``N`` spins at ``n_points`` points (bytes, an estimate).

    There are ``Σ_S (2S+1) ≈ (N/2 + 1)²`` distinct levels; the per-``N`` tables cost about
    ``_BYTES_PER_LEVEL`` bytes per level, the results 9 (25 with observables) per level and point.
    """
    N = _check_N(N)
    n = int(_layout_size(N))
    return n * _BYTES_PER_LEVEL + n * n_points * (25 if observables else 9)


def _window_bytes(lay: _Layout, n_levels: int) -> int:
    """Memory for ``n_levels`` levels below an energy window (no per-level tables of all levels)."""
    return 200 * n_levels + 200 * lay.dim.size


def _layout_size(N: int) -> int:
    s = N // 2 + 1 if N % 2 == 0 else (N + 1) // 2
    return s * s if N % 2 == 0 else s * (s + 1)


def _guard(N: int, nbytes: int, max_bytes, what: str):
    if max_bytes is not None and nbytes > max_bytes:
        raise ValueError(
            f"N = {N}: {what} needs about {nbytes / 2**30:.2f} GiB (> max_bytes = "
            f"{max_bytes / 2**30:.2f} GiB); lower N, use fewer parameter points, use an energy "
            f"window (e_max / low T), or raise max_bytes")


def _status(conv) -> int:
    from .._status import Status

    return int(Status.OK if bool(np.all(conv)) else Status.NOT_CONVERGED)


def _point_spectrum(N, h, K, J, e_max, observables, max_bytes):
    """Levels of one point: ``(lev, E, conv, Sz2, Sz4)`` with flat level indices ``lev``."""
    coef = _coef(N, float(h), float(K), float(J))
    if np.isfinite(e_max):
        lev, E, conv = _solve_window(N, coef, float(e_max) * N, max_bytes=max_bytes)
        order = np.argsort(lev, kind="stable")
        lev, E, conv = lev[order], E[order], conv[order]
    else:
        E, conv = _solve_full(N, coef)
        lev = np.arange(E.size)
    m2 = m4 = None
    if observables:
        m2, m4 = _observables(N, coef, lev, E)
    return lev, E, conv, m2, m4


def spectrum(N: int, h, K, J=1.0, *, e_max=None, observables: bool = False,
             max_bytes: int | None = MAX_BYTES) -> Spectrum:
    """Exact spectrum of the extended LMG Hamiltonian for ``N`` spins (eqs. 1, 4-6).

    Every sector ``S`` and both parity blocks; level ``E`` of sector ``S`` has multiplicity
    ``g(S)`` (eq. 6).  Full float64 accuracy (a few ulps of the block's energy scale).

    Args:
        N: number of spins, integer ``>= 1`` (odd ``N``: half-integer ``S``).
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units, broadcastable arrays.
        e_max: only the levels with ``E/N <= e_max`` (energy per spin; broadcastable); default:
            all levels.
        observables: also return the per-level ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩`` (one more sweep).
        max_bytes: refuse (``ValueError`` with the estimate) beyond this much memory.
    Returns:
        :class:`Spectrum`, shapes ``(*broadcast_shape, n_levels)`` (see there for the order).
    Raises:
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range (named), or the
            memory estimate above ``max_bytes``.
    """
    N = _check_N(N)
    h, K, J = _check_params(h, K, J)
    em = np.inf if e_max is None else _concrete("e_max", e_max)
    shape = np.broadcast_shapes(h.shape, K.shape, J.shape, np.shape(em))
    hb, Kb, Jb, eb = (np.broadcast_to(a, shape).reshape(-1) for a in (h, K, J, em))
    npts = max(1, hb.size)
    full = bool(np.all(np.isinf(eb)))
    if full:
        _guard(N, estimate_bytes(N, npts, observables), max_bytes, "the full spectrum")
    lay = _layout(N)
    pts = [_point_spectrum(N, *args, observables, max_bytes)
           for args in zip(hb, Kb, Jb, eb, strict=True)]
    n = lay.n_levels if full else max([p[0].size for p in pts] + [1])
    if not full:
        _guard(N, _window_bytes(lay, npts * n), max_bytes, "the windowed spectra")
    E = np.full((len(pts), n), np.nan)
    mask = np.zeros((len(pts), n), bool)
    lev_all = np.zeros((len(pts), n), np.int64)
    m2 = np.full((len(pts), n), np.nan) if observables else None
    m4 = np.full((len(pts), n), np.nan) if observables else None
    status = np.zeros(len(pts), np.int32)
    for i, (lev, e, conv, a, b) in enumerate(pts):
        c = lev.size
        E[i, :c], mask[i, :c], lev_all[i, :c] = e, True, lev
        if observables:
            m2[i, :c], m4[i, :c] = a, b
        status[i] = _status(conv)
    if full:
        blk0 = np.repeat(np.arange(lay.dim.size), lay.dim)
        log_g = np.broadcast_to(lay.log_g[blk0], E.shape)
        two_S = np.broadcast_to(lay.two_S[blk0], E.shape)
        parity = np.broadcast_to(lay.parity[blk0].astype(np.int8), E.shape)
    else:
        blk = _block_of(lay, lev_all)
        log_g, two_S, parity = lay.log_g[blk], lay.two_S[blk], lay.parity[blk].astype(np.int8)
    out = (E, log_g, two_S, parity, mask, m2, m4)
    out = [None if a is None else jnp.asarray(a).reshape(*shape, n) for a in out]
    return Spectrum(*out, e_max=jnp.asarray(np.broadcast_to(em, shape)),
                    status=jnp.asarray(status.reshape(shape)), N=N)


# --------------------------------------------------------------------------- canonical


#: Relative weight of the levels left out of ``Z`` by the automatic energy window (``e^-40``).
_LOG_TAIL = -40.0


def _choose_window(lay: _Layout, coef: _Coef, lb, ub, Ts, E0=None):
    """Smallest total-energy cutoff whose omitted levels weigh less than ``e^_LOG_TAIL`` of ``Z``
    at every ``T > 0`` in ``Ts``.

    Rigorous bound from the certified bounds ``lb < λ_0(b) < ub`` of every block ``b`` (size
    ``n_b``, multiplicity ``g_b``): ``Z_omitted <= Σ_b g_b n_b exp(-max(E_cut, lb_b)/T)`` and
    ``Z >= Σ_b g_b exp(-ub_b/T)``.  With ``T = 0`` in ``Ts``, the levels within rounding of the
    ground level ``E0`` are included too.

    Returns ``(E_cut, log_tail)``, ``log_tail`` per ``T`` (``-inf`` at ``T = 0``).
    """
    Ts = np.asarray(Ts, np.float64)
    _, top, scale = (np.asarray(a) for a in _bounds(coef, lay.two_S / 2.0))
    tiny = 64 * _EPS * scale.max()
    ref = ub.min()
    tail = np.full(Ts.shape, -np.inf)
    cut = -np.inf if E0 is None else E0 + tiny
    pos = np.unique(Ts[Ts > 0])
    if pos.size:
        lg, ln_n = lay.log_g, np.log(lay.dim)
        lz = np.array([_logsumexp_np(lg - (ub - ref) / T) for T in pos])

        def log_tail(E_cut):
            c = np.maximum(E_cut, lb) - ref
            return np.array([_logsumexp_np(lg + ln_n - c / T) for T in pos]) - lz

        a, b = lb.min(), top.max()
        if log_tail(a).max() <= _LOG_TAIL:
            b = a
        while b - a > 1e-9 * (abs(a) + abs(b) + 1.0):
            mid = 0.5 * (a + b)
            a, b = (a, mid) if log_tail(mid).max() <= _LOG_TAIL else (mid, b)
        cut = max(cut, b + tiny)
        lt = log_tail(cut)
        for T, v in zip(pos, lt, strict=True):
            tail[Ts == T] = v
    return cut, tail


def _binned_logsumexp(idx, logw, nb):
    """``ln Σ exp(logw)`` over the entries of each bin ``0..nb-1`` (``-inf`` for empty bins)."""
    out = np.full(nb, -np.inf)
    if idx.size == 0:
        return out
    order = np.argsort(idx, kind="stable")
    idx, logw = idx[order], logw[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    m = np.maximum.reduceat(logw, starts)
    sums = np.add.reduceat(np.exp(logw - np.repeat(m, np.diff(np.r_[starts, idx.size]))), starts)
    out[idx[starts]] = m + np.log(sums)
    return out


def _logsumexp_np(a):
    m = np.max(a)
    if not np.isfinite(m):
        return m
    return m + np.log(np.sum(np.exp(a - m)))


@jax.jit
def _thermo_kernel(E, log_g, m2, m4, mask, T, N):
    """Canonical averages over the levels ``E`` (weights ``g e^{-E/T}``) at one temperature."""
    E0 = jnp.min(jnp.where(mask, E, jnp.inf))
    dE = jnp.where(mask, E - E0, 0.0)
    scale = jnp.max(jnp.abs(jnp.where(mask, E, 0.0))) + 1.0
    Tpos = T > 0
    Ts = jnp.where(Tpos, T, 1.0)
    ground = mask & (dE <= 64 * _EPS * scale)
    logw = jnp.where(Tpos, log_g - dE / Ts, jnp.where(ground, log_g, -jnp.inf))
    logw = jnp.where(mask, logw, -jnp.inf)
    lz = logsumexp(logw)
    p = jnp.exp(logw - lz)
    e1 = jnp.sum(p * dE)
    var = jnp.sum(p * (dE - e1) ** 2)
    mean = lambda v: jnp.sum(p * jnp.where(mask, v, 0.0))  # noqa: E731
    s2, s4 = mean(m2), mean(m4)
    log_Z = jnp.where(Tpos, lz - E0 / Ts, jnp.nan)
    f = jnp.where(Tpos, -T * log_Z / N, E0 / N)
    energy = (E0 + e1) / N
    entropy = jnp.where(Tpos, (lz + e1 / Ts) / N, lz / N)
    cv = jnp.where(Tpos, var / (N * Ts * Ts), 0.0)
    return f, energy, entropy, cv, 4.0 * s2 / N**2, 1.0 - s4 / (3.0 * s2 * s2), log_Z


def free_energy(N: int, h, K, T, J=1.0, *, magnetization: bool = True,
                max_bytes: int | None = MAX_BYTES) -> FiniteSizeThermo:
    """Exact canonical thermodynamics of ``N`` spins (eqs. 7, 9), from the exact levels.

    ``Z = Σ_S g(S) Σ_levels e^{-E/T}`` is summed with ``logsumexp`` over ``ln g(S) - E/T``
    (stable for any ``N``, e.g. ``N = 10^4`` at low ``T``).  Only the levels that matter are
    computed: the energy cutoff is chosen so that the omitted levels weigh less than ``e^-40``
    of ``Z`` at every requested ``T`` of a parameter point (a rigorous bound from the lowest
    level of every block, reported as ``log_tail``); at high ``T`` this is the whole spectrum.

    Args:
        N: number of spins, integer ``>= 1``.
        h, K, T, J: transverse field ``>= 0``, 4-spin coupling ``>= 0``, temperature ``>= 0``
            (``T = 0``: the ground state, degenerate levels averaged), 2-spin coupling ``> 0``;
            energy units (``k_B = 1``); NumPy broadcasting.  One spectrum is computed per
            distinct ``(h, K, J)``.
        magnetization: also compute ``⟨Mz²⟩`` and the Binder cumulant (one more sweep).
        max_bytes: memory limit of one spectrum (``ValueError`` with the estimate beyond it).
    Returns:
        :class:`FiniteSizeThermo` with the broadcast shape of ``(h, K, T, J)``.
    Raises:
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range (named), or too
            much memory.
    """
    N = _check_N(N)
    h, K, J = _check_params(h, K, J)
    check("T", T, lower=0.0)
    T = _concrete("T", T)
    shape = np.broadcast_shapes(h.shape, K.shape, T.shape, J.shape)
    hb, Kb, Tb, Jb = (np.broadcast_to(a, shape).reshape(-1) for a in (h, K, T, J))
    keys = np.stack([hb, Kb, Jb], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True) if keys.size else (keys, keys[:, 0])
    inv = np.asarray(inv).reshape(-1)
    out = np.full((7, hb.size), np.nan)
    tail = np.full(hb.size, -np.inf)
    status = np.zeros(hb.size, np.int32)
    lay = _layout(N)
    for u, (hh, KK, JJ) in enumerate(uniq):
        sel = np.flatnonzero(inv == u)
        coef = _coef(N, float(hh), float(KK), float(JJ))
        lb, ub = _block_bounds(N, coef)
        E0 = _ground(N, coef) if np.any(Tb[sel] == 0) else None
        E_cut, log_tail = _choose_window(lay, coef, lb, ub, Tb[sel], E0)
        counts = _per_block(lay, coef, _count_chunk, np.full(lay.dim.size, E_cut))
        if counts.sum() > 0.3 * lay.n_levels:
            _guard(N, estimate_bytes(N, 1, magnetization), max_bytes, "the full spectrum")
            E, conv = _solve_full(N, coef)
            lev = np.arange(E.size)
            log_tail = np.full(sel.size, -np.inf)
        else:
            _guard(N, _window_bytes(lay, int(counts.sum())), max_bytes,
                   "the levels below the energy window")
            lev, E, conv = _solve_window(N, coef, E_cut, lb)
        if magnetization:
            m2, m4 = _observables(N, coef, lev, E)
        else:
            m2 = m4 = np.full(E.size, np.nan)
        blk = _block_of(lay, lev)
        size = _bucket(max(E.size, 64))  # bucketed: one compilation for many window sizes

        def pad(a, fill, size=size):
            out = np.full(size, fill, np.asarray(a).dtype)
            out[: a.size] = a
            return out

        args = (pad(E, 0.0), pad(lay.log_g[blk], 0.0), pad(m2, 0.0), pad(m4, 0.0),
                pad(np.ones(E.size, bool), False))
        for i in sel:
            res = _thermo_kernel(*args, jnp.float64(Tb[i]), float(N))
            out[:, i] = [float(r) for r in res]
        tail[sel] = log_tail
        status[sel] = _status(conv)
    if not magnetization:
        out[4:6] = np.nan
    out[:, status != 0] = np.nan  # a level did not converge: no result (package convention)
    f, energy, entropy_, cv, mz2, binder, log_Z = (jnp.asarray(o.reshape(shape)) for o in out)
    return FiniteSizeThermo(f=f, energy=energy, entropy=entropy_, specific_heat=cv, Mz2=mz2,
                            binder=binder, log_Z=log_Z, log_tail=jnp.asarray(tail.reshape(shape)),
                            status=jnp.asarray(status.reshape(shape)))


# --------------------------------------------------------------------------- microcanonical


def entropy(N: int, h, K, eps_edges, J=1.0, *,
            max_bytes: int | None = MAX_BYTES) -> DensityOfStates:
    """Density of states (eqs. 8, 10), entropy per spin and microcanonical temperature of ``N``
    spins, on energy-per-spin bins.

    Every level ``E`` of sector ``S`` counts ``g(S)`` states (summed in log space).  Only the
    levels below the last edge are computed.  The finite-N temperature comes from centred
    differences of ``σ = ln(count)/N`` between neighbouring bins (use bins wide enough to hold
    many levels: the level spacing is ``O(1)`` in total energy, ``O(1/N)`` per spin).

    Args:
        N: number of spins, integer ``>= 1``.
        h, K, J: couplings as in :func:`spectrum` (broadcastable).
        eps_edges: increasing 1-D bin edges of the energy per spin ``E/N``; bins are
            half-open, ``[e_j, e_{j+1})``.
        max_bytes: memory limit.
    Returns:
        :class:`DensityOfStates`, shapes ``(*broadcast_shape, len(eps_edges) - 1)``.
    """
    N = _check_N(N)
    h, K, J = _check_params(h, K, J)
    edges = np.asarray(_concrete("eps_edges", eps_edges), np.float64)
    bad = edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges))
    if bad or np.any(np.diff(edges) <= 0):
        raise ValueError("eps_edges must be a 1-D increasing array of at least 2 finite edges "
                         f"(energy per spin); got {eps_edges!r}")
    shape = np.broadcast_shapes(h.shape, K.shape, J.shape)
    pts = list(zip(*(np.broadcast_to(a, shape).reshape(-1) for a in (h, K, J)), strict=True))
    nb = edges.size - 1
    lc = np.full((len(pts), nb), -np.inf)
    status = np.zeros(len(pts), np.int32)
    lay = _layout(N)
    for i, (hh, KK, JJ) in enumerate(pts):
        coef = _coef(N, float(hh), float(KK), float(JJ))
        _, hi, _ = (np.asarray(a) for a in _bounds(coef, lay.two_S / 2.0))
        if edges[-1] * N >= hi.max():
            _guard(N, estimate_bytes(N), max_bytes, "the full spectrum")
            E, conv = _solve_full(N, coef)
            lev = np.arange(E.size)
        else:  # bins are [e_j, e_j+1): the levels below N e_last
            lev, E, conv = _solve_window(N, coef, edges[-1] * N, max_bytes=max_bytes)
        idx = np.searchsorted(edges, E / N, side="right") - 1
        inside = (idx >= 0) & (idx < nb)
        lc[i] = _binned_logsumexp(idx[inside], lay.log_g[_block_of(lay, lev)][inside], nb)
        status[i] = _status(conv)
    centers = 0.5 * (edges[1:] + edges[:-1])
    sigma = lc / N
    beta = np.full_like(sigma, np.nan)
    if nb >= 3:
        with np.errstate(invalid="ignore"):
            beta[:, 1:-1] = (sigma[:, 2:] - sigma[:, :-2]) / (centers[2:] - centers[:-2])
        beta[~np.isfinite(beta)] = np.nan
    with np.errstate(divide="ignore"):
        temp = 1.0 / beta
        log_density = lc - np.log(N * np.diff(edges))
    total = np.array([_logsumexp_np(r) for r in lc])
    rs = lambda a: jnp.asarray(np.reshape(a, (*shape, nb)))  # noqa: E731
    return DensityOfStates(eps=rs(np.broadcast_to(centers, lc.shape)), log_count=rs(lc),
                           log_density=rs(log_density), entropy=rs(sigma), beta=rs(beta),
                           temperature=rs(temp), log_total=jnp.asarray(total.reshape(shape)),
                           status=jnp.asarray(status.reshape(shape)))


# --------------------------------------------------------------------------- finite-size scaling


_FORMS = {
    "1/N": lambda N: [np.ones_like(N), 1.0 / N],
    "lnN/N": lambda N: [np.ones_like(N), np.log(N) / N, 1.0 / N],
    "1/N2": lambda N: [np.ones_like(N), 1.0 / N, 1.0 / N**2],
}


def extrapolate(Ns, values, form: str = "lnN/N") -> Extrapolation:
    """Fit ``values(N)`` to a finite-size form and return its ``N → ∞`` limit.

    Forms: ``"1/N"``: ``a + c/N``; ``"lnN/N"`` (default): ``a + b ln N/N + c/N`` (the mean-field
    free energy of a fully connected model has this correction: the ``ln N`` comes from the
    integration over the ``O(1)`` collective coordinates of eqs. 11-12); ``"1/N2"``:
    ``a + c/N + d/N²``.  Least squares when there are more sizes than terms.

    Args:
        Ns: sizes, 1-D, at least as many as the form has terms.
        values: shape ``(len(Ns), ...)``; each trailing index is fitted separately.
        form: one of ``"1/N"``, ``"lnN/N"``, ``"1/N2"``.
    Returns:
        :class:`Extrapolation`.
    """
    if form not in _FORMS:
        raise ValueError(f"form must be one of {sorted(_FORMS)}; got {form!r}")
    Ns = np.asarray(Ns, np.float64)
    y = np.asarray(values, np.float64)
    if Ns.ndim != 1 or y.shape[:1] != Ns.shape:
        raise ValueError(f"values must have shape (len(Ns), ...) = ({Ns.size}, ...); got {y.shape}")
    A = np.stack(_FORMS[form](Ns), axis=1)
    if Ns.size < A.shape[1]:
        raise ValueError(f"form {form!r} needs at least {A.shape[1]} sizes; got {Ns.size}")
    flat = y.reshape(Ns.size, -1)
    coef, *_ = np.linalg.lstsq(A, flat, rcond=None)
    resid = np.max(np.abs(A @ coef - flat), axis=0)
    tail = y.shape[1:]
    return Extrapolation(limit=jnp.asarray(coef[0].reshape(tail)),
                         coef=jnp.asarray(coef.reshape(A.shape[1], *tail)), form=form,
                         residual=jnp.asarray(resid.reshape(tail)))


def mean_field_comparison(Ns, h, K, T, J=1.0, *, form: str = "lnN/N") -> MeanFieldComparison:
    """Exact free energies per spin for several ``N`` against the canonical mean field.

    Args:
        Ns: sizes (integers ``>= 1``).
        h, K, T, J: as in :func:`free_energy` (broadcastable).
        form: finite-size form for :func:`extrapolate` (needs enough sizes).
    Returns:
        :class:`MeanFieldComparison`; ``f`` has shape ``(len(Ns), *broadcast_shape)``.
    """
    from .._canonical import canonical

    Ns = [_check_N(n) for n in Ns]
    f = np.stack([np.asarray(free_energy(n, h, K, T, J, magnetization=False).f) for n in Ns])
    f_mf = np.asarray(canonical(h, K, T, J).f)
    N_arr = np.asarray(Ns, np.float64).reshape(-1, *([1] * f_mf.ndim))
    diff = f - f_mf
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = diff * N_arr / np.log(N_arr)
    n_terms = len(_FORMS[form](np.ones(1)))
    ext = extrapolate(Ns, f, form) if len(Ns) >= n_terms else None
    return MeanFieldComparison(Ns=np.asarray(Ns), f=jnp.asarray(f), f_mean_field=jnp.asarray(f_mf),
                               difference=jnp.asarray(diff), scaled=jnp.asarray(scaled),
                               extrapolated=ext)
