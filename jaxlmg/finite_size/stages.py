"""Solver stages on one chunk of lanes (jitted): multisection, lane-local Laguerre, refinement.

* :func:`shared_chunk`: levels of whole blocks from scratch, multisection with brackets shared
  among the lanes of a block, then Laguerre with Sturm safeguards;
* :func:`local_chunk`: lane-local safeguarded Laguerre for the few lanes left over;
* :func:`refine_chunk`: one certified Laguerre or Newton pass at predicted levels
  (continuation in ``S``, see :mod:`.solvers`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .kernel import EPS, Chunk, Coef, converged, evaluate, laguerre_points

__all__ = ["TOL_ACCEPT", "shared_chunk", "local_chunk", "refine_chunk"]

#: A Laguerre step below this fraction of the block's energy scale ends a lane's iteration
#: (convergence is cubic: the next error would be ~(step)³/gap², below float64 resolution).
_TOL_STEP = 1e-10
#: Brackets narrower than this many ulps of the energy scale are converged (degenerate levels).
_TOL_BRACKET = 8.0
#: A predicted level is accepted after one Laguerre pass when the step is below this fraction of
#: the distance to the neighbouring predictions (error after it ~1e-15 of the level spacing).
TOL_ACCEPT = 1e-5


class _Shared(NamedTuple):
    x: Any
    EL: Any  # per lane k: largest known point with exactly k levels below (start from below)
    EU: Any  # per lane k: smallest known point with exactly k + 1 levels below (from above)
    val: Any
    done: Any


@jax.jit
def shared_chunk(coef: Coef, ch: Chunk, lo_x, hi_x, max_passes, tail):
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
    lo0, hi0, scale = ch.lo, ch.hi, ch.scale
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
        cnt, G, H, exact = evaluate(coef, ch, x)
        up, dn = laguerre_points(x, ch.n, G, H, exact)
        newly, v = converged(x, k, cnt, G, up, dn, exact, _TOL_STEP * scale)
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
        narrow = ~st.done & ~newly & (UB - LB <= _TOL_BRACKET * EPS * scale)
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
def local_chunk(coef: Coef, ch: Chunk, x0, lo, clo, hi, chi, max_passes):
    """Lane-local safeguarded Laguerre iteration (no sharing), for the few lanes left over.

    Each lane keeps a bracket ``lo < λ_k < hi`` with ``clo <= k < chi`` levels below its ends,
    and steps from its point with Laguerre when the evaluation is on the correct side of level
    ``k``; otherwise it bisects an isolating bracket or moves to its rank inside the bracket.
    """
    scale = ch.scale
    k = ch.k
    L = k.shape[0]
    inside = jnp.isfinite(x0) & (x0 >= lo) & (x0 <= hi)
    x0 = jnp.where(inside, x0, 0.5 * (lo + hi))
    init = (0, x0, lo, clo, hi, chi, jnp.full(L, jnp.nan), ch.lev < 0)

    def body(carry):
        it, x, lo, clo, hi, chi, val, done = carry
        cnt, G, H, exact = evaluate(coef, ch, x)
        up, dn = laguerre_points(x, ch.n, G, H, exact)
        newly, v = converged(x, k, cnt, G, up, dn, exact, _TOL_STEP * scale)
        newly = newly & ~done
        val = jnp.where(newly, v, val)
        below = cnt <= k  # x, and its Laguerre point `up`, lie below level k
        cand = jnp.where(jnp.isfinite(up), up, x)
        raise_lo = below & (cand > lo)
        lo, clo = jnp.where(raise_lo, cand, lo), jnp.where(raise_lo, cnt, clo)
        cand = jnp.where(jnp.isfinite(dn), dn, x)
        lower_hi = ~below & (cand < hi)
        hi, chi = jnp.where(lower_hi, cand, hi), jnp.where(lower_hi, cnt, chi)
        narrow = ~done & ~newly & (hi - lo <= _TOL_BRACKET * EPS * scale)
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
def refine_chunk(coef: Coef, ch: Chunk, x, mode: str = "laguerre"):
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
    lo, hi, scale = ch.lo, ch.hi, ch.scale
    cnt, G, H, exact = evaluate(coef, ch, x, mode=mode)
    if mode == "laguerre":
        up, dn = laguerre_points(x, ch.n, G, H, exact)
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
    tol = jnp.minimum((TOL_ACCEPT if mode == "laguerre" else TOL_ACCEPT**1.5) * gap, 1e-3 * scale)
    ok, val = converged(x, k, cnt, G, up, dn, exact, tol)
    ok = ok & (ch.lev >= 0)
    # seeds for the others
    margin = 64 * EPS * scale
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

