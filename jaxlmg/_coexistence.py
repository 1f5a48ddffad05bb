"""Canonical first-order (coexistence) line of any collective-spin model, and its spinodals.

At a first-order transition along ``h`` two distinct minima of the reduced landscape ``F(b)``
(:func:`jaxlmg._canonical.reduced_free_energy`) have equal free energy: a ferromagnet and the
paramagnet for Z₂ models, two ferro-like minima or a quasi-paramagnet and a ferromagnet for
non-Z₂ ones (odd p-spin, a longitudinal field).  ``Mx = -∂f/∂h`` of the global minimum is
non-decreasing in ``h`` (``f`` is concave in ``h``); the transition is bracketed by bisection on
the canonical engine's global minimum (ordered, ``Mz > 0``, below; the (quasi-)paramagnet
``Mz = 0`` above: this needs ``u'(0) = 0``, so a longitudinal field is not covered yet),
then ``(σ(b1), σ(b2), ΔF(b1, b2)) = 0`` is polished by Newton in
``(h, b1, b2)``, with the
free-energy difference written without cancellation (``F = u(Mz) + b Mz - T ln 2cosh(r/T)``,
``r = sqrt(h² + b²)``): near a tricritical point ``ΔF ~ Mz⁶`` while ``F ~ h``, and the naive
difference ``F(b1) - F(b2)`` fixes ``h`` only to ``eps h / ΔMx`` and so ``Mz`` to ~1e-7.
Derivatives by the implicit function theorem (:func:`jaxlmg._implicit.implicit_solution`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._canonical import canonical_point, paramagnetic_stiffness, reduced_free_energy, stationarity
from ._critical import critical_field_point
from ._implicit import implicit_solution
from ._model import field_state
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
        para_spinodal: field below which the high-field (paramagnetic) minimum is unstable
            (``= critical_field`` for Z₂ models; NaN for non-Z₂ models: not computed).
        ferro_spinodal: field above which the ordered minimum disappears (NaN for non-Z₂ models).
        Mz, Mx, s, energy, entropy: the ordered (low-field side) coexisting state.
        Mx_para, s_para, energy_para, entropy_para, Mz_para: the high-field side coexisting
            state (the paramagnet ``Mz = 0`` for Z₂ models).
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


def _solve(model, couplings, T):
    """Forward value ``(h, b1, b2)`` of the transition, NaN where there is none."""
    B = model.max_field(couplings)
    H = B * (1.0 + 1e-9)
    zero = jnp.zeros_like(B)

    def state(h):
        st = canonical_point(model, couplings, h, T)
        return st.Mx, st.Mz

    # the ordered branch: Mz above rounding of the (quasi-)paramagnet Mz = 0
    tiny = 0.0 if model.z2_symmetric else 1e-7

    def bisect(_, c):
        lo, hi, xlo, zlo, xhi, zhi = c
        mid = 0.5 * (lo + hi)
        xm, zm = state(mid)
        up = zm > tiny  # still ordered: the transition is above mid
        return (jnp.where(up, mid, lo), jnp.where(up, hi, mid),
                jnp.where(up, xm, xlo), jnp.where(up, zm, zlo),
                jnp.where(up, xhi, xm), jnp.where(up, zhi, zm))

    x0, z0 = state(zero)
    x1, z1 = state(H)
    lo, hi, xlo, zlo, xhi, zhi = jax.lax.fori_loop(0, _BISECT, bisect, (zero, H, x0, z0, x1, z1))
    b1, b2 = _field_of(model, couplings, zlo), _field_of(model, couplings, zhi)
    b2 = jnp.where(jnp.abs(zhi) <= tiny, 0.0, b2)  # the paramagnet b = 0 (u'(0) = 0)
    scale = 1.0 + B
    distinct = (z0 > tiny) & (zlo > 1e-6) & (jnp.abs(zhi) <= tiny)
    if model.z2_symmetric:
        # First order iff the paramagnet is still locally stable where the ferromagnet stops
        # being the global minimum (at a continuous transition its stiffness vanishes there).
        kappa = paramagnetic_stiffness(model, couplings, lo, T)
        distinct = (z0 > 0) & (zlo > 0) & (kappa > 1e-9 * scale)
    x = jnp.stack([lo, b1, b2])
    G = functools.partial(_residual, model=model)
    for _ in range(_POLISH):
        J = jax.jacfwd(G)(x, (couplings, T))
        step = jnp.linalg.solve(J, G(x, (couplings, T)))
        x = x - jnp.where(jnp.all(jnp.isfinite(step)), step, 0.0)
    # the polished field must stay where the bisection put it (else a wrong pairing)
    ok = distinct & jnp.all(jnp.isfinite(x)) & (jnp.abs(x[0] - lo) <= 1e-6 * scale)
    return jnp.where(ok, x, jnp.nan)


def _first_order_kernel(couplings, T, *, model):
    sg = jax.lax.stop_gradient
    x = _solve(model, sg(couplings), sg(T))
    return implicit_solution(functools.partial(_residual, model=model), x, (couplings, T))[0]


def first_order_field_state(model: CollectiveSpinModel, couplings, T):
    """Transverse field of the canonical first-order transition at temperature ``T``.

    The field where two distinct minima of eq. (19) (reduced exactly to ``F(b)``) have equal free
    energy: ferromagnet and paramagnet (Z₂ models: LMG4 for ``K > K_tcp(T)``, Fig. 1/2 of the
    paper; even p-spin), or a quasi-paramagnet and a ferromagnet (odd p-spin: at ``T = 0``,
    ``3√3/4 J`` for ``p = 3``, Jörg et al., EPL 89, 40004 (2010)).  Bisection on the canonical
    engine's global minimum, then Newton on ``(σ(b1), σ(b2), ΔF)``; derivatives by the implicit
    function theorem (slope: Clausius-Clapeyron).

    Args:
        model: the model (static); couplings: its couplings (energy units), leaves broadcasting
            with ``T``; T: temperature ``>= 0``, any shape.
    Returns:
        ``h1`` with the broadcast shape (energy units); NaN where the transition along ``h`` is
        continuous (within ~1e-9 of a tricritical point the two are not distinguished) or
        absent (use :func:`coexistence_state` for the status).  The high-field state must be
        the (quasi-)paramagnet ``Mz = 0`` (``u'(0) = 0``): a transition between two ordered
        minima (a longitudinal field) is not bracketed yet and gives NaN.
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
    for _ in range(8):
        x = x - jnp.linalg.solve(jax.jacfwd(G)(x, (c0, T0)), G(x, (c0, T0)))
    return implicit_solution(G, x, (couplings, T))[0]


def coexistence_point(model: CollectiveSpinModel, couplings, T):
    """One point of :func:`coexistence_state` (scalars in, :class:`Coexistence` of scalars)."""
    sg = jax.lax.stop_gradient
    x = implicit_solution(functools.partial(_residual, model=model),
                          _solve(model, sg(couplings), sg(T)), (couplings, T))
    h, b1, b2 = x[0], x[1], x[2]
    ok = jnp.isfinite(h)
    fs, ps = field_state(b1, h, T), field_state(b2, h, T)
    e_f = model.interaction(fs.Mz, couplings) - h * fs.Mx
    e_p = model.interaction(ps.Mz, couplings) - h * ps.Mx
    nan = lambda v: jnp.where(ok, v, jnp.nan)  # noqa: E731
    if model.z2_symmetric:
        para_sp = critical_field_point(model, couplings, T).h
        ferro_sp = _spinodal(model, couplings, T)
    else:
        para_sp = ferro_sp = jnp.full_like(h, jnp.nan)
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
    two coexisting states and (Z₂ models) the spinodals; the exact version of eq. (18) and of the
    lines Fig. 2 sketches.  Method and reference: :func:`first_order_field_state`.

    Args:
        model: the model (static); couplings: its couplings (energy units), leaves broadcasting
            with ``T``; T: temperature ``>= 0``, any shape.
    Returns:
        :class:`Coexistence` of the broadcast shape; ``NO_TRANSITION`` and NaN where the
        transition along ``h`` is continuous or absent.  Differentiable (implicit function
        theorem); ``dh/dT = -ΔS/ΔMx`` (Clausius-Clapeyron).
    """
    return batched(_coexistence_kernel, (couplings, T), static=(("model", model),))
