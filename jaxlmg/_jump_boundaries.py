"""The boundaries of the region where the microcanonical temperature jumps over ``T``, any model.

At an MCE first-order transition of ``(h, couplings)`` (eq. 16;
:func:`jaxlmg.microcanonical_first_order_state`) the temperature drops from ``T_below`` to
``T_above`` as the energy crosses ``ε_t``; ``T`` lies inside that jump where
``T_above < T < T_below``.  At fixed ``h`` the two boundaries are the values of one coupling (the
one named ``vary``) where ``T_below = T`` and where ``T_above = T``.

Each is ONE root in that coupling, followed from where the jump region starts at this field: the
MCE tricritical point of the field ``h``, where the MCE critical line ``s = -h/u''(0)`` (eqs. 34,
37) meets ``c4 = u''''(0)/24 + h/(8 s³) = 0`` (eq. 35), i.e. ``R = u''''(0) h² - 3 u''(0)³ = 0``
(LMG4: ``K = J³/h²``).  There the jump vanishes at the MCE critical temperature
``T_c = h / artanh(s)`` (``0`` where ``s >= 1``).  The coupling is then moved away from that point
towards the first-order side (``R < 0``) in geometrically growing steps until the jump
temperature crosses ``T``, and bisected; derivatives come from the implicit function theorem
(:func:`jaxlmg._implicit.implicit_solution`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._implicit import implicit_solution
from ._microcanonical_transitions import microcanonical_first_order_state
from ._search import newton_steps
from ._status import Status
from ._validate import check
from .models import LMG4, CollectiveSpinModel, LMGCouplings, interaction_derivative

__all__ = ["BoundaryCurve", "microcanonical_jump_boundaries",
           "microcanonical_jump_boundaries_state", "vary_mask", "with_coupling"]

_STEPS = 240  # transition evaluations per boundary at most (<= ~20 outward steps + bisection)
_XTOL = 4e-16  # relative width of the final bracket in the coupling
_ONSET_NEWTON = 40  # Newton steps on R = 0 (exact in one step where R is linear, as for K)
_LOG_STEP0 = 5e-3  # first outward step, in log of the coupling; each next one 1.5 times larger
_LOG_RANGE = 30.0  # no crossing within x_on e^{±30} (~1e13): no boundary at this field
_ROOT_TOL = 1e-8  # |T_side - T| / (1 + T) accepted at the converged root


class BoundaryCurve(NamedTuple):
    """A phase boundary at fixed ``T``: points ``(K[i], h[i])`` of the (coupling, field) plane.

    Attributes:
        K: the varied coupling (LMG4's 4-spin ``K`` for :func:`jaxlmg.phase_diagram`; the coupling
            named ``vary`` for :func:`jaxlmg.phase_diagram_state`), energy units, shape ``(n,)``.
        h: transverse fields (energy units), shape ``(n,)``; NaN where ``status != OK``.
        status: :class:`jaxlmg.Status` per point, shape ``(n,)``: ``NO_TRANSITION`` where the
            boundary does not pass at this parameter, ``NOT_CONVERGED`` where its root could not
            be bracketed or polished.
    """

    K: Any
    h: Any
    status: Any


def vary_mask(couplings, vary: str):
    """A pytree like ``couplings`` with ``1.0`` in the field named ``vary`` and ``0.0`` elsewhere.

    Raises:
        ValueError: ``vary`` is not a field of ``couplings``.
    """
    fields = getattr(couplings, "_fields", ())
    if vary not in fields:
        raise ValueError(f"vary must be one of the couplings' fields {fields}, got {vary!r}")
    return type(couplings)(*[1.0 if f == vary else 0.0 for f in fields])


def with_coupling(couplings, mask, x):
    """``couplings`` with the field marked by ``mask`` (see :func:`vary_mask`) set to ``x``.

    The mask is data, not a static name: one compiled solver serves every choice of coupling.
    """
    return jax.tree_util.tree_map(lambda c, m: jnp.where(m > 0.5, x, c), couplings, mask)


def _varied(couplings, mask):
    return sum(jnp.where(m > 0.5, c, 0.0) for c, m in zip(jax.tree_util.tree_leaves(couplings),
                                                          jax.tree_util.tree_leaves(mask),
                                                          strict=True))


def _onset_residual(x, p, model):
    """``R = u''''(0) h² - 3 u''(0)³``: ``24 h² c4`` on the MCE critical line at field ``h``."""
    couplings, mask, h = p
    c = with_coupling(couplings, mask, x)
    z = jnp.zeros_like(h)
    u2 = interaction_derivative(model, c, z, 2)
    u4 = interaction_derivative(model, c, z, 4)
    return u4 * h * h - 3.0 * u2 * u2 * u2


def _side_temperatures(model, couplings, mask, h, x):
    """``(T_below(x[0]), T_above(x[1]), ok)``: one batched transition for both sides."""
    tr = microcanonical_first_order_state(model, with_coupling(couplings, mask, x), h)
    t = jnp.stack([tr.temperature_below[0], tr.temperature_above[1]])
    return t, tr.status == Status.OK


def _jump_residual(x, p, side, model):
    """``T_side(h, couplings with x) - T``: the defining condition of a jump boundary."""
    couplings, mask, h, T = p
    tr = microcanonical_first_order_state(model, with_coupling(couplings, mask, x), h)
    return (tr.temperature_below if side == 0 else tr.temperature_above) - T


def _jump_kernel(couplings, mask, h, T, *, model):
    """One field ``h``: the values of the masked coupling where ``T_below`` / ``T_above`` = T."""
    sg = jax.lax.stop_gradient
    c0, m0, h0, T0 = sg(couplings), sg(mask), sg(h), sg(T)
    finite = jnp.isfinite(h0) & jnp.isfinite(T0)
    for leaf in jax.tree_util.tree_leaves(c0):
        finite = finite & jnp.isfinite(leaf)
    hs = jnp.where(finite & (h0 > 0), h0, 1.0)
    Ts = jnp.where(finite & (T0 > 0), T0, 1.0)
    cs = jax.tree_util.tree_map(lambda c: jnp.where(finite, c, 0.0), c0)

    # the MCE tricritical point of this field: Newton on R(x) = 0 from the given value
    R = functools.partial(_onset_residual, model=model)

    x_on, _ = newton_steps(lambda x: jax.jvp(lambda y: R(y, (cs, m0, hs)), (x,),
                                             (jnp.ones_like(x),)), _varied(cs, m0), _ONSET_NEWTON)
    r_on, dr_on = jax.jvp(lambda y: R(y, (cs, m0, hs)), (x_on,), (jnp.ones_like(x_on),))
    z = jnp.zeros_like(hs)
    u2 = interaction_derivative(model, with_coupling(cs, m0, x_on), z, 2)
    r_scale = jnp.abs(dr_on * x_on) + jnp.abs(3.0 * u2 ** 3)
    onset = (jnp.isfinite(x_on) & (x_on > 0) & (u2 < 0) & (dr_on != 0)
             & (jnp.abs(r_on) <= 1e-10 * r_scale))
    asked = finite & (h0 > 0) & (T0 > 0)
    exists = asked & onset
    x_on = jnp.where(exists, x_on, 1.0)
    s_on = -hs / jnp.where(u2 < 0, u2, -1.0)
    t_c = jnp.where(s_on < 1.0, hs / jnp.arctanh(jnp.clip(s_on, 1e-300, 1.0 - 1e-16)), 0.0)
    g0 = t_c - Ts
    flip = jnp.where(g0 > 0, -1.0, 1.0)  # g̃ = flip (T_side - T) < 0 at the onset
    direction = jnp.where(dr_on < 0, 1.0, -1.0)  # towards R < 0, the first-order side

    def gt(x, dmin):
        """``g̃`` per side and the updated distance of the nearest valid sample from the onset.
        An unresolved transition counts as the onset (``T_c``) nearer than every resolved one
        (a jump below ``MIN_JUMP``), and as temperature 0 beyond (the end of the region, where
        the jump temperatures fall to 0)."""
        t, ok = _side_temperatures(model, cs, m0, hs, x)
        d = jnp.abs(x - x_on)
        t = jnp.where(ok, t, jnp.where(d < dmin, t_c, 0.0))
        return flip * (t - Ts), jnp.where(ok, jnp.minimum(dmin, d), dmin), ok

    def wide(near, far):
        return jnp.abs(far - near) > _XTOL * jnp.maximum(jnp.abs(near), jnp.abs(far))

    def running(state):
        k, _, near, far, br, _, spent, _, _ = state
        return (k < _STEPS) & jnp.any(exists & ~spent & (~br | wide(near, far)))

    def step(state):  # outward steps until g̃ > 0 (bracketed), then bisect
        k, j, near, far, br, dmin, spent, ok_near, ok_far = state
        log_d = jnp.minimum(_LOG_STEP0 * (1.5 ** j - 1.0) / 0.5, _LOG_RANGE)
        x = jnp.where(br, 0.5 * (near + far), x_on * jnp.exp(direction * log_d))
        g, dmin, ok = gt(x, dmin)
        up = (g > 0) & ~spent
        keep_near, keep_far = up | spent, ~up & (br | spent)
        near_n = jnp.where(keep_near, near, x)
        far_n = jnp.where(keep_far, far, x)
        ok_near = jnp.where(keep_near, ok_near, ok)
        ok_far = jnp.where(keep_far, ok_far, ok)
        spent = spent | (~br & ~up & (log_d >= _LOG_RANGE))
        return (k + 1, j + jnp.where(br, 0.0, 1.0), near_n, far_n, br | up, dmin, spent,
                ok_near, ok_far)

    start = jnp.full((2,), x_on)
    no = jnp.zeros(2, bool)  # the onset itself is not a resolved transition
    init = (0, jnp.ones((2,)), start, start, no, jnp.full((2,), jnp.inf), no, no, no)
    _, _, near, far, br, dmin, spent, ok_near, ok_far = jax.lax.while_loop(running, step, init)
    x = 0.5 * (near + far)
    # the root condition, checked: T_side = T at the root, or (a boundary so steep that the last
    # bit of x moves T_side by more than the tolerance, as next to the ground-state first-order
    # field where T_side rises from 0) the final bracket's ends are both resolved transitions,
    # on either side of T as the bisection evaluated them (not re-evaluated: there one bit of x
    # moves T_side by ~1e-7, as much as a different rounding of the same evaluation); a
    # bracket across the edge of the region (unresolved on one side) whose T_side stays away
    # from T is refused
    t, ok = _side_temperatures(model, cs, m0, hs, x)
    straddle = ok_near & ok_far
    close = jnp.abs(t - Ts) <= _ROOT_TOL * (1.0 + Ts)
    conv = br & ~wide(near, far) & ok & (close | straddle)
    out = []
    for side in (0, 1):
        G = functools.partial(_jump_residual, side=side, model=model)
        k = implicit_solution(G, x[side], (couplings, mask, h, T))
        status = jnp.where(conv[side], Status.OK, Status.NOT_CONVERGED)
        status = jnp.where(exists & ~spent[side], status, Status.NO_TRANSITION)
        status = jnp.where(asked & ~onset, Status.OUT_OF_DOMAIN, status)  # nothing to follow
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        out += [jnp.where(status == Status.OK, k, jnp.nan), status]
    return tuple(out)


def microcanonical_jump_boundaries_state(model: CollectiveSpinModel, couplings, h, T, *,
                                         vary: str = "K") -> tuple[BoundaryCurve, BoundaryCurve]:
    """Where the microcanonical temperature starts and stops jumping over ``T``, any Z₂ model.

    For each field ``h``: the value ``x_below`` of the coupling named ``vary`` with
    ``T_below(h, x_below) = T`` and ``x_above`` with ``T_above(h, x_above) = T``, for the MCE
    first-order transition (eq. 16; :func:`jaxlmg.microcanonical_first_order_state`); the MCE
    temperature jumps over ``T`` between them (:func:`jaxlmg.ensemble_agreement_state` code
    ``MCE_TEMPERATURE_JUMP``).  Method: each root is followed from the MCE tricritical point of
    the field, ``u''''(0) h² = 3 u''(0)³`` (eqs. 34-35; LMG4 in ``K``: ``K = J³/h²``), found by
    Newton from the value of ``couplings.<vary>``, where the jump vanishes at ``T_c(h)``; the
    coupling moves towards the first-order side in steps growing geometrically (log-steps
    ``0.005 · 1.5^k``) until the jump temperature crosses ``T``, then is bisected to a relative
    width ``4e-16``, and the root condition is checked (``|T_side - T| <= 1e-8 (1 + T)``, or
    resolved transitions on both sides of ``T`` at the ends of the final bracket, where the
    boundary is so steep that the last bit of the coupling moves ``T_side`` by more).  An
    unresolved transition between the onset and the first resolved one counts as the onset,
    one beyond the resolved ones as temperature 0 (the region's end, where the jump
    temperatures fall to 0).  The first crossing is returned: where the jump temperature is not
    monotone, a pair of crossings inside one step can be missed.

    Differentiable in ``h``, ``T`` and every coupling (``jax.grad``/``jax.jvp``; implicit
    function theorem on ``T_side - T = 0``) and usable under ``jit``/``vmap``.  The first call
    compiles for ~20-40 s (the certified MCE transition inside a root solve); the coupling is
    data, so every ``vary`` shares one compiled solver.

    Args:
        model: a Z₂ :class:`~jaxlmg.models.CollectiveSpinModel` (static).
        couplings: its couplings (energy units), leaves broadcasting with ``h`` and ``T``; the
            ``vary`` field is the starting point of the Newton solve for the onset (LMG4 in
            ``K``: any value, the onset is linear in ``K``).
        h: transverse fields ``> 0`` (energy units); T: temperature ``> 0``; broadcastable.
        vary: the name of the coupling solved for (positive where the region is).
    Returns:
        ``(below, above)``: two :class:`BoundaryCurve` of the broadcast shape (``h`` as given
        where ``OK``; ``K`` the varied coupling's root).  ``NO_TRANSITION`` where ``h <= 0``,
        ``T <= 0``, or the jump temperature does not cross ``T`` between the onset ``x_on`` and
        ``x_on e^{±30}`` (LMG4: ``h <= h_c(T)``); ``OUT_OF_DOMAIN`` where the field has no MCE
        tricritical point in a positive coupling to start from (``u''(0) >= 0`` as in
        ``PSpin(p >= 4)``, or no root): the method does not apply there, and jumps may exist;
        ``NOT_CONVERGED`` where the bisection did not finish in 240 evaluations or the root
        condition fails; ``NONFINITE`` for non-finite input.  NaN unless ``OK``.
    Raises:
        ValueError: ``vary`` is not a field of ``couplings``.
    """
    mask = vary_mask(couplings, vary)
    kb, sb, ka, sa = batched(_jump_kernel, (couplings, mask, h, T), static=(("model", model),))
    hb = jnp.broadcast_to(jnp.asarray(h, kb.dtype), kb.shape)
    return (BoundaryCurve(K=kb, h=jnp.where(sb == Status.OK, hb, jnp.nan), status=sb),
            BoundaryCurve(K=ka, h=jnp.where(sa == Status.OK, hb, jnp.nan), status=sa))


def microcanonical_jump_boundaries(h, T, J=1.0) -> tuple[BoundaryCurve, BoundaryCurve]:
    """The boundaries of the region where the microcanonical temperature jumps over ``T`` (LMG4).

    At fixed ``(h, K)`` the MCE first-order transition (eq. 16; see
    :func:`jaxlmg.microcanonical_first_order`) drops the temperature from ``T_below`` to
    ``T_above``.  For each field ``h`` this returns the couplings ``K_below(h)`` with
    ``T_below(h, K_below) = T`` and ``K_above(h)`` with ``T_above(h, K_above) = T``; the MCE
    temperature jumps over ``T`` for ``K_below < K < K_above`` (``ensemble_agreement`` code
    ``MCE_TEMPERATURE_JUMP``).  Both temperatures increase with ``K`` at fixed ``h`` (observed on
    grids of ``h`` in ``[0.3, 3] J`` and ``K`` up to ``50 J``; the tests check the root condition
    at every returned point), so each is one root, followed from the MCE tricritical value
    ``K = J³/h²`` (:func:`microcanonical_jump_boundaries_state` with ``LMG4``, ``vary = "K"``).
    Both curves start at the MCE tricritical point ``(J³/h_c², h_c(T))`` and exist for every
    ``h`` with ``T_c(h) < T`` (``h > h_c(T)``; every ``h > 0`` for ``T >= 2J``).

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
    return microcanonical_jump_boundaries_state(LMG4(), LMGCouplings(J, J ** 3), h, T, vary="K")
