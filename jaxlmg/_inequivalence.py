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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._batch import broadcast_flat
from ._microcanonical import N_EPS, N_SCAN, microcanonical
from ._microcanonical_transitions import (
    MicrocanonicalTransition,
    TemperatureSolutions,
    _transitions_flat,
    analysis,
    microcanonical_first_order,
)
from ._status import Status
from ._validate import as_precision, check
from .models import LMG4, LMGCouplings

__all__ = ["Agreement", "EnsembleAgreement", "EntropyCurve", "ensemble_agreement",
           "entropy_curve"]


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


def _classify(sol: TemperatureSolutions, fo: MicrocanonicalTransition, T):
    """Agreement code of ONE point from its MCE solutions at ``T`` and its MCE transition."""
    used = sol.state.status == Status.OK
    n = jnp.sum(used)
    neg = jnp.any(used & (sol.state.specific_heat < 0))
    para = jnp.any(used & (sol.state.Mz == 0))
    ferro = jnp.any(used & (sol.state.Mz > 0))
    jump = (fo.status == Status.OK) & (T > fo.temperature_above) & (T < fo.temperature_below)
    code = jnp.where(para & ferro, Agreement.CE_FIRST_ORDER_MCE_CONTINUOUS,
                     Agreement.MCE_NEGATIVE_SPECIFIC_HEAT)
    code = jnp.where(jump, Agreement.MCE_TEMPERATURE_JUMP, code)
    code = jnp.where((n <= 1) & ~jump, Agreement.EQUIVALENT, code)
    return code.astype(jnp.int32), n.astype(jnp.int32), neg


@jax.jit
def _agreement_flat(sol: TemperatureSolutions, fo: MicrocanonicalTransition, T):
    code, n, neg = jax.vmap(_classify)(sol, fo, T)
    # The CE state is the MCE state of temperature T of lowest free energy e - T sigma: the CE
    # global minimum sits where sigma touches its concave envelope with slope 1/T (eq. 19).
    used = sol.state.status == Status.OK
    f = jnp.where(used, sol.eps - T[:, None] * sol.state.entropy, jnp.inf)
    k = jnp.argmin(f, axis=1)
    ce_energy = jnp.take_along_axis(sol.eps, k[:, None], axis=1)[:, 0]
    status = jnp.where(fo.status == Status.NOT_CONVERGED, fo.status, sol.status).astype(jnp.int32)
    good = status == Status.OK
    return EnsembleAgreement(code=jnp.where(good, code, -1), n_mce_states=jnp.where(good, n, 0),
                             negative_specific_heat=good & neg,
                             ce_energy=jnp.where(good, ce_energy, jnp.nan),
                             mce_eps=jnp.where(good[:, None], sol.eps, jnp.nan), status=status)


def ensemble_agreement(h, K, T, J=1.0, *, max_solutions: int = 3, n_eps: int = N_EPS,
                       n_scan: int = N_SCAN) -> EnsembleAgreement:
    """Do the canonical and microcanonical ensembles agree at ``(h, K, T)``?  (eqs. 16, 19)

    Computes every MCE state of temperature ``T`` (:func:`jaxlmg.microcanonical_at_temperature`;
    the CE state is the one of lowest free energy ``ε - Tσ``) and the MCE first-order transition
    of ``(h, K)`` (:func:`jaxlmg.microcanonical_first_order`), and classifies the point with an
    :class:`Agreement` code (see its documentation for the exact semantics).

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            T: temperature ``>= 0``; energy units; any broadcastable shapes.
        max_solutions: slots for MCE states of temperature ``T`` (static).
        n_eps: energies in the MCE scan of each ``(h, K)`` (static).
        n_scan: points of the global scan of each MCE solve.
    Returns:
        :class:`EnsembleAgreement` of the broadcast shape (``mce_eps`` has a trailing axis of
        size ``max_solutions``).
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("T", T, lower=0.0)
    h, K, T, J = as_precision("float64", h, K, T, J)
    model = LMG4()
    (c, h, T), shape = broadcast_flat((LMGCouplings(J, K), h, T))
    an = analysis(model, c, h, T, max_solutions=max_solutions, n_eps=n_eps, n_scan=n_scan)
    leaves, treedef = jax.tree_util.tree_flatten(c)
    fo = _transitions_flat(model, treedef, h, tuple(leaves), an.coexistence, an.rng_status)
    out = _agreement_flat(an.solutions, fo, T)
    return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), out)


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


def _upper_hull(x, y):
    """Indices of the upper concave hull of points ``(x, y)``, ``x`` increasing (monotone chain)."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross >= 0:  # b is on or below the chord a -> i
                hull.pop()
            else:
                break
        hull.append(i)
    return np.asarray(hull)


def entropy_curve(h: float, K: float, eps, J: float = 1.0, *, n_newton: int = 12,
                  n_bisect: int = 60) -> EntropyCurve:
    """Microcanonical entropy σ(ε) of one ``(h, K, J)`` and where it is not concave (eq. 16).

    Args:
        h, K, J: scalars (``h >= 0``, ``K >= 0``, ``J > 0``), energy units.
        eps: 1-D increasing energy grid (energy units); points outside the spectrum get
            ``Status.ENERGY_OUT_OF_RANGE`` and are ignored by the analysis.
        n_newton: Newton steps refining each double tangent from the grid's hull.
        n_bisect: bisections refining each end of a negative-specific-heat interval.
    Returns:
        :class:`EntropyCurve`.  The interval analysis uses the grid to *find* structures (a
        non-concave interval narrower than the grid spacing may be missed) and exact MCE solves
        to *place* them.
    """
    for name, v in (("h", h), ("K", K), ("J", J)):
        if np.ndim(v) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(v)}")
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("eps", eps)
    eps = np.asarray(eps, np.float64)
    if eps.ndim != 1 or eps.size < 3 or np.any(np.diff(eps) <= 0):
        raise ValueError("eps must be a 1-D strictly increasing grid of at least 3 energies")
    h, K, J = float(h), float(K), float(J)

    def mce(e):
        st = microcanonical(h, K, np.asarray(e, np.float64), J)
        return jax.tree_util.tree_map(np.asarray, st)

    st = mce(eps)
    ok = st.status == Status.OK
    sig = st.entropy
    beta = st.beta
    env = np.full_like(sig, np.nan)
    idx = np.nonzero(ok & np.isfinite(sig))[0]
    nonconcave, t_coex = [], []
    if idx.size >= 2:
        x, y = eps[idx], sig[idx]
        hull = _upper_hull(x, y)
        env[idx] = np.interp(x, x[hull], y[hull])
        # candidate intervals: hull edges skipping grid points that lie clearly below the chord
        tol = 1e-12 * (1.0 + np.abs(y))
        for a, b in zip(hull[:-1], hull[1:], strict=True):
            if b > a + 1 and np.any(y[a + 1:b] < env[idx][a + 1:b] - tol[a + 1:b]):
                lo, hi, bt = _double_tangent(mce, x[a], x[b], n_newton)
                if np.isfinite(lo):
                    nonconcave.append((lo, hi))
                    t_coex.append(1.0 / bt)
        # the envelope from the refined tangents (the grid hull is exact elsewhere)
        for (lo, hi), T_t in zip(nonconcave, t_coex, strict=True):
            s_lo = float(mce([lo]).entropy[0])
            inside = (eps > lo) & (eps < hi)
            env[inside] = s_lo + (eps[inside] - lo) / T_t
    concave = ok & (sig >= env - 1e-12 * (1.0 + np.abs(sig)))

    neg = _negative_c_intervals(mce, eps, st, ok, n_bisect)
    fo = microcanonical_first_order(h, K, J)
    fo = jax.tree_util.tree_map(np.asarray, fo)
    if fo.status == Status.OK and not (eps[0] <= fo.eps <= eps[-1]):
        fo = fo._replace(**{f: np.asarray(np.nan) for f in fo._fields if f != "status"},
                         status=np.asarray(Status.NO_TRANSITION, np.int32))
    return EntropyCurve(eps=eps, entropy=sig, beta=beta, specific_heat=st.specific_heat,
                        Mz=st.Mz, status=st.status, envelope=env, concave=concave,
                        nonconcave=np.asarray(nonconcave, np.float64).reshape(-1, 2),
                        coexistence_temperature=np.asarray(t_coex, np.float64),
                        negative_specific_heat=neg, jump=fo)


def _double_tangent(mce, a: float, b: float, n_newton: int):
    """Refine a hull edge ``[a, b]`` to the double tangent of σ: ``β(a) = β(b)`` and
    ``σ(b) - σ(a) = β (b - a)``; 2-D Newton with the exact ``dβ/dε = -β²/c``.  Returns
    ``(a, b, β)`` or NaNs if it does not converge."""
    z = np.array([a, b], np.float64)
    for _ in range(n_newton):
        st = mce(z)
        if np.any(st.status != Status.OK):
            return np.nan, np.nan, np.nan
        s, bt, c = st.entropy, st.beta, st.specific_heat
        db = -bt * bt / c
        L = z[1] - z[0]
        bm = 0.5 * (bt[0] + bt[1])
        E = np.array([bt[0] - bt[1], s[1] - s[0] - bm * L])
        Jm = np.array([[db[0], -db[1]],
                       [-bt[0] + bm - 0.5 * db[0] * L, bt[1] - bm - 0.5 * db[1] * L]])
        step = np.linalg.solve(Jm, -E)
        z = z + step
        if np.all(np.abs(step) <= 1e-13 * (1.0 + np.abs(z))):
            break
    st = mce(z)
    good = (np.all(st.status == Status.OK) and z[0] < z[1]
            and abs(st.beta[0] - st.beta[1]) <= 1e-9 * (1.0 + abs(st.beta[0])))
    return (z[0], z[1], 0.5 * (st.beta[0] + st.beta[1])) if good else (np.nan, np.nan, np.nan)


def _negative_c_intervals(mce, eps, st, ok, n_bisect: int):
    """Intervals with ``c < 0``: grid runs, each end refined by bisection on the sign of ``c``
    (the end is a zero of dβ/dε, a kink of β at an MCE critical point, or an MCE jump)."""
    neg = ok & (st.specific_heat < 0)
    edges = []
    i = 0
    n = eps.size
    while i < n:
        if neg[i]:
            j = i
            while j + 1 < n and neg[j + 1]:
                j += 1
            edges.append((i, j))
            i = j + 1
        else:
            i += 1
    if not edges:
        return np.zeros((0, 2))
    # bracket each end between a grid point with c < 0 and its neighbour with c >= 0
    lo_in = np.array([eps[i] for i, _ in edges])
    lo_out = np.array([eps[i - 1] if i > 0 else eps[i] for i, _ in edges])
    hi_in = np.array([eps[j] for _, j in edges])
    hi_out = np.array([eps[j + 1] if j + 1 < n else eps[j] for _, j in edges])
    a = np.concatenate([lo_in, hi_in])
    b = np.concatenate([lo_out, hi_out])
    for _ in range(n_bisect):
        mid = 0.5 * (a + b)
        c = mce(mid).specific_heat
        inside = c < 0
        a = np.where(inside, mid, a)
        b = np.where(inside, b, mid)
    ends = 0.5 * (a + b)
    k = len(edges)
    return np.stack([ends[:k], ends[k:]], axis=1)
