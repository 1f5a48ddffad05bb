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
from ._search import (
    RISING,
    UNRESOLVED,
    certified_brackets,
    monotone_lipschitz_excludes,
    newton_root,
)
from ._shell import (
    FAST_ROUNDS,
    MAX_ROUNDS,
    MicrocanonicalState,
    derivative_bound,
    second_order_excludes,
    shell_point,
)
from ._status import Status
from ._validate import as_precision, check
from .models import LMG4, CollectiveSpinModel, LMGCouplings, curvature_bound

__all__ = [
    "EnergyRange",
    "MicrocanonicalState",
    "energy_range",
    "energy_range_point",
    "energy_range_state",
    "microcanonical",
    "microcanonical_state",
]

N_RANGE_NODES = 33


class EnergyRange(NamedTuple):
    """The spectrum ``[eps_min, eps_max]`` per spin: ground-state and top energies (eq. 13)."""

    eps_min: Any
    eps_max: Any
    status: Any


# --------------------------------------------------------------------------- one point


def _state_kernel(couplings, h, eps, *, model, max_rounds):
    pt = shell_point(model, couplings, h, eps, max_rounds=max_rounds)
    return pt.state, pt.unfinished


def _sphere_minimum(model, couplings, h, sign):
    """``min over the sphere s = 1`` of ``sign·u(m) - h sqrt(1 - m²)`` (certified; ONE point).

    ``sign = +1`` is the ground state (``φ = 0``), ``sign = -1`` gives minus the top of the
    spectrum (``φ = π``).  Stationarity in ``x = m²`` (Z₂) is ``g = sign·w + h/sqrt(1 - x)``
    (``w = u'/m``): an increasing part plus a part Lipschitz with constant ``D₄/6``; in ``m``
    (other models) ``sign·u' + h m/sqrt(1 - m²)``, Lipschitz constant the local curvature bound.
    Returns ``(value, converged)``.
    """
    dtype = jnp.result_type(h, float)
    u_fn = lambda x: sign * model.interaction(x, couplings)  # noqa: E731
    t = jnp.linspace(0.0, 1.0, N_RANGE_NODES, dtype=dtype)
    zero = jnp.zeros((), dtype)
    if model.z2_symmetric:
        upp0 = jax.grad(jax.grad(u_fn))(zero)
        D4 = derivative_bound(model, couplings, 4)

        def to_m(x):
            return jnp.sqrt(jnp.clip(x, 0.0, 1.0))

        def gfun(x):
            m = to_m(x)
            up = jax.grad(u_fn)(m)
            w = jnp.where(m > 0, up / jnp.where(m > 0, m, 1.0), upp0)
            return w + h / jnp.sqrt(jnp.maximum(1.0 - x, 0.0)), (w,)

        nodes = t * t
        D6 = derivative_bound(model, couplings, 6)
        first = monotone_lipschitz_excludes(
            lambda n: h / jnp.sqrt(jnp.maximum(1.0 - n.x, 0.0)), lambda n: n.aux[0],
            lambda n: n.x, lambda a, c: D4 / 6.0)

        def curvature(a, c):  # |w''| <= D6/60; (1 - x)^(-1/2)'' = (3/4)(1 - x)^(-5/2)
            return D6 / 60.0 + 0.75 * h * jnp.maximum(1.0 - c.x, 0.0) ** -2.5
        ends = jnp.asarray([0.0, 1.0], dtype)
    else:
        C = curvature_bound(model, couplings, 1.0)

        def to_m(x):
            return x

        def gfun(m):
            up = jax.grad(u_fn)(m)
            return up + h * m / jnp.sqrt(jnp.maximum(1.0 - m * m, 0.0)), (up,)

        nodes = jnp.concatenate([-t[:0:-1], t])
        D3 = derivative_bound(model, couplings, 3)
        first = monotone_lipschitz_excludes(
            lambda n: h * n.x / jnp.sqrt(jnp.maximum(1.0 - n.x * n.x, 0.0)), lambda n: n.aux[0],
            lambda n: n.x, lambda a, c: C)

        def curvature(a, c):  # (m (1 - m²)^(-1/2))'' = 3 m (1 - m²)^(-5/2)
            mm = jnp.maximum(jnp.abs(a.x), jnp.abs(c.x))
            return D3 + 3.0 * h * mm * jnp.maximum(1.0 - mm * mm, 0.0) ** -2.5
        ends = jnp.asarray([-1.0, 1.0], dtype)

    second = second_order_excludes(curvature)
    excludes = lambda a, c: first(a, c) | second(a, c)  # noqa: E731
    br = certified_brackets(gfun, excludes, nodes, max_roots=8, capacity=8, min_width=1e-14)
    want = (jnp.arange(8) < br.count) & (br.kind == RISING)
    sel = jnp.argsort(~want, stable=True)[:4]

    def gd(x):
        return jax.jvp(lambda y: gfun(y)[0], (x,), (jnp.ones_like(x),))

    def polish(lo, hi, glo, ghi, active):
        lo_, hi_ = jnp.where(active, lo, 0.0), jnp.where(active, hi, 0.0)
        return newton_root(gd, 0.5 * (lo_ + hi_), lo_, hi_, jnp.where(active, glo, -1.0),
                           n_iter=1, active=active)

    xr, conv = jax.vmap(polish)(br.lo[sel], br.hi[sel], br.g_lo[sel], br.g_hi[sel], want[sel])
    unres = (jnp.arange(8) < br.count) & (br.kind == UNRESOLVED)  # near-double roots
    usel = jnp.argsort(~unres, stable=True)[:2]
    xs = jnp.concatenate([xr, ends, 0.5 * (br.lo[usel] + br.hi[usel])])
    ok = jnp.concatenate([want[sel], jnp.ones((2,), bool), unres[usel]])
    conv = jnp.concatenate([conv, jnp.ones((4,), bool)])
    e = jax.vmap(lambda x: u_fn(to_m(x)) - h * jnp.sqrt(jnp.maximum(1.0 - to_m(x) ** 2, 0.0)))(xs)
    e = jnp.where(ok, e, jnp.inf)
    k = jnp.argmin(e)
    certified = br.certified & (jnp.sum(want) <= 4) & (jnp.sum(unres) <= 2)
    return sign * e[k], certified & conv[k]


def energy_range_point(model: CollectiveSpinModel, couplings, h) -> EnergyRange:
    """``[min, max]`` of eq. (13) over the Bloch ball at ONE point (scalars).

    Both extremes lie on the sphere ``s = 1`` (``h >= 0``), found by a certified search
    (:func:`_sphere_minimum`).  For LMG4 with ``J, K >= 0``: ``eps_min`` is the ground-state
    energy and ``eps_max = h``.
    """
    finite = jnp.isfinite(h)
    for x in jax.tree_util.tree_leaves(couplings):
        finite = finite & jnp.isfinite(x)
    hs = jnp.where(finite, jnp.abs(h), 1.0)
    cs = jax.tree_util.tree_map(lambda x: jnp.where(finite, x, 0.0), couplings)
    cs, hs = jax.lax.stop_gradient((cs, hs))
    e_min, ok1 = _sphere_minimum(model, cs, hs, 1.0)
    e_max, ok2 = _sphere_minimum(model, cs, hs, -1.0)
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
