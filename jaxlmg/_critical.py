"""Second-order line, Landau coefficients and tricritical point of any collective-spin model.

* :func:`critical_field_state`: the zero of the paramagnetic stiffness ``u''(0) + h coth(h/T)``
  (Z₂ models); for LMG4 ``h/(2J) = tanh(h/T)``, eq. (25) (= eqs. 34, 37 in the MCE).
* :func:`landau_coefficients_state`: ``b2, b4`` of the paramagnet in ``w = mz²`` (eqs. 22, 33), by
  nested autodiff of the exact eq. (19).
* :func:`tricritical_state`: ``b2 = b4 = 0`` in ``(h, coupling)``, the coupling that varies an
  argument.  The canonical residual is written in the order parameter ``Mz = s mz`` (the Legendre
  transform of the free spin, smooth through ``h = 0``), so the closed domain ``T <= -u''(0)``
  includes its endpoint: at ``T = -u''(0)``, ``h = 0`` and ``u''''(0)/24 + T/12 = 0`` (the
  classical 2+4 Curie-Weiss tricritical point ``K = J/6`` of LMG4, Thompson 1974).

Every boundary is the root of a smooth residual solved by a robust solver (monotone Newton, a few
exact Newton steps in a coupling) and differentiated only through
:func:`jaxlmg._implicit.implicit_solution`.  One-point kernels, batched by
:func:`jaxlmg._batch.batched`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._canonical import paramagnetic_stiffness
from ._implicit import implicit_solution
from ._model import entropy
from ._search import newton_steps
from ._status import Status
from .models import CollectiveSpinModel, interaction_derivative

__all__ = [
    "ENSEMBLES",
    "CriticalField",
    "LandauCoefficients",
    "Tricritical",
    "check_ensemble",
    "critical_field_point",
    "critical_field_state",
    "landau_coefficients_state",
    "landau_point",
    "tricritical_state",
]

ENSEMBLES = ("canonical", "microcanonical")
_N_NEWTON = 100  # monotone Newton steps for the critical field (linear only at the endpoint)
_N_COUPLING = 12  # Newton steps in the varied coupling (exact in 2 for a linear b4)


class CriticalField(NamedTuple):
    """Second-order field ``h`` (energy units) and :class:`jaxlmg.Status` per point."""

    h: Any
    status: Any


class LandauCoefficients(NamedTuple):
    """Reduced Landau coefficients of the paramagnet, ``f = f0 + b2 mz² + b4 mz⁴ + O(mz⁶)``
    (eq. 22 canonical with ``s`` relaxed; eq. 33 microcanonical at fixed ``s = tanh(h/T)``)."""

    b2: Any
    b4: Any


class Tricritical(NamedTuple):
    """Tricritical point at temperature ``T``: field ``h``, the varied coupling's value ``K``
    (named ``K`` for LMG4's 4-spin coupling, whatever coupling varies), status."""

    h: Any
    K: Any
    status: Any


def check_ensemble(ensemble):
    """Raise ``ValueError`` unless ``ensemble`` is ``"canonical"`` or ``"microcanonical"``."""
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")


def _u(model, couplings, order):
    return interaction_derivative(model, couplings, jnp.zeros_like(jax.tree_util.tree_leaves(
        couplings)[0]), order)


# --------------------------------------------------------------------------- critical line


def _stiffness_residual(h, p, model):
    couplings, T = p
    return paramagnetic_stiffness(model, couplings, h, T)


def critical_field_point(model: CollectiveSpinModel, couplings, T):
    """One point of :func:`critical_field_state`: ``(h_c, status)`` scalars."""
    sg = jax.lax.stop_gradient
    c0, T0 = sg(couplings), sg(T)
    a = -_u(model, c0, 2)  # h coth(h/T) = a: root in [0, a] iff 0 <= T <= a
    exists = model.z2_symmetric & (a > 0) & (T0 >= 0) & (T0 <= a)
    a_safe = jnp.where(exists, a, 1.0)

    def gd(h):  # convex increasing residual: Newton from the right end is monotone
        g, dg = jax.jvp(lambda x: _stiffness_residual(x, (c0, T0), model), (h,),
                        (jnp.ones_like(h),))
        return g, jnp.where(dg > 0, dg, 1.0)

    h, _ = newton_steps(gd, a_safe, _N_NEWTON, project=lambda h: jnp.clip(h, 0.0, a_safe))
    h = jnp.where(T0 >= a_safe, 0.0, h)  # the closed domain's endpoint: h_c(-u''(0)) = 0
    h = implicit_solution(functools.partial(_stiffness_residual, model=model), h, (couplings, T))
    status = jnp.where(exists, Status.OK, Status.NO_TRANSITION).astype(jnp.int32)
    return CriticalField(h=jnp.where(exists, h, jnp.nan), status=status)


def _critical_kernel(couplings, T, *, model):
    return critical_field_point(model, couplings, T)


def critical_field_state(model: CollectiveSpinModel, couplings, T) -> CriticalField:
    """Second-order (critical) field of a Z₂-symmetric model at temperature ``T``, both ensembles.

    The exact zero of the paramagnetic stiffness ``u''(0) + h coth(h/T)`` (eq. 25 for LMG4,
    ``h/(2J) = tanh(h/T)``; eqs. 34/37 in the MCE), found by monotone Newton (the residual is
    convex and increasing in ``h``) and differentiated by the implicit function theorem.  The
    line exists for ``0 <= T <= -u''(0)``; its closed end ``T = -u''(0)`` gives ``h = 0`` (the
    classical Curie point; the derivative in ``T`` is infinite there: NaN).  Where the transition
    is first order this field is the paramagnetic spinodal.

    Args:
        model: a :class:`~jaxlmg.models.CollectiveSpinModel` (static).
        couplings: its couplings (energy units), leaves broadcasting with ``T``.
        T: temperature ``>= 0`` (energy units), any shape.
    Returns:
        :class:`CriticalField` ``(h, status)`` of the broadcast shape: ``h`` NaN with status
        ``NO_TRANSITION`` where there is no second-order line (non-Z₂ models such as odd p-spin,
        ``u''(0) >= 0`` such as the pure 4-spin model or ``PSpin(p >= 3)``, ``T > -u''(0)``).
    Raises:
        nothing for array input (the LMG4 wrapper :func:`jaxlmg.critical_field` validates).
    """
    return batched(_critical_kernel, (couplings, T), static=(("model", model),))


# --------------------------------------------------------------------------- Landau coefficients


def _f_dir(s, mz, model, couplings, h, T):
    """Eq. (19) at ``φ = 0`` as a function of ``s`` and ``mz = cosθ`` (exact, no expansion)."""
    e = model.interaction(s * mz, couplings) - h * s * jnp.sqrt((1.0 - mz) * (1.0 + mz))
    # (at T = 0, s = 1 where S' = -inf: the entropy term and its derivatives are exactly 0)
    return e - jnp.where(T > 0, T * entropy(s), 0.0)


def landau_point(model: CollectiveSpinModel, couplings, h, T, ensemble: str):
    """``b2, b4`` of ``f = f0 + b2 w + b4 w² + ...``, ``w = mz²`` (eq. 22), at the paramagnet.

    At fixed ``s`` the coefficients of ``w`` and ``w²`` are ``∂²f/∂mz²/2`` and ``∂⁴f/∂mz⁴/24``
    (nested forward-mode autodiff of the exact eq. 19).  Canonical, ``s`` relaxed: the envelope
    theorem gives ``b2 = f_w`` and the implicit function theorem ``b4 = f_ww/2 - f_sw²/(2 f_ss)``
    (a Schur complement), exact at the paramagnet ``s0 = tanh(h/T)``.  Microcanonical, ``s``
    fixed (eq. 33): no Schur term.  ``T = 0``: ``s = 1`` in both ensembles (eq. 17).
    """
    hot = T > 0
    Ts = jnp.where(hot, T, 1.0)
    one_minus = 1.0 - jnp.finfo(jnp.result_type(h)).epsneg
    s0 = jnp.where(hot, jnp.minimum(jnp.tanh(h / Ts), one_minus), 1.0)
    T_eff = jnp.where(hot, Ts, 0.0)
    zero = jnp.zeros_like(s0)

    def f(s):
        return functools.partial(_f_dir, s, model=model, couplings=couplings, h=h, T=T_eff)

    def d2(s):  # ∂²f/∂mz² at mz = 0, fixed s
        return jax.jacfwd(jax.jacfwd(f(s)))(zero)

    def d4(s):
        return jax.jacfwd(jax.jacfwd(jax.jacfwd(jax.jacfwd(f(s)))))(zero)

    b2 = d2(s0) / 2.0
    b4 = d4(s0) / 24.0
    if ensemble == "canonical":
        f_sw = jax.jacfwd(d2)(s0) / 2.0
        # f_ss = e_ss + T/(1 - s0²), 1 - s0² = sech²(h/T) = 4q/(1+q)², q = e^{-2h/T}
        e_ss = jax.grad(jax.grad(lambda s: _f_dir(s, zero, model, couplings, h, 0.0)))(s0)
        q = jnp.exp(-2.0 * h / Ts)
        sech2 = 4.0 * q / ((1.0 + q) * (1.0 + q))
        b4 = b4 - jnp.where(hot, f_sw * f_sw * sech2 / (2.0 * (e_ss * sech2 + Ts)), 0.0)
    return LandauCoefficients(b2=b2, b4=b4)


def _landau_kernel(couplings, h, T, *, model, ensemble):
    return landau_point(model, couplings, h, T, ensemble)


def landau_coefficients_state(model: CollectiveSpinModel, couplings, h, T, *,
                              ensemble: str = "canonical") -> LandauCoefficients:
    """Reduced Landau coefficients ``b2, b4`` (in ``w = mz²``) of the paramagnet, to all orders.

    Canonical (eqs. 20-23, 28): ``s`` relaxed, ``b4 = (f_ww - f_sw²/f_ss)/2`` at
    ``s0 = tanh(h/T)``; microcanonical (eq. 33): ``s = tanh(h/T)`` fixed.  Exact (autodiff of
    eq. 19 with the model's ``u``); meaningful for Z₂ models (the paramagnet is stationary).

    Args:
        model: the model (static); couplings: its couplings; h: field ``>= 0``; T: ``>= 0``;
            energy units, broadcastable shapes.
        ensemble: ``"canonical"`` or ``"microcanonical"``.
    Returns:
        :class:`LandauCoefficients` of the broadcast shape (energy units).
    Raises:
        ValueError: unknown ``ensemble``.
    """
    check_ensemble(ensemble)
    return batched(_landau_kernel, (couplings, h, T),
                   static=(("model", model), ("ensemble", ensemble)))


# --------------------------------------------------------------------------- tricritical point


def _psi(x):
    """``(tanh x - x sech²x)/x³`` (→ 2/3 at 0), stable for all ``x >= 0``."""
    small = x < 1e-3
    xs = jnp.where(small, 1.0, x)
    q = jnp.exp(-2.0 * xs)
    th = -jnp.expm1(-2.0 * xs) / (1.0 + q)
    sech2 = 4.0 * q / ((1.0 + q) * (1.0 + q))
    x2 = x * x
    return jnp.where(small, 2.0 / 3.0 - 8.0 / 15.0 * x2 + 34.0 / 105.0 * x2 * x2,
                     (th - xs * sech2) / (xs * xs * xs))


def _landau_Mz(model, couplings, h, T, ensemble):
    """``(c2, c4)`` of the paramagnet in the order parameter ``Mz`` (``f = f0 + c2 Mz² + c4 Mz⁴``).

    Canonical: the free spin's Legendre transform in ``Mz`` is ``Mz²/(2χ) + a2 Mz⁴/χ⁴`` with
    ``1/χ = h coth(h/T)`` and ``a2/χ⁴ = T (x coth x)⁴ ψ(x)/8``, ``x = h/T`` (``T/12`` at
    ``h = 0``, ``h/8`` at ``T = 0``).  Microcanonical at fixed ``s = tanh(h/T)`` (eq. 33 over
    ``s²``, ``s⁴``): ``c2 = u''/2 + h/(2s)``, ``c4 = u''''/24 + h/(8s³)``.
    """
    u2, u4 = _u(model, couplings, 2), _u(model, couplings, 4)
    c2 = 0.5 * paramagnetic_stiffness(model, couplings, h, T)
    hot = T > 0
    Ts = jnp.where(hot, T, 1.0)
    x = h / Ts
    if ensemble == "canonical":
        small = x < 1e-4
        xs = jnp.where(small, 1.0, x)
        xcoth = jnp.where(small, 1.0 + x * x / 3.0, xs / jnp.tanh(xs))
        free4 = jnp.where(hot, Ts * xcoth ** 4 * _psi(x) / 8.0, h / 8.0)
    else:
        s = jnp.where(hot, jnp.tanh(x), 1.0)
        s_safe = jnp.where(s > 0, s, 1.0)
        c2 = 0.5 * u2 + jnp.where(s > 0, h / (2.0 * s_safe), jnp.where(hot, 0.5 * Ts, 0.0))
        free4 = jnp.where(s > 0, h / (8.0 * s_safe ** 3), jnp.inf)  # K -> inf as h -> 0
    return c2, u4 / 24.0 + free4


def _tricritical_residual(x, p, model, vary, ensemble):
    couplings, T = p
    c = couplings._replace(**{vary: x[1]})
    return jnp.stack(_landau_Mz(model, c, x[0], T, ensemble))


def _tricritical_point(couplings, T, *, model, vary, ensemble):
    sg = jax.lax.stop_gradient
    c0, T0 = sg(couplings), sg(T)

    def hc(k):
        return critical_field_point(model, c0._replace(**{vary: k}), T0).h

    def b4(k):
        return _landau_Mz(model, c0._replace(**{vary: k}), hc(k), T0, ensemble)[1]

    def b4_fixed_h(k, h):
        return _landau_Mz(model, c0._replace(**{vary: k}), h, T0, ensemble)[1]

    def gd(k):  # Newton in the varied coupling along the critical line
        g, dg = jax.jvp(b4, (k,), (jnp.ones_like(k),))
        # at the line's end (h = 0) dh/dk is infinite or NaN while c4 is flat in h: use ∂c4/∂k
        dg_h = jax.jvp(lambda q: b4_fixed_h(q, hc(k)), (k,), (jnp.ones_like(k),))[1]
        return g, jnp.where(jnp.isfinite(dg), dg, dg_h)

    k, _ = newton_steps(gd, getattr(c0, vary), _N_COUPLING)
    x = jnp.stack([hc(k), k])
    x = jnp.where(jnp.all(jnp.isfinite(x)) & jnp.all(jnp.abs(_tricritical_residual(
        x, (c0, T0), model, vary, ensemble)) <= 1e-9 * (1.0 + jnp.abs(k))), x, jnp.nan)
    G = functools.partial(_tricritical_residual, model=model, vary=vary, ensemble=ensemble)
    x = implicit_solution(G, x, (couplings, T))
    ok = jnp.all(jnp.isfinite(x))
    status = jnp.where(ok, Status.OK, Status.NO_TRANSITION).astype(jnp.int32)
    return Tricritical(h=x[0], K=x[1], status=status)


def tricritical_state(model: CollectiveSpinModel, couplings, T, vary: str = "K", *,
                      ensemble: str = "canonical") -> Tricritical:
    """Tricritical point at temperature ``T``: ``b2 = b4 = 0`` in ``(h, couplings.<vary>)``.

    The field is the critical field (``b2 = 0``, :func:`critical_field_state`); the coupling
    named ``vary`` is then found by Newton on ``b4 = 0`` along the critical line (exact in two
    steps where ``b4`` is linear in it, as for LMG4's ``K``); the value of ``couplings.<vary>``
    is the starting point.  Canonical residual in ``Mz`` (exact, smooth through ``h = 0``): the
    line ends at ``T = -u''(0)`` with ``h = 0`` and ``u''''(0)/24 + T/12 = 0`` (LMG4: the
    classical 2+4 Curie-Weiss point ``K = J/6``, C. J. Thompson, *Mathematical Statistical
    Mechanics* (1972); eqs. 22-29 of the paper at ``h > 0``).  Microcanonical: eqs. (34)-(35)
    (its ``K = J/(4 s²)`` diverges as ``h -> 0``: NaN at ``T = -u''(0)``).

    Args:
        model: a Z₂ model (static); couplings: its couplings (leaves broadcast with ``T``),
            energy units; T: temperature ``>= 0``, any shape.
        vary: name of the coupling field to solve for (``"K"`` for LMG4; ``"J"`` also works).
        ensemble: ``"canonical"`` or ``"microcanonical"``.
    Returns:
        :class:`Tricritical` ``(h, K, status)`` (``K`` = the varied coupling); NaN and
        ``NO_TRANSITION`` where there is none (no critical line, ``b4`` without a root).
    Raises:
        ValueError: unknown ``ensemble`` or ``vary`` not a field of ``couplings``.
    """
    check_ensemble(ensemble)
    if vary not in getattr(couplings, "_fields", ()):
        raise ValueError(f"vary must be one of the couplings' fields "
                         f"{getattr(couplings, '_fields', ())}, got {vary!r}")
    return batched(_tricritical_point, (couplings, T),
                   static=(("model", model), ("vary", vary), ("ensemble", ensemble)))
