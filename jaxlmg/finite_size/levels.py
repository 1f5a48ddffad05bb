"""The public exact spectrum: every level of every block, or those below an energy window."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from ..models import LMG4, LMGCouplings
from .blocks import block_of, layout
from .checks import (
    MAX_BYTES,
    blocks_bytes,
    check_e_max,
    check_lmg,
    check_max_bytes,
    check_N,
    estimate_bytes,
    grid,
    guard,
    point_status,
    window_bytes,
)
from .hamiltonian import problem
from .solvers import level_observables, solve_full, solve_window

__all__ = ["Spectrum", "spectrum", "spectrum_state"]


class Spectrum(NamedTuple):
    """Exact levels of ``H`` (eq. 4) at each parameter point.

    Levels are flat along the last axis: block after block (``S`` decreasing; for a Z₂-symmetric
    model the even parity block ``(|m⟩ + |-m⟩)/√2`` of a sector before the odd one, otherwise the
    whole sector), ascending inside a block.  Each level is ``g(S)``-fold degenerate in the
    ``2^N``-dimensional Hilbert space (eq. 6), so that ``Σ exp(log_g) = 2^N`` over a full
    spectrum.  Array shapes: the broadcast shape of the parameters (``(h, K, J)`` for
    :func:`spectrum`; the couplings' leaves and ``h`` for :func:`spectrum_state`; and
    ``e_max``), then ``n`` levels.

    Attributes:
        energy: total energies ``E`` (energy units; ``E/N`` is the energy per spin); NaN where
            ``mask`` is False.
        log_g: ``ln g(S)`` of each level (eq. 6).
        two_S: ``2S`` of each level (int).
        parity: ``+1``/``-1``, the reflection ``Sᶻ → -Sᶻ`` eigenvalue in the sector's Dicke basis
            (``0`` for a model without Z₂ symmetry: whole sectors).
        mask: the level is computed (False only for padding of windowed spectra, ``e_max``).
        Sz2, Sz4: per-level ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩`` (``observables=True``; else ``None``).
        e_max: the energy-per-spin cutoff used (``inf``: full spectrum).
        status: :class:`jaxlmg.Status` per point (``NOT_CONVERGED`` if a level did not
            converge; such a level is the midpoint of its last bracket).
        N: number of spins.
        Sz: per-level ``⟨Sᶻ⟩`` (``observables=True``; exactly 0 for a Z₂-symmetric model).
    """

    energy: Any
    log_g: Any
    two_S: Any
    parity: Any
    mask: Any
    Sz2: Any
    Sz4: Any
    e_max: Any
    status: Any
    N: int
    Sz: Any = None


def _point_spectrum(prob, e_max, observables, max_bytes):
    """Levels of one point: ``(lev, E, conv, (Sz2, Sz4, Sz) or None)``, flat level indices
    ``lev``."""
    if np.isfinite(e_max):
        lev, E, conv = solve_window(prob, float(e_max) * prob.lay.N, max_bytes=max_bytes)
    else:
        E, conv = solve_full(prob)
        lev = np.arange(E.size)
    obs = level_observables(prob, lev, E) if observables else None
    return lev, E, conv, obs


def spectrum_state(model, couplings, N: int, h, *, e_max=None, observables: bool = False,
                   max_bytes: int | None = MAX_BYTES) -> Spectrum:
    """Exact spectrum of ``N`` spins of any collective-spin model (eqs. 4-6).

    ``H = N u(2Sᶻ/N) - 2h Sˣ``: in each sector ``S`` a tridiagonal matrix with diagonal
    ``N u(2M/N)`` (``M`` the ``Sᶻ`` eigenvalue) and off-diagonal ``-h sqrt(S(S+1) - M(M+1))``
    (:mod:`jaxlmg.finite_size.hamiltonian`).  A Z₂-symmetric model (``model.z2_symmetric``) is
    solved in parity blocks of dimension ``≈ S + 1``; otherwise each sector is one block of
    dimension ``2S + 1``.  Level ``E`` of sector ``S`` has multiplicity ``g(S)`` (eq. 6).  Full
    float64 accuracy (a few ulps of the block's energy scale).  Cost: about one sweep of
    ``O(dim)`` row operations per level, i.e. ``O(N³)`` in all (``O(N²)`` per count pass of an
    energy window).

    Args:
        model: a :class:`jaxlmg.models.CollectiveSpinModel` (e.g. ``PSpin(3)``).
        couplings: its couplings (e.g. ``PSpinCouplings(J=1.0)``), leaves finite, broadcastable.
        N: number of spins, integer ``>= 1`` (odd ``N``: half-integer ``S``).
        h: transverse field ``>= 0`` (energy units), broadcastable.
        e_max: only the levels with ``E/N <= e_max`` (energy per spin; broadcastable; ``+inf``
            or ``None``: all levels).
        observables: also return the per-level ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩``, ``⟨Sᶻ⟩`` (one more
            sweep; Hellmann-Feynman, no eigenvectors).
        max_bytes: refuse (``ValueError`` with the estimate) beyond this much memory; checked
            before any large allocation.
    Returns:
        :class:`Spectrum`, shapes ``(*broadcast_shape, n_levels)`` (see there for the order).
    Raises:
        TypeError: ``model`` is not a model, or an argument is traced.
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range or not finite
            (named), ``e_max`` NaN or ``-inf``, the model's interaction not finite, or the
            memory estimate above ``max_bytes``.
    """
    N = check_N(N)
    check_max_bytes(max_bytes)
    g = grid(model, couplings, h, check_e_max(e_max))
    z2 = bool(model.z2_symmetric)
    eb = g.extra[0]
    npts = max(1, g.h.size)
    full = bool(np.all(np.isinf(eb)))
    if full:
        guard(N, estimate_bytes(N, npts, observables), max_bytes, "the full spectrum")
    else:
        guard(N, blocks_bytes(N, z2), max_bytes, "the tables of every block")
    lay = layout(N, z2)
    pts = [_point_spectrum(problem(model, g.couplings(i), N, g.h[i]), eb[i], observables,
                           max_bytes) for i in range(g.h.size)]
    n = lay.n_levels if full else max([p[0].size for p in pts] + [1])
    if not full:
        guard(N, window_bytes(lay, npts * n), max_bytes, "the windowed spectra")
    E = np.full((len(pts), n), np.nan)
    mask = np.zeros((len(pts), n), bool)
    lev_all = np.zeros((len(pts), n), np.int64)
    obs = [np.full((len(pts), n), np.nan) if observables else None for _ in range(3)]
    status = np.zeros(len(pts), np.int32)
    for i, (lev, e, conv, o) in enumerate(pts):
        c = lev.size
        E[i, :c], mask[i, :c], lev_all[i, :c] = e, True, lev
        for dst, src in zip(obs, o or (), strict=False):
            dst[i, :c] = src
        status[i] = point_status(conv)
    if full:
        blk0 = np.repeat(np.arange(lay.dim.size), lay.dim)
        log_g = np.broadcast_to(lay.log_g[blk0], E.shape)
        two_S = np.broadcast_to(lay.two_S[blk0], E.shape)
        parity = np.broadcast_to(lay.parity[blk0].astype(np.int8), E.shape)
    else:
        blk = block_of(lay, lev_all)
        log_g, two_S, parity = lay.log_g[blk], lay.two_S[blk], lay.parity[blk].astype(np.int8)
    out = (E, log_g, two_S, parity, mask, *obs)
    out = [None if a is None else jnp.asarray(a).reshape(*g.shape, n) for a in out]
    return Spectrum(*out[:7], e_max=jnp.asarray(eb.reshape(g.shape)),
                    status=jnp.asarray(status.reshape(g.shape)), N=N, Sz=out[7])


def spectrum(N: int, h, K, J=1.0, *, e_max=None, observables: bool = False,
             max_bytes: int | None = MAX_BYTES) -> Spectrum:
    """Exact spectrum of the extended LMG Hamiltonian for ``N`` spins (eqs. 1, 4-6).

    :func:`spectrum_state` with ``LMG4()`` and ``LMGCouplings(J, K)``: every sector ``S`` and
    both parity blocks, diagonal ``-(4J/N) m² - (16K/N³) m⁴`` (eq. 4); level ``E`` of sector
    ``S`` has multiplicity ``g(S)`` (eq. 6).  Full float64 accuracy (a few ulps of the block's
    energy scale).

    Args:
        N: number of spins, integer ``>= 1`` (odd ``N``: half-integer ``S``).
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units, broadcastable arrays.
        e_max: only the levels with ``E/N <= e_max`` (energy per spin; broadcastable); default:
            all levels.
        observables: also return the per-level ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩`` (one more sweep).
        max_bytes: refuse (``ValueError`` with the estimate) beyond this much memory.
    Returns:
        :class:`Spectrum`, shapes ``(*broadcast_shape, n_levels)`` (see there for the order).
    Raises:
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range (named), ``e_max``
            NaN or ``-inf``, or the memory estimate above ``max_bytes``.
    """
    N = check_N(N)
    check_lmg(h, K, J)
    return spectrum_state(LMG4(), LMGCouplings(J, K), N, h, e_max=e_max,
                          observables=observables, max_bytes=max_bytes)
