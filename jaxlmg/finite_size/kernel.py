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

from .blocks import block_of

__all__ = ["EPS", "Chunk", "bucket", "make_chunk", "Coef", "TABLE_MIN", "table_size", "evaluate",
           "laguerre_points", "converged", "count_chunk", "observables_chunk"]

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
    this chunk and its number of lanes here; only meaningful when chunks hold whole blocks),
    ``lo``/``hi``/``scale`` (the block's spectral bounds and energy scale, see
    :class:`.hamiltonian.Problem`).  Scalars: ``m0`` (``m`` of the first row, the largest ``S``),
    ``t0`` (index of row ``m0`` in the diagonal table, ``m0 + N/2``), ``tlast`` (that of the
    last row ``m = 0`` or ``½``), ``npro`` (masked rows from the top, where blocks of smaller
    ``S`` are still inactive), ``nmain`` (octets of unmasked rows), ``nepi`` (masked rows at the
    bottom: whole sectors only), ``half`` (half-integer spins) and ``z2`` (parity blocks); see
    :func:`_sweep_chunk`.
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
    lo: Any
    hi: Any
    scale: Any
    m0: Any
    t0: Any
    tlast: Any
    npro: Any
    nmain: Any
    nepi: Any
    half: Any
    z2: Any


def bucket(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def make_chunk(prob, levels, L: int) -> Chunk:
    """The chunk of ``L`` lanes for the flat ``levels`` (``0 < size <= L``; blocks contiguous and
    ``S`` decreasing), built in one vectorized pass (NumPy: the jitted kernels take it as it is).

    ``prob``: the parameter point (:class:`.hamiltonian.Problem`: its layout and per-block
    bounds)."""
    lay = prob.lay
    levels = np.asarray(levels, np.int64)
    n = levels.size
    assert 0 < n <= L
    # padding lanes (the end of the chunk) copy the last real lane's block (smallest S): the
    # unmasked main rows then compute a harmless polynomial there; they are marked by lev = -1
    # and their results are never used
    padded = np.concatenate([levels, np.full(L - n, levels[-1])])
    real = np.arange(L) < n
    blk = block_of(lay, padded)
    S = lay.two_S[blk] / 2.0
    P = lay.parity[blk]
    half = (lay.N % 2) == 1
    # the lanes of one block in the chunk: position of the first (`first`) and count (`nb`)
    grp_id = np.where(real, blk, -1)
    brk = np.ones(L, bool)
    brk[1:] = grp_id[1:] != grp_id[:-1]
    ar = np.arange(L)
    first = np.maximum.accumulate(np.where(brk, ar, 0))
    nxt = np.minimum.accumulate(np.where(brk, ar, L)[::-1])[::-1]
    nxt = np.concatenate([nxt[1:], [L]])
    # rows: a masked prologue from the largest S down, unmasked main octets, and either the
    # parity blocks' last row (m = 0 or ½, rows m >= 0 only) or a masked epilogue down to -S_max
    S_max, S_min = S.max(), S.min()
    if lay.z2:
        mb = 1.5 if half else 1.0
        nmain = int((S_min - mb + 1) // _R) if S_min >= mb else 0
        npro = max(int(S_max - mb + 1) - _R * nmain, 0)
        nepi = 0
    else:
        nmain = int(2 * S_min + 1) // _R
        npro = int(S_max - S_min) + int(2 * S_min + 1) - _R * nmain
        nepi = int(S_max - S_min)
    start = lay.start[blk]
    fields = dict(
        S=S, SS1=S * (S + 1), c0=np.where(lay.z2 and not half, np.where(P > 0, 2.0, 1.0), 1.0),
        hs=np.where(half, -P * (S + 0.5), 0.0), m_lo=lay.m_lo[blk],
        n=lay.dim[blk].astype(np.float64), k=np.where(real, padded - start, 0).astype(np.int32),
        lev=np.where(real, padded, -1), bstart=np.where(real, start, -1),
        first=np.where(real, first, 0).astype(np.int32),
        nb=np.where(real, nxt - first, 1).astype(np.int32),
        lo=prob.lo[blk], hi=prob.hi[blk], scale=prob.scale[blk])
    return Chunk(**fields, m0=np.float64(S_max), t0=np.int32(round(S_max + lay.N / 2)),
                 tlast=np.int32((lay.N + 1) // 2), npro=np.int32(npro), nmain=np.int32(nmain),
                 nepi=np.int32(nepi), half=np.bool_(half), z2=np.bool_(lay.z2))


class Coef(NamedTuple):
    """Matrix coefficients of one parameter point (device arrays of fixed shape).

    Attributes:
        diag: ``(table_size(N),)``, the ``Sᶻ``-diagonal ``D(m) = N u(2m/N)`` at index
            ``m + N/2`` (``m = -N/2, ..., N/2``; zero beyond ``N``).
        h: the transverse field (the off-diagonal is ``-h sqrt(S(S+1) - m(m+1))``).
    """

    diag: Any
    h: Any


#: Smallest length of the diagonal table: one compilation serves every ``N < 32768`` (a table
#: of 256 KiB per chunk call: negligible next to the chunk's work).
TABLE_MIN = 2**15


def table_size(N: int) -> int:
    """Length of the diagonal table of ``N`` spins (a power of two ``>= N + 1``)."""
    return max(TABLE_MIN, bucket(N + 1))


def _rescale(vals):
    """Divide all by the largest magnitude (one division per lane every ``_R`` rows)."""
    mx = functools.reduce(jnp.maximum, [jnp.abs(v) for v in vals])
    s = 1.0 / jnp.where(mx > 0, mx, 1.0)
    return [v * s for v in vals]


def _sweep_chunk(coef: Coef, ln, x, mode: str):
    """The recurrence over the rows of one chunk of lanes (``(L,)``).

    Rows are visited from ``m = S_max`` down; a lane is active on the rows ``m_lo <= m <= S`` of
    its block.  ``p_m = α_m p_{m+1} - c_m p_{m+2}`` with ``α_m = D(m) - x`` (``D`` read from the
    diagonal table) and ``c_m = b_m² = h²(S(S+1) - m(m+1))`` the squared coupling of rows ``m``
    and ``m + 1``, together with its derivatives: ``p'``, ``p''`` (``mode="laguerre"``), ``p'``
    (``"newton"``) or ``p'`` and ``∂p/∂t`` for ``D(m) → D(m) - t m^j``, ``j = 2, 4, 1``
    (``"observables"``).  The sign changes of ``p`` count the levels below ``x``.  An exact zero
    of a leading minor needs no special case: the coupling of the next row is nonzero, so its
    neighbours have opposite signs (``p_{m-1} = -c_{m-1} p_{m+1}``) and the triple holds one sign
    change whichever sign the zero is given; only a zero of ``p`` itself (``x`` a level) is
    flagged, by :func:`evaluate`.  (At ``h = 0`` the couplings would vanish and an exact zero
    would stall the recurrence: :func:`.hamiltonian.problem` then passes a field ``~1e-30`` of
    the energy scale, which moves no level by a representable amount.)

    Stages, so that the bulk of the rows needs no per-lane masks:

    * ``ln.npro`` *prologue* rows from ``S_max`` down, where the lanes of smaller blocks are
      still inactive (they run ``α = 1, c = 0`` without source terms, which leaves their state
      unchanged); rescaled every row;
    * ``_R·ln.nmain`` *main* rows, active on every lane (down to ``m = 1`` or ``1½`` in parity
      blocks), with ``α`` and ``c`` a scalar plus a per-lane constant; the state is divided by
      its largest entry every ``_R`` rows (no overflow, no divisions in the rows);
    * whole sectors (no Z₂ symmetry): ``ln.nepi`` masked *epilogue* rows down to ``-S_max``,
      where the lanes of smaller blocks have already finished;
    * parity blocks: the *last* row, the only one where the two parity blocks differ: ``m = 0``
      (integer ``S``; even block only, coupling ``2b_0²``) or ``m = ½`` (diagonal shifted by
      ``∓h(S+½)``).
    """
    h2 = coef.h * coef.h
    hSS1 = h2 * ln.SS1
    L = x.shape[0]
    nq = {"laguerre": 3, "newton": 2, "observables": 5}[mode]
    half = ln.half  # scalar: half-integer spins (odd N)

    def step(cur, prev, cnt, al, c, on, m):
        p1 = cur[0]
        if mode == "laguerre":  # p, p', p''
            src = (0.0, -on * p1, -2.0 * on * cur[1])
        elif mode == "newton":  # p, p'
            src = (0.0, -on * p1)
        else:  # p, p', and dp/dt for the perturbations D(m) -> D(m) - t m^j, j = 2, 4, 1
            m2 = m * m
            src = (0.0, -on * p1, -(on * m2) * p1, -(on * m2 * m2) * p1, -(on * m) * p1)
        new = [al * q1 - c * q0 + s for q1, q0, s in zip(cur, prev, src, strict=True)]
        cnt = cnt + ((new[0] < 0) != (p1 < 0)).astype(jnp.int32)
        return tuple(new), cur, cnt

    def rescale(carry):
        cur, prev, cnt = carry
        both = _rescale([*cur, *prev])
        return tuple(both[:nq]), tuple(both[nq:]), cnt

    def masked_row(i, carry):
        m = ln.m0 - i.astype(x.dtype)
        act = (m <= ln.S) & (m >= ln.m_lo)
        c = jnp.where(act, hSS1 - h2 * m * (m + 1.0), 0.0)
        al = jnp.where(act, coef.diag[ln.t0 - i] - x, 1.0)
        return rescale(step(*carry, al, c, act.astype(x.dtype), m))

    def main_rows(i, carry):
        mtop = ln.m0 - ln.npro.astype(x.dtype) - _U * i.astype(x.dtype)
        ttop = ln.t0 - ln.npro - _U * i
        for r in range(_U):
            m = mtop - r
            carry = step(*carry, coef.diag[ttop - r] - x, hSS1 - h2 * m * (m + 1.0), 1.0, m)
        return carry

    def octet(i, carry):
        return rescale(jax.lax.fori_loop(_R // _U * i, _R // _U * (i + 1), main_rows, carry))

    zero = jnp.zeros(L)
    carry = ((jnp.ones(L),) + (zero,) * (nq - 1), (zero,) * nq, jnp.zeros(L, jnp.int32))
    carry = jax.lax.fori_loop(0, ln.npro, masked_row, carry)
    carry = jax.lax.fori_loop(0, ln.nmain, octet, carry)
    epi = ln.npro + _R * ln.nmain
    carry = jax.lax.fori_loop(epi, epi + ln.nepi, masked_row, carry)
    # parity blocks, the last row: m = 1/2 (half-integer S, all lanes) or m = 0 (even blocks of
    # integer S); inactive for whole sectors (their rows end in the epilogue)
    m = jnp.where(half, 0.5, 0.0)
    act = ln.z2 & (half | (ln.m_lo == 0.0))
    c = jnp.where(act, (hSS1 - h2 * m * (m + 1.0)) * ln.c0, 0.0)
    al = jnp.where(act, coef.diag[ln.tlast] - x + coef.h * ln.hs, 1.0)
    cur, _, cnt = step(*carry, al, c, act.astype(x.dtype), m)
    return cur, cnt


def evaluate(coef: Coef, ch: Chunk, x, mode: str = "laguerre"):
    """:func:`_sweep_chunk` for one chunk, reduced to what the solvers use (shapes ``(L,)``).

    Returns:
        ``mode="laguerre"``: ``(count, G, H, exact)``: ``count`` the number of levels ``< x``,
        ``G = p'/p = Σ 1/(x - λ)``, ``H = G² - p''/p = Σ 1/(x - λ)²``, ``exact`` where
        ``p(x) == 0``.  ``mode="newton"``: the same without ``H`` (``None``; cheaper).
        ``mode="observables"``: ``(m2, m4, m1)``, the Hellmann-Feynman expectation values
        ``⟨m^j⟩ = -∂λ/∂t = (∂p/∂t)/p'`` for the perturbations ``D(m) → D(m) - t m^j``,
        ``j = 2, 4, 1`` (exact at ``x = λ``; ``m1`` means nothing in a parity block, whose
        rows are ``m >= 0`` only: there ``⟨Sᶻ⟩ = 0`` by symmetry).
    """
    q, cnt = _sweep_chunk(coef, ch, x, mode)
    if mode in ("laguerre", "newton"):
        p, u = q[0], q[1]
        exact = p == 0
        ps = jnp.where(exact, 1.0, p)
        G = u / ps
        H = G * G - q[2] / ps if mode == "laguerre" else None
        return cnt, G, H, exact
    _, u, a, b, c = q
    us = jnp.where(u == 0, 1.0, u)
    return a / us, b / us, c / us


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
    """``(⟨m²⟩, ⟨m⁴⟩, ⟨m⟩)`` of the levels ``x`` (Hellmann-Feynman, see :func:`evaluate`)."""
    return evaluate(coef, ch, x, mode="observables")

