"""Ensemble inequivalence: where and how the canonical and microcanonical ensembles disagree.

The canonical ensemble (CE) sees the microcanonical entropy σ(ε) only through its Legendre
transform, i.e. through the concave envelope of σ (eqs. 15, 16, 19).  Where σ is not concave:

* the CE skips the energy interval under the envelope (a first-order jump with latent heat at the
  temperature ``1/β_t`` of the double tangent);
* the MCE passes through it: with a negative specific heat where σ is locally convex, or with a
  temperature jump at an MCE first-order transition (a convex kink of σ,
  :func:`jaxlmg.microcanonical_first_order`).

Two views are offered:

* :func:`entropy_curve` — for one ``(h, K)`` and an energy grid: σ, its concave envelope, the
  non-concave intervals (refined to machine precision as double tangents), the negative-specific-
  heat intervals and the MCE temperature jump.
* :func:`ensemble_agreement` — for arrays of ``(h, K, T)``: an :class:`Agreement` code per point.
"""

from __future__ import annotations

import enum
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._batch import batched
from ._canonical import stationary_points
from ._entropy_grid import grid_nonconcave, negative_c_intervals
from ._mce_branches import MAX_STATES
from ._mce_structure import structure_point
from ._microcanonical import microcanonical_state
from ._microcanonical_transitions import (
    MicrocanonicalTransition,
    fit_slots,
    microcanonical_at_temperature_state,
    microcanonical_first_order_state,
    temperature_point,
)
from ._status import Status
from ._validate import as_precision, check
from .models import LMG4, CollectiveSpinModel, LMGCouplings

__all__ = ["Agreement", "EnsembleAgreement", "EntropyCurve", "ensemble_agreement",
           "ensemble_agreement_state", "entropy_curve", "entropy_curve_state"]


class Agreement(enum.IntEnum):
    """How the CE and the MCE compare at one ``(h, K, T)``.

    The CE state at ``T`` is always one of the MCE states of temperature ``T`` (its energy lies
    where σ touches its concave envelope with slope ``1/T``).  The ensembles disagree at ``T``
    exactly when the MCE has *other* states of temperature ``T`` — states at energies the CE skips.
    The codes say which kind:
    """

    #: exactly one MCE state has temperature ``T``, and it is the CE state (same ε, s, m_z).
    EQUIVALENT = 0
    #: several MCE states have temperature ``T``, some paramagnetic (``Mz = 0``) and some
    #: ferromagnetic: the CE jumps between the phases (first order, latent heat) while the MCE
    #: connects them continuously, through states of negative specific heat (the region between
    #: the CE and MCE tricritical points of the paper, eqs. 32, 39).
    CE_FIRST_ORDER_MCE_CONTINUOUS = 1
    #: several MCE states have temperature ``T``, all in the same phase, one of them with negative
    #: specific heat (σ locally convex without a phase change).
    MCE_NEGATIVE_SPECIFIC_HEAT = 2
    #: ``T`` lies inside the temperature jump of an MCE first-order transition
    #: (``temperature_above < T < temperature_below``): the MCE has a state of temperature ``T``
    #: on each side of the transition energy, and itself jumps between phases there.
    MCE_TEMPERATURE_JUMP = 3


class EnsembleAgreement(NamedTuple):
    """Result of :func:`ensemble_agreement` (fields: broadcast shape of ``h, K, T, J``).

    Attributes:
        code: :class:`Agreement` value (``int32``); -1 where ``status != OK``.
        n_mce_states: number of MCE states of temperature ``T``.
        negative_specific_heat: some MCE state of temperature ``T`` has ``c < 0``.
        ce_energy: energy per spin of the CE state at ``T`` (eq. 19): the MCE state of
            temperature ``T`` with the lowest free energy ``ε - Tσ(ε)``.
        mce_eps: energies of the MCE states of temperature ``T``, trailing axis ``max_solutions``,
            NaN-padded.
        status: :class:`jaxlmg.Status` per point.
    """

    code: Any
    n_mce_states: Any
    negative_specific_heat: Any
    ce_energy: Any
    mce_eps: Any
    status: Any


def _agreement_kernel(couplings, h, T, *, model, fast):
    """Agreement code of ONE point from every MCE state of temperature ``T``.

    Along σ, ``T(ε) - T`` goes from ``-T`` (bottom of the spectrum) to ``+inf`` (``β = 0``); it
    crosses zero upwards at each state with ``c > 0``, downwards at each state with ``c < 0`` and
    at each MCE first-order transition whose temperature jump contains ``T`` (T drops there).  So
    the number of MCE temperature jumps over ``T`` is ``n(c > 0) - n(c < 0) - 1``: no transition
    has to be located to classify the point.
    """
    tp = temperature_point(model, couplings, h, T, signed=False, fast=fast)
    # the sign of c of an MCE state of temperature T: + where the canonical landscape has a
    # minimum, - a maximum (its canonical instability); no derivative has to be evaluated
    c = tp.kind
    used = tp.used
    n = jnp.sum(used).astype(jnp.int32)
    # h = 0: the paramagnet is the top of the spectrum (eps = u(0)), where T(eps) ends at
    # T_top = -u''(0) instead of going to +inf; it is the CE state for every T >= T_top but an MCE
    # state of temperature T_top only, so it takes no part in the crossing count.
    edge = (h == 0) & (tp.Mz == 0)
    cnt = used & ~edge
    up = jnp.sum(cnt & (c > 0))
    down = jnp.sum(cnt & (c < 0))
    u2 = jax.grad(jax.grad(lambda m: model.interaction(m, couplings)))(jnp.zeros_like(h))
    below_top = jnp.where(h == 0, T < -u2, True)
    jump = (T > 0) & (up - down - below_top > 0)
    neg = jnp.any(cnt & (c < 0))
    para = jnp.any(used & (tp.Mz == 0))
    ferro = jnp.any(used & (tp.Mz != 0))
    code = jnp.where(para & ferro, Agreement.CE_FIRST_ORDER_MCE_CONTINUOUS,
                     Agreement.MCE_NEGATIVE_SPECIFIC_HEAT)
    code = jnp.where(jump, Agreement.MCE_TEMPERATURE_JUMP, code)
    code = jnp.where((n <= 1) & ~jump, Agreement.EQUIVALENT, code)
    # the CE state: the MCE state of temperature T of lowest free energy e - T sigma (eq. 19)
    f = jnp.where(used, tp.eps - T * tp.entropy, jnp.inf)
    ce_energy = tp.eps[jnp.argmin(f)]
    good = tp.status == Status.OK
    max_solutions = MAX_STATES + 1
    slot = used[:max_solutions] & good
    return EnsembleAgreement(
        code=jnp.where(good, code, -1).astype(jnp.int32), n_mce_states=jnp.where(good, n, 0),
        negative_specific_heat=good & neg, ce_energy=jnp.where(good, ce_energy, jnp.nan),
        mce_eps=jnp.where(slot, tp.eps[:max_solutions], jnp.nan),
        status=tp.status), tp.unfinished


def ensemble_agreement_state(model: CollectiveSpinModel, couplings, h, T, *,
                             max_solutions: int = 3) -> EnsembleAgreement:
    """Do the canonical and microcanonical ensembles of any model (``u'(0) = 0``) agree at
    ``(couplings, h, T)``?  See :func:`ensemble_agreement`; arguments broadcast."""
    if max_solutions < 1:
        raise ValueError(f"max_solutions must be >= 1, got {max_solutions}")
    out = batched(_agreement_kernel, (couplings, h, T), static=(("model", model), ("fast", True)),
                  escalate=(("fast", False),))
    return fit_slots(out, max_solutions, jnp.ndim(out.status))


def ensemble_agreement(h, K, T, J=1.0, *, max_solutions: int = 3) -> EnsembleAgreement:
    """Do the canonical and microcanonical ensembles agree at ``(h, K, T)``?  (eqs. 16, 19)

    Finds every MCE state of temperature ``T`` (the stationary states of the canonical landscape
    at ``T`` that are the certified entropy maximum of their own shell,
    :func:`jaxlmg.microcanonical_at_temperature`; the CE state is the one of lowest free energy
    ``ε - Tσ``) and classifies the point with an :class:`Agreement` code (see its documentation).
    No scan in energy: the cost is a few certified 1-D searches per point.

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            T: temperature ``>= 0``; energy units; any broadcastable shapes.  ``h = 0`` is the
            classical 2+4 Curie-Weiss model, solved exactly.
        max_solutions: slots for MCE states of temperature ``T`` (static).
    Returns:
        :class:`EnsembleAgreement` of the broadcast shape (``mce_eps`` has a trailing axis of
        size ``max_solutions``).
    Raises:
        ValueError: a concrete argument is non-finite or out of range (named in the message).
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("T", T, lower=0.0)
    h, K, T, J = as_precision("float64", h, K, T, J)
    return ensemble_agreement_state(LMG4(), LMGCouplings(J, K), h, T,
                                    max_solutions=max_solutions)


# --------------------------------------------------------------------------- one (h, K): the curve


class EntropyCurve(NamedTuple):
    """σ(ε) of one ``(h, K, J)`` on an energy grid and its (in)equivalence structure.

    Arrays of the grid's shape ``(n,)``: ``eps``, ``entropy`` (σ, eq. 16), ``beta``,
    ``specific_heat``, ``Mz``, ``status`` (MCE), ``envelope`` (the concave envelope of σ: what the
    CE sees, σ = envelope where the ensembles agree), ``concave`` (``σ >= envelope - 1e-12``).

    Intervals (NumPy, shape ``(k, 2)``, increasing; refined to machine precision, not to the grid):
        nonconcave: energies the CE skips; each is the double tangent of σ, i.e. the energies of
            the two CE states coexisting at the CE first-order temperature.
        coexistence_temperature: ``(k,)`` the slope ``1/β_t`` of each double tangent (the CE
            transition temperature; latent heat = interval length).
        negative_specific_heat: intervals where ``c = dε/dT < 0``.
    jump: :class:`jaxlmg.MicrocanonicalTransition` of ``(h, K)`` (scalar fields; status
        ``NO_TRANSITION`` if none, or if it is outside the grid).
    """

    eps: Any
    entropy: Any
    beta: Any
    specific_heat: Any
    Mz: Any
    status: Any
    envelope: Any
    concave: Any
    nonconcave: Any
    coexistence_temperature: Any
    negative_specific_heat: Any
    jump: MicrocanonicalTransition


def _merge(lo, hi, tol: float = 1e-12):
    """Union of intervals ``[lo_i, hi_i]`` (touching ones merged), sorted: ``(k, 2)``."""
    order = np.argsort(lo)
    out: list[list[float]] = []
    for a, b in zip(lo[order], hi[order], strict=True):
        if out and a <= out[-1][1] + tol * (1.0 + abs(a)):
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out, np.float64).reshape(-1, 2)


def entropy_curve_state(model: CollectiveSpinModel, couplings, h, eps) -> EntropyCurve:
    """σ(ε) of one ``(h, couplings)`` of any model with ``u'(0) = 0`` and where it is not concave.

    See :func:`entropy_curve`.  Args: ``model`` (static), ``couplings`` (scalars), ``h >= 0``
    (scalar), ``eps`` a 1-D increasing grid (energy units).  The intervals do not depend on the
    grid (only σ, β, c, Mz and the envelope are evaluated on it).
    """
    eps = np.asarray(eps, np.float64)
    if eps.ndim != 1 or eps.size < 3 or np.any(np.diff(eps) <= 0):
        raise ValueError("eps must be a 1-D strictly increasing grid of at least 3 energies")
    st = jax.tree_util.tree_map(np.asarray, microcanonical_state(model, couplings, h, eps))
    ok = st.status == Status.OK
    sig = st.entropy
    S = jax.tree_util.tree_map(np.asarray, _structure(model, couplings, jnp.asarray(h, float)))
    neg = _merge(S.piece_lo[S.piece_negative], S.piece_hi[S.piece_negative])
    # double tangents, verified: both ends are the CE states (lowest e - T sigma among every MCE
    # state of temperature T_t)
    nonconcave, t_coex = [], []
    cand = np.nonzero(S.tangent_ok)[0]
    if cand.size:
        T_t = 1.0 / S.tangent_beta[cand]
        sol = jax.tree_util.tree_map(np.asarray, microcanonical_at_temperature_state(
            model, couplings, h, T_t, max_solutions=MAX_STATES + 1))
        sp = jax.tree_util.tree_map(np.asarray, _landscape(model, couplings,
                                                           jnp.asarray(h, float), T_t))
        for i, k in enumerate(cand):
            # a double tangent joins two canonical minima across a free-energy barrier (a
            # maximum between them); next to a critical point the candidates are rounding noise
            f_min = sp.F[i][sp.kind[i] == 1]
            e_max = sp.eps[i][sp.kind[i] == -1]
            barrier = f_min.size >= 2 and np.any((e_max > S.tangent_lo[k])
                                                  & (e_max < S.tangent_hi[k]))
            if not barrier:
                continue
            used = sol.state.status[i] == Status.OK
            e, f = sol.eps[i][used], (sol.eps[i] - T_t[i] * sol.state.entropy[i])[used]
            if e.size < 2:
                continue
            ends = [np.argmin(np.abs(e - S.tangent_lo[k])), np.argmin(np.abs(e - S.tangent_hi[k]))]
            close = all(abs(e[j] - x) <= 1e-8 * (1 + abs(x))
                        for j, x in zip(ends, (S.tangent_lo[k], S.tangent_hi[k]), strict=True))
            lowest = all(f[j] <= f.min() + 1e-10 * (1 + abs(f.min())) for j in ends)
            if close and lowest and ends[0] != ends[1]:
                nonconcave.append((S.tangent_lo[k], S.tangent_hi[k]))
                t_coex.append(T_t[i])
    # Cross-check on the grid: intervals the hull of sigma shows, refined to double tangents (a
    # structure the exact route does not cover, e.g. a tangent between two ordered states, is
    # still found where the grid resolves it); kept when not already found exactly.
    def mce(e):
        return jax.tree_util.tree_map(
            np.asarray, microcanonical_state(model, couplings, h, np.asarray(e, np.float64)))

    g_int, g_T = grid_nonconcave(mce, eps, sig, ok)
    for (lo, hi), T_t in zip(g_int, g_T, strict=True):
        if not any(abs(lo - a) <= 1e-9 * (1 + abs(a)) for a, _ in nonconcave):
            nonconcave.append((lo, hi))
            t_coex.append(T_t)
    order = np.argsort([a for a, _ in nonconcave])
    nonconcave = np.asarray(nonconcave, np.float64).reshape(-1, 2)[order]
    t_coex = np.asarray(t_coex, np.float64)[order]
    g_neg = negative_c_intervals(mce, eps, st, ok, 60)
    if g_neg.size:
        neg = _merge(np.concatenate([neg[:, 0], g_neg[:, 0]]),
                     np.concatenate([neg[:, 1], g_neg[:, 1]]), tol=1e-9)
    env = np.where(ok, sig, np.nan)
    if nonconcave.size:
        s_lo = np.asarray(microcanonical_state(model, couplings, h, nonconcave[:, 0]).entropy)
        for (lo, hi), s0, T_t in zip(nonconcave, s_lo, t_coex, strict=True):
            inside = (eps > lo) & (eps < hi)
            env[inside] = s0 + (eps[inside] - lo) / T_t
    concave = ok & (sig >= env - 1e-12 * (1.0 + np.abs(sig)))
    fo = jax.tree_util.tree_map(np.asarray, microcanonical_first_order_state(model, couplings, h))
    if fo.status == Status.OK and not (eps[0] <= fo.eps <= eps[-1]):
        fo = fo._replace(**{f: np.asarray(np.nan) for f in fo._fields if f != "status"},
                         status=np.asarray(Status.NO_TRANSITION, np.int32))
    return EntropyCurve(eps=eps, entropy=sig, beta=st.beta, specific_heat=st.specific_heat,
                        Mz=st.Mz, status=st.status, envelope=env, concave=concave,
                        nonconcave=nonconcave, coexistence_temperature=t_coex,
                        negative_specific_heat=neg, jump=fo)


@functools.partial(jax.jit, static_argnums=0)
def _structure(model, couplings, h):
    return structure_point(model, couplings, h)


class _Landscape(NamedTuple):
    F: Any
    eps: Any
    kind: Any


def _landscape_kernel(couplings, h, T, *, model):
    """Stationary points of the canonical landscape at ONE ``T``: free energy, energy and kind
    (+1 minimum, -1 maximum, -2 unused slot)."""
    sp = stationary_points(model, couplings, h, T, max_roots=MAX_STATES)
    eps = jax.vmap(lambda m, x: model.interaction(m, couplings) - h * x)(sp.Mz, sp.Mx)
    return _Landscape(F=sp.F, eps=eps, kind=sp.kind)


def _landscape(model, couplings, h, T):
    return batched(_landscape_kernel, (couplings, h, T), static=(("model", model),))


def entropy_curve(h: float, K: float, eps, J: float = 1.0) -> EntropyCurve:
    """Microcanonical entropy σ(ε) of one ``(h, K, J)`` and where it is not concave (eq. 16).

    The non-concave intervals (double tangents: the latent heat of each canonical first-order
    transition, with its temperature), the negative-specific-heat intervals and the MCE jump are
    computed exactly from the family of shell-stationary states (:mod:`jaxlmg._mce_structure`),
    to machine precision and independent of the grid ``eps``, on which σ, β, c, Mz and the concave
    envelope are evaluated.

    Args:
        h, K, J: scalars (``h >= 0``, ``K >= 0``, ``J > 0``), energy units.
        eps: 1-D increasing energy grid (energy units); points outside the spectrum get
            ``Status.ENERGY_OUT_OF_RANGE``.
    Returns:
        :class:`EntropyCurve`.
    Raises:
        ValueError: a non-scalar or out-of-range parameter, or a bad grid (named in the message).
    """
    for name, v in (("h", h), ("K", K), ("J", J)):
        if np.ndim(v) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(v)}")
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("eps", eps)
    return entropy_curve_state(LMG4(), LMGCouplings(float(J), float(K)), float(h), eps)
