"""The model: mean-field energy, entropy and free energy of a collective spin, for ONE point.

Everything here is a pure JAX function of scalars (no batching, no I/O).  The engines are written
against the small :class:`CollectiveSpinModel` interface; :class:`LMG4` is the built-in model of
Defenu, Mukamel and Ruffo, PRL 133, 050403 (2024), eq. (1).

Conventions (``PHYSICS.md``): spin length ``s`` in [0, 1], direction
``m = (sinθ cosφ, sinθ sinφ, cosθ)``; the magnetization per spin is ``M = s m``, with
``Mz = s cosθ`` and ``Mx = s sinθ cosφ``.  Energies are per spin, in the units of ``J``;
``k_B = 1``;
entropies are per spin, in nats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from .models import CollectiveSpinModel

__all__ = ["entropy", "energy", "free_energy", "field_state"]


@jax.custom_jvp
def entropy(s):
    """Entropy per spin of a collective spin of length ``s``, eq. (14), in nats.

    ``S(s) = -[(1+s)/2 ln((1+s)/2) + (1-s)/2 ln((1-s)/2)]``; ``S(0) = ln 2``, ``S(1) = 0``.
    Its derivative is exact everywhere, ``S'(s) = -artanh(s)``: ``-inf`` at ``s = 1`` (so a
    gradient method on eq. (19) never stops on the boundary ``s = 1`` at ``T > 0``).

    Args:
        s: spin length, any shape, values in [0, 1].
    Returns:
        ``S(s)``, same shape as ``s``.
    """
    p = 0.5 * (1.0 + s)
    q = 0.5 * (1.0 - s)
    return -(_xlogx(p) + _xlogx(q))


@entropy.defjvp
def _entropy_jvp(primals, tangents):
    (s,), (ds,) = primals, tangents
    return entropy(s), -jnp.arctanh(s) * ds


def _xlogx(x):
    safe = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, x * jnp.log(safe), 0.0)


def energy(model: CollectiveSpinModel, couplings, h, s, theta, phi=0.0):
    """Mean-field energy per spin ``e(s, θ, φ)``, eq. (13): ``u(s cosθ) - h s sinθ cosφ``.

    Args:
        model: a :class:`CollectiveSpinModel` (e.g. ``LMG4()``).
        couplings: the model's couplings (``LMGCouplings(J, K)`` for ``LMG4``), scalars.
        h: transverse field (energy units), scalar.
        s, theta, phi: spin length in [0, 1] and direction angles (radians), scalars.
    Returns:
        scalar energy per spin.
    """
    return model.interaction(s * jnp.cos(theta), couplings) - h * s * jnp.sin(theta) * jnp.cos(phi)


def free_energy(model: CollectiveSpinModel, couplings, h, T, s, theta, phi=0.0):
    """Mean-field free energy per spin ``f = e(s, θ, φ) - T S(s)``, eq. (19).

    Same arguments as :func:`energy` plus the temperature ``T >= 0`` (energy units, k_B = 1).
    """
    return energy(model, couplings, h, s, theta, phi) - T * entropy(s)


class FieldState(NamedTuple):
    """A mean-field state of the collective spin in the field ``(h, 0, b)`` (see
    :func:`field_state`)."""

    Mx: Any
    Mz: Any
    s: Any
    TS: Any  # T * S(s), the entropic term of the free energy (exactly 0 at T = 0)
    entropy: Any  # S(s), nats per spin


def field_state(b, h, T):
    """The free-energy minimizing state at fixed ``Mz`` written through its mean field.

    For the landscape ``f(Mx, Mz) = u(Mz) - h Mx - T S(|M|)`` (eq. 19 with ``φ = 0``), the inner
    minimization over ``Mx`` at fixed ``Mz`` is convex, and its solutions form the one-parameter
    family of states of a free spin ½ in the field ``(h, 0, b)``:

    ``s = tanh(r/T)``, ``M = s (h, b) / r``, ``r = sqrt(h² + b²)``.

    ``b -> Mz(b)`` is monotonic, so minimizing ``u(Mz(b)) - h Mx(b) - T S(s(b))`` over the scalar
    ``b`` is *exactly* the minimization of eq. (19) over ``(s, θ, φ)``.  At a stationary point
    ``b = -u'(Mz)``, the molecular field, so ``|b| <= model.max_field``.  At ``T = 0`` the states
    lie on the sphere ``s = 1`` with ``M = (h, b)/r``.

    All terms are evaluated in forms that are stable for ``r/T -> ∞`` (``T -> 0``) and ``r -> 0``.

    Args:
        b: longitudinal mean field (energy units), scalar.
        h: transverse field ``>= 0``, scalar.
        T: temperature ``>= 0``, scalar.
    Returns:
        :class:`FieldState` of scalars.
    """
    r2 = h * h + b * b
    pos = r2 > 0
    r_safe = jnp.sqrt(jnp.where(pos, r2, 1.0))
    r = jnp.where(pos, r_safe, 0.0)
    cx = jnp.where(pos, h / r_safe, 1.0)  # direction of the field; (1, 0) when it vanishes
    cz = jnp.where(pos, b / r_safe, 0.0)
    hot = T > 0
    T_safe = jnp.where(hot, T, 1.0)
    x = r / T_safe
    q = jnp.exp(-2.0 * x)  # e^{-2x}, in (0, 1]
    s_hot = -jnp.expm1(-2.0 * x) / (1.0 + q)  # tanh(x)
    # S(tanh x) = ln(2 cosh x) - x tanh x = 2 x q / (1 + q) + log1p(q): no cancellation at large x.
    S_hot = 2.0 * x * q / (1.0 + q) + jnp.log1p(q)
    s = jnp.where(hot, s_hot, 1.0)
    S = jnp.where(hot, S_hot, 0.0)
    TS = jnp.where(hot, T * S_hot, 0.0)
    return FieldState(Mx=s * cx, Mz=s * cz, s=s, TS=TS, entropy=S)
