"""Microcanonical engine: the entropy σ(ε) of the energy shell, eq. (16), on a broadcast grid.

The kernel for one point is :func:`jaxlmg._shell.shell_point` (a certified global maximum of the
entropy on the shell: see :mod:`jaxlmg._shell`); :func:`jaxlmg._batch.batched` lifts it to
arrays, so a direct call, a call inside ``jit``/``grad`` and a sweep compute the same thing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._canonical import stationary_points
from ._shell import FAST_ROUNDS, MAX_ROUNDS, MicrocanonicalState, shell_point
from ._status import Status
from ._validate import as_precision, check
from .models import LMG4, CollectiveSpinModel, LMGCouplings, Reversed

__all__ = [
    "EnergyRange",
    "MicrocanonicalState",
    "energy_range",
    "energy_range_point",
    "energy_range_state",
    "microcanonical",
    "microcanonical_state",
]

class EnergyRange(NamedTuple):
    """The spectrum ``[eps_min, eps_max]`` per spin: ground-state and top energies (eq. 13)."""

    eps_min: Any
    eps_max: Any
    status: Any


# --------------------------------------------------------------------------- one point


def _state_kernel(couplings, h, eps, *, model, max_rounds):
    pt = shell_point(model, couplings, h, eps, max_rounds=max_rounds)
    return pt.state, pt.unfinished


def _ground_energy(model, couplings, h):
    """The lowest energy of eq. (13) on the Bloch sphere (ONE point): the lowest stationary point
    of the canonical landscape at ``T = 0`` (certified search,
    :func:`jaxlmg._canonical.stationary_points`).  Returns ``(value, converged)``."""
    sp = stationary_points(model, couplings, h, jnp.zeros_like(h))
    F = jnp.where(sp.kind > -2, sp.F, jnp.inf)
    k = jnp.argmin(F)
    return F[k], sp.converged[k] & jnp.isfinite(F[k])


def energy_range_point(model: CollectiveSpinModel, couplings, h) -> EnergyRange:
    """``[min, max]`` of eq. (13) over the Bloch ball at ONE point (scalars).

    Both extremes lie on the sphere ``s = 1`` (``h >= 0``): ``eps_min`` is the ground-state energy
    (the canonical landscape at ``T = 0``) and ``eps_max`` minus that of the reversed model
    (:class:`jaxlmg.models.Reversed`, ``u -> -u``, ``φ = π``).  For LMG4 with ``J, K >= 0``,
    ``eps_max = h``.
    """
    finite = jnp.isfinite(h)
    for x in jax.tree_util.tree_leaves(couplings):
        finite = finite & jnp.isfinite(x)
    hs = jnp.where(finite, jnp.abs(h), 1.0)
    cs = jax.tree_util.tree_map(lambda x: jnp.where(finite, x, 0.0), couplings)
    cs, hs = jax.lax.stop_gradient((cs, hs))
    e_min, ok1 = _ground_energy(model, cs, hs)
    e_max, ok2 = _ground_energy(Reversed(model), cs, hs)
    e_max = -e_max
    status = jnp.where(ok1 & ok2, Status.OK, Status.NOT_CONVERGED)
    status = jnp.where(h >= 0, status, Status.OUT_OF_DOMAIN)
    status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
    good = status == Status.OK
    return EnergyRange(eps_min=jnp.where(good, e_min, jnp.nan),
                       eps_max=jnp.where(good, e_max, jnp.nan), status=status)


def _range_kernel(couplings, h, *, model):
    return energy_range_point(model, couplings, h)


# --------------------------------------------------------------------------- entry points


def microcanonical_state(model: CollectiveSpinModel, couplings, h, eps) -> MicrocanonicalState:
    """Microcanonical equilibrium of any :class:`CollectiveSpinModel` on a broadcast grid.

    The global maximum of the entropy on the shell of energy ``eps`` (eq. 16), certified: every
    stationary point of the spin length on the shell is bracketed by a search that proves, from
    the model's derivative bounds, that no other one lies between its scan points
    (:mod:`jaxlmg._shell`); a metastable state is never returned.

    Args:
        model: the model (static; e.g. ``LMG4()``, ``PSpin(3)``).
        couplings: the model's couplings, a pytree whose leaves broadcast with ``h`` and ``eps``.
        h: transverse field, ``>= 0``, any shape (energy units).
        eps: energy per spin, any shape; outside the spectrum the point gets
            ``Status.ENERGY_OUT_OF_RANGE`` and NaNs.
    Returns:
        :class:`MicrocanonicalState` with the broadcast shape (eqs. 14, 16, 36).  Differentiable
        (``jax.grad``/``jvp``) in ``couplings``, ``h``, ``eps`` by the implicit function theorem.
        Non-finite inputs give ``Status.NONFINITE``, ``h < 0`` ``Status.OUT_OF_DOMAIN``.
    """
    return batched(_state_kernel, (couplings, h, eps),
                   static=(("model", model), ("max_rounds", FAST_ROUNDS)),
                   escalate=(("max_rounds", MAX_ROUNDS),))


def microcanonical(h, K, eps, J=1.0, *, precision: str = "float64") -> MicrocanonicalState:
    """Microcanonical mean-field equilibrium of the extended LMG model (eqs. 1, 13, 14, 16, 36).

    At energy per spin ``eps``, maximizes the entropy ``S(s)`` over the states with
    ``e(s, θ, φ) = eps`` (exactly and certified, see :func:`microcanonical_state`) and returns the
    state, ``β = dσ/dε`` and the specific heat at every point of the broadcast grid of
    ``h, K, eps, J``; ``mz >= 0`` branch.  The whole spectrum ``[eps_min, eps_max]`` is covered
    (``eps_max = h``; energies above 0 have negative temperature).

    Args:
        h: transverse field, energy units, ``h >= 0``; any shape (``h = 0`` is an exact branch).
        K: 4-spin coupling, energy units, ``K >= 0``; any shape.
        eps: energy per spin (energy units), finite; any shape.
        J: 2-spin coupling, ``J > 0``; any shape.
        precision: ``"float64"`` (default) or ``"float32"``.
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
    return microcanonical_state(LMG4(), LMGCouplings(J, K), h, eps)


def energy_range_state(model: CollectiveSpinModel, couplings, h) -> EnergyRange:
    """``[eps_min, eps_max]`` of any :class:`CollectiveSpinModel` (eq. 13 on the Bloch sphere).

    Args:
        model: the model (static).
        couplings: the model's couplings (pytree of arrays broadcasting with ``h``).
        h: transverse field ``>= 0``, any shape (energy units).
    Returns:
        :class:`EnergyRange` of the broadcast shape of ``(couplings..., h)``; certified global
        extremes of eq. (13) on the sphere ``s = 1``.
    """
    return batched(_range_kernel, (couplings, h), static=(("model", model),))


def energy_range(h, K, J=1.0) -> EnergyRange:
    """Spectrum ``[eps_min, eps_max]`` per spin of the extended LMG model (eqs. 13, 17).

    ``eps_min`` is the ground-state energy (``jl.ground_state(h, K, J).energy``), ``eps_max = h``
    (all spins along ``-x``) for ``J, K >= 0``.  Args: ``h >= 0``, ``K >= 0``, ``J > 0``, energy
    units, any broadcastable shapes.  Returns :class:`EnergyRange` of the broadcast shape.
    Raises ``ValueError`` naming a non-finite or out-of-range argument.
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, J = as_precision("float64", h, K, J)
    return energy_range_state(LMG4(), LMGCouplings(J, K), h)
