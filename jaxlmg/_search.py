"""The shared 1-D numerics of every engine: a certified search for *all* roots of a scalar
residual on an interval, and one safeguarded Newton polish.  Pure JAX, one point (no batching).

Every engine reduces its problem exactly to one variable (the canonical and microcanonical
landscapes of a collective spin, the shell of fixed energy, the temperature along a branch), so
its states are the roots of a smooth scalar residual ``g`` (a stationarity condition).

**Certified search** (:func:`certified_brackets`).  ``g`` is evaluated on caller-given nodes.  An
interval whose ends have opposite signs holds a root; an interval whose ends have the same sign is
*excluded* when the caller's ``excludes(a, c)`` proves, from the data at its two ends, that ``g``
cannot vanish inside (for the collective-spin landscapes: a mean-value test with an enclosure of
``g'`` from the model's derivative bounds, see :func:`slope_excludes`).  Intervals that are
neither are bisected, a few at a time,
until they are excluded, found to hold a sign change, or shorter than ``min_width`` (then they are
returned as *unresolved* candidates: a double root, e.g. a spinodal, within rounding).  So no root
is missed because it falls between scan points: either it is bracketed or the search says it could
not certify the interval (``certified = False``, from a capacity overflow only).

**Newton** (:func:`newton_root`).  Safeguarded Newton on a bracket with a sign change: a Newton
step that leaves the bracket becomes a bisection; a fixed, unrolled number of steps keeps the
lanes of a ``vmap`` in step, and the rare lanes that have not converged continue in a bounded
``while_loop``.  Derivatives of the located roots never go through these iterations: they come from
the implicit function theorem (:mod:`jaxlmg._implicit`).  Where there is no bracket (a root
continued from a good start: a boundary along a coupling, a system in several unknowns), the
plain Newton iteration :func:`newton_steps` is the one used; its callers verify the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Brackets", "Node", "certified_brackets", "newton_root", "newton_steps",
           "slope_excludes"]

#: Kind of a bracket: the residual rises through its root (a minimum of the landscape whose
#: derivative it is), falls (a maximum), or the bracket is an unresolved candidate (a double root).
RISING, FALLING, UNRESOLVED = 1, -1, 0


class Node(NamedTuple):
    """The residual at one point: ``x``, ``g = g(x)`` and any auxiliary data ``aux`` (a pytree of
    scalars) the exclusion test needs."""

    x: Any
    g: Any
    aux: Any


class Brackets(NamedTuple):
    """All roots of a residual on an interval (``max_roots`` slots, not sorted: the roots between
    scan nodes come first, in order, then those found by refinement; sort by ``lo`` if needed).

    Attributes:
        lo, hi: ``(max_roots,)`` bracket ends, ``lo <= hi``; ``g(lo)`` and ``g(hi)`` have
            opposite signs for a resolved root (``g >= 0`` counts as positive).  Unused
            slots hold ``+inf``.
        g_lo, g_hi: ``(max_roots,)`` residual at the ends.
        kind: ``(max_roots,)`` int: ``RISING`` (+1), ``FALLING`` (-1), ``UNRESOLVED`` (0, a
            candidate double root narrower than ``min_width``), -2 for unused slots.
        count: number of used slots.
        certified: ``False`` if some interval could be neither excluded nor resolved within the
            budget (the refinement stack or the root list overflowed, or ``max_rounds`` ran out):
            a root may be missing.  The intervals left are returned as ``UNRESOLVED`` where slots
            remain.
        complete: every root bracketed by a sign change fit in the ``max_roots`` slots
            (``False``: a resolved root is not in the result at all; unresolved candidates
            beyond the slots, a landscape flat to rounding, do not count).
    """

    lo: Any
    hi: Any
    g_lo: Any
    g_hi: Any
    kind: Any
    count: Any
    certified: Any
    complete: Any = True


def slope_excludes(ga, gc, w, d_lo, d_hi, margin=0.0):
    """Mean-value exclusion: ``g`` has no root on ``[a, a + w]`` given ``g(a) = ga``,
    ``g(a + w) = gc`` of one sign and ``d_lo <= g' <= d_hi`` on the interval.

    For ``ga, gc > margin``: ``g(a + t) >= max(ga + d_lo t, gc - d_hi (w - t))``; the first line
    stays above ``margin`` for ``t < (ga - margin)/max(-d_lo, 0)``, the second for
    ``w - t < (gc - margin)/max(d_hi, 0)``, so ``g > margin`` on the whole interval when these
    two reaches add up to more than ``w`` (written without division).  ``ga, gc < -margin``: the
    mirror image.  Second-order sharp: the bound misses ``min |g|`` by ``O((d_hi - d_lo) w)``.
    ``margin`` is the rounding level of ``g``.  Scalars.
    """

    def clear(ga, gc, down, up):
        # down = max(-g'_min, 0), up = max(g'_max, 0)
        ra, rc = ga - margin, gc - margin
        return (ra > 0) & (rc > 0) & (ra * up + rc * down > w * down * up)

    zero = jnp.zeros_like(d_lo)
    pos = clear(ga, gc, jnp.maximum(-d_lo, zero), jnp.maximum(d_hi, zero))
    neg = clear(-ga, -gc, jnp.maximum(d_hi, zero), jnp.maximum(-d_lo, zero))
    return pos | neg


def _tree_where(mask, x, y):
    return jax.tree_util.tree_map(lambda u, v: jnp.where(mask, u, v), x, y)


def _tree_take(tree, idx):
    return jax.tree_util.tree_map(lambda u: u[idx], tree)


def certified_brackets(gfun: Callable, excludes: Callable, nodes, *, max_roots: int = 6,
                       capacity: int = 4, stack: int = 16, max_rounds: int = 48,
                       min_width=0.0) -> Brackets:
    """Bracket every root of ``g`` on ``[nodes[0], nodes[-1]]``.

    Args:
        gfun: ``x -> (g(x), aux)`` for a scalar ``x``.
        excludes: ``(Node, Node) -> bool``: ``True`` only if ``g`` certainly has no root between
            the two nodes (see :func:`slope_excludes`).
        nodes: ``(n,)`` increasing scan points.
        max_roots: slots of the result.
        capacity: intervals bisected per round (the cost of a round is ``capacity`` evaluations).
        stack: uncertain intervals waiting at most (more: ``certified = False``); at least the
            number of scan intervals, so that no interval of the scan is ever dropped.
        max_rounds: bisection rounds at most (each halves the uncertain intervals); ``0``: no
            refinement (a fast pass: ``certified`` is ``False`` as soon as one interval is
            uncertain, and uncertain intervals are not returned).
        min_width: an interval narrower than this that is still uncertain is returned as an
            ``UNRESOLVED`` candidate.
    Returns:
        :class:`Brackets`.
    """
    stack = max(stack, nodes.shape[0] - 1)
    g, aux = jax.vmap(gfun)(nodes)
    dtype = nodes.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    a = Node(nodes[:-1], g[:-1], _tree_take(aux, slice(None, -1)))
    c = Node(nodes[1:], g[1:], _tree_take(aux, slice(1, None)))

    # Signs: g >= 0 counts as positive, so an exact zero at a node is bracketed exactly once by
    # the interval on whichever side the sign changes (twice, rising and falling, at a tangency).
    def classify(a: Node, c: Node):
        root = (a.g < 0) != (c.g < 0)
        excluded = ~root & excludes(a, c)
        return root, excluded

    def kind_of(ga):
        return jnp.where(ga < 0, RISING, FALLING).astype(jnp.int32)

    root, excluded = jax.vmap(classify)(a, c)
    uncertain = ~root & ~excluded

    lists = (jnp.full((max_roots,), inf), jnp.full((max_roots,), inf),
             jnp.zeros((max_roots,), dtype), jnp.zeros((max_roots,), dtype),
             jnp.full((max_roots,), -2, jnp.int32), jnp.zeros((), jnp.int32))

    def append(lists, mask, a: Node, c: Node, kind):
        # slot count + j takes the j-th interval of ``mask``: selects unrolled over the (short)
        # list of intervals (a scatter, or a reduction over the intervals, is slow on a CPU
        # under ``vmap``)
        lo, hi, glo, ghi, kd, count = lists
        kind = jnp.broadcast_to(kind, mask.shape)
        slot = jnp.arange(max_roots)
        for i in range(mask.shape[0]):
            hit = mask[i] & (slot == count)
            lo = jnp.where(hit, a.x[i], lo)
            hi = jnp.where(hit, c.x[i], hi)
            glo = jnp.where(hit, a.g[i], glo)
            ghi = jnp.where(hit, c.g[i], ghi)
            kd = jnp.where(hit, kind[i], kd)
            count = count + mask[i].astype(jnp.int32)
        return lo, hi, glo, ghi, kd, count

    lists = append(lists, root, a, c, kind_of(a.g))
    n_sign = jnp.sum(root).astype(jnp.int32)  # roots with a sign change, slots or not

    def compact(mask, a: Node, c: Node):
        """The first ``stack`` intervals of ``mask`` (in order) as a fixed-size stack, by a
        prefix-sum scatter (sorting is slow on a CPU under ``vmap``)."""
        pos = jnp.where(mask, jnp.cumsum(mask) - 1, stack)

        def put(u):
            return jnp.zeros((stack,), u.dtype).at[pos].set(u, mode="drop")

        new = jnp.zeros((stack,), bool).at[pos].set(True, mode="drop")
        return (new, jax.tree_util.tree_map(put, a), jax.tree_util.tree_map(put, c),
                jnp.sum(mask) > stack)

    if max_rounds == 0:  # no refinement: certified only if nothing is uncertain
        lo, hi, glo, ghi, kind, count = lists
        certified = ~jnp.any(uncertain) & (count <= max_roots)
        return Brackets(lo=lo, hi=hi, g_lo=glo, g_hi=ghi, kind=kind,
                        count=jnp.minimum(count, max_roots), certified=certified,
                        complete=n_sign <= max_roots)
    active, sa, sc, overflow = compact(uncertain, a, c)
    unresolved_kind = jnp.full((2 * capacity,), UNRESOLVED, jnp.int32)
    cat = lambda u, v: jnp.concatenate([u, v])  # noqa: E731

    def cond(state):
        it, active = state[0], state[1]
        return (it < max_rounds) & jnp.any(active)

    def body(state):
        # Bisect the first ``capacity`` intervals of the stack (active ones first, in order);
        # the others wait for a later round.
        it, active, sa, sc, lists, overflow, n_sign = state
        head, rest = slice(0, capacity), slice(capacity, None)
        pa, pc, pact = _tree_take(sa, head), _tree_take(sc, head), active[head]
        mid = 0.5 * (pa.x + pc.x)
        gm, auxm = jax.vmap(gfun)(mid)
        m = Node(mid, gm, auxm)
        ca = jax.tree_util.tree_map(cat, pa, m)  # children [pa, m] then [m, pc]
        cc = jax.tree_util.tree_map(cat, m, pc)
        act2 = cat(pact, pact)
        r, ex = jax.vmap(classify)(ca, cc)
        r = r & act2
        unc = act2 & ~r & ~ex
        narrow = (cc.x - ca.x) <= min_width
        lists = append(lists, r, ca, cc, kind_of(ca.g))
        lists = append(lists, unc & narrow, ca, cc, unresolved_kind)
        keep = cat(unc & ~narrow, active[rest])
        na = jax.tree_util.tree_map(cat, ca, _tree_take(sa, rest))
        nc = jax.tree_util.tree_map(cat, cc, _tree_take(sc, rest))
        active, sa, sc, ovf = compact(keep, na, nc)
        return (it + 1, active, sa, sc, lists, overflow | ovf,
                n_sign + jnp.sum(r).astype(jnp.int32))

    _, active, sa, sc, lists, overflow, n_sign = jax.lax.while_loop(
        cond, body, (0, active, sa, sc, lists, overflow, n_sign))
    certified = ~overflow & ~jnp.any(active) & (lists[-1] <= max_roots)
    # Intervals left when the budget ran out (a landscape flat to rounding over a wide range, next
    # to a tricritical point) are returned as candidates, so that callers can still compare them.
    lists = append(lists, active, sa, sc, jnp.full((stack,), UNRESOLVED, jnp.int32))
    lo, hi, glo, ghi, kind, count = lists
    return Brackets(lo=lo, hi=hi, g_lo=glo, g_hi=ghi, kind=kind,
                    count=jnp.minimum(count, max_roots), certified=certified,
                    complete=n_sign <= max_roots)


def newton_root(gd: Callable, x0, lo, hi, g_lo, *, n_iter: int = 5, max_extra: int = 60,
                active=True, xtol: float = 1e-13, gtol=0.0,
                converged_extra: Callable | None = None):
    """Safeguarded Newton for the root of ``g`` in the bracket ``[lo, hi]``.

    Args:
        gd: ``x -> (g(x), g'(x))`` (e.g. ``jax.jvp``).
        x0: start inside the bracket.
        lo, hi: bracket ends, ``lo <= hi``, ``g`` changes sign on it (or vanishes at an end).
        g_lo: ``g(lo)`` (its sign orients the bracket).
        n_iter: unrolled steps (from a start near the root, Newton converges in 2-3).
        max_extra: further steps, in a ``while_loop``, for lanes not converged (and ``active``).
        xtol: converged when the last step is below ``xtol (|lo| + |hi| + tiny)``.
        gtol: converged when ``|g| <= gtol`` (the rounding level of ``g``: below it Newton steps
            are noise).
        converged_extra: optional ``(x, step, g) -> bool``, a further convergence test (e.g. the
            physical outputs no longer change).
    Returns:
        ``(x, converged)``.
    """
    neg_lo = g_lo < 0
    scale = jnp.abs(lo) + jnp.abs(hi) + jnp.finfo(jnp.result_type(x0)).tiny

    def step(carry):
        x, lo, hi, _, _ = carry
        g, d = gd(x)
        left = (g < 0) == neg_lo  # x is on the side of lo
        lo = jnp.where(left, x, lo)
        hi = jnp.where(left, hi, x)
        newton = x - g / jnp.where(d != 0, d, 1.0)
        ok = (d != 0) & (newton >= lo) & (newton <= hi) & jnp.isfinite(newton)
        xn = jnp.where(ok, newton, 0.5 * (lo + hi))
        xn = jnp.where(g == 0, x, xn)
        return xn, lo, hi, xn - x, g

    def done(carry):
        x, lo, hi, dx, g = carry
        ok = (jnp.abs(dx) <= xtol * scale) | (jnp.abs(g) <= gtol) | (hi - lo <= xtol * scale)
        if converged_extra is not None:
            ok = ok | converged_extra(x, dx, g)
        return ok

    carry = (x0, lo, hi, jnp.full_like(x0, jnp.inf), jnp.ones_like(x0))
    for _ in range(n_iter):
        carry = step(carry)

    def more(state):
        it, carry = state
        return (it < max_extra) & active & ~done(carry)

    def again(state):
        it, carry = state
        return it + 1, step(carry)

    _, carry = jax.lax.while_loop(more, again, (0, carry))
    return carry[0], done(carry)


def newton_steps(gd: Callable, x0, n_iter: int, *, project: Callable | None = None):
    """Plain Newton from ``x0``, ``n_iter`` steps (a ``fori_loop``), for a root without a bracket.

    Args:
        gd: ``x -> (g(x), g'(x))`` for a scalar ``x`` (e.g. ``jax.jvp``; a zero ``g'`` counts as
            1), or ``x -> (G(x), dG/dx)`` with the Jacobian for a vector ``x`` (shape ``(n,)``).
        x0: the start.
        n_iter: steps (static).
        project: optional ``x -> x`` applied after each step (e.g. a clip to the domain).
    Returns:
        ``(x, step)``: the last iterate and the last step taken.  A step that is not finite is
        not taken (``x`` keeps its value) but is returned as it was, so that a test on the step
        size fails.  Callers check the residual or the step: this is not safeguarded (with a
        bracket use :func:`newton_root`).
    """

    def body(_, state):
        x, _ = state
        g, d = gd(x)
        if jnp.ndim(x) == 0:
            step = g / jnp.where(d != 0, d, 1.0)
        else:
            step = jnp.linalg.solve(d, g)
        xn = jnp.where(jnp.all(jnp.isfinite(step)), x - step, x)
        if project is not None:
            xn = project(xn)
        return xn, step

    return jax.lax.fori_loop(0, n_iter, body, (x0, jnp.zeros_like(x0)))
