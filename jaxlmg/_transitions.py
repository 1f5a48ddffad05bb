"""Phase boundaries of the extended LMG model (LMG4), located exactly and differentiable.

Thin wrappers over the model-generic boundaries (:mod:`jaxlmg._critical`,
:mod:`jaxlmg._coexistence`) with ``model = LMG4()``, ``couplings = LMGCouplings(J, K)``:

* ``critical_field(T)``: the second-order line, ``h/(2J) = tanh(h/T)``, eq. (25) (= eqs. 34, 37);
* ``landau_coefficients``: ``b2, b4`` of the paramagnet (CE eq. 22, MCE eq. 33);
* ``tricritical(T, ensemble)``: ``b2 = b4 = 0`` in ``(h, K)``;
* ``first_order_field`` / ``coexistence``: the canonical first-order line and its spinodals.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._coexistence import Coexistence, coexistence_state, first_order_field_state
from ._critical import (
    LandauCoefficients,
    Tricritical,
    check_ensemble,
    critical_field_state,
    landau_coefficients_state,
    tricritical_state,
)
from ._validate import check
from .models import LMG4, LMGCouplings

__all__ = [
    "Coexistence",
    "LandauCoefficients",
    "Tricritical",
    "coexistence",
    "critical_field",
    "first_order_field",
    "landau_coefficients",
    "tricritical",
]

_MODEL = LMG4()


def _check_T_J(T, J):
    check("J", J, lower=0.0, strict=True)
    check("T", T, lower=0.0)


def critical_field(T, J=1.0):
    """Second-order (critical) field at temperature ``T``, both ensembles: eq. (25), (34)/(37).

    The exact root of ``h/(2J) = tanh(h/T)`` (the zero of the paramagnetic stiffness
    ``h coth(h/T) - 2J``), not the low-temperature form (26)/(31)/(38).  ``T = 0`` gives ``2J``.
    The closed end ``T = 2J`` of the line gives its limit ``0`` (the classical Curie point);
    above it (``T > 2J``, where the paramagnet is stable at every ``h >= 0``) the result is NaN.
    Differentiable in ``T`` and ``J`` (implicit function theorem).
    Note: where the transition is first order (``K > K_tcp(T)``) this field is the paramagnetic
    spinodal, not the transition.

    Args:
        T: temperature ``>= 0``, energy units, any shape.
        J: 2-spin coupling ``> 0``, any shape broadcasting with ``T``.
    Returns:
        ``h_c`` with the broadcast shape (NaN for ``T > 2J``).
    Raises:
        ValueError: concrete ``T < 0``, ``J <= 0`` or non-finite values.
    """
    _check_T_J(T, J)
    T, J = _f64(T, J)
    return critical_field_state(_MODEL, LMGCouplings(J, 0.0 * J), T).h


def landau_coefficients(h, K, T, J=1.0, *, ensemble: str = "canonical") -> LandauCoefficients:
    """Reduced Landau coefficients ``b2, b4`` of the paramagnet (``mz = 0``), to all orders.

    Canonical (eqs. 20-23, 28): ``f(mz) = min_s f(s, mz)`` with the spin length relaxed; with
    ``w = mz²``, ``b2 = ∂f/∂w`` and ``b4 = (f_ww - f_sw²/f_ss)/2`` at the paramagnet
    ``s0 = tanh(h/T)`` (envelope and implicit function theorems; exact, by autodiff of the exact
    eq. 19).  At ``b2 = 0`` this is eq. (29) with the exact ``s0``.
    Microcanonical (eq. 33): the energy at fixed ``s = tanh(h/T)`` (eq. 37), expanded in ``mz``:
    ``b2 = hs/2 - Js²``, ``b4 = hs/8 - Ks⁴`` (eqs. 34, 35).  ``T = 0``: eq. (17), ``s = 1``.

    Args:
        h: field ``>= 0``; K: 4-spin coupling ``>= 0``; T: temperature ``>= 0``; J: ``> 0``;
            energy units, broadcastable shapes.
        ensemble: ``"canonical"`` or ``"microcanonical"``.
    Returns:
        :class:`LandauCoefficients` of the broadcast shape (energy units).
    """
    check_ensemble(ensemble)
    _check_T_J(T, J)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, T, J = _f64(h, K, T, J)
    return landau_coefficients_state(_MODEL, LMGCouplings(J, K), h, T, ensemble=ensemble)


def tricritical(T, ensemble: str = "canonical", J=1.0) -> Tricritical:
    """Exact tricritical point ``(h, K)`` at temperature ``T``: ``b2 = b4 = 0``.

    Canonical: eqs. (22)-(29) solved exactly (the low-T form (32) is only asymptotic, and misses
    a ``+J e^{-4J/T}`` term); microcanonical: eqs. (34)-(35) with ``s = tanh(h/T)``, exactly
    ``K = J/(4 s²)``, ``s = h/(2J)`` (eq. 39 is its low-T form).  Both ensembles share ``h``, the
    critical field.  At ``T = 0``: ``(2J, J/4)``.  Canonical, at the closed end ``T = 2J``: the
    limit ``(0, J/6)``, the classical 2+4 Curie-Weiss tricritical point (Thompson 1972); the
    microcanonical ``K`` diverges there (NaN).  For ``T > 2J``: NaN with status ``NO_TRANSITION``.
    Differentiable in ``T`` and ``J``.

    Args:
        T: temperature ``>= 0``, any shape; J: ``> 0``, broadcastable.
        ensemble: ``"canonical"`` or ``"microcanonical"``.
    Returns:
        :class:`Tricritical` ``(h, K, status)`` of the broadcast shape.
    """
    check_ensemble(ensemble)
    _check_T_J(T, J)
    T, J = _f64(T, J)
    return tricritical_state(_MODEL, LMGCouplings(J, 0.25 * J), T, "K", ensemble=ensemble)


def coexistence(K, T=0.0, J=1.0) -> Coexistence:
    """Canonical first-order transition along ``h`` at fixed ``(K, T)``: field, spinodals and the
    two coexisting states (eq. 19; the exact version of eq. 18 and of the lines Fig. 2 sketches).

    The field where the ferromagnet stops being the global minimum is bracketed by bisection on
    the canonical engine's global minimum, then ``F'(b) = 0, F(b) = F(0)`` is solved by Newton.
    Where the transition along ``h`` is continuous (``K < K_tcp(T)``; within ~1e-9 of the
    tricritical point the two are not distinguished) or absent, all fields are NaN with status
    ``NO_TRANSITION``.  Differentiable in ``K, T, J`` by the implicit function theorem; the slope
    obeys Clausius-Clapeyron, ``dh/dT = -ΔS/ΔMx``.

    Args:
        K: 4-spin coupling ``>= 0``; T: temperature ``>= 0``; J: ``> 0``; energy units,
            broadcastable shapes.
    Returns:
        :class:`Coexistence` of the broadcast shape.
    """
    _check_T_J(T, J)
    check("K", K, lower=0.0)
    K, T, J = _f64(K, T, J)
    return coexistence_state(_MODEL, LMGCouplings(J, K), T)


def first_order_field(K, T=0.0, J=1.0):
    """Canonical first-order (coexistence) field ``h1(K, T)``; ``T = 0``: the exact ground-state
    line of Fig. 1 (eq. 18 is its expansion near the tricritical point ``(K, h) = (J/4, 2J)``).

    NaN where the transition along ``h`` is not first order.  Shapes, units, differentiability:
    see :func:`coexistence`, of which this is the ``h`` field (without the spinodals, so cheaper).
    """
    _check_T_J(T, J)
    check("K", K, lower=0.0)
    K, T, J = _f64(K, T, J)
    return first_order_field_state(_MODEL, LMGCouplings(J, K), T)



def _f64(*xs):
    return tuple(jnp.asarray(x, jnp.float64) for x in xs)
