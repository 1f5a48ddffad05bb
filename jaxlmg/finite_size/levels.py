"""The public exact spectrum: every level of every block, or those below an energy window."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .blocks import block_of, layout
from .checks import (
    MAX_BYTES,
    check_N,
    check_params,
    concrete,
    estimate_bytes,
    guard,
    point_status,
    window_bytes,
)
from .kernel import make_coef
from .solvers import level_observables, solve_full, solve_window

__all__ = ["Spectrum", "spectrum"]


class Spectrum(NamedTuple):
    """Exact levels of ``H`` (eq. 4) at each parameter point.

    Levels are flat along the last axis: block after block (``S`` decreasing, the even parity
    block ``(|m⟩ + |-m⟩)/√2`` of a sector before the odd one), ascending inside a block.  Each
    level is ``g(S)``-fold degenerate in the ``2^N``-dimensional Hilbert space (eq. 6), so that
    ``Σ exp(log_g) = 2^N`` over a full spectrum.  Array shapes: the broadcast shape of
    ``(h, K, J)`` (and ``e_max``), then ``n`` levels.

    Attributes:
        energy: total energies ``E`` (energy units; ``E/N`` is the energy per spin); NaN where
            ``mask`` is False.
        log_g: ``ln g(S)`` of each level (eq. 6).
        two_S: ``2S`` of each level (int).
        parity: ``+1``/``-1``, the reflection ``Sᶻ → -Sᶻ`` eigenvalue in the sector's Dicke basis.
        mask: the level is computed (False only for padding of windowed spectra, ``e_max``).
        Sz2, Sz4: per-level ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩`` (``observables=True``; else ``None``).
        e_max: the energy-per-spin cutoff used (``inf``: full spectrum).
        status: :class:`jaxlmg.Status` per point (``NOT_CONVERGED`` if a level did not
            converge; such a level is the midpoint of its last bracket).
        N: number of spins.
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



def _point_spectrum(N, h, K, J, e_max, observables, max_bytes):
    """Levels of one point: ``(lev, E, conv, Sz2, Sz4)`` with flat level indices ``lev``."""
    coef = make_coef(N, float(h), float(K), float(J))
    if np.isfinite(e_max):
        lev, E, conv = solve_window(N, coef, float(e_max) * N, max_bytes=max_bytes)
        order = np.argsort(lev, kind="stable")
        lev, E, conv = lev[order], E[order], conv[order]
    else:
        E, conv = solve_full(N, coef)
        lev = np.arange(E.size)
    m2 = m4 = None
    if observables:
        m2, m4 = level_observables(N, coef, lev, E)
    return lev, E, conv, m2, m4


def spectrum(N: int, h, K, J=1.0, *, e_max=None, observables: bool = False,
             max_bytes: int | None = MAX_BYTES) -> Spectrum:
    """Exact spectrum of the extended LMG Hamiltonian for ``N`` spins (eqs. 1, 4-6).

    Every sector ``S`` and both parity blocks; level ``E`` of sector ``S`` has multiplicity
    ``g(S)`` (eq. 6).  Full float64 accuracy (a few ulps of the block's energy scale).

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
        ValueError: ``N`` not an integer ``>= 1``, a parameter out of range (named), or the
            memory estimate above ``max_bytes``.
    """
    N = check_N(N)
    h, K, J = check_params(h, K, J)
    em = np.inf if e_max is None else concrete("e_max", e_max)
    shape = np.broadcast_shapes(h.shape, K.shape, J.shape, np.shape(em))
    hb, Kb, Jb, eb = (np.broadcast_to(a, shape).reshape(-1) for a in (h, K, J, em))
    npts = max(1, hb.size)
    full = bool(np.all(np.isinf(eb)))
    if full:
        guard(N, estimate_bytes(N, npts, observables), max_bytes, "the full spectrum")
    lay = layout(N)
    pts = [_point_spectrum(N, *args, observables, max_bytes)
           for args in zip(hb, Kb, Jb, eb, strict=True)]
    n = lay.n_levels if full else max([p[0].size for p in pts] + [1])
    if not full:
        guard(N, window_bytes(lay, npts * n), max_bytes, "the windowed spectra")
    E = np.full((len(pts), n), np.nan)
    mask = np.zeros((len(pts), n), bool)
    lev_all = np.zeros((len(pts), n), np.int64)
    m2 = np.full((len(pts), n), np.nan) if observables else None
    m4 = np.full((len(pts), n), np.nan) if observables else None
    status = np.zeros(len(pts), np.int32)
    for i, (lev, e, conv, a, b) in enumerate(pts):
        c = lev.size
        E[i, :c], mask[i, :c], lev_all[i, :c] = e, True, lev
        if observables:
            m2[i, :c], m4[i, :c] = a, b
        status[i] = point_status(conv)
    if full:
        blk0 = np.repeat(np.arange(lay.dim.size), lay.dim)
        log_g = np.broadcast_to(lay.log_g[blk0], E.shape)
        two_S = np.broadcast_to(lay.two_S[blk0], E.shape)
        parity = np.broadcast_to(lay.parity[blk0].astype(np.int8), E.shape)
    else:
        blk = block_of(lay, lev_all)
        log_g, two_S, parity = lay.log_g[blk], lay.two_S[blk], lay.parity[blk].astype(np.int8)
    out = (E, log_g, two_S, parity, mask, m2, m4)
    out = [None if a is None else jnp.asarray(a).reshape(*shape, n) for a in out]
    return Spectrum(*out, e_max=jnp.asarray(np.broadcast_to(em, shape)),
                    status=jnp.asarray(status.reshape(shape)), N=N)
