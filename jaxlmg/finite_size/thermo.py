"""Exact thermodynamics from the levels: canonical free energy (eqs. 7, 9), density of states and
microcanonical entropy (eqs. 8, 10)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from .._validate import check
from ..models import LMG4, LMGCouplings
from .blocks import block_of
from .checks import (
    MAX_BYTES,
    blocks_bytes,
    check_lmg,
    check_max_bytes,
    check_N,
    concrete,
    estimate_bytes,
    grid,
    guard,
    point_status,
    window_bytes,
)
from .hamiltonian import Problem, problem
from .kernel import EPS, bucket, count_chunk
from .solvers import (
    block_bounds,
    ground_level,
    level_observables,
    per_block,
    solve_full,
    solve_window,
)

__all__ = ["FiniteSizeThermo", "DensityOfStates", "free_energy", "free_energy_state", "entropy",
           "entropy_state"]


class FiniteSizeThermo(NamedTuple):
    """Exact canonical thermodynamics of ``N`` spins (eqs. 7, 9), per spin, at each point.

    All fields have the broadcast shape of the parameters (``(h, K, T, J)`` for
    :func:`free_energy`; the couplings' leaves, ``h`` and ``T`` for :func:`free_energy_state`);
    energies in the units of the couplings, entropies in nats, ``k_B = 1``.

    Attributes:
        f: free energy per spin ``-T ln Z / N`` (``E_0/N`` at ``T = 0``).
        energy: ``⟨H⟩/N``.
        entropy: ``(ln Z + ⟨H⟩/T)/N`` (``ln g_0 / N`` at ``T = 0``: ground-state degeneracy).
        specific_heat: ``(⟨H²⟩ - ⟨H⟩²)/(N T²)`` (0 at ``T = 0``).
        Mz2: ``⟨Mz²⟩`` with ``Mz = 2Sᶻ/N`` (the mean field's ``Mz²`` as ``N → ∞``), i.e.
            ``4⟨(Sᶻ)²⟩/N²``; NaN if ``magnetization=False``.
        binder: Binder cumulant ``U = 1 - ⟨(Sᶻ)⁴⟩/(3⟨(Sᶻ)²⟩²)`` (2/3 in an ordered phase, 0
            for a Gaussian paramagnet; moments about 0, also without Z₂ symmetry); NaN if
            ``magnetization=False``.
        log_Z: ``ln Z`` (``-E_0/T``-dominated at low ``T``; ``-inf`` never occurs).
        log_tail: an upper bound on ``ln(Z_omitted / Z)``, the relative weight of the levels
            not computed (``-inf`` when the whole spectrum was used).
        status: :class:`jaxlmg.Status` per point; the other fields are NaN where it is not
            ``OK`` (a level did not converge).
        Mz: ``⟨Mz⟩ = 2⟨Sᶻ⟩/N`` (exactly 0 for a Z₂-symmetric model); NaN if
            ``magnetization=False``.
    """

    f: Any
    energy: Any
    entropy: Any
    specific_heat: Any
    Mz2: Any
    binder: Any
    log_Z: Any
    log_tail: Any
    status: Any
    Mz: Any = None


class DensityOfStates(NamedTuple):
    """Microcanonical quantities of ``N`` spins from the exact levels (eqs. 8, 10).

    Shapes: broadcast shape of the parameters (``(h, K, J)``, or the couplings' leaves and
    ``h``), then ``n_bins = len(eps_edges) - 1``.

    Attributes:
        eps: bin centres (energy per spin).
        log_count: ``ln`` of the number of states (with multiplicity ``g(S)``) with
            ``E/N`` in the bin; ``-inf`` for an empty bin.
        log_density: ``ln Ω``, the density of states per unit total energy (eq. 8) averaged
            over the bin: ``log_count - ln(N Δε)``.
        entropy: ``log_count / N``, the microcanonical entropy per spin (nats).
        beta: ``dσ/dε`` from centred differences of ``entropy`` between neighbouring bins
            (``(σ_{j+1} - σ_{j-1})/(ε_{j+1} - ε_{j-1})``); NaN at the end bins and next to empty
            bins.
        temperature: ``1/beta``: the finite-N microcanonical caloric curve ``T(ε)``.
        log_total: ``ln`` of the number of states counted (``N ln 2`` when the bins cover the
            spectrum).
        status: :class:`jaxlmg.Status` per point.
    """

    eps: Any
    log_count: Any
    log_density: Any
    entropy: Any
    beta: Any
    temperature: Any
    log_total: Any
    status: Any


# --------------------------------------------------------------------------- canonical


#: Relative weight of the levels left out of ``Z`` by the automatic energy window (``e^-40``).
_LOG_TAIL = -40.0


def _choose_window(prob: Problem, lb, ub, Ts, E0=None):
    """Smallest total-energy cutoff whose omitted levels weigh less than ``e^_LOG_TAIL`` of ``Z``
    at every ``T > 0`` in ``Ts``.

    Rigorous bound from the certified bounds ``lb < λ_0(b) < ub`` of every block ``b`` (size
    ``n_b``, multiplicity ``g_b``): ``Z_omitted <= Σ_b g_b n_b exp(-max(E_cut, lb_b)/T)`` and
    ``Z >= Σ_b g_b exp(-ub_b/T)``.  With ``T = 0`` in ``Ts``, the levels within rounding of the
    ground level ``E0`` are included too.

    Returns ``(E_cut, log_tail)``, ``log_tail`` per ``T`` (``-inf`` at ``T = 0``).
    """
    Ts = np.asarray(Ts, np.float64)
    lay, top, scale = prob.lay, prob.hi, prob.scale
    tiny = 64 * EPS * scale.max()
    ref = ub.min()
    tail = np.full(Ts.shape, -np.inf)
    cut = -np.inf if E0 is None else E0 + tiny
    pos = np.unique(Ts[Ts > 0])
    if pos.size:
        lg, ln_n = lay.log_g, np.log(lay.dim)
        lz = np.array([_logsumexp_np(lg - (ub - ref) / T) for T in pos])

        def log_tail(E_cut):
            c = np.maximum(E_cut, lb) - ref
            return np.array([_logsumexp_np(lg + ln_n - c / T) for T in pos]) - lz

        a, b = lb.min(), top.max()
        if log_tail(a).max() <= _LOG_TAIL:
            b = a
        while b - a > 1e-9 * (abs(a) + abs(b) + 1.0):
            mid = 0.5 * (a + b)
            a, b = (a, mid) if log_tail(mid).max() <= _LOG_TAIL else (mid, b)
        cut = max(cut, b + tiny)
        lt = log_tail(cut)
        for T, v in zip(pos, lt, strict=True):
            tail[Ts == T] = v
    return cut, tail


def _binned_logsumexp(idx, logw, nb):
    """``ln Σ exp(logw)`` over the entries of each bin ``0..nb-1`` (``-inf`` for empty bins)."""
    out = np.full(nb, -np.inf)
    if idx.size == 0:
        return out
    order = np.argsort(idx, kind="stable")
    idx, logw = idx[order], logw[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    m = np.maximum.reduceat(logw, starts)
    sums = np.add.reduceat(np.exp(logw - np.repeat(m, np.diff(np.r_[starts, idx.size]))), starts)
    out[idx[starts]] = m + np.log(sums)
    return out


def _logsumexp_np(a):
    m = np.max(a)
    if not np.isfinite(m):
        return m
    return m + np.log(np.sum(np.exp(a - m)))


#: the smallest padded number of levels of :func:`_thermo_kernel`
_THERMO_MIN = 1024


@jax.jit
def _thermo_kernel(E, log_g, m2, m4, m1, mask, T, N):
    """Canonical averages over the levels ``E`` (weights ``g e^{-E/T}``) at one temperature."""
    E0 = jnp.min(jnp.where(mask, E, jnp.inf))
    dE = jnp.where(mask, E - E0, 0.0)
    scale = jnp.max(jnp.abs(jnp.where(mask, E, 0.0))) + 1.0
    Tpos = T > 0
    Ts = jnp.where(Tpos, T, 1.0)
    ground = mask & (dE <= 64 * EPS * scale)
    logw = jnp.where(Tpos, log_g - dE / Ts, jnp.where(ground, log_g, -jnp.inf))
    logw = jnp.where(mask, logw, -jnp.inf)
    lz = logsumexp(logw)
    p = jnp.exp(logw - lz)
    e1 = jnp.sum(p * dE)
    var = jnp.sum(p * (dE - e1) ** 2)
    mean = lambda v: jnp.sum(p * jnp.where(mask, v, 0.0))  # noqa: E731
    s2, s4, s1 = mean(m2), mean(m4), mean(m1)
    log_Z = jnp.where(Tpos, lz - E0 / Ts, jnp.nan)
    f = jnp.where(Tpos, -T * log_Z / N, E0 / N)
    energy = (E0 + e1) / N
    entropy = jnp.where(Tpos, (lz + e1 / Ts) / N, lz / N)
    cv = jnp.where(Tpos, var / (N * Ts * Ts), 0.0)
    return (f, energy, entropy, cv, 4.0 * s2 / N**2, 1.0 - s4 / (3.0 * s2 * s2), log_Z,
            2.0 * s1 / N)


def _thermo_point(prob: Problem, Ts, magnetization: bool, max_bytes):
    """Canonical thermodynamics of one parameter point at the temperatures ``Ts``:
    ``(out (8, n), log_tail (n,), status)``, ``out`` as in :func:`_thermo_kernel`."""
    lay, N = prob.lay, prob.lay.N
    lb, ub = block_bounds(prob)
    E0 = ground_level(prob, lb, ub) if np.any(Ts == 0) else None
    E_cut, log_tail = _choose_window(prob, lb, ub, Ts, E0)
    counts = per_block(prob, count_chunk, np.full(lay.dim.size, E_cut))
    if counts.sum() > 0.3 * lay.n_levels:
        guard(N, estimate_bytes(N, 1, magnetization), max_bytes, "the full spectrum")
        E, conv = solve_full(prob)
        lev = np.arange(E.size)
        log_tail = np.full(Ts.size, -np.inf)
    else:
        guard(N, window_bytes(lay, int(counts.sum())), max_bytes,
              "the levels below the energy window")
        lev, E, conv = solve_window(prob, E_cut, lb)
    if magnetization:
        m2, m4, m1 = level_observables(prob, lev, E)
    else:
        m2 = m4 = m1 = np.full(E.size, np.nan)
    # bucketed: one compilation for many window sizes; every window of up to _THERMO_MIN levels
    # shares one (the kernel is a reduction: padding costs microseconds, a compilation ~1 s)
    size = bucket(max(E.size, _THERMO_MIN))

    def pad(a, fill):
        out = np.full(size, fill, np.asarray(a).dtype)
        out[: a.size] = a
        return out

    args = (pad(E, 0.0), pad(lay.log_g[block_of(lay, lev)], 0.0), pad(m2, 0.0), pad(m4, 0.0),
            pad(m1, 0.0), pad(np.ones(E.size, bool), False))
    out = np.array([[float(r) for r in _thermo_kernel(*args, jnp.float64(T), float(N))]
                    for T in Ts]).T.reshape(8, Ts.size)
    return out, log_tail, point_status(conv)


def free_energy_state(model, couplings, N: int, h, T, *, magnetization: bool = True,
                      max_bytes: int | None = MAX_BYTES) -> FiniteSizeThermo:
    """Exact canonical thermodynamics of ``N`` spins of any collective-spin model (eqs. 7, 9).

    ``Z = Σ_S g(S) Σ_levels e^{-E/T}`` over the exact levels of ``H = N u(2Sᶻ/N) - 2h Sˣ``
    (:func:`spectrum_state`), summed with ``logsumexp`` over ``ln g(S) - E/T`` (stable for any
    ``N``, e.g. ``N = 10^4`` at low ``T``).  Only the levels that matter are computed: the energy
    cutoff is chosen so that the omitted levels weigh less than ``e^-40`` of ``Z`` at every
    requested ``T`` of a parameter point (a rigorous bound from certified bounds on the lowest
    level of every block, reported as ``log_tail``); at high ``T`` this is the whole spectrum.
    Magnetization moments are Hellmann-Feynman derivatives of the levels with respect to
    perturbations ``-t (Sᶻ)^j`` of the diagonal (no eigenvectors).  Cost: ``O(N²)`` row
    operations per count pass over all blocks, ``O(N³)`` for a full spectrum.

    Args:
        model: a :class:`jaxlmg.models.CollectiveSpinModel`.
        couplings: its couplings, leaves finite; broadcastable with ``h`` and ``T``.
        N: number of spins, integer ``>= 1``.
        h: transverse field ``>= 0``; T: temperature ``>= 0`` (``T = 0``: the ground state,
            degenerate levels averaged); energy units (``k_B = 1``); NumPy broadcasting.  One
            spectrum is computed per distinct ``(couplings, h)``.
        magnetization: also compute ``⟨Mz²⟩``, the Binder cumulant and ``⟨Mz⟩`` (one more
            sweep).
        max_bytes: memory limit of one spectrum (``ValueError`` with the estimate beyond it;
            checked before any large allocation).
    Returns:
        :class:`FiniteSizeThermo` with the broadcast shape of ``(couplings..., h, T)``.
    Raises:
        TypeError: ``model`` is not a model, or an argument is traced.
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range or not finite
            (named), or too much memory.
    """
    N = check_N(N)
    check_max_bytes(max_bytes)
    check("T", T, lower=0.0)
    g = grid(model, couplings, h, concrete("T", T))
    Tb = g.extra[0]
    guard(N, blocks_bytes(N, bool(model.z2_symmetric)), max_bytes, "the tables of every block")
    keys = np.stack([*g.leaves, g.h], axis=1)
    _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    out = np.full((8, g.h.size), np.nan)
    tail = np.full(g.h.size, -np.inf)
    status = np.zeros(g.h.size, np.int32)
    for u, i0 in enumerate(first):
        sel = np.flatnonzero(inv == u)
        prob = problem(model, g.couplings(i0), N, g.h[i0])
        out[:, sel], tail[sel], status[sel] = _thermo_point(prob, Tb[sel], magnetization,
                                                           max_bytes)
    if not magnetization:
        out[4:6] = out[7] = np.nan
    out[:, status != 0] = np.nan  # a level did not converge: no result (package convention)
    f, energy, entropy_, cv, mz2, binder, log_Z, mz = (
        jnp.asarray(o.reshape(g.shape)) for o in out)
    return FiniteSizeThermo(f=f, energy=energy, entropy=entropy_, specific_heat=cv, Mz2=mz2,
                            binder=binder, log_Z=log_Z,
                            log_tail=jnp.asarray(tail.reshape(g.shape)),
                            status=jnp.asarray(status.reshape(g.shape)), Mz=mz)


def free_energy(N: int, h, K, T, J=1.0, *, magnetization: bool = True,
                max_bytes: int | None = MAX_BYTES) -> FiniteSizeThermo:
    """Exact canonical thermodynamics of ``N`` spins (eqs. 7, 9), from the exact levels.

    :func:`free_energy_state` with ``LMG4()`` and ``LMGCouplings(J, K)``.
    ``Z = Σ_S g(S) Σ_levels e^{-E/T}`` is summed with ``logsumexp`` over ``ln g(S) - E/T``
    (stable for any ``N``, e.g. ``N = 10^4`` at low ``T``).  Only the levels that matter are
    computed: the energy cutoff is chosen so that the omitted levels weigh less than ``e^-40``
    of ``Z`` at every requested ``T`` of a parameter point (a rigorous bound from the lowest
    level of every block, reported as ``log_tail``); at high ``T`` this is the whole spectrum.

    Args:
        N: number of spins, integer ``>= 1``.
        h, K, T, J: transverse field ``>= 0``, 4-spin coupling ``>= 0``, temperature ``>= 0``
            (``T = 0``: the ground state, degenerate levels averaged), 2-spin coupling ``> 0``;
            energy units (``k_B = 1``); NumPy broadcasting.  One spectrum is computed per
            distinct ``(h, K, J)``.
        magnetization: also compute ``⟨Mz²⟩`` and the Binder cumulant (one more sweep).
        max_bytes: memory limit of one spectrum (``ValueError`` with the estimate beyond it;
            checked before any large allocation).
    Returns:
        :class:`FiniteSizeThermo` with the broadcast shape of ``(h, K, T, J)``.
    Raises:
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range or not finite
            (named), or too much memory.
    """
    N = check_N(N)
    check_lmg(h, K, J)
    return free_energy_state(LMG4(), LMGCouplings(J, K), N, h, T, magnetization=magnetization,
                             max_bytes=max_bytes)


# --------------------------------------------------------------------------- microcanonical


def _check_edges(eps_edges) -> np.ndarray:
    edges = np.asarray(concrete("eps_edges", eps_edges), np.float64)
    bad = edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges))
    if bad or np.any(np.diff(edges) <= 0):
        raise ValueError("eps_edges must be a 1-D increasing array of at least 2 finite edges "
                         f"(energy per spin); got {eps_edges!r}")
    return edges


def entropy_state(model, couplings, N: int, h, eps_edges, *,
                  max_bytes: int | None = MAX_BYTES) -> DensityOfStates:
    """Density of states (eqs. 8, 10), entropy per spin and microcanonical temperature of ``N``
    spins of any collective-spin model, on energy-per-spin bins.

    Every level ``E`` of sector ``S`` (:func:`spectrum_state`) counts ``g(S)`` states (summed in
    log space).  Only the levels below the last edge are computed.  The finite-N temperature
    comes from centred differences of ``σ = ln(count)/N`` between neighbouring bins (use bins
    wide enough to hold many levels: the level spacing is ``O(1)`` in total energy, ``O(1/N)``
    per spin).

    Args:
        model: a :class:`jaxlmg.models.CollectiveSpinModel`; couplings: its couplings (finite,
            broadcastable with ``h``).
        N: number of spins, integer ``>= 1``.
        h: transverse field ``>= 0`` (broadcastable).
        eps_edges: increasing 1-D finite bin edges of the energy per spin ``E/N``; bins are
            half-open, ``[e_j, e_{j+1})``.
        max_bytes: memory limit (checked before any large allocation).
    Returns:
        :class:`DensityOfStates`, shapes ``(*broadcast_shape, len(eps_edges) - 1)``.
    Raises:
        TypeError: ``model`` is not a model, or an argument is traced.
        ValueError: bad ``N``, parameters, edges (named), or too much memory.
    """
    N = check_N(N)
    check_max_bytes(max_bytes)
    edges = _check_edges(eps_edges)
    g = grid(model, couplings, h)
    guard(N, blocks_bytes(N, bool(model.z2_symmetric)), max_bytes, "the tables of every block")
    nb = edges.size - 1
    lc = np.full((g.h.size, nb), -np.inf)
    status = np.zeros(g.h.size, np.int32)
    for i in range(g.h.size):
        prob = problem(model, g.couplings(i), N, g.h[i])
        lay = prob.lay
        if edges[-1] * N >= prob.hi.max():
            guard(N, estimate_bytes(N), max_bytes, "the full spectrum")
            E, conv = solve_full(prob)
            lev = np.arange(E.size)
        else:  # bins are [e_j, e_j+1): the levels below N e_last
            lev, E, conv = solve_window(prob, edges[-1] * N, max_bytes=max_bytes)
        idx = np.searchsorted(edges, E / N, side="right") - 1
        inside = (idx >= 0) & (idx < nb)
        lc[i] = _binned_logsumexp(idx[inside], lay.log_g[block_of(lay, lev)][inside], nb)
        status[i] = point_status(conv)
    centers = 0.5 * (edges[1:] + edges[:-1])
    sigma = lc / N
    beta = np.full_like(sigma, np.nan)
    if nb >= 3:
        with np.errstate(invalid="ignore"):
            beta[:, 1:-1] = (sigma[:, 2:] - sigma[:, :-2]) / (centers[2:] - centers[:-2])
        beta[~np.isfinite(beta)] = np.nan
    with np.errstate(divide="ignore"):
        temp = 1.0 / beta
        log_density = lc - np.log(N * np.diff(edges))
    total = np.array([_logsumexp_np(r) for r in lc])
    shape = g.shape
    rs = lambda a: jnp.asarray(np.reshape(a, (*shape, nb)))  # noqa: E731
    return DensityOfStates(eps=rs(np.broadcast_to(centers, lc.shape)), log_count=rs(lc),
                           log_density=rs(log_density), entropy=rs(sigma), beta=rs(beta),
                           temperature=rs(temp), log_total=jnp.asarray(total.reshape(shape)),
                           status=jnp.asarray(status.reshape(shape)))


def entropy(N: int, h, K, eps_edges, J=1.0, *,
            max_bytes: int | None = MAX_BYTES) -> DensityOfStates:
    """Density of states (eqs. 8, 10), entropy per spin and microcanonical temperature of ``N``
    spins, on energy-per-spin bins: :func:`entropy_state` with ``LMG4()``, ``LMGCouplings(J, K)``.

    Every level ``E`` of sector ``S`` counts ``g(S)`` states (summed in log space).  Only the
    levels below the last edge are computed.  The finite-N temperature comes from centred
    differences of ``σ = ln(count)/N`` between neighbouring bins (use bins wide enough to hold
    many levels: the level spacing is ``O(1)`` in total energy, ``O(1/N)`` per spin).

    Args:
        N: number of spins, integer ``>= 1``.
        h, K, J: couplings as in :func:`spectrum` (broadcastable).
        eps_edges: increasing 1-D bin edges of the energy per spin ``E/N``; bins are
            half-open, ``[e_j, e_{j+1})``.
        max_bytes: memory limit.
    Returns:
        :class:`DensityOfStates`, shapes ``(*broadcast_shape, len(eps_edges) - 1)``.
    Raises:
        ValueError: bad ``N``, parameters, edges (named), or too much memory.
    """
    N = check_N(N)
    check_lmg(h, K, J)
    return entropy_state(LMG4(), LMGCouplings(J, K), N, h, eps_edges, max_bytes=max_bytes)
