"""The microcanonical kernel for ONE point: the certified maximum of the entropy on an energy shell.

**Exact reduction** (eq. 16).  ``σ(ε) = max S(s)`` over the states of energy ``ε``; ``S`` decreases
with the spin length ``s``, so ``σ = S(s*)`` with ``s*`` the *shortest* magnetization on the shell.
For ``h > 0`` the shell of eq. (13) (``e = u(Mz) - h Mx``, ``φ ∈ {0, π}``) is the curve
``Mx = (u(m) - ε)/h`` with ``m = Mz``, hence

    ``s²(m) = m² + ((u(m) - ε)/h)²``,   ``(h²/2) d(s²)/dm = R(m) = h² m + (u(m) - ε) u'(m)``.

At ``h = 0``, ``Mx = 0`` and ``m*`` is the root of ``u(m) = ε`` nearest to 0.

**Certified search** (:func:`jaxlmg._search.certified_brackets`).  Every stationary point of
``s²`` is bracketed; none can hide between scan points, because each interval without a sign change
is *excluded* by a proof (a Lipschitz bound from the model's derivative bounds) or bisected:

* Z₂-symmetric models work in ``x = m² ∈ [0, 1]``, where ``d(s²)/dx = g(x)/h²`` with
  ``g = h² + (u - ε) w``, ``w = u'(m)/m`` (the paramagnet ``m = 0`` is the end ``x = 0``, not a
  root, and an ordered root near it is simple in ``x``).  ``g = h² + L`` with ``L`` Lipschitz in
  ``x``: ``|dL/dx| <= C²/2 + |u - ε| D₄/6`` (``|w| <= C = max|u''|``, ``|dw/dx| <= D₄/6``,
  ``D₄ = max|u''''|``).
* other models work in ``m ∈ [-1, 1]`` on ``R = h² m + L``, ``L = (u - ε) u'`` Lipschitz with
  constant ``U₁² + |u - ε| C`` (``U₁`` a local bound on ``|u'|``).

The global minimum of ``s²`` over the shell is the smallest ``s²`` over the candidates: the
polished roots, the ends (``x = 0``), and any interval the search could only shrink below
``min_width`` without resolving (a near-double root; its ``s²`` is flat there).  Any feasible
point whose ``s²`` is at most every local minimum's is a global minimizer, so extra candidates never
change the answer.  ``n_maxima`` counts the local minima of ``s²`` with ``s <= 1`` (rising roots,
and ``x = 0`` where ``g(0) >= 0`` is not followed by a falling root).

**Observables.**  Envelope theorem, ``d(s²)/dε = -2 Mx/h``: ``β = artanh(s)/s · Mx/h`` (eq. 36),
``T = 1/β``; ``dβ/dε`` by exact autodiff through ``m*(ε)``, itself differentiated by the implicit
function theorem on ``R(m) = 0`` (:func:`jaxlmg._implicit.implicit_solution`); ``c = -β²/(dβ/dε)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._implicit import implicit_solution
from ._model import entropy
from ._search import (
    RISING,
    UNRESOLVED,
    certified_brackets,
    newton_root,
)
from ._status import Status
from .models import LMG4, CollectiveSpinModel, LongitudinalLMG4, PSpin, curvature_bound

__all__ = ["FAST_ROUNDS", "MAX_ROUNDS", "MicrocanonicalState", "ShellMaximum", "ShellPoint",
           "derivative_bound", "observables", "point_at_maximum",
           "second_order_excludes", "shell_candidates", "shell_maximum", "shell_point",
           "stationarity"]

N_NODES = 17  # scan nodes of the certified search (uniform in m)
N_POLISH = 3  # candidate roots polished by Newton (LMG4 has at most 2 minima, PSpin(3) at most 3)
N_UNRESOLVED = 2  # near-double-root candidates kept
MAX_ROOTS = 8
#: bisection rounds of the certified search (a first pass with FAST_ROUNDS recomputes the few
#: points that need more: see :func:`jaxlmg._batch.flat_kernel`)
MAX_ROUNDS = 60
FAST_ROUNDS = 3
N_NEWTON = 1  # unrolled Newton steps (more run in a while loop where needed: less code to compile)


class MicrocanonicalState(NamedTuple):
    """Microcanonical equilibrium at each grid point (all fields have the broadcast shape).

    Attributes:
        s: spin length in [0, 1] of the maximum-entropy state of the shell.
        mz: ``cosθ >= 0`` (0 where ``s = 0``).
        Mz: ``s cosθ``, the order parameter.
        Mx: ``s sinθ cosφ``; negative on the negative-temperature branch (``φ = π``).
        entropy: ``σ(ε) = S(s)``, eqs. (14), (16), nats per spin.
        beta: ``dσ/dε`` (inverse energy units); ``±inf`` at the bottom / top of the spectrum
            (``|1 - s²|`` within rounding, ``64`` ulps).
        temperature: ``1/β``; negative above the maximum-entropy energy, ``inf`` at ``β = 0``.
        specific_heat: ``dε/dT = -β²/(dβ/dε)`` per spin; negative where σ is locally convex.
        n_maxima: number of distinct local maxima of the entropy on the shell (local minima of
            ``s²`` with ``s <= 1``; ``Mz >= 0`` branch for Z₂ models); 2 signals an MCE
            metastable state.
        status: :class:`jaxlmg.Status` per point; fields are NaN where it is not ``OK``
            (``ENERGY_OUT_OF_RANGE`` outside ``[eps_min, eps_max]``, ``NONFINITE`` for a
            non-finite input, ``OUT_OF_DOMAIN`` for ``h < 0``).
    """

    s: Any
    mz: Any
    Mz: Any
    Mx: Any
    entropy: Any
    beta: Any
    temperature: Any
    specific_heat: Any
    n_maxima: Any
    status: Any


# --------------------------------------------------------------------------- model bounds


def derivative_bound(model: CollectiveSpinModel, couplings, order: int):
    """An upper bound on ``|d^k u/dMz^k|`` over ``|Mz| <= 1`` (``k = order``, scalar couplings).

    ``model.derivative_bound(couplings, k)`` where the model provides it; exact closed forms for
    the built-in models; otherwise twice the largest value on 257 points plus a margin (a numerical
    estimate, not a proof; safe for low-order polynomials).
    """
    own = getattr(model, "derivative_bound", None)
    if own is not None:
        return own(couplings, order)
    if isinstance(model, (LMG4, LongitudinalLMG4)) and order >= 3:
        K = couplings[1]
        return {3: 24.0 * jnp.abs(K), 4: 24.0 * jnp.abs(K)}.get(order, 0.0 * K)
    if isinstance(model, PSpin):
        (J,) = couplings
        p = model.p
        return math.perm(p, order) * jnp.abs(J) if p >= order else 0.0 * J
    t = jnp.linspace(-1.0, 1.0, 257)
    f = lambda m: model.interaction(m, couplings)  # noqa: E731
    for _ in range(order):
        f = jax.grad(f)
    return 2.0 * jnp.max(jnp.abs(jax.vmap(f)(t))) + 1e-12


def _local_curvature(model, couplings, C_global):
    """``m -> bound on |u''|`` over ``|t| <= m``: the model's local bound, else the global one."""
    if hasattr(model, "max_curvature"):
        return lambda m: model.max_curvature(couplings, m)
    return lambda m: C_global


# --------------------------------------------------------------------------- closed forms


def stationarity(model: CollectiveSpinModel, m, p):
    """``R(m) = h² m + (u(m) - ε) u'(m) = (h²/2) d(s²)/dm``, ``p = (couplings, h, eps)``; its zero
    is the MCE state for every ``h >= 0`` (at ``h = 0``: a root of ``u(m) = ε``).  Scalars."""
    couplings, h, eps = p
    u, up = jax.jvp(lambda x: model.interaction(x, couplings), (m,), (jnp.ones_like(m),))
    return h * h * m + (u - eps) * up


@functools.cache
def _residual(model):
    return functools.partial(stationarity, model)


def _artanh_ratio(q):
    """``artanh(√q)/√q`` for ``q = s² ∈ [0, 1]`` (series below 1e-3: no 0/0 and smooth at 0)."""
    small = q < 1e-3
    r = jnp.sqrt(jnp.where(small, 0.25, q))
    series = 1.0 + q * (1.0 / 3 + q * (1.0 / 5 + q * (1.0 / 7 + q * (1.0 / 9 + q / 11))))
    return jnp.where(small, series, jnp.arctanh(r) / r)


class Observables(NamedTuple):
    s2: Any
    Mx: Any
    beta: Any


def observables(model: CollectiveSpinModel, couplings, h, eps, m) -> Observables:
    """``s²``, ``Mx`` and ``β`` of the shell's stationary state at ``Mz = m`` (scalars).

    ``Mx/h`` is ``(u - ε)/h²`` where ``|u'(m)| <= h`` and otherwise the stationarity form
    ``-m/u'(m)``, exact on the solution and free of cancellation for small ``h`` (``h = 0``
    included); both agree along ``m*(ε)``, so derivatives along the solution are exact too.
    """
    u_fn = lambda x: model.interaction(x, couplings)  # noqa: E731
    u, up = jax.jvp(u_fn, (m,), (jnp.ones_like(m),))
    upp0 = jax.grad(jax.grad(u_fn))(jnp.zeros_like(m))
    hpos = h > 0
    h_safe = jnp.where(hpos, h, 1.0)
    direct = hpos & (jnp.abs(up) <= h)
    up_safe = jnp.where(up != 0, up, 1.0)
    ratio_stat = jnp.where(up != 0, -m / up_safe, -1.0 / upp0)  # Mx/h, h -> 0 limit at m = 0
    y = (u - eps) / h_safe
    ratio = jnp.where(direct, y / h_safe, ratio_stat)
    Mx = jnp.where(direct, y, h * ratio_stat)
    s2 = m * m + Mx * Mx
    beta = _artanh_ratio(jnp.minimum(s2, 1.0)) * ratio
    return Observables(s2=s2, Mx=Mx, beta=beta)


# --------------------------------------------------------------------------- certified search


def second_order_excludes(curvature):
    """Exclusion test from a bound on ``|g''|``: on ``[a, c]`` (width ``Δ``) ``g`` lies within
    ``M₂ Δ²/8`` of its chord, so it has no root when ``min(g(a), g(c)) > M₂ Δ²/8`` (or the mirror
    condition).  ``curvature(a, c)`` bounds ``|g''|`` on the interval from the data at its ends.
    (Second order: the slack shrinks as ``Δ²``, far fewer bisections than a Lipschitz test.)
    """

    def excludes(a, c):
        slack = 0.125 * curvature(a, c) * (c.x - a.x) ** 2
        return (jnp.minimum(a.g, c.g) > slack) | (jnp.maximum(a.g, c.g) < -slack)

    return excludes


class ShellMaximum(NamedTuple):
    m: Any  # Mz of the global maximum of the entropy on the shell (no derivatives)
    s2: Any
    feasible: Any
    converged: Any
    n_maxima: Any
    # every candidate of the search (for callers that compare states on one shell)
    cand_m: Any  # (n,) Mz of each candidate (the paramagnet first for Z2 models)
    cand_rel: Any  # (n,) s² - s²(Mz = 0), exact to rounding of the difference
    cand_ok: Any  # (n,) a local minimum of s² (or a candidate that may be one)
    para_min: Any  # the paramagnet Mz = 0 is a local maximum of the entropy
    certified: Any  # the search bracketed every stationary point within its bisection rounds


def _nodes(dtype, z2: bool):
    t = jnp.linspace(0.0, 1.0, N_NODES, dtype=dtype)
    return t * t if z2 else jnp.concatenate([-t[:0:-1], t])


def shell_maximum(model: CollectiveSpinModel, couplings, h, eps, *, n_nodes: int = N_NODES,
                  max_rounds: int = MAX_ROUNDS) -> ShellMaximum:
    """Certified global minimum of ``s²`` on the shell of energy ``eps`` (``h > 0``), or the root
    of ``u(m) = eps`` nearest to 0 (``h = 0``).  Not differentiated (see :func:`shell_point`)."""
    couplings, h, eps = jax.lax.stop_gradient((couplings, h, eps))
    dtype = jnp.result_type(h, eps, float)
    z2 = model.z2_symmetric
    hpos = h > 0
    h2 = h * h
    u_fn = lambda x: model.interaction(x, couplings)  # noqa: E731
    C_glob = curvature_bound(model, couplings, 1.0)
    C_loc = _local_curvature(model, couplings, C_glob)
    zero = jnp.zeros((), dtype)
    upp0 = jax.grad(jax.grad(u_fn))(zero)
    t = jnp.linspace(0.0, 1.0, n_nodes, dtype=dtype)

    if z2:
        D4 = derivative_bound(model, couplings, 4)
        D6 = derivative_bound(model, couplings, 6)

        def gfun(x):
            m = jnp.sqrt(jnp.maximum(x, 0.0))
            u, up = jax.jvp(u_fn, (m,), (jnp.ones_like(m),))
            w = jnp.where(m > 0, up / jnp.where(m > 0, m, 1.0), upp0)
            d = u - eps
            return jnp.where(hpos, h2 + d * w, d), (d, w)

        def curvature(a, c):
            # g = h² + d w in x: g'' = (3/2) w w' + d w'', |w'| <= D4/6, |w''| <= D6/60
            dx = jnp.abs(c.x - a.x)
            wmax = jnp.minimum(jnp.abs(a.aux[1]), jnp.abs(c.aux[1])) + D4 / 6.0 * dx
            dmax = jnp.minimum(jnp.abs(a.aux[0]), jnp.abs(c.aux[0])) + 0.5 * wmax * dx
            return jnp.where(hpos, 1.5 * wmax * D4 / 6.0 + dmax * D6 / 60.0, D4 / 12.0)

        nodes = t * t
    else:
        D3 = derivative_bound(model, couplings, 3)

        def gfun(m):
            u, up = jax.jvp(u_fn, (m,), (jnp.ones_like(m),))
            d = u - eps
            return jnp.where(hpos, h2 * m + d * up, d), (d, up)

        def curvature(a, c):
            # g = h² m + d u1: g'' = 3 u1 u2 + d u3 (u_k: k-th derivative of u)
            C = C_loc(jnp.maximum(jnp.abs(a.x), jnp.abs(c.x)))
            dm = jnp.abs(c.x - a.x)
            U1 = jnp.minimum(jnp.abs(a.aux[1]), jnp.abs(c.aux[1])) + C * dm
            dmax = jnp.minimum(jnp.abs(a.aux[0]), jnp.abs(c.aux[0])) + U1 * dm
            return jnp.where(hpos, 3.0 * U1 * C + dmax * D3, C)

        nodes = jnp.concatenate([-t[:0:-1], t])
    min_width = 1e-13
    excludes = second_order_excludes(curvature)
    br = certified_brackets(gfun, excludes, nodes, max_roots=MAX_ROOTS, capacity=8,
                            max_rounds=max_rounds, min_width=min_width)

    # Polish: rising roots (minima of s²) for h > 0, every root of u = eps for h = 0.
    used = jnp.arange(MAX_ROOTS) < br.count
    want = used & jnp.where(hpos, br.kind == RISING, br.kind != UNRESOLVED)
    order = jnp.argsort(~want, stable=True)
    sel = order[:N_POLISH]
    sel_ok = want[sel]
    n_want = jnp.sum(want)

    def gd(x):
        return jax.jvp(lambda y: gfun(y)[0], (x,), (jnp.ones_like(x),))

    def polish(lo, hi, glo, ghi, active):
        den = jnp.where(ghi != glo, ghi - glo, 1.0)
        x0 = jnp.clip(lo - glo * (hi - lo) / den, lo, hi)
        x0 = jnp.where(jnp.isfinite(x0), x0, 0.5 * (lo + hi))
        lo_ = jnp.where(active, lo, 0.0)
        hi_ = jnp.where(active, hi, 0.0)
        x0 = jnp.where(active, x0, 0.0)
        return newton_root(gd, x0, lo_, hi_, jnp.where(active, glo, -1.0), n_iter=N_NEWTON,
                           active=active)

    xr, conv = jax.vmap(polish)(br.lo[sel], br.hi[sel], br.g_lo[sel], br.g_hi[sel], sel_ok)
    # Near-double roots the search could not resolve: their midpoints are candidates too.
    unres = used & (br.kind == UNRESOLVED)
    uorder = jnp.argsort(~unres, stable=True)[:N_UNRESOLVED]
    xu = 0.5 * (br.lo[uorder] + br.hi[uorder])
    u_ok = unres[uorder]

    xs = jnp.concatenate([xr, xu])
    ok = jnp.concatenate([sel_ok, u_ok])
    if z2:
        xs = jnp.concatenate([zero[None], xs])
        ok = jnp.concatenate([hpos[None], ok])
        ms = jnp.sqrt(jnp.maximum(xs, 0.0))
    else:
        ms = xs
    obs = jax.vmap(lambda m: observables(model, couplings, h, eps, m))(ms)
    s2 = obs.s2
    tol = 64 * jnp.finfo(dtype).eps
    # h > 0: the smallest s²; h = 0: the root of u = eps nearest to 0 (s² = m²).
    # Compared through s² - s²(m = 0) = m² + δu (δu + 2 (u(0) - ε))/h², δu = u(m) - u(0): no
    # cancellation against the O(1) s², so two minima are ordered right to ~1e-16 of their
    # *difference* (near an MCE jump it is ~1e-4 |ε - ε_t|).
    u0 = u_fn(zero)
    du = jax.vmap(u_fn)(ms) - u0
    h2_safe = jnp.where(hpos, h2, 1.0)
    rel = ms * ms + jnp.where(hpos, du * (du + 2.0 * (u0 - eps)) / h2_safe, 0.0)
    score = jnp.where(ok, rel, jnp.inf)
    k = jnp.argmin(score)
    m_star = ms[k]
    conv_all = jnp.concatenate([conv, jnp.ones((xs.shape[0] - conv.shape[0],), bool)])
    # a certified search whose candidates all fit the polish slots
    certified = br.certified & (n_want <= N_POLISH) & (jnp.sum(unres) <= N_UNRESOLVED)
    converged = certified & conv_all[k]

    rising = used & (br.kind == RISING)
    n_rise = jnp.sum(rising & (br.lo < jnp.inf))
    # every rising root with s² <= 1 is a local maximum of the entropy on the shell
    s2_r = s2[(1 if z2 else 0):(1 if z2 else 0) + N_POLISH]
    n_feasible_r = jnp.sum(sel_ok & (s2_r <= 1.0 + tol))
    n_max_h = n_feasible_r + jnp.maximum(n_rise - N_POLISH, 0)
    if z2:
        g0 = gfun(zero)[0]
        falls_at_0 = jnp.any(used & (br.kind != RISING) & (br.kind != UNRESOLVED)
                             & (br.lo == 0.0))
        para_max = ((g0 > 0) | ((g0 == 0) & ~falls_at_0)) & (s2[0] <= 1.0 + tol)
        n_max_h = n_max_h + para_max
        # h = 0: the top of the spectrum u(0) = eps has the paramagnet itself as the root
        d0 = u_fn(zero) - eps
        m_star = jnp.where(~hpos & (d0 == 0), 0.0, m_star)
        converged = jnp.where(~hpos & (d0 == 0), br.certified, converged)
    else:
        # h = 0: the root of u(m) = eps nearest to 0
        score0 = jnp.where(ok, jnp.abs(ms), jnp.inf)
        k0 = jnp.argmin(score0)
        m_star = jnp.where(hpos, m_star, ms[k0])
        converged = jnp.where(hpos, converged, certified & conv_all[k0])
        para_max = jnp.any(ok & (jnp.abs(ms) <= 1e-12))
    n_max_0 = jnp.sum(used & (br.kind != UNRESOLVED))
    s2_star = jnp.where(hpos, s2[k], m_star * m_star)
    feasible = jnp.where(hpos, s2_star <= 1.0 + tol, jnp.any(ok) | (~hpos & z2 & (m_star == 0)
                                                                     & (u_fn(zero) == eps)))
    feasible = feasible & (s2_star <= 1.0 + tol)
    return ShellMaximum(m=jax.lax.stop_gradient(m_star), s2=s2_star, feasible=feasible,
                        converged=converged,
                        n_maxima=jnp.where(hpos, n_max_h, n_max_0).astype(jnp.int32),
                        cand_m=ms, cand_rel=rel, cand_ok=ok & (s2 <= 1.0 + tol),
                        para_min=para_max, certified=br.certified)


def shell_candidates(model: CollectiveSpinModel, couplings, h, eps) -> ShellMaximum:
    """:func:`shell_maximum` (its ``cand_*`` fields list every candidate state of the shell)."""
    return shell_maximum(model, couplings, h, eps)


# --------------------------------------------------------------------------- the state


class ShellPoint(NamedTuple):
    state: MicrocanonicalState
    dbeta: Any  # dβ/dε, exact (implicit differentiation), NaN where status != OK
    unfinished: Any  # the search needs more bisection rounds than it was given


def _finite_inputs(couplings, h, eps):
    leaves = jax.tree_util.tree_leaves((couplings, h, eps))
    ok = jnp.asarray(True)
    for x in leaves:
        ok = ok & jnp.isfinite(x)
    return ok


def shell_point(model: CollectiveSpinModel, couplings, h, eps, *,
                max_rounds: int = MAX_ROUNDS) -> ShellPoint:
    """Microcanonical equilibrium at ONE point; scalars in, state (+ ``dβ/dε``) of scalars out.

    Differentiable in ``couplings``, ``h``, ``eps`` through the implicit function theorem on
    :func:`stationarity` (the search itself is never differentiated)."""
    finite = _finite_inputs(couplings, h, eps)
    # a non-finite lane is solved at a harmless point, then masked
    hs = jnp.where(finite, h, 1.0)
    es = jnp.where(finite, eps, 0.0)
    cs = jax.tree_util.tree_map(lambda x: jnp.where(finite, x, 0.0), couplings)
    sol = shell_maximum(model, cs, jnp.abs(hs), es, max_rounds=max_rounds)
    return point_at_maximum(model, couplings, h, eps, sol)


def _located(model, couplings, h, eps, m0):
    """``m*`` with implicit derivatives; the Z₂ paramagnet ``m = 0`` has none (``dm = 0``)."""
    para = (m0 == 0) if model.z2_symmetric else jnp.zeros_like(m0, dtype=bool)
    m_safe = jnp.where(para, 0.5, m0)
    m = implicit_solution(_residual(model), m_safe, (couplings, h, eps))
    return jnp.where(para, 0.0, m)


def point_at_maximum(model: CollectiveSpinModel, couplings, h, eps, sol: ShellMaximum
                     ) -> ShellPoint:
    """The state at the located shell maximum ``sol.m`` (of :func:`shell_maximum` at the same
    arguments): closed forms, and derivatives by the implicit function theorem (ONE point)."""
    finite = _finite_inputs(couplings, h, eps)

    def observe(e):
        m = _located(model, couplings, h, e, sol.m)
        return observables(model, couplings, h, e, m), m

    (obs, m), (dobs, _) = jax.jvp(observe, (eps,), (jnp.ones_like(eps),))
    dtype = jnp.result_type(obs.s2)
    tol = 64 * jnp.finfo(dtype).eps
    s2 = jnp.minimum(obs.s2, 1.0)
    s = jnp.sqrt(s2)
    top = jnp.abs(1.0 - obs.s2) <= tol  # an edge of the spectrum: T = 0, beta = ±inf
    sgn = jnp.where(obs.Mx >= 0, 1.0, -1.0)
    beta = jnp.where(top, sgn * jnp.inf, obs.beta)
    dbeta = dobs.beta
    if model.z2_symmetric:
        # h = 0, eps = u(0): the top of the spectrum, where m*(eps) ~ sqrt(u(0) - eps) is not
        # differentiable; the one-sided limit from u = u(0) + a m²/2 + b m⁴/24 is
        # dβ/dε = -(2/a²)(1/3 - b/(6a))  (LMG4: c = 3/(2 - 12K/J), the Curie-Weiss jump).
        d2 = jax.grad(jax.grad(lambda x: model.interaction(x, couplings)))
        zero = jnp.zeros_like(m)
        a2, a4 = d2(zero), jax.grad(jax.grad(d2))(zero)
        a2_safe = jnp.where(a2 != 0, a2, 1.0)
        dbeta = jnp.where((h == 0) & (m == 0),
                          -(2.0 / a2_safe**2) * (1.0 / 3 - a4 / (6.0 * a2_safe)), dbeta)
    c = jnp.where(top, 0.0, -obs.beta * obs.beta / dbeta)
    T = jnp.where(top, sgn * 0.0, 1.0 / obs.beta)
    mz = jnp.where(s > 0, m / jnp.where(s > 0, s, 1.0), 0.0)

    status = jnp.where(sol.converged, Status.OK, Status.NOT_CONVERGED)
    status = jnp.where(sol.feasible, status, Status.ENERGY_OUT_OF_RANGE)
    status = jnp.where(jnp.isfinite(s2) & jnp.isfinite(m), status, Status.NONFINITE)
    status = jnp.where(h >= 0, status, Status.OUT_OF_DOMAIN)
    status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
    good = status == Status.OK
    nan = lambda x: jnp.where(good, x, jnp.nan)  # noqa: E731
    state = MicrocanonicalState(
        s=nan(s), mz=nan(mz), Mz=nan(m), Mx=nan(obs.Mx), entropy=nan(entropy(s)),
        beta=nan(beta), temperature=nan(T), specific_heat=nan(c),
        n_maxima=jnp.where(good, sol.n_maxima, 0), status=status)
    return ShellPoint(state=state, dbeta=nan(dbeta), unfinished=finite & ~sol.certified)
