"""Canonical first-order (coexistence) line of any collective-spin model, and its spinodals.

At a first-order transition along ``h`` two distinct minima of the reduced landscape ``F(b)``
(:func:`jaxlmg._canonical.reduced_free_energy`) have equal free energy: a ferromagnet and the
paramagnet for Z₂ models, a ferromagnet and the quasi-paramagnet ``Mz = 0`` (odd p-spin) or a
strongly and a weakly polarized state (a longitudinal field) otherwise.  ``Mx = -∂f/∂h`` of the
global minimum is non-decreasing in ``h`` (``f`` is concave in ``h``).  The transition is
bracketed by bisection in ``h`` on which branch the global minimum lies:

* Z₂ models: ordered (``Mz > 0``) below, the paramagnet ``Mz = 0`` above; the ferro spinodal is
  the largest field of the ordered branch (a scan of ``h(b)``), the para spinodal ``h_c``;
* any other model: the stationary states form one curve ``h(Mz)`` (the field at which ``Mz`` is
  stationary, in closed form up to one scalar root); its interior extrema are the folds
  (spinodals), and an ``|Mz|`` between the two folds of an S separates the two branches of
  minima at every ``h`` (the global minimum over every certified stationary point,
  :func:`jaxlmg._canonical.stationary_points`, is compared with it).

Then ``(σ(b1), σ(b2), ΔF(b1, b2)) = 0`` is polished by Newton in ``(h, b1, b2)``, with the
free-energy difference written without cancellation (``F = u(Mz) + b Mz - T ln 2cosh(r/T)``,
``r = sqrt(h² + b²)``): near a tricritical point ``ΔF ~ Mz⁶`` while ``F ~ h``, and the naive
difference ``F(b1) - F(b2)`` fixes ``h`` only to ``eps h / ΔMx`` and so ``Mz`` to ~1e-7.  The
folds are polished by Newton on ``(F'(b), F''(b)) = 0`` in ``(h, b)``.  Derivatives by the
implicit function theorem (:func:`jaxlmg._implicit.implicit_solution`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._canonical import (
    canonical_point,
    paramagnetic_stiffness,
    reduced_free_energy,
    stationarity,
    stationary_points,
)
from ._critical import critical_field_point
from ._implicit import implicit_solution
from ._model import field_state
from ._search import newton_root, newton_steps
from ._status import Status
from .models import CollectiveSpinModel, interaction_derivative

__all__ = ["Coexistence", "coexistence_point", "coexistence_state", "first_order_field_state",
           "free_energy_difference"]

_BISECT = 60  # bisection steps: 2^-60 of the bracket, below float64 resolution
_POLISH = 4


class Coexistence(NamedTuple):
    """Canonical first-order transition at fixed couplings and ``T`` (energy units).

    Attributes:
        h: coexistence field (equal free energies of the two minima).
        para_spinodal: field below which the high-field minimum disappears (``= critical_field``
            for Z₂ models; NaN where it is a local minimum down to ``h = 0``: the odd p-spin's
            quasi-paramagnet ``Mz = 0``, whose curvature ``T`` or ``h`` never vanishes).
        ferro_spinodal: field above which the low-field (ordered) minimum disappears.
        Mz, Mx, s, energy, entropy: the ordered (low-field side) coexisting state.
        Mx_para, s_para, energy_para, entropy_para, Mz_para: the high-field side coexisting
            state (the paramagnet ``Mz = 0`` for Z₂ models, the weakly polarized state in a
            longitudinal field).
        status: :class:`jaxlmg.Status`; ``NO_TRANSITION`` (all NaN) where the transition along
            ``h`` is continuous or absent.
    """

    h: Any
    para_spinodal: Any
    ferro_spinodal: Any
    Mz: Any
    Mx: Any
    s: Any
    energy: Any
    entropy: Any
    Mx_para: Any
    s_para: Any
    energy_para: Any
    entropy_para: Any
    status: Any
    Mz_para: Any = None


def free_energy_difference(model: CollectiveSpinModel, couplings, h, T, b1, b2):
    """``F(b1) - F(b2)`` of the reduced landscape without cancellation (scalars).

    ``F(b) = u(Mz) + b Mz - T ln 2cosh(r/T)``; ``r1 - r2 = (b1² - b2²)/(r1 + r2)`` and
    ``ln cosh`` differences through ``log1p``/``expm1``, so the result is accurate relative to
    its own terms (``~Mz²``), not to ``F ~ h``.
    """
    s1, s2 = field_state(b1, h, T), field_state(b2, h, T)
    r1, r2 = jnp.sqrt(h * h + b1 * b1), jnp.sqrt(h * h + b2 * b2)
    rs = r1 + r2
    dr = (b1 - b2) * (b1 + b2) / jnp.where(rs > 0, rs, 1.0)
    hot = T > 0
    Ts = jnp.where(hot, T, 1.0)
    q2 = jnp.exp(-2.0 * r2 / Ts)
    dlog = jnp.log1p(q2 * jnp.expm1(-2.0 * dr / Ts) / (1.0 + q2))  # log1p(q1) - log1p(q2)
    du = model.interaction(s1.Mz, couplings) - model.interaction(s2.Mz, couplings)
    return du + (b1 * s1.Mz - b2 * s2.Mz) - dr - jnp.where(hot, Ts * dlog, 0.0)


def _sigma(model, couplings, h, T, b):
    """Stationarity residual of one state; the Z₂ paramagnet ``b = 0`` is pinned (``σ = b``)."""
    rho = stationarity(model, couplings, h, T, b)[0]
    return jnp.where(b == 0, b, rho) if model.z2_symmetric else rho


def _residual(x, p, model):
    couplings, T = p
    h, b1, b2 = x[0], x[1], x[2]
    return jnp.stack([_sigma(model, couplings, h, T, b1), _sigma(model, couplings, h, T, b2),
                      free_energy_difference(model, couplings, h, T, b1, b2)])


def _field_of(model, couplings, Mz):
    """The molecular field ``b = -u'(Mz)`` of a stationary state."""
    return -interaction_derivative(model, couplings, Mz)


def _newton(G, x, p, steps: int):
    """Newton in ``x`` (a vector) on ``G(x, p) = 0``, ``steps`` full steps (a non-finite step is
    skipped); the callers check the result."""
    return newton_steps(lambda y: (G(y, p), jax.jacfwd(G)(y, p)), x, steps)[0]


def _bisect(state, up, lo, hi):
    """Bisection of ``[lo, hi]`` on ``up(state(h))`` (true below the jump, false above), carrying
    the states at the bracket ends; ``state(h)`` is a pair of scalars of the dtype of ``lo``.

    Returns:
        ``(lo, hi, state(lo), state(hi), up_lo, up_hi)`` after ``_BISECT`` halvings, with
        ``up_lo``, ``up_hi`` the test at the *initial* ends (a bracket needs ``up_lo & ~up_hi``).
        The ends are evaluated in the loop's first two steps, so ``state`` (a whole certified
        search) is traced and compiled once, not three times.
    """

    def body(i, c):
        lo, hi, s_lo, s_hi, up_lo, up_hi = c
        first, second, halve = i == 0, i == 1, i >= 2
        x = jnp.where(first, lo, jnp.where(second, hi, 0.5 * (lo + hi)))
        s = state(x)
        u = up(s)
        to_lo, to_hi = first | (halve & u), second | (halve & ~u)
        pick = lambda m, a, b: jax.tree_util.tree_map(  # noqa: E731
            lambda x, y: jnp.where(m, x, y), a, b)
        return (jnp.where(halve & u, x, lo), jnp.where(halve & ~u, x, hi),
                pick(to_lo, s, s_lo), pick(to_hi, s, s_hi),
                jnp.where(first, u, up_lo), jnp.where(second, u, up_hi))

    blank = (jnp.zeros_like(lo), jnp.zeros_like(lo))  # (not eval_shape: a second trace)
    no = jnp.zeros((), bool)
    return jax.lax.fori_loop(0, _BISECT + 2, body, (lo, hi, blank, blank, no, no))


def _polish(model, couplings, T, x):
    """``(h, b1, b2)`` polished by Newton on :func:`_residual`."""
    return _newton(functools.partial(_residual, model=model), x, (couplings, T), _POLISH)


def _solve_z2(model, couplings, T):
    """Z₂ models: bisection on ordered (``Mz > 0``) versus the paramagnet ``b = 0``."""
    B = model.max_field(couplings)
    H = B * (1.0 + 1e-9)
    zero = jnp.zeros_like(B)

    def state(h):
        st = canonical_point(model, couplings, h, T)
        return st.Mx, st.Mz

    lo, _, (_, zlo), (_, zhi), ordered0, _ = _bisect(state, lambda s: s[1] > 0.0, zero, H)
    b1, b2 = _field_of(model, couplings, zlo), _field_of(model, couplings, zhi)
    b2 = jnp.where(jnp.abs(zhi) <= 0.0, 0.0, b2)  # the paramagnet b = 0 (u'(0) = 0)
    scale = 1.0 + B
    # First order iff the paramagnet is still locally stable where the ferromagnet stops
    # being the global minimum (at a continuous transition its stiffness vanishes there).
    kappa = paramagnetic_stiffness(model, couplings, lo, T)
    distinct = ordered0 & (zlo > 0) & (kappa > 1e-9 * scale)
    x = _polish(model, couplings, T, jnp.stack([lo, b1, b2]))
    # the polished field must stay where the bisection put it (else a wrong pairing)
    ok = distinct & jnp.all(jnp.isfinite(x)) & (jnp.abs(x[0] - lo) <= 1e-6 * scale)
    return jnp.where(ok, x, jnp.nan)


# --------------------------------------------------------------------------- any model
#
# The stationary states form one curve in the (Mz, h) plane: a state Mz is stationary at the
# single field h(Mz) where the free spin in the field (h, 0, b), b = -u'(Mz), has that Mz
# (:func:`_curve_field`).  Along it the local minima are where h falls with |Mz| and the maxima
# where it rises; its interior extrema are the folds (spinodals).  A first-order transition out
# of the low-field state is an S of this curve: the outermost fold where h peaks (the low-field
# minimum ends: ferro spinodal) and the fold just inside it where h dips (the high-field minimum
# ends: para spinodal; none where that minimum exists down to h = 0, the odd p-spin's Mz = 0).
# Any |Mz| between the two folds separates the two branches of minima at every h, so the
# transition is bracketed by bisection between the spinodals on which side of it the global
# minimum lies, then polished by Newton like the Z₂ one.

#: nodes of the curve scan, ``|Mz| = ((k + 1/2)/n)²`` (dense near Mz = 0, where the para fold of
#: a weak longitudinal field sits, ``|Mz| ~ b^(1/3)``)
_N_CURVE = 256
#: stationary-point slots of the landscape (two minima, a maximum between, and a metastable
#: reversed minimum with its barrier fit with room to spare)
_MAX_ROOTS = 8


def _tanh_ratio_root(c):
    """``x > 0`` with ``tanh(x)/x = c`` for ``0 < c < 1`` (the one safeguarded Newton; the root lies
    in ``[sqrt(3(1 - c)), 1/c]`` since ``x - x³/3 <= tanh x <= 1``)."""
    tiny = jnp.finfo(c.dtype).tiny
    lo = jnp.maximum(jnp.sqrt(3.0 * (1.0 - c)), tiny)
    hi = 1.0 / c
    g = lambda x: jnp.tanh(x) / x - c  # noqa: E731
    x0 = jnp.clip(jnp.where(c < 0.5, jnp.tanh(hi) * hi, lo), lo, hi)
    x, _ = newton_root(lambda x: jax.jvp(g, (x,), (jnp.ones_like(x),)), x0, lo, hi, g(lo))
    return x


def _curve_field(model, couplings, T, Mz):
    """``(h, b)``: the transverse field ``h >= 0`` at which ``Mz`` is a stationary state of the
    reduced landscape, and its molecular field ``b = -u'(Mz)`` (scalars; ``h`` NaN where none).

    ``Mz = tanh(r/T) b/r`` (``b/r`` at ``T = 0``), ``r = sqrt(h² + b²)``: needs ``b Mz > 0`` and
    ``r >= |b|``.
    """
    b = _field_of(model, couplings, Mz)
    m = jnp.abs(Mz)
    bb = jnp.where(Mz < 0, -b, b)  # |b| where b has the sign of Mz
    ok = (bb > 0) & (m > 0) & (m < 1)
    hot = T > 0
    c = T * m / jnp.where(ok, bb, 1.0)
    ok = ok & (~hot | (c < 1.0))
    x = _tanh_ratio_root(jnp.where(ok & hot, c, 0.5))
    r = jnp.where(hot, T * x, bb / jnp.where(ok, m, 1.0))
    h2 = (r - bb) * (r + bb)
    ok = ok & (h2 >= 0)
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, h2, 0.0)), jnp.nan), b


def _fold(model, couplings, T, hs, bs, k):
    """The fold near scan node ``k`` (``-1``: none), polished by Newton on
    :func:`_spinodal_residual`: ``(h, b)``, NaN where there is none or Newton strays."""
    kk = jnp.maximum(k, 0)
    x0 = jnp.stack([hs[kk], bs[kk]])
    G = functools.partial(_spinodal_residual, model=model)
    x = _newton(G, x0, (couplings, T), 8)
    scale = 1.0 + model.max_field(couplings)
    res = G(x, (couplings, T))
    ok = (k >= 0) & jnp.all(jnp.isfinite(x)) & jnp.all(jnp.abs(res) <= 1e-9 * scale)
    ok = ok & (jnp.abs(x[0] - x0[0]) <= 1e-2 * scale) & (x[0] >= 0)
    return jnp.where(ok, x, jnp.nan)


def _lowest_minimum(model, couplings, h, T):
    """``(Mz, b)`` of the global minimum over every certified stationary point at ``(h, T)``."""
    sp = stationary_points(model, couplings, h, T, max_roots=_MAX_ROOTS)
    F = jnp.where(sp.kind >= 0, sp.F, jnp.inf)  # minima and unresolved double roots
    k = jnp.argmin(F)
    return sp.Mz[k], sp.b[k]


def _solve_generic(model, couplings, T):
    """``(x, para, ferro)``: ``x = (h, b1, b2)`` of the transition and the two folds ``(h, b)``
    (NaN where there is none; ``x`` NaN where the transition along ``h`` is absent)."""
    zero = jnp.zeros_like(T)
    sgn = jnp.where(_lowest_minimum(model, couplings, zero, T)[0] < 0, -1.0, 1.0)
    t = (jnp.arange(_N_CURVE, dtype=zero.dtype) + 0.5) / _N_CURVE
    m = t * t
    hs, bs = jax.vmap(lambda z: _curve_field(model, couplings, T, z))(sgn * m)
    left, mid, right = hs[:-2], hs[1:-1], hs[2:]
    fin = jnp.isfinite(left) & jnp.isfinite(mid) & jnp.isfinite(right)
    idx = jnp.arange(1, _N_CURVE - 1)
    k_fs = jnp.max(jnp.where(fin & (mid > left) & (mid >= right), idx, -1))
    k_ps = jnp.max(jnp.where(fin & (mid < left) & (mid <= right) & (idx < k_fs), idx, -1))
    ferro = _fold(model, couplings, T, hs, bs, k_fs)
    para = _fold(model, couplings, T, hs, bs, k_ps)
    tau = 0.5 * (jnp.where(k_ps >= 0, m[jnp.maximum(k_ps, 0)], 0.0) + m[jnp.maximum(k_fs, 0)])

    def state(h):
        return _lowest_minimum(model, couplings, h, T)

    def up(s):  # the global minimum is on the low-field (outer) branch
        return sgn * s[0] > tau

    # the window between the spinodals (the scan's fold where Newton did not converge)
    lo0 = jnp.where(k_ps >= 0, jnp.where(jnp.isfinite(para[0]), para[0], hs[k_ps]), 0.0)
    hi0 = jnp.where(jnp.isfinite(ferro[0]), ferro[0], hs[jnp.maximum(k_fs, 0)])
    lo, _, s_lo, s_hi, up_lo, up_hi = _bisect(state, up, lo0, hi0)
    b1, (zhi, b2) = s_lo[1], s_hi
    # a high-field state at an exact root b = 0 (u'(0) = 0: odd p-spin) stays exactly there
    exact0 = _sigma(model, couplings, lo, T, jnp.zeros_like(b2)) == 0
    b2 = jnp.where(exact0 & (jnp.abs(zhi) <= 1e-7), 0.0, b2)
    x = _polish(model, couplings, T, jnp.stack([lo, b1, b2]))
    scale = 1.0 + model.max_field(couplings)
    ok = jnp.isfinite(hi0) & (k_fs >= 0) & up_lo & ~up_hi
    ok = ok & jnp.all(jnp.isfinite(x)) & (jnp.abs(x[0] - lo) <= 1e-6 * scale)
    z1, z2 = field_state(x[1], x[0], T).Mz, field_state(x[2], x[0], T).Mz
    ok = ok & (sgn * z1 > tau) & (sgn * z2 < tau)  # still one on each branch
    return jnp.where(ok, x, jnp.nan), para, ferro


def _solve(model, couplings, T):
    """Forward value ``(h, b1, b2)`` of the transition, NaN where there is none."""
    if model.z2_symmetric:
        return _solve_z2(model, couplings, T)
    return _solve_generic(model, couplings, T)[0]


def _first_order_kernel(couplings, T, *, model):
    sg = jax.lax.stop_gradient
    x = _solve(model, sg(couplings), sg(T))
    return implicit_solution(functools.partial(_residual, model=model), x, (couplings, T))[0]


def first_order_field_state(model: CollectiveSpinModel, couplings, T):
    """Transverse field of the canonical first-order transition at temperature ``T``.

    The field where two distinct minima of eq. (19) (reduced exactly to ``F(b)``) have equal free
    energy: ferromagnet and paramagnet (Z₂ models: LMG4 for ``K > K_tcp(T)``, Fig. 1/2 of the
    paper; even p-spin), a quasi-paramagnet and a ferromagnet (odd p-spin: at ``T = 0``,
    ``3√3/4 J`` for ``p = 3``, Jörg et al., EPL 89, 40004 (2010)), or a strongly and a weakly
    polarized state (LMG4 in a longitudinal field, up to its critical end point).  Bisection on
    the branch of the global minimum, then Newton on ``(σ(b1), σ(b2), ΔF)`` (module docstring);
    derivatives by the implicit function theorem (slope: Clausius-Clapeyron).

    Args:
        model: the model (static); couplings: its couplings (energy units), leaves broadcasting
            with ``T``; T: temperature ``>= 0``, any shape.
    Returns:
        ``h1`` with the broadcast shape (energy units); NaN where the transition along ``h`` is
        continuous or absent (use :func:`coexistence_state` for the status).  Within ~1e-9 of a
        tricritical point (Z₂) the two are not distinguished; for other models an S of the
        stationary curve narrower than its scan (``_N_CURVE`` nodes in ``|Mz|``, i.e. within
        ~1e-5 relative of a critical end point) is reported as no transition.  Only the
        transition out of the low-field state is reported (one per ``(couplings, T)``).
    """
    return batched(_first_order_kernel, (couplings, T), static=(("model", model),))


def _branch_field(model, couplings, b, T):
    """``h(b)``: the field at which ``b`` is a stationary molecular field (Z₂ models, ``b > 0``);
    ``b + u'(Mz(b, h))`` increases with ``h``: bisection on ``[0, max_field]``; NaN if none."""
    B = model.max_field(couplings)

    def g(h):
        return b - _field_of(model, couplings, field_state(b, h, T).Mz)

    def bisect(_, br):
        lo, hi = br
        mid = 0.5 * (lo + hi)
        up = g(mid) > 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi = jax.lax.fori_loop(0, _BISECT, bisect, (jnp.zeros_like(B), B))
    ok = (g(jnp.zeros_like(B)) <= 0) & (g(B) >= 0)
    return jnp.where(ok, 0.5 * (lo + hi), jnp.nan)


def _spinodal_residual(x, p, model):
    """``(F'(b), F''(b))`` at ``(h, b) = x``: the fold where the ordered minimum ends."""
    couplings, T = p
    dF = jax.grad(lambda b, h: reduced_free_energy(model, couplings, h, T, b))
    return jnp.stack([dF(x[1], x[0]), jax.grad(dF)(x[1], x[0])])


def _spinodal(model, couplings, T, n: int = 64):
    sg = jax.lax.stop_gradient
    c0, T0 = sg(couplings), sg(T)
    B = model.max_field(c0)
    bs = B * (jnp.arange(1, n + 1) / n) ** 2
    hs = jax.vmap(lambda b: _branch_field(model, c0, b, T0))(bs)
    k = jnp.nanargmax(hs)
    x = jnp.stack([hs[k], bs[k]])
    G = functools.partial(_spinodal_residual, model=model)
    x = _newton(G, x, (c0, T0), 8)
    return implicit_solution(G, x, (couplings, T))[0]


def coexistence_point(model: CollectiveSpinModel, couplings, T):
    """One point of :func:`coexistence_state` (scalars in, :class:`Coexistence` of scalars)."""
    sg = jax.lax.stop_gradient
    c0, T0 = sg(couplings), sg(T)
    G = functools.partial(_residual, model=model)
    if model.z2_symmetric:
        x = implicit_solution(G, _solve_z2(model, c0, T0), (couplings, T))
        para_sp = critical_field_point(model, couplings, T).h
        ferro_sp = _spinodal(model, couplings, T)
    else:
        x0, para, ferro = _solve_generic(model, c0, T0)
        x = implicit_solution(G, x0, (couplings, T))
        S = functools.partial(_spinodal_residual, model=model)
        para_sp = implicit_solution(S, para, (couplings, T))[0]
        ferro_sp = implicit_solution(S, ferro, (couplings, T))[0]
    h, b1, b2 = x[0], x[1], x[2]
    ok = jnp.isfinite(h)
    fs, ps = field_state(b1, h, T), field_state(b2, h, T)
    e_f = model.interaction(fs.Mz, couplings) - h * fs.Mx
    e_p = model.interaction(ps.Mz, couplings) - h * ps.Mx
    nan = lambda v: jnp.where(ok, v, jnp.nan)  # noqa: E731
    return Coexistence(
        h=h, para_spinodal=nan(para_sp), ferro_spinodal=nan(ferro_sp),
        Mz=fs.Mz, Mx=fs.Mx, s=fs.s, energy=e_f, entropy=fs.entropy,
        Mx_para=nan(ps.Mx), s_para=nan(ps.s), energy_para=nan(e_p), entropy_para=nan(ps.entropy),
        status=jnp.where(ok, Status.OK, Status.NO_TRANSITION).astype(jnp.int32),
        Mz_para=nan(ps.Mz),
    )


def _coexistence_kernel(couplings, T, *, model):
    return coexistence_point(model, couplings, T)


def coexistence_state(model: CollectiveSpinModel, couplings, T) -> Coexistence:
    """Canonical first-order transition along ``h`` at fixed couplings and ``T``: the field, the
    two coexisting states and the two spinodals (the folds where each minimum disappears); the
    exact version of eq. (18) and of the lines Fig. 2 sketches.  Method and reference:
    :func:`first_order_field_state`.

    Args:
        model: the model (static); couplings: its couplings (energy units), leaves broadcasting
            with ``T``; T: temperature ``>= 0``, any shape.
    Returns:
        :class:`Coexistence` of the broadcast shape; ``NO_TRANSITION`` and NaN where the
        transition along ``h`` is continuous or absent.  Differentiable (implicit function
        theorem); ``dh/dT = -ΔS/ΔMx`` (Clausius-Clapeyron).
    """
    return batched(_coexistence_kernel, (couplings, T), static=(("model", model),))
