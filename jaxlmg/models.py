"""Collective-spin models: the public model API (built-in models and the interface for your own).

A *collective-spin model* is a fully connected spin-½ model whose Hamiltonian is a function of the
total spin, ``H = N u(2 S^z / N) - 2 h S^x``.  Its mean-field energy per spin is

    ``e(s, θ, φ) = u(s cosθ) - h s sinθ cosφ``                                      (eq. 13)

with ``u(Mz)`` the interaction along z (per spin, energy units) and ``h`` the transverse field.
Every engine of jaxlmg (canonical, microcanonical, boundaries, inequivalence, finite N, sweeps)
takes such a model; the built-in ones are:

* :class:`LMG4` — the Lipkin-Meshkov-Glick ferromagnet with a 4-spin term of Defenu, Mukamel and
  Ruffo, PRL 133, 050403 (2024), eq. (1): ``u = -J Mz² - K Mz⁴`` (``J = 0``: the pure 4-spin model).
* :class:`PSpin` — the p-spin ferromagnet in a transverse field, ``u = -J Mz^p`` (Jörg, Krzakala,
  Kurchan, Maggs, Pujos, EPL 89, 40004 (2010); Bapst & Semerjian, J. Stat. Mech. (2012) P06007).
  ``p = 2`` is the quantum Curie-Weiss (LMG) model; ``p >= 3`` has first-order transitions.
* :class:`LongitudinalLMG4` — LMG4 with a longitudinal field ``b``: ``u = -J Mz² - K Mz⁴ - b Mz``
  (no Z₂ symmetry for ``b != 0``).

Writing your own: any hashable object with ``interaction(Mz, couplings)``,
``max_field(couplings)``, ``max_curvature(couplings, m)`` and ``z2_symmetric`` (see
:class:`CollectiveSpinModel`); couplings are a NamedTuple of scalars (each may be a grid axis).
A Z₂ model may also give the exact Taylor coefficients of its interaction,
``taylor_coefficients(couplings, n)`` (see :func:`taylor_coefficients`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax.experimental.jet import jet

__all__ = [
    "CollectiveSpinModel",
    "LMG4",
    "LMGCouplings",
    "LongitudinalCouplings",
    "LongitudinalLMG4",
    "PSpin",
    "PSpinCouplings",
    "Reversed",
    "curvature_bound",
    "quartic_bound",
    "interaction_derivative",
    "taylor_coefficients",
]


@runtime_checkable
class CollectiveSpinModel(Protocol):
    """A fully connected spin-½ model with mean-field energy ``e = u(Mz) - h Mx`` (eq. 13).

    ``u(Mz)`` is any smooth interaction along z (a polynomial in ``Σσᶻ``: p-spin terms,
    longitudinal fields, ...).  At finite ``N`` the ``S^z``-diagonal of the Hamiltonian in the
    sector basis is ``N u(2M/N)`` (``M`` the ``S^z`` eigenvalue) and the transverse part is
    ``-2h S^x`` (eq. 4).  A model is a hashable, static object (a static argument of the jitted
    engines); its couplings are a pytree of scalars passed separately, so they can vary over a
    grid.

    Attributes:
        z2_symmetric: ``True`` when ``u(-m) == u(m)`` for all couplings; the engines then
            search ``Mz >= 0`` only and the paramagnet ``Mz = 0`` is always stationary.

    Methods:
        interaction(Mz, couplings): ``u(Mz)`` per spin (energy units); ``Mz`` a scalar in
            ``[-1, 1]``, ``couplings`` a pytree of scalars.
        max_field(couplings): an upper bound on ``|u'(Mz)|`` over ``|Mz| <= 1`` (the largest
            longitudinal mean field the interaction can create); bounds every search.
        max_curvature(couplings, m=1.0) (optional): an upper bound on ``|u''(t)|`` over
            ``|t| <= m``.  The certified stationary-point search uses it to exclude stationary
            points between scan points; without it :func:`curvature_bound` estimates it
            numerically (not a proof).
        interaction_derivative(Mz, couplings, order) (optional): the derivative of order
            ``k`` of ``u`` in closed form (the engines evaluate the first three at every scan
            node; without it they come from nested autodiff of ``interaction``: the same
            numbers to rounding, but a larger program to trace and compile).
        max_quartic(couplings) (optional, Z₂ models): an upper bound on the fourth derivative
            ``|u⁗(t)|`` over ``|t| <= 1`` (see :func:`quartic_bound`).
        taylor_coefficients(couplings, n) (optional, Z₂ models): the exact ``a_1 ... a_n`` of
            ``u(m) - u(0) = Σ a_k m^(2k)`` (see :func:`taylor_coefficients`); without it they
            come from autodiff at ``m = 0``.
    """

    z2_symmetric: bool

    def interaction(self, Mz: Any, couplings: Any) -> Any: ...

    def max_field(self, couplings: Any) -> Any: ...


def _quartic_derivative(J, K, b, Mz, order: int):
    """``d^k/dMz^k`` of ``u = -J Mz² - K Mz⁴ - b Mz`` (scalars; ``order`` a static int)."""
    m2 = Mz * Mz
    if order == 0:
        return -J * m2 - K * m2 * m2 - b * Mz
    if order == 1:
        return -2.0 * J * Mz - 4.0 * K * m2 * Mz - b
    if order == 2:
        return -2.0 * J - 12.0 * K * m2
    if order == 3:
        return -24.0 * K * Mz
    zero = 0.0 * (J + K + b + Mz)
    return -24.0 * K + zero if order == 4 else zero


class LMGCouplings(NamedTuple):
    """Couplings of :class:`LMG4`, eq. (1): ``J`` (2-spin), ``K`` (4-spin); energy units."""

    J: Any
    K: Any


@dataclass(frozen=True)
class LMG4:
    """The LMG ferromagnet with a 4-spin term, eq. (1) of Defenu, Mukamel, Ruffo (2024):

    ``H = -(J/N)(Σσᶻ)² - h Σσˣ - (K/N³)(Σσᶻ)⁴``, mean field ``u(Mz) = -J Mz² - K Mz⁴`` (eq. 13).
    Couplings: :class:`LMGCouplings` ``(J, K)``.  ``J = 0`` is the pure 4-spin model.
    """

    z2_symmetric: bool = True

    def interaction(self, Mz, couplings: LMGCouplings):
        J, K = couplings
        m2 = Mz * Mz
        return -J * m2 - K * m2 * m2

    def interaction_derivative(self, Mz, couplings: LMGCouplings, order: int = 1):
        """``d^k u/dMz^k`` in closed form (``k >= 0``; see :func:`interaction_derivative`)."""
        J, K = couplings
        return _quartic_derivative(J, K, 0.0, Mz, order)

    def max_field(self, couplings: LMGCouplings):
        J, K = couplings
        # |u'(m)| = |2 J m + 4 K m^3| <= 2|J| + 4|K| on |m| <= 1.
        return 2.0 * jnp.abs(J) + 4.0 * jnp.abs(K)

    def max_curvature(self, couplings: LMGCouplings, m=1.0):
        J, K = couplings
        return 2.0 * jnp.abs(J) + 12.0 * jnp.abs(K) * m * m

    def max_quartic(self, couplings: LMGCouplings):
        _, K = couplings
        return 24.0 * jnp.abs(K)

    def taylor_coefficients(self, couplings: LMGCouplings, n: int):
        """Exact ``a_1 = -J``, ``a_2 = -K``, then zeros (see :func:`taylor_coefficients`)."""
        J, K = couplings
        zero = 0.0 * (J + K)
        return tuple((-J + zero, -K + zero) + (zero,) * max(n - 2, 0))[:n]


class PSpinCouplings(NamedTuple):
    """Couplings of :class:`PSpin`: ``J``, the p-spin coupling (energy units)."""

    J: Any


@dataclass(frozen=True)
class PSpin:
    """The p-spin ferromagnet in a transverse field, ``H = -N J (2S^z/N)^p - 2h S^x``:
    ``u(Mz) = -J Mz^p`` (Jörg et al., EPL 89, 40004 (2010); Bapst & Semerjian (2012)).

    Args:
        p: integer ``>= 2``.  Even ``p`` is Z₂-symmetric; odd ``p`` is not (the ordered state
            has ``Mz > 0`` for ``J > 0``).  ``PSpin(2)`` is :class:`LMG4` with ``K = 0``.
    Couplings: :class:`PSpinCouplings` ``(J,)``.  At ``T = 0`` and ``p >= 3`` the transition in
    ``h`` is first order (``h = 3√3/4 J`` for ``p = 3``, ``32/27 J`` for ``p = 4``).
    Raises:
        ValueError: ``p`` is not an integer ``>= 2``.
    """

    p: int = 3

    def __post_init__(self):
        if isinstance(self.p, bool) or not isinstance(self.p, int) or self.p < 2:
            raise ValueError(f"PSpin: p must be an integer >= 2, got {self.p!r}")

    @property
    def z2_symmetric(self) -> bool:  # type: ignore[override]
        return self.p % 2 == 0

    def interaction(self, Mz, couplings: PSpinCouplings):
        (J,) = couplings
        return -J * Mz ** self.p

    def max_field(self, couplings: PSpinCouplings):
        (J,) = couplings
        return self.p * jnp.abs(J)

    def max_curvature(self, couplings: PSpinCouplings, m=1.0):
        (J,) = couplings
        return self.p * (self.p - 1) * jnp.abs(J) * m ** (self.p - 2)

    def max_quartic(self, couplings: PSpinCouplings):
        (J,) = couplings
        p = self.p
        return p * (p - 1) * (p - 2) * (p - 3) * jnp.abs(J)

    def taylor_coefficients(self, couplings: PSpinCouplings, n: int):
        """Exact ``a_{p/2} = -J``, the others 0 (even ``p``; see :func:`taylor_coefficients`)."""
        (J,) = couplings
        if not self.z2_symmetric:
            raise ValueError(f"taylor_coefficients: PSpin({self.p}) is not Z2-symmetric")
        zero = 0.0 * J
        return tuple(-J + zero if 2 * k == self.p else zero for k in range(1, n + 1))


class LongitudinalCouplings(NamedTuple):
    """Couplings of :class:`LongitudinalLMG4`: ``J`` (2-spin), ``K`` (4-spin), ``b``
    (longitudinal field along z); energy units."""

    J: Any
    K: Any
    b: Any


@dataclass(frozen=True)
class LongitudinalLMG4:
    """LMG4 in a longitudinal field: ``H = -(J/N)(Σσᶻ)² - (K/N³)(Σσᶻ)⁴ - b Σσᶻ - h Σσˣ``,
    ``u(Mz) = -J Mz² - K Mz⁴ - b Mz``.  Not Z₂-symmetric (``b = 0`` gives :class:`LMG4`, but the
    engines then search both signs of ``Mz``).  Couplings: :class:`LongitudinalCouplings`.
    """

    z2_symmetric: bool = False

    def interaction(self, Mz, couplings: LongitudinalCouplings):
        J, K, b = couplings
        m2 = Mz * Mz
        return -J * m2 - K * m2 * m2 - b * Mz

    def interaction_derivative(self, Mz, couplings: LongitudinalCouplings, order: int = 1):
        """``d^k u/dMz^k`` in closed form (``k >= 0``; see :func:`interaction_derivative`)."""
        J, K, b = couplings
        return _quartic_derivative(J, K, b, Mz, order)

    def max_field(self, couplings: LongitudinalCouplings):
        J, K, b = couplings
        return 2.0 * jnp.abs(J) + 4.0 * jnp.abs(K) + jnp.abs(b)

    def max_curvature(self, couplings: LongitudinalCouplings, m=1.0):
        J, K, _ = couplings
        return 2.0 * jnp.abs(J) + 12.0 * jnp.abs(K) * m * m

    def max_quartic(self, couplings: LongitudinalCouplings):
        _, K, _ = couplings
        return 24.0 * jnp.abs(K)


def interaction_derivative(model: CollectiveSpinModel, couplings, Mz, order: int = 1):
    """``d^k u / dMz^k`` at ``Mz`` (scalar): ``model.interaction_derivative(Mz, couplings, k)``
    where the model gives it in closed form, else by nested autodiff of ``model.interaction``."""
    if hasattr(model, "interaction_derivative"):
        return model.interaction_derivative(Mz, couplings, order)
    f = lambda m: model.interaction(m, couplings)  # noqa: E731
    for _ in range(order):
        f = jax.grad(f)
    return f(Mz)


def taylor_coefficients(model: CollectiveSpinModel, couplings, n: int):
    """``a_1 ... a_n`` of ``u(m) - u(0) = Σ_k a_k x^k``, ``x = m²``, for a Z₂ model (scalars).

    ``model.taylor_coefficients(couplings, n)`` where the model gives it (exact: :class:`LMG4`
    ``a_1 = -J, a_2 = -K``; :class:`PSpin` of even ``p``: ``a_{p/2} = -J``), else
    ``u^(2k)(0)/(2k)!`` by autodiff of ``model.interaction``: ``a_1`` by nested derivatives
    (exact for a polynomial), the others by Taylor mode (``jax.experimental.jet``; nested forward
    mode for a primitive without a Taylor rule), rounded like any float.
    Compensated evaluations next to critical conditions use them (``a_1 = u''(0)/2`` enters
    exactly).

    Args:
        model: a Z₂-symmetric :class:`CollectiveSpinModel`.
        couplings: its couplings (scalars, energy units).
        n: number of coefficients (static int ``>= 1``).
    Returns:
        tuple of ``n`` scalars (energy units).
    Raises:
        ValueError: the model is not Z₂-symmetric.
    """
    if not model.z2_symmetric:
        raise ValueError(f"taylor_coefficients: the model must be Z2-symmetric, got {model!r}")
    if hasattr(model, "taylor_coefficients"):
        return tuple(model.taylor_coefficients(couplings, n))
    zero = 0.0 * sum(jax.tree_util.tree_leaves(couplings))
    zero = jnp.asarray(zero, jnp.result_type(zero, float))
    f = lambda x: model.interaction(x, couplings)  # noqa: E731
    # a_1 = u''(0)/2 by nested autodiff: exact for a polynomial (it enters compensated sums);
    # the others by Taylor-mode autodiff, all in one pass (nested forward mode for a primitive
    # without a Taylor rule)
    a1 = interaction_derivative(model, couplings, zero, 2) / 2.0
    if n == 1:
        return (a1,)
    try:
        _, ders = jet(f, (zero,), ((zero + 1.0,) + (zero,) * (2 * n - 1),))
    except NotImplementedError:
        ders, d = [], f
        for _ in range(2 * n):
            d = functools.partial(lambda g, x: jax.jvp(g, (x,), (jnp.ones_like(x),))[1], d)
            ders.append(d(zero))
    return (a1,) + tuple(ders[2 * k - 1] / math.factorial(2 * k) for k in range(2, n + 1))


_N_CURV = 257


def _sampled(model, couplings, m, fn):
    t = m * jnp.linspace(-1.0, 1.0, _N_CURV)
    return jnp.max(jnp.abs(jax.vmap(fn)(t)))


def curvature_bound(model: CollectiveSpinModel, couplings, m=1.0):
    """An upper bound on ``|u''(t)|`` over ``|t| <= m`` (scalar couplings, ``0 <= m <= 1``).

    ``model.max_curvature(couplings, m)`` where the model provides it (a proof, used to *certify*
    that no stationary point lies between scan points); otherwise twice the largest ``|u''|`` on
    257 points, plus a margin: a numerical estimate, safe for smooth low-order polynomials but not
    a proof (give your model ``max_curvature`` to make the search certified).
    """
    if hasattr(model, "max_curvature"):
        return model.max_curvature(couplings, m)
    upp = lambda t: interaction_derivative(model, couplings, t, 2)  # noqa: E731
    return 2.0 * _sampled(model, couplings, m, upp) + 1e-12


def quartic_bound(model: CollectiveSpinModel, couplings):
    """An upper bound on ``|u''''(t)|`` over ``|t| <= 1`` (scalar couplings).

    ``model.max_quartic(couplings)`` where provided, else a numerical estimate as in
    :func:`curvature_bound`.  For a Z₂ model ``u'(m)/m`` is a function of ``y = m²`` whose slope
    is at most this bound over 6: the certified search uses it near the paramagnet.
    """
    if hasattr(model, "max_quartic"):
        return model.max_quartic(couplings)
    u4 = lambda t: interaction_derivative(model, couplings, t, 4)  # noqa: E731
    return 2.0 * _sampled(model, couplings, 1.0, u4) + 1e-12


@dataclass(frozen=True)
class Reversed:
    """``model`` with its interaction reversed, ``u -> -u`` (same couplings).

    The top of the spectrum and the states of negative temperature of ``model`` are the ground
    state and the states of temperature ``|T|`` of ``Reversed(model)``, with ``Mx -> -Mx``
    (``φ = π``): ``e - T S = -[(-u) - h(-Mx) - |T| S]`` for ``T < 0``.  The engines use it for
    ``jl.energy_range`` (``eps_max``) and for the microcanonical states of ``T < 0``; its bounds
    are those of ``model`` (a sign changes no bound on a derivative of u).

    Args:
        model: any :class:`CollectiveSpinModel`.
    """

    model: Any

    @property
    def z2_symmetric(self) -> bool:
        return self.model.z2_symmetric

    def interaction(self, Mz, couplings):
        """``-u(Mz)`` of the wrapped model."""
        return -self.model.interaction(Mz, couplings)

    def interaction_derivative(self, Mz, couplings, order: int = 1):
        """``-u^(k)(Mz)`` of the wrapped model (closed form where it has one)."""
        return -interaction_derivative(self.model, couplings, Mz, order)

    def max_field(self, couplings):
        """The wrapped model's bound on ``|u'|``."""
        return self.model.max_field(couplings)

    def max_curvature(self, couplings, m=1.0):
        """The wrapped model's bound on ``|u''|`` over ``|Mz| <= m``."""
        return curvature_bound(self.model, couplings, m)

    def max_quartic(self, couplings):
        """The wrapped model's bound on the fourth derivative of u."""
        return quartic_bound(self.model, couplings)

    def taylor_coefficients(self, couplings, n: int):
        """The wrapped model's Taylor coefficients, negated (Z₂ models)."""
        return tuple(-a for a in taylor_coefficients(self.model, couplings, n))
