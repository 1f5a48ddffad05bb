"""Microcanonical engine: entropy σ(ε) of the energy shell, eq. (16), for ONE point, then vmap.

Design (it mirrors :mod:`jaxlmg._canonical`):

1.  **Exact reduction to one variable.**  The saddle point of eq. (16) is
    ``σ(ε) = max S(s)`` over the states of energy ``ε`` (the multiplier ``λ* = β``).  ``S(s)``,
    eq. (14), decreases with ``s``, so ``σ(ε) = S(s*)`` with ``s*`` the *shortest* magnetization on
    the shell.  For ``h > 0`` the shell of eq. (13) (``e = u(Mz) - h Mx``; ``φ ∈ {0, π}``, a
    y-component only lengthens ``M``) is the curve ``Mx = (u(m) - ε)/h``, ``m = Mz``, hence

        ``s²(m) = m² + ((u(m) - ε)/h)²``,   ``σ(ε) = S(sqrt(min_m s²(m)))``,

    over ``m ∈ [0, 1]`` (``[-1, 1]`` without Z₂ symmetry); ``ε`` is in the spectrum iff
    ``min s² <= 1``.  ``Mx < 0`` is the negative-temperature branch (``φ = π``).  At ``h = 0`` the
    energy depends on ``Mz`` only; then ``Mx = 0`` and ``m*`` is the root of ``u(m) = ε`` nearest to
    0 (an exact separate branch, selected per point).
2.  **Global search.**  ``s²`` is evaluated on ``n_scan`` points ``m = (1 - cos πt)/2`` (dense at
    both ends) plus a *valley* refinement: ``s² >= m²`` puts the global minimum in ``[0, m₀]``,
    ``m₀`` the smallest root of ``u(m) = ε``, and for small ``h`` the shell is a valley of width
    ``h/|u'(m₀)|`` next to ``m₀``; ``m₀`` (refined by safeguarded Newton) and ``N_VALLEY`` points
    geometrically spaced across that width join the scan, so the search is uniform in ``h``.
    Every discrete local minimum on the shell (``s² <= 1``) is counted: ``n_maxima`` of ``σ``.
3.  **Polish.**  The two lowest discrete minima are refined by :func:`minimize_1d` (a fixed
    number of safeguarded autodiff Newton steps); the lower one is returned.  The paramagnet
    ``m = 0`` is treated exactly as ``b = 0`` in the canonical engine: its stability is the sign of
    the exact ``d²s²/dm²`` at 0 (``2 + 4Jε/h²`` for LMG4: eq. 34 with ``s = -ε/h``; the quartic
    decides where it vanishes), and where it is unstable the minimum of the quartic Landau
    expansion joins the scan, so that Newton starts within ``O(m³)`` of a small ordered moment.
    Points whose polish does not certify convergence (rare: near-degenerate minima next to the
    MCE tricritical point) are re-solved with a 4x Newton budget by the (non-traced) entry point.
4.  **Temperature and specific heat.**  Envelope theorem, ``d(s²)/dε = -2 Mx/h``:
    ``β = dσ/dε = artanh(s)/s · Mx/h`` (eq. 36 on the paramagnet), ``T = 1/β``.  ``dβ/dε`` is exact
    autodiff through ``m*(ε)``, itself differentiated by the implicit function theorem on the
    stationarity condition ``R = h² m + (u(m) - ε) u'(m) = 0`` (a ``jax.custom_jvp``), never finite
    differences; ``c = dε/dT = -β²/(dβ/dε)``.  Every output is differentiable the same way.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._batch import broadcast_flat
from ._canonical import discrete_minima, minimize_1d, parabola_vertex
from ._model import entropy
from ._status import Status
from ._validate import as_precision, check, is_traced
from .models import LMG4, CollectiveSpinModel, LMGCouplings

__all__ = [
    "EnergyRange",
    "MicrocanonicalState",
    "energy_range",
    "energy_range_state",
    "microcanonical",
    "microcanonical_state",
]

N_SCAN = 24  # Chebyshev-like points of the global scan in m
N_VALLEY = 8  # extra points across the narrow shell valley next to the root of u(m) = eps
N_NEWTON = 5  # polish steps (+1 certifying step); one more than the canonical engine: the shell
# landscape is strongly anharmonic near the MCE tricritical point
N_ROOT = 6  # safeguarded Newton steps for the root of u(m) = eps
N_EPS = 160  # energies per (h, couplings) in the energy scans (see energy_scan)


class MicrocanonicalState(NamedTuple):
    """Microcanonical equilibrium at each grid point (all fields have the broadcast shape).

    Attributes:
        s: spin length in [0, 1] of the maximum-entropy state of the shell.
        mz: ``cosθ >= 0`` (0 where ``s = 0``).
        Mz: ``s cosθ``, the order parameter.
        Mx: ``s sinθ cosφ``; negative on the negative-temperature branch (``φ = π``).
        entropy: ``σ(ε) = S(s)``, eqs. (14), (16), nats per spin.
        beta: ``dσ/dε`` (inverse energy units); ``+inf`` at the bottom of the spectrum.
        temperature: ``1/β``; negative above the maximum-entropy energy, ``inf`` at ``β = 0``.
        specific_heat: ``dε/dT = -β²/(dβ/dε)`` per spin; negative where σ is locally convex.
        n_maxima: number of distinct local maxima of the entropy on the shell (local minima of
            ``s²(m)`` with ``s <= 1``, ``Mz >= 0`` branch); 2 signals an MCE metastable state.
        status: :class:`jaxlmg.Status` per point; fields are NaN where it is not ``OK``
            (``ENERGY_OUT_OF_RANGE`` outside ``[eps_min, eps_max]``).
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


class EnergyRange(NamedTuple):
    """The spectrum ``[eps_min, eps_max]`` per spin: ground-state and top energies (eq. 13)."""

    eps_min: Any
    eps_max: Any
    status: Any


# --------------------------------------------------------------------------- one point: pieces


def shell_s2(model: CollectiveSpinModel, couplings, h, eps, m):
    """``s²(m) = m² + ((u(m) - ε)/h)²``: squared spin length of the state of energy ``ε`` at
    ``Mz = m``.

    Scalars in and out; requires ``h > 0`` (eq. 13 solved for ``Mx``).
    """
    y = (model.interaction(m, couplings) - eps) / h
    return m * m + y * y


def stationarity(model: CollectiveSpinModel, couplings, h, eps, m):
    """``R(m) = h² m + (u(m) - ε) u'(m) = (h²/2) d(s²)/dm``; its zero is the MCE state for every
    ``h >= 0`` (at ``h = 0`` it is the root of ``u(m) = ε``).  Scalars."""
    u, up = jax.jvp(lambda x: model.interaction(x, couplings), (m,), (jnp.ones_like(m),))
    return h * h * m + (u - eps) * up


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _shell_minimizer(model, couplings, h, eps, m):
    """Identity on the located minimizer ``m``; its JVP is the implicit function theorem on
    :func:`stationarity` (derivatives never go through the search iterations)."""
    return m


@_shell_minimizer.defjvp
def _shell_minimizer_jvp(model, primals, tangents):
    couplings, h, eps, m = primals
    dc, dh, deps, _ = tangents
    # The primal output through the function itself: an outer derivative of this rule (nested
    # jvp/grad, e.g. dβ/dε then d/dh) then applies the implicit rule again.
    m = _shell_minimizer(model, couplings, h, eps, m)
    one = jnp.ones_like(m)
    R_m = jax.jvp(lambda x: stationarity(model, couplings, h, eps, x), (m,), (one,))[1]
    R_dot = jax.jvp(lambda c, hh, e: stationarity(model, c, hh, e, m), (couplings, h, eps),
                    (dc, dh, deps))[1]
    # On the Z2 paramagnet (m = 0) R_dot = 0 exactly: dm = 0 there even where R_m = 0 (critical).
    # (The mask depends on primals only, so the rule stays linear in the tangents: reverse mode.)
    para = (m == 0) if model.z2_symmetric else jnp.zeros_like(m, dtype=bool)
    return m, jnp.where(para, 0.0, -R_dot / jnp.where(para, 1.0, R_m))


def _artanh_ratio(q):
    """``artanh(√q)/√q`` for ``q = s² ∈ [0, 1]`` (series below 1e-3: no 0/0 and smooth at 0)."""
    small = q < 1e-3
    r = jnp.sqrt(jnp.where(small, 0.25, q))
    series = 1.0 + q * (1.0 / 3 + q * (1.0 / 5 + q * (1.0 / 7 + q * (1.0 / 9 + q / 11))))
    return jnp.where(small, series, jnp.arctanh(r) / r)


class _Observables(NamedTuple):
    s2: Any
    Mx: Any
    beta: Any


def _observables(model: CollectiveSpinModel, couplings, h, eps, m) -> _Observables:
    """``s²``, ``Mx`` and ``β`` of the shell's stationary state at ``Mz = m`` (scalars).

    ``Mx/h`` is evaluated as ``(u - ε)/h²`` where ``|u'(m)| <= h`` and otherwise through the
    stationarity condition, ``Mx/h = -m/u'(m)``, which is exact on the solution and has no
    cancellation when ``h`` is small (``h = 0`` included).  Both forms agree along ``m*(ε)``, so
    derivatives along the solution are exact too.
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
    return _Observables(s2=s2, Mx=Mx, beta=beta)


def _root_1d(fd, x0, a, b, f_a_negative, n_iter: int, unroll: bool = True, aux0=()):
    """Safeguarded Newton for a root of ``f`` in the bracket with ends ``a``, ``b``.

    ``fd(x) -> (f(x), f'(x), aux)``, ``aux`` any pytree shaped like ``aux0``; ``f(a) < 0`` iff
    ``f_a_negative`` and ``f(b)`` has the other sign.
    ``n_iter`` steps (Newton, or bisection where Newton leaves the bracket), then one certifying
    step; a fixed count keeps every lane of a ``vmap`` busy.  The loop is unrolled in Python
    (cheap ``fd``) or a ``lax.fori_loop`` (``unroll=False``, for an ``fd`` that is a whole MCE
    solve: unrolling it would multiply the compiled program).  Returns
    ``(x, f(x), f'(x), aux(x), converged, |bracket|)`` at the last point evaluated; converged
    when the step from it is below ``1e-9 (1 + |x|)`` or ``f(x) == 0``.
    """

    def step(carry):
        x, a, b, _, _, _, _ = carry
        f, d, aux = fd(x)
        like_a = (f < 0) == f_a_negative
        a = jnp.where(like_a, x, a)
        b = jnp.where(like_a, b, x)
        lo, hi = jnp.minimum(a, b), jnp.maximum(a, b)
        newton = x - f / jnp.where(d != 0, d, 1.0)
        use_newton = (d != 0) & (newton >= lo) & (newton <= hi) & jnp.isfinite(newton)
        xn = jnp.where(use_newton, newton, 0.5 * (lo + hi))
        xn = jnp.where(f == 0, x, xn)
        return xn, a, b, f, d, x, aux

    zero = jnp.zeros_like(x0)
    carry = (x0, a, b, zero, zero, zero, aux0)
    if unroll:
        for _ in range(n_iter + 1):  # n_iter is small and static
            carry = step(carry)
    else:
        carry = jax.lax.fori_loop(0, n_iter + 1, lambda i, c: step(c), carry)
    xn, a, b, f, d, x, aux = carry
    converged = (jnp.abs(xn - x) <= 1e-9 * (1.0 + jnp.abs(x))) | (f == 0)
    return x, f, d, aux, converged, jnp.abs(b - a)


class _Crossing(NamedTuple):
    m0: Any  # |m| of the first root of u(m) = eps along the half-line (sentinel 0 or 1 if none)
    has_root: Any
    converged: Any
    n_roots: Any
    points: Any  # the root and N_VALLEY points across the shell valley next to it (|m| units)


def _crossing(model, couplings, h_safe, eps, ms, sign: float) -> _Crossing:
    """First root of ``u(sign·a) = ε`` for ``a`` going up from 0 along the scan ``ms`` and the
    valley points ``a₀ - w y_j`` (``w = min(h/|u'|, 1/2)``, ``y_j = 2^-j``) that resolve the shell
    next to it when ``h`` is small."""
    g_fn = lambda a: model.interaction(sign * a, couplings) - eps  # noqa: E731
    g = jax.vmap(g_fn)(ms)
    pos0 = g[0] > 0
    changed = ((g > 0) != pos0).at[0].set(False)
    has = jnp.any(changed)
    i = jnp.maximum(jnp.argmax(changed), 1)
    lo, hi, g_lo, g_hi = ms[i - 1], ms[i], g[i - 1], g[i]
    if model.z2_symmetric:
        # Solve in q = a²: u(√q) is analytic in q, so Newton stays quadratic for a root near 0
        # (where u(a) - eps ~ a² - a0² is not Newton-friendly in a).
        lo, hi = lo * lo, hi * hi
        to_a = lambda q: jnp.sqrt(jnp.maximum(q, jnp.finfo(ms.dtype).tiny))  # noqa: E731
    else:
        to_a = lambda q: q  # noqa: E731
    den = jnp.where(g_lo != g_hi, g_lo - g_hi, 1.0)
    x0 = jnp.clip(lo + g_lo * (hi - lo) / den, lo, hi)
    fd = lambda q: (*jax.jvp(lambda x: g_fn(to_a(x)), (q,), (jnp.ones_like(q),)), ())  # noqa: E731
    q, _, _, _, ok, _ = _root_1d(fd, x0, lo, hi, g_lo < 0, N_ROOT)
    a = to_a(q)
    exact0 = g[0] == 0
    a = jnp.where(exact0, 0.0, jnp.where(has, a, jnp.where(pos0, 1.0, 0.0)))
    up = jax.jvp(g_fn, (a,), (jnp.ones_like(a),))[1]
    w = h_safe / jnp.abs(jnp.where(up != 0, up, 1.0))
    w = jnp.where((up != 0) & (w < 0.5), w, 0.5)
    ys = 2.0 ** -jnp.arange(N_VALLEY + 1, dtype=ms.dtype)
    valley = jnp.abs(a - w * ys)
    # The root itself unless it is a sentinel that duplicates an end of the scan.
    root_point = jnp.where(has & ~exact0, a, valley[-1])
    n_roots = jnp.sum((g[1:] > 0) != (g[:-1] > 0)) + exact0
    return _Crossing(m0=a, has_root=has | exact0, converged=ok | exact0 | ~has,
                     n_roots=n_roots.astype(jnp.int32),
                     points=jnp.concatenate([valley[:-1], root_point[None]]))


class _GlobalMin(NamedTuple):
    x: Any
    F: Any
    converged: Any
    is_min: Any  # (n,) discrete local minima of the scan
    F_scan: Any  # (n,) scan values, the polished ones in place of their scan points


class _Landau(NamedTuple):
    stable0: Any  # x = 0 is a local minimum of the even function F
    x: Any  # minimum sqrt(-6 F2/F4) of the quartic Landau expansion (F2, F4: derivatives at 0)
    valid: Any  # F2 < 0 < F4: the estimate exists


def _landau(F, zero) -> _Landau:
    """Exact local analysis of an even ``F`` at ``x = 0``, with ``F2 = F''(0)``, ``F4 = F''''(0)``
    by autodiff.

    ``0`` is a minimum iff ``F2 > 0``, or ``F2 = 0 < F4`` (critical); at ``F2 = F4 = 0``
    (tricritical) it stays a candidate, exact where it is the minimum.  Where ``F2 < 0 < F4`` the
    minimum ``sqrt(-6 F2/F4)`` of the quartic Landau expansion joins the scan: near a continuous
    transition it is within ``O(x³)`` of the true minimum, where Newton converges at once although
    the scan is coarse on that scale.
    """
    d2 = jax.grad(jax.grad(F))
    a2 = d2(zero)
    a4 = jax.grad(jax.grad(d2))(zero)
    # F2 = F4 = 0 (tricritical) keeps 0 as a candidate; a lower minimum elsewhere wins the scan
    stable0 = (a2 > 0) | ((a2 == 0) & (a4 >= 0))
    valid = (a2 < 0) & (a4 > 0)
    x = jnp.sqrt(jnp.where(valid, -6.0 * a2 / jnp.where(valid, a4, 1.0), 0.0))
    return _Landau(stable0=stable0, x=x, valid=valid)


def _with_landau_point(xs, landau: _Landau):
    """The scan ``xs`` (starting at 0, unsorted after that) plus the Landau point where it exists
    inside the scan (else a harmless midpoint of the first interval), sorted."""
    xs = jnp.sort(xs)
    x_l = jnp.where(landau.valid & (landau.x < xs[-1]), landau.x, 0.5 * (xs[1] + xs[2]))
    return jnp.sort(jnp.concatenate([xs, x_l[None]]))


def _global_minimum(F, xs, n_iter: int, landau: _Landau | None = None) -> _GlobalMin:
    """Global minimum of a smooth scalar ``F`` over the increasing scan ``xs`` (as in the canonical
    engine): discrete local minima, the two lowest polished by :func:`minimize_1d` inside their
    scan neighbours from the vertex of the scan parabola, the lower one returned.

    With ``landau`` (a Z₂-symmetric ``F``), ``xs[0] = 0`` is a mirror point where ``F`` is
    stationary: a local minimum iff ``landau.stable0``; if not, but ``F(x_1) > F(0)``, the minimum
    is searched in ``(0, x_1)``; a scan point equal to ``landau.x`` is polished from there.
    """
    z2 = landau is not None
    Fs = jax.vmap(F)(xs)
    is_min = discrete_minima(Fs, z2)
    n = xs.shape[0]
    lo_b = xs[jnp.maximum(jnp.arange(n) - 1, 0)]
    hi_b = xs[jnp.minimum(jnp.arange(n) + 1, n - 1)]
    x0s = xs
    if z2:
        stable0 = landau.stable0
        is_min = is_min.at[0].set(stable0 | (Fs[1] > Fs[0]))
        x0s = x0s.at[0].set(jnp.where(stable0, 0.0, 0.5 * xs[1]))
        hi_b = hi_b.at[0].set(jnp.where(stable0, 0.0, xs[1]))
    score = jnp.where(is_min, Fs, jnp.inf)
    _, idx = jax.lax.top_k(-score, 2)
    x0 = jnp.clip(parabola_vertex(xs, Fs, idx, x0s[idx]), lo_b[idx], hi_b[idx])
    if z2:
        x0 = jnp.where(landau.valid & (xs[idx] == landau.x), landau.x, x0)
    x_star, ok = jax.vmap(lambda x0, lo, hi: minimize_1d(F, x0, lo, hi, n_iter))(
        x0, lo_b[idx], hi_b[idx])
    F_star = jax.vmap(F)(x_star)
    F_star = jnp.where(jnp.isfinite(score[idx]), F_star, jnp.inf)
    k = jnp.argmin(F_star)
    return _GlobalMin(x=x_star[k], F=F_star[k], converged=ok[k], is_min=is_min,
                      F_scan=Fs.at[idx].min(F_star))


class _ShellMinimum(NamedTuple):
    m: Any  # the minimizer (stop-gradient)
    feasible: Any
    converged: Any
    n_maxima: Any


def _shell_minimum(model: CollectiveSpinModel, couplings, h, eps, n_scan: int,
                   n_newton: int = N_NEWTON) -> _ShellMinimum:
    """Global minimum of ``s²(m)`` over the shell (``h > 0``) or the nearest root (``h = 0``).

    The search is not differentiated (derivatives come from :func:`_shell_minimizer`)."""
    couplings, h, eps = jax.lax.stop_gradient((couplings, h, eps))
    dtype = jnp.result_type(h, eps, float)
    hpos = h > 0
    h_safe = jnp.where(hpos, h, 1.0)
    F = functools.partial(shell_s2, model, couplings, h_safe, eps)
    t = jnp.linspace(0.0, 1.0, n_scan, dtype=dtype)
    ms = (0.5 * (1.0 - jnp.cos(jnp.pi * t))).at[0].set(0.0).at[-1].set(1.0)
    z2 = model.z2_symmetric
    up = _crossing(model, couplings, h_safe, eps, ms, 1.0)
    if z2:
        landau = _landau(F, jnp.zeros((), dtype))
        bs = _with_landau_point(jnp.concatenate([ms, up.points]), landau)
    else:
        landau = None
        dn = _crossing(model, couplings, h_safe, eps, ms, -1.0)
        bs = jnp.sort(jnp.concatenate([-ms[:0:-1], ms, up.points, -dn.points]))
    gm = _global_minimum(F, bs, n_newton, landau)
    m_gen = jnp.abs(gm.x) if z2 else gm.x
    tol = 16 * jnp.finfo(dtype).eps
    n_gen = jnp.sum(gm.is_min & (gm.F_scan <= 1.0 + tol)).astype(jnp.int32)

    # h = 0: Mx = 0 and m* is the root of u(m) = eps nearest to 0.
    if z2:
        m_h0, has_h0, ok_h0, n_h0 = up.m0, up.has_root, up.converged, up.n_roots
    else:
        use_dn = dn.has_root & (~up.has_root | (dn.m0 < up.m0))
        m_h0 = jnp.where(use_dn, -dn.m0, up.m0)
        has_h0 = up.has_root | dn.has_root
        ok_h0 = jnp.where(use_dn, dn.converged, up.converged)
        n_h0 = up.n_roots + dn.n_roots - (jnp.abs(bs[0]) == 0)  # a root at 0 counted once

    m = jnp.where(hpos, m_gen, m_h0)
    feasible = jnp.where(hpos, gm.F <= 1.0 + tol, has_h0)
    converged = jnp.where(hpos, gm.converged, ok_h0)
    n_maxima = jnp.where(hpos, n_gen, n_h0)
    return _ShellMinimum(m=jax.lax.stop_gradient(m), feasible=feasible, converged=converged,
                         n_maxima=n_maxima)


class _Point(NamedTuple):
    state: MicrocanonicalState
    dbeta: Any  # dβ/dε, exact (implicit differentiation), NaN where status != OK


def microcanonical_point(model: CollectiveSpinModel, couplings, h, eps, n_scan: int = N_SCAN,
                         n_newton: int = N_NEWTON) -> _Point:
    """Microcanonical equilibrium at ONE point; scalars in, state (+ ``dβ/dε``) of scalars out."""
    return _point_from_minimum(model, couplings, h, eps,
                               _shell_minimum(model, couplings, h, eps, n_scan, n_newton))


def _point_from_minimum(model: CollectiveSpinModel, couplings, h, eps,
                        sol: _ShellMinimum) -> _Point:
    """The state at the located shell minimum ``sol.m``: closed forms + implicit derivatives."""

    def observe(e):
        m = _shell_minimizer(model, couplings, h, e, sol.m)
        return _observables(model, couplings, h, e, m)

    obs, dobs = jax.jvp(observe, (eps,), (jnp.ones_like(eps),))
    m = _shell_minimizer(model, couplings, h, eps, sol.m)
    s2 = jnp.minimum(obs.s2, 1.0)
    s = jnp.sqrt(s2)
    top = s2 >= 1.0  # an edge of the spectrum: T = 0, beta = ±inf
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
    status = jnp.where(jnp.isfinite(s2) & jnp.isfinite(m) & jnp.isfinite(eps), status,
                       Status.NONFINITE)
    status = jnp.where((h >= 0) & jnp.isfinite(h), status, Status.OUT_OF_DOMAIN).astype(jnp.int32)
    good = status == Status.OK
    nan = lambda x: jnp.where(good, x, jnp.nan)  # noqa: E731
    state = MicrocanonicalState(
        s=nan(s), mz=nan(mz), Mz=nan(m), Mx=nan(obs.Mx), entropy=nan(entropy(s)), beta=nan(beta),
        temperature=nan(T), specific_heat=nan(c), n_maxima=jnp.where(good, sol.n_maxima, 0),
        status=status)
    return _Point(state=state, dbeta=nan(dbeta))


def energy_range_point(model: CollectiveSpinModel, couplings, h, n_scan: int = 65) -> EnergyRange:
    """``[min, max]`` of eq. (13) over the Bloch ball at ONE point (scalars).

    Both extremes lie on the sphere ``s = 1`` (for ``h >= 0``); the direction is scanned over
    ``ψ = π/2 - θ`` (``Mz = sin ψ``) with ``φ = 0`` for the minimum and ``φ = π`` for the maximum,
    and the best scan point is polished by :func:`minimize_1d`.  For LMG4 with ``J, K >= 0``:
    ``eps_min`` is the ground-state energy and ``eps_max = h``.
    """
    dtype = jnp.result_type(h, float)
    # ψ = π/2 - θ: m = sin ψ, |Mx| = cos ψ, so that m = 0 (ψ = 0) is represented exactly.
    lo_psi = 0.0 if model.z2_symmetric else -jnp.pi / 2
    ps = jnp.linspace(lo_psi, jnp.pi / 2, n_scan, dtype=dtype)

    def extreme(sign):  # minimize sign * e(ψ) with Mx = sign * cos ψ
        E = lambda p: sign * model.interaction(jnp.sin(p), couplings) - h * jnp.cos(p)  # noqa: E731
        if model.z2_symmetric:
            landau = _landau(E, jnp.zeros((), dtype))
            xs = _with_landau_point(ps, landau)
        else:
            landau, xs = None, ps
        # per (h, couplings) only, and a degenerate (critical) minimum is possible: be generous
        gm = _global_minimum(E, xs, 2 * N_NEWTON, landau)
        return sign * gm.F, gm.converged

    (e_min, e_max), ok = jax.vmap(extreme)(jnp.asarray([1.0, -1.0], dtype))  # one program for both
    ok1, ok2 = ok[0], ok[1]
    status = jnp.where(ok1 & ok2, Status.OK, Status.NOT_CONVERGED)
    status = jnp.where(jnp.isfinite(e_min) & jnp.isfinite(e_max), status, Status.NONFINITE)
    status = jnp.where((h >= 0) & jnp.isfinite(h), status, Status.OUT_OF_DOMAIN).astype(jnp.int32)
    good = status == Status.OK
    return EnergyRange(eps_min=jnp.where(good, e_min, jnp.nan),
                       eps_max=jnp.where(good, e_max, jnp.nan), status=status)


# --------------------------------------------------------------------------- energy <-> temperature
#
# These work on a flat chunk of P parameter points at once, with ONE vmap level over
# (point, energy) or (point, candidate) lanes: nesting a vmap over energies inside a vmap over
# points multiplies XLA's compile time.


def _energy_fractions(n_eps: int, z2: bool):
    """Fractions of ``[eps_min, eps_max]`` scanned for β(ε) (NumPy, static): geometric towards
    both edges (β is logarithmic there), uniform in between, both edges included; for Z₂ models
    also offsets ``±10^-9 .. ±0.3`` clustered around the paramagnet's critical energy, where the
    non-concave structure near the tricritical points is arbitrarily narrow.
    Returns ``(base, cluster)``."""
    n_cl = 2 * (n_eps // 6) if z2 else 0
    n_lo, n_hi = n_eps // 5, n_eps // 10
    n_mid = max(n_eps - n_lo - n_hi - n_cl - 2, 4)
    base = np.concatenate([[0.0], np.logspace(-15, -1.3, n_lo), np.linspace(0.05, 0.95, n_mid),
                           1.0 - np.logspace(-1.3, -15, n_hi), [1.0]])
    half = np.logspace(-9, np.log10(0.3), n_cl // 2)
    return base, np.concatenate([-half[::-1], half])


class EnergyScan(NamedTuple):
    """MCE states on an energy grid per parameter point (internal; shapes ``(P, n_eps)``)."""

    eps: Any  # increasing, from eps_min to eps_max
    beta: Any  # β(ε), set to +inf / -inf at the two edges
    dbeta: Any  # dβ/dε
    ok: Any  # status OK (edges always True)
    state: MicrocanonicalState
    rng: EnergyRange  # (P,)


def _points(model, c, h, eps, n_scan: int, batch: int) -> _Point:
    """The MCE kernel over flat lanes ``(c, h, eps)`` of length ``N`` (``batch`` divides ``N``)."""
    return jax.lax.map(lambda a: microcanonical_point(model, *a, n_scan), (c, h, eps),
                       batch_size=batch)


def _repeat(tree, k: int):
    return jax.tree_util.tree_map(lambda x: jnp.repeat(x, k), tree)


def energy_scan(model, couplings, h, n_eps: int, n_scan: int = N_SCAN) -> EnergyScan:
    """MCE states at ``n_eps`` energies of ``[eps_min, eps_max]`` for each of ``P`` points.

    ``couplings``, ``h``: flat, shape ``(P,)``; traceable (no jit here).
    """
    P = h.shape[0]
    rng = jax.vmap(lambda c, hh: energy_range_point(model, c, hh))(couplings, h)
    base, cluster = _energy_fractions(n_eps, model.z2_symmetric)
    lo, width = rng.eps_min[:, None], (rng.eps_max - rng.eps_min)[:, None]
    eps = lo + width * jnp.asarray(base, h.dtype)[None, :]
    if model.z2_symmetric:
        # paramagnet's MCE critical energy: d²s²/dm²(0) = 0 <=> eps = u(0) + h²/u''(0) (eq. 34)
        def eps_crit(c, hh):
            u = lambda x: model.interaction(x, c)  # noqa: E731
            zero = jnp.zeros_like(hh)
            a2 = jax.grad(jax.grad(u))(zero)
            return u(zero) + hh * hh / jnp.where(a2 < 0, a2, -1.0), a2 < 0

        ec, has = jax.vmap(eps_crit)(couplings, h)
        inside = has & (ec > rng.eps_min) & (ec < rng.eps_max)
        ec = jnp.where(inside, ec, 0.5 * (rng.eps_min + rng.eps_max))
        extra = jnp.clip(ec[:, None] + width * jnp.asarray(cluster, h.dtype)[None, :],
                         rng.eps_min[:, None], rng.eps_max[:, None])
        eps = jnp.sort(jnp.concatenate([eps, extra], axis=1), axis=1)
    n = eps.shape[1]
    eps = eps.at[:, 0].set(rng.eps_min).at[:, -1].set(rng.eps_max)
    batch = n * math.gcd(P, 16)
    pts = _points(model, _repeat(couplings, n), jnp.repeat(h, n), eps.reshape(-1), n_scan, batch)
    pts = jax.tree_util.tree_map(lambda x: x.reshape(P, n), pts)
    beta = pts.state.beta.at[:, 0].set(jnp.inf).at[:, -1].set(-jnp.inf)
    ok = (pts.state.status == Status.OK).at[:, 0].set(True).at[:, -1].set(True)
    return EnergyScan(eps=eps, beta=beta, dbeta=pts.dbeta, ok=ok, state=pts.state, rng=rng)


# --------------------------------------------------------------------------- batched entry points


def call_compiled(jitted, *args, **static):
    """``jitted(*args, **static)`` (``static``: its static arguments, by keyword).

    With concrete ``args`` the call goes through an executable kept here, keyed on the static
    arguments and the argument types: jit's own cache misses when the call comes from inside a
    differentiation rule (see ``_microcanonical_diff``), and these programs take seconds to
    compile.  With traced ``args`` (inside a user's ``jit``) it is a plain call.
    """
    leaves, tree = jax.tree_util.tree_flatten(args)
    if any(is_traced(x) for x in leaves):
        return jitted(*args, **static)
    types = tuple((np.shape(x), np.result_type(x), bool(getattr(x, "weak_type", False)))
                  for x in leaves)
    key = (jitted, tuple(sorted(static.items())), tree, types)
    exe = _EXECUTABLES.get(key)
    if exe is None:
        if len(_EXECUTABLES) >= _MAX_EXECUTABLES:  # bounded: drop the oldest
            _EXECUTABLES.pop(next(iter(_EXECUTABLES)))
        exe = _EXECUTABLES[key] = jitted.lower(*args, **static).compile()
    return exe(*args)


_EXECUTABLES: dict = {}
_MAX_EXECUTABLES = 64


@functools.partial(jax.jit, static_argnames=("model", "n_scan", "n_newton", "batch_size"))
def _microcanonical_flat(couplings, h, eps, *, model, n_scan, n_newton, batch_size):
    def one(args):
        c, hh, ee = args
        return microcanonical_point(model, c, hh, ee, n_scan, n_newton).state

    return jax.lax.map(one, (couplings, h, eps), batch_size=batch_size)


def microcanonical_state(model: CollectiveSpinModel, couplings, h, eps, *, n_scan: int = N_SCAN,
                         batch_size: int = 4096) -> MicrocanonicalState:
    """Microcanonical equilibrium of any :class:`CollectiveSpinModel` on a broadcast grid.

    Args:
        model: the model (static; e.g. ``LMG4()``).
        couplings: the model's couplings, a pytree whose leaves broadcast with ``h`` and ``eps``.
        h: transverse field, ``>= 0``, any shape (energy units).
        eps: energy per spin, any shape; outside the spectrum the point gets
            ``Status.ENERGY_OUT_OF_RANGE`` and NaNs.
        n_scan: points of the global scan in ``Mz`` (more = safer global search, slower).
        batch_size: points evaluated together (bounds memory; results do not depend on it).
    Returns:
        :class:`MicrocanonicalState` with the broadcast shape (eqs. 14, 16; see module docstring).
        Differentiable (``jax.grad``/``jvp``) in ``couplings``, ``h``, ``eps`` by the implicit
        function theorem; a derivative reuses the compiled solve and compiles only the closed forms.
    """
    (c, h, eps), shape = broadcast_flat((couplings, h, eps))
    leaves, treedef = jax.tree_util.tree_flatten(c)
    out = _microcanonical_diff(model, treedef, n_scan, batch_size, h, eps, tuple(leaves))
    return jax.tree_util.tree_map(lambda x: x.reshape(shape), out)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _microcanonical_diff(model, treedef, n_scan, batch_size, h, eps, leaves):
    """Flat solve (padding, one compiled body, retry of unconverged points)."""
    c = jax.tree_util.tree_unflatten(treedef, leaves)
    n = h.shape[0]
    (h, eps, *lv), batch = _pad(h, eps, *leaves, batch=batch_size)
    c = jax.tree_util.tree_unflatten(treedef, lv)
    out = call_compiled(_microcanonical_flat, c, h, eps, model=model, n_scan=n_scan,
                        n_newton=N_NEWTON, batch_size=batch)
    out = _retry_not_converged(out, model, c, h, eps, n_scan)
    return jax.tree_util.tree_map(lambda x: x[:n], out)


@_microcanonical_diff.defjvp
def _microcanonical_diff_jvp(model, treedef, n_scan, batch_size, primals, tangents):
    # The primal is the (already compiled) solve; tangents come from the closed forms at the
    # located minimum, differentiated through the implicit rule of _shell_minimizer.  Nothing is
    # differentiated through the search, and the search is not compiled again.
    out = _microcanonical_diff(model, treedef, n_scan, batch_size, *primals)
    _, d_out = _tangent_flat(model, treedef, out, *primals, *tangents)
    float0 = lambda x: np.zeros(x.shape, jax.dtypes.float0)  # noqa: E731
    d_out = d_out._replace(n_maxima=float0(out.n_maxima), status=float0(out.status))
    return out, d_out


@functools.partial(jax.jit, static_argnames=("model", "treedef"))
def _tangent_flat(model, treedef, out, h, eps, leaves, dh, deps, dleaves):
    good = out.status == Status.OK
    m = jnp.where(good, out.Mz, 0.0)

    def f(h, eps, leaves):
        c = jax.tree_util.tree_unflatten(treedef, leaves)

        def one(c, hh, ee, mm):
            sol = _ShellMinimum(m=mm, feasible=True, converged=True, n_maxima=0)
            return _point_from_minimum(model, c, hh, ee, sol).state

        return jax.vmap(one)(c, h, eps, m)

    prim, tan = jax.jvp(f, (h, eps, leaves), (dh, deps, dleaves))
    tan = jax.tree_util.tree_map(
        lambda t: jnp.where(good, t, jnp.nan) if jnp.issubdtype(t.dtype, jnp.floating) else t, tan)
    return prim, tan


def _pad(*arrays, batch: int):
    """Pad flat arrays (with their first element) to a length that ``batch`` divides: a power of
    two below ``batch``, a multiple of it above.  One compiled body, few distinct shapes.
    Returns ``(arrays, batch)``."""
    n = arrays[0].shape[0]
    size = max(8, 1 << max(n - 1, 0).bit_length()) if n <= batch else -(-n // batch) * batch
    batch = min(batch, size)
    if size > n:
        arrays = [jnp.concatenate([a, jnp.broadcast_to(a[:1], (size - n,) + a.shape[1:])])
                  for a in arrays]
    return list(arrays), batch


def _retry_not_converged(out, model, c, h, eps, n_scan):
    """Re-solve the (rare) points whose polish did not certify convergence with a 4x larger
    Newton budget: near-degenerate shell minima close to the MCE tricritical point.  Only for
    concrete inputs (inside a user's ``jit`` the first result, with its status, stands)."""
    if any(is_traced(x) for x in jax.tree_util.tree_leaves((out, c, h, eps))):
        return out
    (bad,) = np.nonzero(np.asarray(out.status) == Status.NOT_CONVERGED)
    if bad.size == 0:
        return out
    size = max(8, 1 << (int(bad.size) - 1).bit_length())  # few distinct shapes: few compiles
    pad = np.concatenate([bad, np.full(size - bad.size, bad[0])])
    take = lambda x: x[pad]  # noqa: E731
    again = call_compiled(_microcanonical_flat, jax.tree_util.tree_map(take, c), h[pad], eps[pad],
                          model=model, n_scan=n_scan, n_newton=4 * N_NEWTON, batch_size=size)
    return jax.tree_util.tree_map(lambda x, y: x.at[bad].set(y[: bad.size]), out, again)


def microcanonical(h, K, eps, J=1.0, *, precision: str = "float64",
                   n_scan: int = N_SCAN) -> MicrocanonicalState:
    """Microcanonical mean-field equilibrium of the extended LMG model (eqs. 1, 13, 14, 16, 36).

    At energy per spin ``eps``, maximizes the entropy ``S(s)`` over the states with
    ``e(s, θ, φ) = eps`` (exactly, through the 1-D reduction of the module docstring) and returns
    the state, ``β = dσ/dε`` and the specific heat, at every point of the broadcast grid of
    ``h, K, eps, J``; ``mz >= 0`` branch.  The whole spectrum ``[eps_min, eps_max]`` is covered
    (``eps_max = h``; energies above 0 have negative temperature).

    Args:
        h: transverse field, energy units, ``h >= 0``; any shape (``h = 0`` is an exact branch).
        K: 4-spin coupling, energy units, ``K >= 0``; any shape.
        eps: energy per spin (energy units), finite; any shape.
        J: 2-spin coupling, ``J > 0``; any shape.
        precision: ``"float64"`` (default) or ``"float32"``.
        n_scan: points of the global scan.
    Returns:
        :class:`MicrocanonicalState` (``s, mz, Mz, Mx, entropy, beta, temperature, specific_heat,
        n_maxima, status``) of the broadcast shape; energies outside the spectrum have
        ``status == Status.ENERGY_OUT_OF_RANGE`` and NaN fields.
    Raises:
        ValueError: a concrete argument is non-finite or outside its range (named in the message).
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("eps", eps)
    h, K, eps, J = as_precision(precision, h, K, eps, J)
    return microcanonical_state(LMG4(), LMGCouplings(J, K), h, eps, n_scan=n_scan)


@functools.partial(jax.jit, static_argnames=("model",))
def _energy_range_flat(model, couplings, h):
    return jax.vmap(lambda c, hh: energy_range_point(model, c, hh))(couplings, h)


def energy_range_state(model: CollectiveSpinModel, couplings, h) -> EnergyRange:
    """``[eps_min, eps_max]`` of any :class:`CollectiveSpinModel` (eq. 13 on the Bloch sphere).

    Args: as :func:`microcanonical_state` without ``eps``.  Returns :class:`EnergyRange` of the
    broadcast shape of ``(couplings..., h)``.
    """
    (c, h), shape = broadcast_flat((couplings, h))
    out = _energy_range_flat(model, c, h)
    return jax.tree_util.tree_map(lambda x: x.reshape(shape), out)


def energy_range(h, K, J=1.0) -> EnergyRange:
    """Spectrum ``[eps_min, eps_max]`` per spin of the extended LMG model (eqs. 13, 17).

    ``eps_min`` is the ground-state energy (``jl.ground_state(h, K, J).energy``), ``eps_max = h``
    (all spins along ``-x``) for ``J, K >= 0``.  Args: ``h >= 0``, ``K >= 0``, ``J > 0``, energy
    units, any broadcastable shapes.  Returns :class:`EnergyRange` of the broadcast shape.
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, J = as_precision("float64", h, K, J)
    return energy_range_state(LMG4(), LMGCouplings(J, K), h)


def run_chunked(fn, arrays, chunk: int, fixed: bool = False):
    """Apply ``fn`` (a jitted function of flat arrays of one length) in chunks of ``chunk``
    points, padding with the first point, so that every call has one of few shapes (``fixed``:
    always ``chunk``; else powers of two up to ``chunk``): few compilations, bounded memory.
    Returns the concatenated pytree."""
    n = arrays[0].shape[0]
    size = chunk if (fixed or n > chunk) else max(8, 1 << max(n - 1, 0).bit_length())
    n_pad = -n % size
    if n_pad:
        arrays = [jnp.concatenate([a, jnp.broadcast_to(a[:1], (n_pad,) + a.shape[1:])])
                  for a in arrays]
    outs = [fn(*[a[i:i + size] for a in arrays]) for i in range(0, n + n_pad, size)]
    out = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *outs) if len(outs) > 1 else outs[0]
    return jax.tree_util.tree_map(lambda x: x[:n], out)


