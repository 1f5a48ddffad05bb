"""The phase diagram of the extended LMG model (LMG4) at fixed temperature, as boundaries.

At fixed ``T`` every line of the ``(K, h)`` plane is returned as an array of points with a
per-point status, computed from the exact boundary functions (no grid of states, no sketch):

* the second-order line ``h_c(T)`` (eq. 25 = eqs. 34, 37), drawn up to the canonical and up to the
  microcanonical tricritical ``K`` (eqs. 22-29; 34-35);
* the canonical first-order line ``h_1(K)`` (equal free energies, eq. 19) and its two spinodals;
* the two boundaries of the region where the microcanonical temperature *jumps over* ``T``: at an
  MCE first-order transition of ``(h, K)`` (eq. 16; :func:`jaxlmg.microcanonical_first_order`) the
  temperature drops from ``T_below`` to ``T_above`` as the energy crosses ``ε_t``, and ``T`` lies
  inside that jump where ``T_above(h, K) < T < T_below(h, K)``.

The two MCE boundaries are the curves ``T_below(h, K) = T`` and ``T_above(h, K) = T``.  At fixed
``h`` both temperatures increase monotonically with ``K`` (from the MCE tricritical value
``K = J³/h²``, where the jump vanishes at ``T_c(h)``, to infinity), while at fixed ``K`` they are
not monotone in ``h`` (they rise, then fall to 0 at the ground-state first-order field).  So each
boundary is solved as ONE root in ``K`` at each field ``h`` (bracketed by doubling from
``J³/h²``, then bisected) and differentiated by the implicit function theorem
(:func:`jaxlmg._implicit.implicit_solution`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._batch import batched
from ._implicit import implicit_solution
from ._inequivalence import ensemble_agreement
from ._microcanonical_transitions import microcanonical_first_order_state
from ._status import Status
from ._transitions import Tricritical, coexistence, critical_field, tricritical
from ._validate import check, is_traced
from .models import LMG4, LMGCouplings

__all__ = ["BoundaryCurve", "PhaseDiagram", "microcanonical_jump_boundaries", "phase_diagram"]

_MODEL = LMG4()
_STEPS = 160  # evaluations per boundary at most: <= ~60 doublings of K, then ~50 bisections
_XTOL = 4e-16  # relative width of the final bracket in K
DEFAULT_POINTS = 48
#: relative offsets in h on each side of a spinodal at which the MCE states are counted (the
#: states next to a fold are not all resolved by the MCE engine within ~1e-4 of it)
FOLD_OFFSETS = (1e-4, 1e-3)
DEFAULT_K_MAX = 1.5  # in units of J


class BoundaryCurve(NamedTuple):
    """A phase boundary at fixed ``T``: points ``(K[i], h[i])`` of the ``(K, h)`` plane.

    Attributes:
        K: 4-spin couplings (energy units), shape ``(n,)``.
        h: transverse fields (energy units), shape ``(n,)``; NaN where ``status != OK``.
        status: :class:`jaxlmg.Status` per point, shape ``(n,)``: ``NO_TRANSITION`` where the
            boundary does not pass at this parameter, ``NOT_CONVERGED`` where its root could not
            be bracketed or polished.
    """

    K: Any
    h: Any
    status: Any


class PhaseDiagram(NamedTuple):
    """Every boundary of the ``(K, h)`` plane at one temperature (see :func:`phase_diagram`).

    Attributes:
        T, J: the temperature and 2-spin coupling (scalars, energy units).
        critical_canonical: second-order line ``h = h_c(T)`` for ``K <= K_tcp[CE](T)``, on the
            ``K`` grid (NaN, ``NO_TRANSITION`` beyond).
        critical_microcanonical: the same line for ``K <= K_tcp[MCE](T)``.
        tricritical_canonical, tricritical_microcanonical: :class:`jaxlmg.Tricritical`
            ``(h, K, status)`` scalars.
        first_order: canonical first-order line ``h_1(K)`` on the ``K`` grid.
        para_spinodal: field below which the paramagnet is unstable (``= h_c(T)``), where
            ``first_order`` exists.
        ferro_spinodal: field above which the ordered minimum disappears, where ``first_order``
            exists.
        jump_below: the MCE boundary ``T_below(h, K) = T``, on the ``h`` grid (``K`` is the root).
        jump_above: the MCE boundary ``T_above(h, K) = T``, on the same ``h`` grid.  The MCE
            temperature jumps over ``T`` for ``jump_below.K < K < jump_above.K`` at fixed ``h``.
        fold_para, fold_ordered: the outer boundary of the inequivalence region away from the
            jump region: the points of ``para_spinodal`` / ``ferro_spinodal`` where the number of
            MCE states of temperature ``T`` changes (a fold of the caloric curve, local extremum
            of ``T(ε)`` equal to ``T``), ``NO_TRANSITION`` at the spinodal points where it does
            not (there the merging states are not entropy maxima of their shell).
    """

    T: Any
    J: Any
    critical_canonical: BoundaryCurve
    critical_microcanonical: BoundaryCurve
    tricritical_canonical: Tricritical
    tricritical_microcanonical: Tricritical
    first_order: BoundaryCurve
    para_spinodal: BoundaryCurve
    ferro_spinodal: BoundaryCurve
    jump_below: BoundaryCurve
    jump_above: BoundaryCurve
    fold_para: BoundaryCurve
    fold_ordered: BoundaryCurve


# --------------------------------------------------------------------------- MCE jump boundaries


def _jump_temperature(h, K, J, side):
    """``(T_side(h, K), ok)`` of the MCE first-order transition; ``side`` 0: below, 1: above."""
    tr = microcanonical_first_order_state(_MODEL, LMGCouplings(J, K), h)
    return jnp.where(side == 0, tr.temperature_below, tr.temperature_above), tr.status == Status.OK


def _jump_residual(K, p, side):
    """``T_side(h, K) - T``: the defining condition of a jump boundary (``p = (h, T, J)``)."""
    h, T, J = p
    return _jump_temperature(h, K, J, side)[0] - T


def _critical_temperature(h, J):
    """``T_c(h)``: the inverse of ``h/(2J) = tanh(h/T)`` (eq. 25) for ``0 < h < 2J``, else 0."""
    x = jnp.clip(h / (2.0 * J), 1e-300, 1.0 - 1e-16)
    return jnp.where(h < 2.0 * J, h / jnp.arctanh(x), 0.0)


def _jump_kernel(h, T, J):
    """One field ``h``: the couplings ``K`` where ``T_below`` and ``T_above`` equal ``T``."""
    sg = jax.lax.stop_gradient
    h0, T0, J0 = sg(h), sg(T), sg(J)
    finite = jnp.isfinite(h0) & jnp.isfinite(T0) & jnp.isfinite(J0)
    # The jump region at this h starts at K = J³/h² (MCE tricritical condition), where the jump
    # vanishes at T_c(h) (h < 2J) or does not exist (h >= 2J): both boundaries exist iff T > T_c.
    exists = finite & (h0 > 0) & (J0 > 0) & (T0 > 0) & (T0 > _critical_temperature(h0, J0))
    hs = jnp.where(exists, h0, 1.0)
    Ts = jnp.where(exists, T0, 0.5)
    Js = jnp.where(exists, J0, 1.0)
    k_on = Js ** 3 / hs ** 2

    def g(K, side):  # monotone increasing in K; no transition (below the region) counts as < 0
        t, ok = _jump_temperature(hs, K, Js, side)
        return jnp.where(ok, t - Ts, -1.0 - Ts)

    def g2(K):
        return jnp.stack([g(K[0], 0), g(K[1], 1)])

    def running(state):
        k, lo, hi, br = state
        wide = ~br | (hi - lo > _XTOL * hi)
        return (k < _STEPS) & jnp.any(exists & wide)

    def step(state):  # one evaluation per side: double K until bracketed, then bisect
        k, lo, hi, br = state
        x = jnp.where(br, 0.5 * (lo + hi), hi)
        up = g2(x) > 0
        lo_n = jnp.where(up, lo, x)
        hi_n = jnp.where(br, jnp.where(up, x, hi), jnp.where(up, x, 2.0 * x))
        return k + 1, lo_n, hi_n, br | up

    lo0 = jnp.full((2,), k_on)
    _, lo, hi, br = jax.lax.while_loop(running, step, (0, lo0, 2.0 * lo0, jnp.zeros(2, bool)))
    conv = br & (hi - lo <= _XTOL * hi)
    K = 0.5 * (lo + hi)
    out = []
    for side in (0, 1):
        k = implicit_solution(functools.partial(_jump_residual, side=side), K[side], (h, T, J))
        status = jnp.where(conv[side], Status.OK, Status.NOT_CONVERGED)
        status = jnp.where(exists, status, Status.NO_TRANSITION)
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        out += [jnp.where(status == Status.OK, k, jnp.nan), status]
    return tuple(out)


def microcanonical_jump_boundaries(h, T, J=1.0) -> tuple[BoundaryCurve, BoundaryCurve]:
    """The boundaries of the region where the microcanonical temperature jumps over ``T``.

    At fixed ``(h, K)`` the MCE first-order transition (eq. 16; see
    :func:`jaxlmg.microcanonical_first_order`) drops the temperature from ``T_below`` to
    ``T_above``.  For each field ``h`` this returns the couplings ``K_below(h)`` with
    ``T_below(h, K_below) = T`` and ``K_above(h)`` with ``T_above(h, K_above) = T``; the MCE
    temperature jumps over ``T`` for ``K_below < K < K_above`` (``ensemble_agreement`` code
    ``MCE_TEMPERATURE_JUMP``).  Both temperatures increase with ``K`` at fixed ``h`` (observed on
    grids of ``h`` in ``[0.3, 3] J`` and ``K`` up to ``50 J``; the tests check the root condition
    at every returned point), so each is one root, bracketed by doubling ``K`` from the MCE
    tricritical value ``J³/h²`` (a root not bracketed after ~60 doublings: ``NOT_CONVERGED``) and
    bisected to a relative width ``4e-16`` (no derivative inside the loop: compiling the
    transition's derivative inside a solver loop doubles the compile time).  Both curves
    start at the MCE tricritical point ``(J³/h_c², h_c(T))`` and exist for every ``h`` with
    ``T_c(h) < T`` (``h > h_c(T)``; every ``h > 0`` for ``T >= 2J``).

    Differentiable in ``h``, ``T`` and ``J`` with ``jax.grad``/``jax.jvp`` (implicit function
    theorem on ``T_side(h, K) - T = 0``) and usable under ``jit``/``vmap``.  The first call
    compiles for ~20-40 s (the certified MCE transition inside a root solve).

    Args:
        h: transverse fields ``> 0`` (energy units), any shape.
        T: temperature ``> 0`` (energy units), broadcasting with ``h``.
        J: 2-spin coupling ``> 0``, broadcasting.
    Returns:
        ``(below, above)``: two :class:`BoundaryCurve` of the broadcast shape (``h`` as given,
        ``K`` the root; NaN with status ``NO_TRANSITION`` where ``h <= h_c(T)``).
    Raises:
        ValueError: a concrete argument is non-finite or out of range (named in the message).
    """
    check("h", h, lower=0.0, strict=True)
    check("T", T, lower=0.0, strict=True)
    check("J", J, lower=0.0, strict=True)
    h, T, J = (jnp.asarray(x, jnp.float64) for x in (h, T, J))
    kb, sb, ka, sa = batched(_jump_kernel, (h, T, J))
    hb = jnp.broadcast_to(h, kb.shape)
    return (BoundaryCurve(K=kb, h=jnp.where(sb == Status.OK, hb, jnp.nan), status=sb),
            BoundaryCurve(K=ka, h=jnp.where(sa == Status.OK, hb, jnp.nan), status=sa))


# --------------------------------------------------------------------------- the whole diagram


def _folds(curve: BoundaryCurve, T, J) -> BoundaryCurve:
    """The points of a canonical spinodal where the number of MCE states of temperature ``T``
    differs between ``h (1 - d)`` and ``h (1 + d)`` for some ``d`` in :data:`FOLD_OFFSETS`
    (:func:`jaxlmg.ensemble_agreement`)."""
    ok = curve.status == Status.OK
    h = jnp.where(ok, curve.h, 1.0)
    K = jnp.where(ok, curve.K, 0.0)
    fold = jnp.zeros(h.shape, bool)
    good = ok
    for d in FOLD_OFFSETS:
        lo, hi = (ensemble_agreement(h * (1.0 + s * d), K, T, J) for s in (-1.0, 1.0))
        good = good & (lo.status == Status.OK) & (hi.status == Status.OK)
        fold = fold | (lo.n_mce_states != hi.n_mce_states)
    fold = fold & good
    status = jnp.where(fold, Status.OK, jnp.where(good | ~ok, Status.NO_TRANSITION,
                                                  Status.NOT_CONVERGED))
    status = jnp.where(ok, status, curve.status).astype(jnp.int32)
    return BoundaryCurve(K=curve.K, h=jnp.where(fold, curve.h, jnp.nan), status=status)


def _default_fields(T, J, K_max, n):
    """``n`` fields on ``(h_c(T), h_1(K_max, T = 0)]``: where a jump boundary can pass at
    ``K <= K_max`` (the jump temperatures fall to 0 at the ground-state first-order field);
    quadratically denser next to ``h_c``, where the region starts at the MCE tricritical point."""
    hc = float(critical_field(T, J)) if T <= 2.0 * J else 0.0
    top = float(coexistence(max(K_max, 0.3 * J), 0.0, J).h)
    if not np.isfinite(top) or top <= hc:
        top = hc + 1.0 * J
    return hc + (top - hc) * np.linspace(0.0, 1.0, n + 1)[1:] ** 2


def phase_diagram(T, J=1.0, *, K=None, h=None, n: int = DEFAULT_POINTS) -> PhaseDiagram:
    """Every phase boundary of the ``(K, h)`` plane at temperature ``T``, in both ensembles.

    Lines parametrized by ``K`` (on the grid ``K``): the critical line ``h_c(T)`` (eq. 25, the
    same in both ensembles, eqs. 34/37) up to the canonical and up to the microcanonical
    tricritical ``K`` (:func:`jaxlmg.tricritical`, eqs. 22-29 and 34-35), the canonical
    first-order line ``h_1(K)`` and its spinodals (:func:`jaxlmg.coexistence`, eq. 19).  Lines
    parametrized by ``h`` (on the grid ``h``): the two boundaries of the region where the MCE
    temperature jumps over ``T`` (:func:`microcanonical_jump_boundaries`; at fixed ``K`` they are
    not single valued in ``h``).  Both tricritical points are returned as points.

    Every point is an exact root (no expansion, no grid of states) with a status; the MCE
    boundaries and ``h_1`` are differentiable (implicit function theorem).  The rest of the outer
    boundary of the inequivalence region, where the number of MCE states of temperature ``T``
    changes at a fold of the caloric curve, lies on the canonical spinodals (folds of ``T(ε)`` are
    where two stationary points of the canonical landscape at ``T`` merge): ``fold_para`` and
    ``fold_ordered`` keep the spinodal points where the count of MCE states
    (:func:`jaxlmg.ensemble_agreement`) differs between ``h (1 - d)`` and ``h (1 + d)``, for
    ``d = 1e-4`` or ``1e-3`` (closer, the MCE engine does not resolve all the states next to a
    fold; so a fold within ~1e-3 of another boundary can be misjudged).  Not usable under
    ``jit`` (the default grids depend on ``T``); call the functions above directly for that.

    Args:
        T: temperature ``>= 0`` (scalar, energy units).  ``T = 0``: ground state (no MCE jump
            boundaries: NaN).  For ``T >= 2J`` there is no critical line at ``h > 0``.
        J: 2-spin coupling ``> 0`` (scalar).
        K: 1-D array of couplings ``>= 0``; default ``n`` points on ``[0, 1.5 J]``.
        h: 1-D array of fields ``> 0`` for the MCE boundaries; default ``n`` points on
            ``(h_c(T), h_1(max K, T = 0)]``, denser near ``h_c``.
        n: number of default grid points (``>= 2``).
    Returns:
        :class:`PhaseDiagram`.
    Raises:
        ValueError: a non-finite or out-of-range argument (named in the message), a non-scalar
            ``T``/``J``, or a ``K``/``h`` that is not 1-D.
    """
    for name, x in (("T", T), ("J", J)):
        if is_traced(x):
            raise ValueError(f"{name} must be concrete: phase_diagram picks its grids from it; "
                             "under jit use microcanonical_jump_boundaries, coexistence, "
                             "critical_field")
        if np.ndim(x) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")
    check("T", T, lower=0.0)
    check("J", J, lower=0.0, strict=True)
    if not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    T, J = float(T), float(J)
    K = np.linspace(0.0, DEFAULT_K_MAX * J, n) if K is None else K
    check("K", K, lower=0.0)
    K = jnp.asarray(K, jnp.float64)
    if K.ndim != 1:
        raise ValueError(f"K must be a 1-D array, got shape {K.shape}")
    if h is None:
        h = _default_fields(T, J, float(jnp.max(K)), n)
    check("h", h, lower=0.0, strict=True)
    h = jnp.asarray(h, jnp.float64)
    if h.ndim != 1:
        raise ValueError(f"h must be a 1-D array, got shape {h.shape}")

    hc = critical_field(T, J)
    tc_ce, tc_mce = tricritical(T, "canonical", J), tricritical(T, "microcanonical", J)

    def critical(k_tcp):
        on = jnp.isfinite(hc) & (K <= k_tcp)
        status = jnp.where(on, Status.OK, Status.NO_TRANSITION).astype(jnp.int32)
        return BoundaryCurve(K=K, h=jnp.where(on, hc, jnp.nan), status=status)

    # K_tcp[MCE] diverges as T -> 2J: the whole grid is on the line there (NaN means no bound)
    k_mce = jnp.where(jnp.isfinite(tc_mce.K) | ~jnp.isfinite(hc), tc_mce.K, jnp.inf)
    co = coexistence(K, T, J)
    ok = co.status == Status.OK

    def canonical(x):
        fine = ok & jnp.isfinite(x)
        status = jnp.where(fine, Status.OK, jnp.where(ok, Status.NOT_CONVERGED, co.status))
        return BoundaryCurve(K=K, h=jnp.where(fine, x, jnp.nan), status=status.astype(jnp.int32))

    if T > 0:
        below, above = microcanonical_jump_boundaries(h, T, J)
    else:
        none = BoundaryCurve(K=jnp.full_like(h, jnp.nan), h=jnp.full_like(h, jnp.nan),
                             status=jnp.full(h.shape, Status.NO_TRANSITION, jnp.int32))
        below = above = none
    para, ferro = canonical(co.para_spinodal), canonical(co.ferro_spinodal)
    return PhaseDiagram(
        T=jnp.asarray(T), J=jnp.asarray(J),
        critical_canonical=critical(tc_ce.K), critical_microcanonical=critical(k_mce),
        tricritical_canonical=tc_ce, tricritical_microcanonical=tc_mce,
        first_order=canonical(co.h), para_spinodal=para, ferro_spinodal=ferro,
        jump_below=below, jump_above=above,
        fold_para=_folds(para, T, J), fold_ordered=_folds(ferro, T, J))
