"""Microcanonical states of a temperature and MCE first-order transitions, exact and grid-free.

Both come from the family of shell-stationary states of :mod:`jaxlmg._mce_branches` (roots in the
single coordinate ``Mz``, each verified with the certified shell maximum of :mod:`jaxlmg._shell`),
never from a scan in energy:

* the MCE states of temperature ``T`` are the stationary states of the canonical landscape at
  ``T`` that are the entropy maximum of their own shell (Campa, Dauxois, Ruffo, Phys. Rep. 480, 57
  (2009); Bouchet & Barré, J. Stat. Phys. 118, 1073 (2005));
* an MCE first-order transition is an energy ``ε_t`` at which the paramagnet and an ordered state
  are two global entropy maxima of the same shell: a convex kink of σ, β jumps *up* with
  increasing energy, the temperature drops from ``T_below`` to ``T_above``.

Kernels are for ONE point; :func:`jaxlmg._batch.batched` lifts them to arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._canonical import FAST_ROUNDS as CANONICAL_FAST_ROUNDS
from ._canonical import FULL_ROUNDS as CANONICAL_FULL_ROUNDS
from ._canonical import stationary_points
from ._mce_branches import (
    MAX_STATES,
    SAME_STATE,
    first_order_jump,
    local_entropy_maximum,
    paramagnet_excess,
)
from ._model import entropy
from ._shell import FAST_ROUNDS as SHELL_FAST_ROUNDS
from ._shell import MAX_ROUNDS as SHELL_MAX_ROUNDS
from ._shell import MicrocanonicalState, observables, point_at_maximum, shell_maximum
from ._status import Status
from ._validate import as_precision, check
from .models import LMG4, CollectiveSpinModel, LMGCouplings, Reversed

__all__ = [
    "MicrocanonicalTransition",
    "TemperatureSolutions",
    "microcanonical_at_temperature",
    "microcanonical_at_temperature_state",
    "microcanonical_first_order",
    "microcanonical_first_order_state",
    "fit_slots",
    "temperature_point",
]

MIN_JUMP = 1e-6  # smallest |Mz jump| reported
FAST_SLOTS = 3  # candidates checked on their shell by the fast pass of ensemble_agreement


class TemperatureSolutions(NamedTuple):
    """All microcanonical states of temperature ``T`` (see :func:`microcanonical_at_temperature`).

    Attributes:
        eps: energies per spin, shape ``(..., max_solutions)``, increasing, NaN-padded.
        state: :class:`MicrocanonicalState` at those energies, fields ``(..., max_solutions)``;
            unused slots have ``status == Status.NO_TRANSITION`` ("no such state") and NaNs.
        n_solutions: number of MCE states of temperature ``T`` (may exceed ``max_solutions``,
            then only the lowest ``max_solutions`` energies are returned), shape ``(...)``.
        status: per point: ``OK``, ``NOT_CONVERGED`` (no state could be verified) or a domain
            code.
    """

    eps: Any
    state: MicrocanonicalState
    n_solutions: Any
    status: Any


class MicrocanonicalTransition(NamedTuple):
    """An MCE first-order transition at fixed ``(h, couplings)`` (fields: broadcast shape).

    ``below``/``above`` label the two coexisting states by the side of ``eps`` on which each is
    the equilibrium (``below`` = lower energies); ``beta_below < beta_above`` (convex kink of σ).

    Attributes:
        eps: transition energy per spin ``ε_t``.
        entropy: ``σ(ε_t)``, equal for both states (nats per spin).
        s: common spin length.
        Mz_below, Mz_above: order parameters of the two states (``>= 0`` for Z₂ models).
        Mx_below, Mx_above: their transverse magnetizations.
        beta_below, beta_above: ``dσ/dε`` on each branch at ``ε_t``.
        temperature_below, temperature_above: ``1/β``; the MCE temperature drops from
            ``temperature_below`` to ``temperature_above`` as the energy crosses ``ε_t``.
        status: ``OK``; ``NO_TRANSITION`` (no jump of ``Mz`` larger than ``MIN_JUMP``, e.g. only a
            continuous transition, or ``h = 0``); ``NOT_CONVERGED``; a domain code.  NaN fields
            unless ``OK``.
    """

    eps: Any
    entropy: Any
    s: Any
    Mz_below: Any
    Mz_above: Any
    Mx_below: Any
    Mx_above: Any
    beta_below: Any
    beta_above: Any
    temperature_below: Any
    temperature_above: Any
    status: Any


def _finite(*trees):
    ok = jnp.asarray(True)
    for x in jax.tree_util.tree_leaves(trees):
        ok = ok & jnp.isfinite(x)
    return ok


# --------------------------------------------------------------------------- one point


def _first_order_kernel(couplings, h, *, model):
    finite = _finite(couplings, h)
    cs = jax.tree_util.tree_map(lambda x: jnp.where(finite, x, 0.0), couplings)
    hs = jnp.where(finite & (h > 0), h, 1.0)
    jump = first_order_jump(model, cs, hs)
    o = observables(model, cs, hs, jump.eps, jump.m)
    p = observables(model, cs, hs, jump.eps, jnp.zeros_like(jump.m))
    first_below = o.Mx <= p.Mx  # the state of smaller Mx wins below eps_t: d(s²)/dε = -2 Mx/h
    sel = lambda x1, x2, below: jnp.where(first_below == below, x1, x2)  # noqa: E731
    s = jnp.sqrt(jnp.minimum(o.s2, 1.0))
    status = jnp.where(jump.found & (jnp.abs(jump.m) > MIN_JUMP),
                       jnp.where(jump.converged, Status.OK, Status.NOT_CONVERGED),
                       Status.NO_TRANSITION)
    status = jnp.where(h > 0, status, Status.NO_TRANSITION)
    status = jnp.where(h >= 0, status, Status.OUT_OF_DOMAIN)
    status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
    good = status == Status.OK
    nan = lambda x: jnp.where(good, x, jnp.nan)  # noqa: E731
    zero = jnp.zeros_like(jump.m)
    bb, ba = sel(o.beta, p.beta, True), sel(o.beta, p.beta, False)
    return MicrocanonicalTransition(
        eps=nan(jump.eps), entropy=nan(entropy(s)), s=nan(s),
        Mz_below=nan(sel(jump.m, zero, True)), Mz_above=nan(sel(jump.m, zero, False)),
        Mx_below=nan(sel(o.Mx, p.Mx, True)), Mx_above=nan(sel(o.Mx, p.Mx, False)),
        beta_below=nan(bb), beta_above=nan(ba), temperature_below=nan(1.0 / bb),
        temperature_above=nan(1.0 / ba), status=status)


class TemperaturePoint(NamedTuple):
    """Every MCE state of temperature ``T`` at ONE point (slots: every stationary point of the
    canonical landscape, sorted by energy, used slots first).

    ``kind`` is that of the canonical landscape there (+1 minimum, -1 maximum, 0 a double root).
    ``state`` is ``None`` unless observables were asked for."""

    eps: Any
    Mz: Any
    entropy: Any
    kind: Any
    used: Any
    n: Any
    status: Any
    state: Any = None
    unfinished: Any = None


def _stationary_states(model, couplings, h, T, max_rounds):
    """The stationary points of the canonical landscape at ``|T|`` of ``model`` (``T >= 0``) or of
    its reversal (``T < 0``), as states of ``model``: ``(Mz, s, eps, kind, converged,
    certified)``."""
    sp = stationary_points(model, couplings, h, jnp.abs(T), max_roots=MAX_STATES,
                           max_rounds=max_rounds)
    Mx = sp.Mx
    if isinstance(model, Reversed):
        model, Mx = model.model, -Mx
    eps = jax.vmap(lambda m, x: model.interaction(m, couplings) - h * x)(sp.Mz, Mx)
    # (as for the canonical engine, sp.certified is not required: next to a critical point or a
    # spinodal the landscape is flat to rounding over a range no enclosure can resolve; the
    # intervals left are candidates (kind 0), checked on their shell like every other state)
    converged = jnp.all(sp.converged | (sp.kind == -2)) & sp.complete
    return sp.Mz, sp.s, eps, sp.kind, converged, sp.certified


def temperature_point(model, couplings, h, T, *, signed: bool = True, observe: bool = False,
                      fast: bool = False) -> TemperaturePoint:
    """All microcanonical states of temperature ``T`` of ONE ``(h, couplings)``.

    The candidates are *every* stationary point of the canonical landscape at ``T`` (certified:
    :func:`jaxlmg._canonical.stationary_points`; at ``T < 0`` those of the reversed model, whose
    states have ``φ = π``).  Each is a state of temperature ``T`` stationary in ``Mz`` at its own
    energy; it is a microcanonical state exactly when it is the global entropy maximum of its
    shell, which the certified shell search decides (:func:`jaxlmg._shell.shell_maximum`).
    ``T = 0`` gives the ground state.  ``signed = False`` skips the ``T < 0`` search (callers with
    ``T >= 0``); ``observe`` adds the full :class:`MicrocanonicalState` of each slot.  ``fast``:
    the searches get only their first rounds, and ``unfinished`` says where that was not enough
    (the batching layer then recomputes the point in full: :func:`jaxlmg._batch.flat_kernel`).
    """
    finite = _finite(couplings, h, T)
    cs = jax.tree_util.tree_map(lambda x: jnp.where(finite, x, 0.0), couplings)
    hs = jnp.where(finite & (h >= 0), h, 1.0)
    Ts = jnp.where(finite, T, 1.0)
    cs, hs, Ts = jax.lax.stop_gradient((cs, hs, Ts))
    rounds = CANONICAL_FAST_ROUNDS if fast else CANONICAL_FULL_ROUNDS
    Mz, s, eps, kind, converged, certified = _stationary_states(model, cs, hs, Ts, rounds)
    if signed:
        neg = _stationary_states(Reversed(model), cs, hs, Ts, rounds)
        Mz, s, eps, kind, converged, certified = jax.tree_util.tree_map(
            lambda p, n: jnp.where(Ts < 0, n, p), (Mz, s, eps, kind, converged, certified), neg)
    cold = Ts == 0
    cand = (kind > -2) & jnp.isfinite(eps)
    # T = 0: only the ground state (the bottom of the spectrum) has temperature 0
    lowest = jnp.argmin(jnp.where(cand, eps, jnp.inf))
    cand = jnp.where(cold, cand & (jnp.arange(eps.shape[0]) == lowest), cand)
    n_slots = eps.shape[0]
    over = jnp.zeros((), bool)
    if fast and n_slots > FAST_SLOTS:
        # the fast pass checks the first FAST_SLOTS candidates on their shells; a point with more
        # is recomputed in full
        pick = jnp.argsort(~cand, stable=True)[:FAST_SLOTS]
        over = jnp.sum(cand) > FAST_SLOTS
        Mz, s, eps, kind, cand = (x[pick] for x in (Mz, s, eps, kind, cand))
    e_safe = jnp.where(cand, eps, 0.0)
    shell_rounds = SHELL_FAST_ROUNDS if fast else SHELL_MAX_ROUNDS
    sol = jax.vmap(lambda e: shell_maximum(model, cs, hs, e, max_rounds=shell_rounds))(e_safe)
    # The candidate is the entropy maximum of its shell when its s² is the shell's smallest.
    # Ranked through s² - s²(Mz = 0) = Mz² + δu (δu + 2 (u(0) - ε))/h² (δu = u(Mz) - u(0), as
    # the shell search ranks its own candidates): no cancellation against the O(1) s².
    u0 = model.interaction(jnp.zeros_like(hs), cs)
    du = jax.vmap(lambda m: model.interaction(m, cs))(Mz) - u0
    h2 = jnp.where(hs > 0, hs * hs, 1.0)
    rel = Mz * Mz + jnp.where(hs > 0, du * (du + 2.0 * (u0 - e_safe)) / h2, 0.0)
    scale = Mz * Mz + jnp.where(hs > 0, jnp.abs(du) * (jnp.abs(du) + 2.0 * jnp.abs(u0 - e_safe))
                                / h2, 0.0)
    best = jnp.min(jnp.where(sol.cand_ok, sol.cand_rel, jnp.inf), axis=-1)
    tol = 4 * jnp.finfo(rel.dtype).eps * (scale + jnp.abs(best)) + jnp.finfo(rel.dtype).tiny
    same = jnp.abs(sol.m - Mz) <= SAME_STATE * (1.0 + jnp.abs(Mz))
    ordered = (Mz != 0) & (sol.m != 0)
    used_h0 = cand & sol.converged & sol.feasible & (same | (ordered & (rel <= best + tol)))
    # h > 0, u'(0) = 0 (the paramagnet is a state of every shell): an ordered candidate is
    # decided without that cancellation.  Next to the MCE tricritical condition its s² and the
    # paramagnet's agree to ~Mz⁴ (~1e-20), below the rounding of the form above (~1e-16 Mz²),
    # so (a) against the paramagnet: the exact excess along the ordered family
    # (:func:`jaxlmg._mce_branches.paramagnet_excess`, at the candidate's own Mz, a simple root
    # in the field); (b) a local entropy maximum on its shell (exact, along the family);
    # (c) no other ordered state of the shell shorter by more than rounding (the shell search's
    # root of the candidate itself has the same s² to second order in its location error).
    para_family = (hs > 0) & (jax.grad(lambda m: model.interaction(m, cs))(0.0 * hs) == 0)
    is_ord = Mz != 0
    m_safe = jnp.where(is_ord, Mz, 1.0)
    h_safe = jnp.where(hs > 0, hs, 1.0)
    excess = jax.vmap(lambda m: paramagnet_excess(model, cs, h_safe, m))(m_safe)
    local = jax.vmap(lambda m: local_entropy_maximum(model, cs, h_safe, m))(m_safe)
    tol_o = 16 * jnp.finfo(rel.dtype).eps * scale + jnp.finfo(rel.dtype).tiny
    rivals = sol.cand_ok & (sol.cand_m != 0)
    beaten = jnp.any(rivals & (sol.cand_rel < (excess - tol_o)[:, None]), axis=-1)
    used_ord = cand & sol.converged & (excess <= 0) & local & ~beaten
    used_para = cand & sol.converged & sol.feasible & same
    used = jnp.where(para_family, jnp.where(is_ord, used_ord, used_para), used_h0)
    # one slot per state: a stationary point found twice is kept once
    order = jnp.argsort(jnp.where(used, eps, jnp.inf))
    eps_s, used_s = eps[order], used[order]
    dup = jnp.concatenate([jnp.zeros((1,), bool),
                           used_s[1:] & used_s[:-1] & (jnp.abs(jnp.diff(eps_s)) <= 1e-12)])
    used_s = used_s & ~dup
    perm = jnp.argsort(~used_s, stable=True)
    idx = order[perm]
    used_f = used_s[perm]
    n = jnp.sum(used_f).astype(jnp.int32)
    status = jnp.where((n > 0) & converged, Status.OK, Status.NOT_CONVERGED)
    domain = (h >= 0) & (signed | (T >= 0))
    status = jnp.where(domain, status, Status.OUT_OF_DOMAIN)
    status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
    state = None
    if observe:
        # observables at the candidate's own Mz (a simple root in the field: exact), not at the
        # shell search's (possibly near-double, flat-to-rounding) root
        sol_i = jax.tree_util.tree_map(lambda x: x[idx], sol)._replace(m=Mz[idx])
        state = jax.vmap(lambda e, so: point_at_maximum(model, couplings, h, e, so).state)(
            e_safe[idx], sol_i)
    if fast:
        unfinished = finite & (~certified | over | jnp.any(cand & ~sol.certified))
    else:
        unfinished = ~finite

    def pad(x, fill):  # back to n_slots slots (the fast pass checks fewer)
        k = n_slots - x.shape[0]
        return x if k == 0 else jnp.concatenate([x, jnp.full((k,), fill, x.dtype)])

    return TemperaturePoint(eps=pad(eps[idx], jnp.nan), Mz=pad(Mz[idx], jnp.nan),
                            entropy=pad(entropy(jnp.minimum(s[idx], 1.0)), jnp.nan),
                            kind=pad(kind[idx], -2), used=pad(used_f, False), n=n, status=status,
                            state=state, unfinished=unfinished)


def _temperature_kernel(couplings, h, T, *, model):
    tp = temperature_point(model, couplings, h, T, observe=True)
    max_solutions = MAX_STATES + 1
    good = tp.status == Status.OK
    slot = tp.used[:max_solutions] & good
    nanf = lambda x: jnp.where(slot, x[:max_solutions], jnp.nan)  # noqa: E731
    state = jax.tree_util.tree_map(
        lambda x: nanf(x) if jnp.issubdtype(x.dtype, jnp.floating)
        else jnp.where(slot, x[:max_solutions], 0), tp.state)
    state = state._replace(status=jnp.where(slot, tp.state.status[:max_solutions],
                                            Status.NO_TRANSITION).astype(jnp.int32))
    return TemperatureSolutions(eps=nanf(tp.eps), state=state,
                                n_solutions=jnp.where(good, tp.n, 0), status=tp.status)


# --------------------------------------------------------------------------- entry points


def microcanonical_at_temperature_state(model: CollectiveSpinModel, couplings, h, T, *,
                                        max_solutions: int = 3) -> TemperatureSolutions:
    """All microcanonical states of temperature ``T`` of any model (see
    :func:`microcanonical_at_temperature`); ``couplings``, ``h``, ``T`` broadcast.

    Requires ``u'(0) = 0`` (Z₂ models, PSpin).  Raises ``ValueError`` for ``max_solutions < 1``.
    """
    if max_solutions < 1:
        raise ValueError(f"max_solutions must be >= 1, got {max_solutions}")
    out = batched(_temperature_kernel, (couplings, h, T), static=(("model", model),))
    return fit_slots(out, max_solutions, jnp.ndim(out.status))


def fit_slots(tree, k: int, ndim: int):
    """Cut (or NaN/0-pad) the trailing slot axis of every leaf with more than ``ndim`` axes to
    ``k`` slots."""

    def fit(x):
        if x.ndim <= ndim:
            return x
        n = x.shape[-1]
        if k <= n:
            return x[..., :k]
        fill = jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else 0
        return jnp.concatenate([x, jnp.full(x.shape[:-1] + (k - n,), fill, x.dtype)], axis=-1)

    return jax.tree_util.tree_map(fit, tree)


def microcanonical_at_temperature(h, K, T, J=1.0, *, max_solutions: int = 3
                                  ) -> TemperatureSolutions:
    """Every microcanonical state whose temperature ``1/β(ε)`` equals ``T`` (eqs. 16, 36).

    Where σ(ε) is concave there is one such energy (the canonical one); where it is not, the
    microcanonical ensemble has several (one with negative specific heat between two with positive
    ones, or two separated by an MCE temperature jump).  The states are the stationary points of
    the canonical landscape at ``T`` (roots in ``Mz``, :mod:`jaxlmg._mce_branches`) that are the
    certified entropy maximum of their own energy shell: no scan in energy, nothing depends on a
    grid.  Not differentiable in ``T``.

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units; any broadcastable shapes.
        T: temperature (energy units), finite, any sign: ``T < 0`` selects the negative-temperature
            branch, ``T = 0`` returns the ground state (``eps_min``).
        max_solutions: slots per point in the output (static).
    Returns:
        :class:`TemperatureSolutions`: ``eps`` and ``state`` with a trailing axis of size
        ``max_solutions`` (increasing energies, NaN-padded), ``n_solutions`` and ``status`` of the
        broadcast shape.
    Raises:
        ValueError: a concrete argument is non-finite or out of range (named in the message).
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("T", T)
    h, K, T, J = as_precision("float64", h, K, T, J)
    return microcanonical_at_temperature_state(LMG4(), LMGCouplings(J, K), h, T,
                                               max_solutions=max_solutions)


def microcanonical_first_order_state(model: CollectiveSpinModel, couplings,
                                     h) -> MicrocanonicalTransition:
    """MCE first-order transition of any :class:`CollectiveSpinModel` with ``u'(0) = 0`` (see
    :func:`microcanonical_first_order`); ``couplings`` and ``h`` broadcast."""
    return batched(_first_order_kernel, (couplings, h), static=(("model", model),))


def microcanonical_first_order(h, K, J=1.0) -> MicrocanonicalTransition:
    """The microcanonical first-order transition of the extended LMG model at fixed ``(h, K, J)``.

    Finds the energy ``ε_t`` where the maximum-entropy state of the shell (eq. 16) jumps between
    the paramagnet and an ordered state of equal entropy (the MCE analogue of equal free energies),
    and the temperatures ``1/β`` on both sides: a root in ``Mz`` of the equal-entropy condition
    along the family of shell-stationary states (:mod:`jaxlmg._mce_branches`), verified with the
    certified shell maximum; no scan in energy.  At fixed ``h`` the region starts at
    ``K = J³/h²``; jumps down to ``ΔMz ~ 1e-6`` are resolved.  Where ``Mz(ε)`` changes only
    continuously (the MCE critical line, eq. 34) or ``h = 0``, the status is ``NO_TRANSITION``.
    If there are several jumps, the largest in ``Mz`` is returned.

    All outputs are differentiable in ``h``, ``K``, ``J`` (``jax.grad``/``jvp``) by the implicit
    function theorem on the equal-entropy condition.

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units; any broadcastable shapes.
    Returns:
        :class:`MicrocanonicalTransition` of the broadcast shape.
    Raises:
        ValueError: a concrete argument is non-finite or out of range (named in the message).
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, J = as_precision("float64", h, K, J)
    return microcanonical_first_order_state(LMG4(), LMGCouplings(J, K), h)

