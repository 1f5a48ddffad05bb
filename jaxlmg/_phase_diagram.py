"""The phase diagram at fixed temperature, as boundaries, for any Z₂ collective-spin model.

At fixed ``T`` every line of the (coupling, ``h``) plane — the coupling one of the model's
couplings, named ``vary`` (LMG4's ``K`` for :func:`phase_diagram`) — is returned as an array of
points with a per-point status, computed from the exact boundary functions (no grid of states,
no sketch):

* the second-order line ``h_c`` (zero of the paramagnetic stiffness; eq. 25 = eqs. 34, 37 for
  LMG4), drawn where the transition is second order in each ensemble, and both tricritical points
  (eqs. 22-29; 34-35);
* the canonical first-order line ``h_1`` (equal free energies, eq. 19) and its two spinodals;
* the two boundaries of the region where the microcanonical temperature *jumps over* ``T``
  (:mod:`jaxlmg._jump_boundaries`);
* the folds: the spinodal points where the number of MCE states of temperature ``T`` changes.

Lines of the coupling grid are computed by the model-generic engines on that grid; the MCE jump
boundaries are roots in the coupling at each field of the ``h`` grid.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._coexistence import coexistence_state
from ._critical import Tricritical, critical_field_state, tricritical_state
from ._inequivalence import ensemble_agreement_state
from ._jump_boundaries import (
    BoundaryCurve,
    microcanonical_jump_boundaries_state,
    vary_mask,
    with_coupling,
)
from ._status import Status
from ._validate import check, is_traced
from .models import LMG4, CollectiveSpinModel, LMGCouplings, interaction_derivative

__all__ = ["PhaseDiagram", "phase_diagram", "phase_diagram_state"]

DEFAULT_POINTS = 48
#: relative offsets in h on each side of a spinodal at which the MCE states are counted (the
#: states next to a fold are not all resolved by the MCE engine within ~1e-4 of it)
FOLD_OFFSETS = (1e-4, 1e-3)
DEFAULT_K_MAX = 1.5  # in units of J (jl.phase_diagram's default K grid)
DEFAULT_SPAN = 4.0  # phase_diagram_state's default grid: [0, 4 x_ref] (x_ref: a tricritical value)


class PhaseDiagram(NamedTuple):
    """Every boundary of the (coupling, ``h``) plane at one temperature (see
    :func:`phase_diagram`, :func:`phase_diagram_state`).  ``K`` below is the varied coupling
    (LMG4's 4-spin coupling for :func:`phase_diagram`).

    Attributes:
        T, J: the temperature and 2-spin coupling (scalars, energy units); ``J`` is NaN for
            couplings without a field ``J`` and where ``J`` is the varied coupling.
        critical_canonical: second-order line ``h = h_c(T)`` where the canonical transition is
            second order (``K <= K_tcp[CE](T)`` for LMG4; no canonical first-order line at that
            coupling), on the ``K`` grid (NaN, ``NO_TRANSITION`` elsewhere).
        critical_microcanonical: the same line where the MCE Landau coefficient is ``>= 0``
            (eq. 35; ``K <= K_tcp[MCE](T)`` for LMG4).
        tricritical_canonical, tricritical_microcanonical: :class:`jaxlmg.Tricritical`
            ``(h, K, status)`` scalars.
        first_order: canonical first-order line ``h_1(K)`` on the ``K`` grid.
        para_spinodal: field below which the paramagnet is unstable (``= h_c(T)``), where
            ``first_order`` exists (``NO_TRANSITION`` where there is no critical field: the
            paramagnet is then locally stable at every ``h``).
        ferro_spinodal: field above which the ordered minimum disappears, where ``first_order``
            exists.
        jump_below: the MCE boundary ``T_below(h, K) = T``, on the ``h`` grid (``K`` is the root).
        jump_above: the MCE boundary ``T_above(h, K) = T``, on the same ``h`` grid.  The MCE
            temperature jumps over ``T`` between ``jump_below.K`` and ``jump_above.K`` at fixed
            ``h`` (LMG4: ``jump_below.K < K < jump_above.K``).
        fold_para, fold_ordered: the outer boundary of the inequivalence region away from the
            jump region: the points of ``para_spinodal`` / ``ferro_spinodal`` where the number of
            MCE states of temperature ``T`` changes (a fold of the caloric curve, local extremum
            of ``T(ε)`` equal to ``T``), ``NO_TRANSITION`` at the spinodal points where it does
            not (there the merging states are not entropy maxima of their shell).
        couplings: the couplings on the ``K`` grid (leaves of shape ``(n,)``; the varied field
            is the grid).
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
    couplings: Any = None


def _folds(model, grid, curve: BoundaryCurve, T) -> BoundaryCurve:
    """The points of a canonical spinodal where the number of MCE states of temperature ``T``
    differs between ``h (1 - d)`` and ``h (1 + d)`` for some ``d`` in :data:`FOLD_OFFSETS`
    (:func:`jaxlmg.ensemble_agreement_state`)."""
    ok = curve.status == Status.OK
    h = jnp.where(ok, curve.h, 1.0)
    fold = jnp.zeros(h.shape, bool)
    good = ok
    for d in FOLD_OFFSETS:
        lo, hi = (ensemble_agreement_state(model, grid, h * (1.0 + s * d), T) for s in (-1.0, 1.0))
        good = good & (lo.status == Status.OK) & (hi.status == Status.OK)
        fold = fold | (lo.n_mce_states != hi.n_mce_states)
    fold = fold & good
    status = jnp.where(fold, Status.OK, jnp.where(good | ~ok, Status.NO_TRANSITION,
                                                  Status.NOT_CONVERGED))
    status = jnp.where(ok, status, curve.status).astype(jnp.int32)
    return BoundaryCurve(K=curve.K, h=jnp.where(fold, curve.h, jnp.nan), status=status)


def _default_fields(model, grid, hc, n):
    """``n`` fields on ``(min h_c, max h_1(T = 0)]`` over the coupling grid: where a jump
    boundary can pass (the jump temperatures fall to 0 at the ground-state first-order field);
    quadratically denser next to ``h_c``, where the region starts at the MCE tricritical point."""
    hc = np.asarray(hc)
    lo = float(np.nanmin(hc)) if np.isfinite(hc).any() else 0.0
    h1 = np.asarray(coexistence_state(model, grid, 0.0).h)
    top = float(np.nanmax(h1)) if np.isfinite(h1).any() else np.nan
    if not np.isfinite(top) or top <= lo:
        top = lo + 1.0
    return lo + (top - lo) * np.linspace(0.0, 1.0, n + 1)[1:] ** 2


def _concrete_scalar(name, x):
    if is_traced(x):
        raise ValueError(f"{name} must be concrete: the phase diagram picks its grids from it; "
                         "under jit use microcanonical_jump_boundaries_state, coexistence_state, "
                         "critical_field_state")
    if np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")


def _grid_1d(name, x):
    check(name, x)
    x = jnp.asarray(x, jnp.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {x.shape}")
    return x


def phase_diagram_state(model: CollectiveSpinModel, couplings, T, *, vary: str = "K",
                        values=None, h=None, n: int = DEFAULT_POINTS) -> PhaseDiagram:
    """Every phase boundary of the (``couplings.<vary>``, ``h``) plane at temperature ``T``, any
    Z₂ model, in both ensembles.

    Lines on the grid ``values`` of the varied coupling (the other couplings fixed):
    the critical line (:func:`jaxlmg.critical_field_state`, the zero of the paramagnetic
    stiffness ``u''(0) + h coth(h/T)``, eq. 25 for LMG4), kept where the transition is second
    order — canonical: where there is no canonical first-order line at that coupling;
    microcanonical: where the MCE quartic coefficient ``u''''(0)/24 + h/(8 s³)``, ``s = -h/u''(0)``
    (eqs. 34-35), is ``>= 0`` — the canonical first-order line and its spinodals
    (:func:`jaxlmg.coexistence_state`, eq. 19) and the folds (the spinodal points where
    :func:`jaxlmg.ensemble_agreement_state` counts a different number of MCE states of
    temperature ``T`` at ``h (1 - d)`` and ``h (1 + d)``, ``d = 1e-4`` or ``1e-3``).  Both
    tricritical points (:func:`jaxlmg.tricritical_state`, eqs. 22-29, 34-35).  Lines on the grid
    ``h``: the two boundaries of the region where the MCE temperature jumps over ``T``
    (:func:`jaxlmg.microcanonical_jump_boundaries_state`, roots in the varied coupling).

    Every point is an exact root with a status; the MCE boundaries, ``h_c`` and ``h_1`` are
    differentiable (implicit function theorem).  A curve that does not exist for the model or at
    a point comes back NaN with status ``NO_TRANSITION`` (e.g. no critical line where
    ``u''(0) >= 0``), not as an error; the jump boundaries are followed from the MCE tricritical
    point of each field, so where a field has none they are NaN with ``OUT_OF_DOMAIN``.  Not
    usable under ``jit`` (the default grids depend on ``T``); call the functions above directly
    for that.

    Args:
        model: a Z₂-symmetric :class:`~jaxlmg.models.CollectiveSpinModel` (static).
        couplings: its couplings, a NamedTuple of scalars (energy units).  The field ``vary``
            is the starting value of the tricritical and MCE-onset Newton solves (LMG4 in ``K``:
            any value; otherwise a value near the tricritical point) and is otherwise replaced
            by the grid.
        T: temperature ``>= 0`` (scalar, energy units).  ``T = 0``: no MCE jump boundaries.
        vary: the name of the coupling on the horizontal axis (a field of ``couplings``).
        values: 1-D array of the varied coupling; default ``n`` points on ``[0, 4 x_ref]``,
            ``x_ref`` the MCE tricritical value (else the canonical one, else
            ``couplings.<vary>``).
        h: 1-D array of fields ``> 0`` for the MCE boundaries; default ``n`` points on
            ``(min h_c, max h_1(T = 0)]`` over the grid, denser near ``h_c``.
        n: number of default grid points (``>= 2``).
    Returns:
        :class:`PhaseDiagram` (``K`` of each curve: the varied coupling).
    Raises:
        ValueError: a non-Z₂ model, ``vary`` not a field of ``couplings``, a non-finite or
            out-of-range argument (named in the message), a non-scalar ``T`` or coupling, a
            ``values``/``h`` that is not 1-D, or no default grid (no tricritical point and
            ``couplings.<vary> <= 0``: pass ``values``).
    """
    if not getattr(model, "z2_symmetric", False):
        raise ValueError("model must be Z2-symmetric (z2_symmetric = True): the phase diagram "
                         "is drawn around the paramagnet Mz = 0")
    mask = vary_mask(couplings, vary)
    _concrete_scalar("T", T)
    check("T", T, lower=0.0)
    for name, c in zip(couplings._fields, couplings, strict=True):
        _concrete_scalar(f"couplings.{name}", c)
        check(f"couplings.{name}", c)
    _check_n(n)
    T = float(T)
    couplings = type(couplings)(*(jnp.asarray(c, jnp.float64) for c in couplings))
    tc_ce = tricritical_state(model, couplings, T, vary, ensemble="canonical")
    tc_mce = tricritical_state(model, couplings, T, vary, ensemble="microcanonical")
    if values is None:
        refs = [float(tc_mce.K), float(tc_ce.K), float(getattr(couplings, vary))]
        ref = next((abs(r) for r in refs if np.isfinite(r) and r != 0), 0.0)
        if ref <= 0:
            raise ValueError("values must be given: there is no tricritical point at this T and "
                             f"couplings.{vary} = 0 sets no scale for a default grid")
        values = np.linspace(0.0, DEFAULT_SPAN * ref, n)
    values = _grid_1d("values", values)
    grid = with_coupling(couplings, mask, values)

    hc = critical_field_state(model, grid, T).h
    co = coexistence_state(model, grid, T)
    ok = co.status == Status.OK
    if h is None:
        h = _default_fields(model, grid, hc, n)
    check("h", h, lower=0.0, strict=True)
    h = _grid_1d("h", h)

    def line(on, x):
        status = jnp.where(on, Status.OK, Status.NO_TRANSITION).astype(jnp.int32)
        return BoundaryCurve(K=values, h=jnp.where(on, x, jnp.nan), status=status)

    # MCE quartic coefficient on the critical line, times 24 h²: u''''(0) h² - 3 u''(0)³
    z = jnp.zeros_like(values)
    u2 = jax.vmap(lambda c, zz: interaction_derivative(model, c, zz, 2))(grid, z)
    u4 = jax.vmap(lambda c, zz: interaction_derivative(model, c, zz, 4))(grid, z)
    hc0 = jnp.where(jnp.isfinite(hc), hc, 0.0)
    c4_mce = u4 * hc0 * hc0 - 3.0 * u2 ** 3
    critical_ce = line(jnp.isfinite(hc) & (co.status == Status.NO_TRANSITION), hc)
    critical_mce = line(jnp.isfinite(hc) & (c4_mce >= 0), hc)

    def canonical(x, absent=False):  # absent: the curve does not exist at that coupling
        fine = ok & jnp.isfinite(x)
        status = jnp.where(fine, Status.OK, jnp.where(ok, Status.NOT_CONVERGED, co.status))
        status = jnp.where(ok & absent, Status.NO_TRANSITION, status)
        return BoundaryCurve(K=values, h=jnp.where(fine, x, jnp.nan),
                             status=status.astype(jnp.int32))

    if T > 0:
        below, above = microcanonical_jump_boundaries_state(model, couplings, h, T, vary=vary)
    else:
        none = BoundaryCurve(K=jnp.full_like(h, jnp.nan), h=jnp.full_like(h, jnp.nan),
                             status=jnp.full(h.shape, Status.NO_TRANSITION, jnp.int32))
        below = above = none
    # no critical field (e.g. T > -u''(0)): the paramagnet is locally stable at every h
    para = canonical(co.para_spinodal, absent=~jnp.isfinite(hc))
    ferro = canonical(co.ferro_spinodal)
    J = getattr(couplings, "J", jnp.nan) if vary != "J" else jnp.nan
    return PhaseDiagram(
        T=jnp.asarray(T), J=jnp.asarray(J, jnp.float64),
        critical_canonical=critical_ce, critical_microcanonical=critical_mce,
        tricritical_canonical=tc_ce, tricritical_microcanonical=tc_mce,
        first_order=canonical(co.h), para_spinodal=para, ferro_spinodal=ferro,
        jump_below=below, jump_above=above,
        fold_para=_folds(model, grid, para, T), fold_ordered=_folds(model, grid, ferro, T),
        couplings=grid)


def phase_diagram(T, J=1.0, *, K=None, h=None, n: int = DEFAULT_POINTS) -> PhaseDiagram:
    """Every phase boundary of the ``(K, h)`` plane at temperature ``T``, in both ensembles (LMG4).

    :func:`phase_diagram_state` with ``LMG4()``, ``vary = "K"``.  Lines parametrized by ``K`` (on
    the grid ``K``): the critical line ``h_c(T)`` (eq. 25, the same in both ensembles, eqs.
    34/37) up to the canonical and up to the microcanonical tricritical ``K``
    (:func:`jaxlmg.tricritical`, eqs. 22-29 and 34-35), the canonical first-order line
    ``h_1(K)`` and its spinodals (:func:`jaxlmg.coexistence`, eq. 19).  Lines parametrized by
    ``h`` (on the grid ``h``): the two boundaries of the region where the MCE temperature jumps
    over ``T`` (:func:`jaxlmg.microcanonical_jump_boundaries`; at fixed ``K`` they are not single
    valued in ``h``).  Both tricritical points are returned as points.

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
            ``(h_c(T), h_1(max K, T = 0)]``, denser near ``h_c`` (``h_c + 1`` at the top where
            no ``K`` of the grid is first order at ``T = 0``).
        n: number of default grid points (``>= 2``).
    Returns:
        :class:`PhaseDiagram`.
    Raises:
        ValueError: a non-finite or out-of-range argument (named in the message), a non-scalar
            ``T``/``J``, or a ``K``/``h`` that is not 1-D.
    """
    _concrete_scalar("T", T)
    _concrete_scalar("J", J)
    check("T", T, lower=0.0)
    check("J", J, lower=0.0, strict=True)
    _check_n(n)
    T, J = float(T), float(J)
    K = np.linspace(0.0, DEFAULT_K_MAX * J, n) if K is None else K
    check("K", K, lower=0.0)
    K = _grid_1d("K", K)
    if h is not None:
        check("h", h, lower=0.0, strict=True)
        h = _grid_1d("h", h)
    pd = phase_diagram_state(LMG4(), LMGCouplings(J, 0.25 * J), T, vary="K", values=K, h=h, n=n)
    return pd._replace(J=jnp.asarray(J))
