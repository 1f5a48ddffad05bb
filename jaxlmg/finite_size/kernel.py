"""The eigenvalue kernel: Sturm count, ``p'/p`` and ``p''/p`` of a tridiagonal block (eq. 4).

For a chunk of ``L`` *lanes* (a block and a trial energy ``x`` each), :func:`evaluate` runs the
three-term recurrence of the characteristic polynomial ``p(x) = det(T - x)`` over the rows of the
block, with ``p'`` and ``p''`` (or ``p'`` only), divided by its largest entry every 8 rows (no
divisions in the rows).  It gives the Sturm count (levels below ``x``: sign changes of ``p``),
``G = p'/p = Σ 1/(x - λ)`` and ``H = Σ 1/(x - λ)²``, from which :func:`laguerre_points` gives
Laguerre's two points (between ``x`` and its neighbouring levels, cubically convergent).  All
device work is on chunks of fixed size (one compilation per kernel).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .blocks import Layout, block_of, m_lo

__all__ = ["EPS", "Chunk", "bucket", "make_chunk", "Coef", "make_coef", "evaluate",
           "laguerre_points", "weyl_bounds", "converged", "count_chunk", "observables_chunk"]

#: Rows between two rescalings of the recurrence, and rows per (unrolled) loop iteration: XLA
#: fuses an unrolled body into one loop over the lanes, but duplicates work beyond ~2 rows.
_R = 8
_U = 4


EPS = float(np.finfo(np.float64).eps)


class Chunk(NamedTuple):
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


def bucket(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def _make_chunks(lay: Layout, levels, L: int) -> list[Chunk]:
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
    blk = block_of(lay, padded)
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
        hs=np.where(half, -P * (S + 0.5), 0.0), m_lo=m_lo(lay.N, P),
        n=lay.dim[blk].astype(np.float64), k=np.where(real, padded - start, 0).astype(np.int32),
        lev=np.where(real, padded, -1), bstart=np.where(real, start, -1),
        first=np.where(real, first, 0).astype(np.int32),
        nb=np.where(real, nxt - first, 1).astype(np.int32))
    return [Chunk(**{f: a[c] for f, a in fields.items()}, m0=np.float64(S_max[c]),
                   npro=np.int32(npro[c]), nmain=np.int32(nmain[c]), half=np.bool_(half))
            for c in range(nc)]


def make_chunk(lay: Layout, levels, L: int) -> Chunk:
    """The chunk of the flat ``levels`` (``0 < size <= L``; see :func:`_make_chunks`)."""
    assert np.size(levels) <= L
    return _make_chunks(lay, levels, L)[0]



class Coef(NamedTuple):
    """Matrix coefficients of one parameter point: diagonal ``-(J4 m² + K16 m⁴)``, field ``h``."""

    J4: Any  # 4J/N
    K16: Any  # 16K/N³
    h: Any


def make_coef(N, h, K, J) -> Coef:
    return Coef(J4=4.0 * J / N, K16=16.0 * K / N**3, h=h)


def _rescale(vals):
    """Divide all by the largest magnitude (one division per lane every ``_R`` rows)."""
    mx = functools.reduce(jnp.maximum, [jnp.abs(v) for v in vals])
    s = 1.0 / jnp.where(mx > 0, mx, 1.0)
    return [v * s for v in vals]


def _sweep_chunk(coef: Coef, ln, x, mode: str):
    """The recurrence over the rows of one chunk of lanes (``(L,)``).

    Rows are visited from ``m = S_max`` down; a lane is active on the rows ``m_lo <= m <= S`` of
    its block.  ``p_m = α_m p_{m+1} - c_m p_{m+2}`` with ``α_m = a_m - x`` and ``c_m = b_m²`` the
    squared coupling of rows ``m`` and ``m + 1``, together with its derivatives: ``p'``, ``p''``
    (``mode="laguerre"``), ``p'`` (``"newton"``) or ``p'``, ``∂p/∂J4``, ``∂p/∂K16``
    (``"observables"``).  The sign changes of ``p`` count the levels below ``x``.  An exact zero
    of a leading minor needs no special case: the coupling of the next row is nonzero, so its
    neighbours have opposite signs (``p_{m-1} = -c_{m-1} p_{m+1}``) and the triple holds one sign
    change whichever sign the zero is given; only a zero of ``p`` itself (``x`` a level) is
    flagged, by :func:`evaluate`.

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


def evaluate(coef: Coef, ch: Chunk, x, mode: str = "laguerre"):
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


def laguerre_points(x, n, G, H, exact):
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


def weyl_bounds(coef: Coef, S):
    """Interval strictly containing the spectrum of a block of spin ``S`` (Weyl: the diagonal part
    lies in ``[a(S), 0]``, ``-2h Sˣ`` in ``[-2hS, 2hS]``), and the block's energy scale."""
    a_S = -(coef.J4 * S * S + coef.K16 * S**4)
    scale = -a_S + 2.0 * coef.h * S + coef.J4 + coef.K16 + coef.h
    margin = 1e-6 * scale
    return a_S - 2.0 * coef.h * S - margin, 2.0 * coef.h * S + margin, scale



def converged(x, k, cnt, G, up, dn, exact, tol):
    """Lanes whose evaluation at ``x`` sits next to level ``k`` on the correct side with a tiny
    Laguerre step: the count says on which side of level ``k`` the point is, the sign of ``G``
    that level ``k`` (not a neighbour) dominates."""
    conv_up = (cnt == k) & ((G < 0) | exact) & (up - x <= tol)
    conv_dn = (cnt == k + 1) & ((G > 0) | exact) & (x - dn <= tol)
    return conv_up | conv_dn, jnp.where(conv_up, up, dn)



@jax.jit
def count_chunk(coef: Coef, ch: Chunk, x):
    """Number of levels below ``x`` in each lane's block."""
    return evaluate(coef, ch, x)[0]


@jax.jit
def observables_chunk(coef: Coef, ch: Chunk, x):
    """``(⟨m²⟩, ⟨m⁴⟩)`` of the levels ``x`` (Hellmann-Feynman, see :func:`evaluate`)."""
    return evaluate(coef, ch, x, mode="observables")

