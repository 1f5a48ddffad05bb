"""The Hamiltonian of one parameter point at finite ``N``, for any collective-spin model (eq. 4).

A :class:`~jaxlmg.models.CollectiveSpinModel` with interaction ``u(Mz)`` has, in the sector
``S`` (Dicke basis ``|S, m⟩``), the real symmetric tridiagonal matrix

    ``⟨m|H|m⟩ = D(m) = N u(2m/N)``,   ``⟨m+1|H|m⟩ = -h sqrt(S(S+1) - m(m+1))``

(``-2h Sˣ``; eq. 4 for :class:`~jaxlmg.models.LMG4`: ``D(m) = -(4J/N) m² - (16K/N³) m⁴``).
:func:`problem` tabulates ``D`` once per point (``N + 1`` values: the kernels read it row by
row) and bounds the spectrum of every block (Weyl: ``[min D - 2hS, max D + 2hS]`` over the rows
``|m| <= S`` of the sector).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .blocks import Layout, layout
from .kernel import Coef, table_size

__all__ = ["Problem", "problem", "classical_minimum"]

#: The field the kernels use at h = 0, relative to the energy scale (see :func:`problem`).
_TINY_FIELD = 1e-30
#: Smallest energy scale of a block (only a Hamiltonian that vanishes identically gets it).
_MIN_SCALE = 1e-100
#: Sectors per batch of the classical minimum (bounds its memory: batch x 1025 floats).
_BATCH = 4096


class Problem(NamedTuple):
    """One parameter point of ``N`` spins (host side): what every solver stage needs.

    Attributes:
        model, couplings, h: the point (``couplings`` with scalar leaves, ``h`` a float).
        lay: the blocks (:class:`.blocks.Layout`; parity blocks iff ``model.z2_symmetric``).
        coef: the device coefficients (:class:`.kernel.Coef`).
        lo, hi: per block, an interval strictly containing its spectrum (total energy).
        scale: per block, its energy scale (spectral width plus ``h`` and the diagonal's
            curvature at ``m = 0``), the unit of the solvers' tolerances.
        zero_point: a scale of the zero-point energy of a block (total energy), ``h`` plus the
            curvature term ``N |D(1) + D(-1) - 2D(0)| / 8``.
    """

    model: Any
    couplings: Any
    h: float
    lay: Layout
    coef: Coef
    lo: np.ndarray
    hi: np.ndarray
    scale: np.ndarray
    zero_point: float


def _diagonal(model, couplings, N: int, m) -> np.ndarray:
    """``D(m) = N u(2m/N)`` (NumPy float64) for the float array ``m``.

    ``Mz`` is passed as a NumPy array: the built-in models' polynomials stay in NumPy (no eager
    JAX dispatch or compilation); a model that calls ``jnp`` functions gets them converted.
    """
    x = 2.0 * np.asarray(m, np.float64) / N
    d = N * np.asarray(model.interaction(x, couplings), np.float64)
    if d.shape != np.shape(m) or not np.all(np.isfinite(d)):
        raise ValueError(f"model.interaction({type(model).__name__}) must return finite values "
                         f"of the shape of Mz on [-1, 1]; got {d.shape}, finite: "
                         f"{bool(np.all(np.isfinite(d)))} (couplings {couplings!r})")
    return d


def problem(model, couplings, N: int, h: float) -> Problem:
    """The :class:`Problem` of one point: the diagonal table and the bounds of every block.

    Args:
        model: a collective-spin model; ``couplings`` its couplings (scalars); ``N`` the number
            of spins; ``h`` the transverse field (``>= 0``).
    Raises:
        ValueError: the model's interaction is not finite on ``[-1, 1]``.
    """
    lay = layout(N, bool(model.z2_symmetric))
    m = np.arange(N + 1) - N / 2.0
    D = _diagonal(model, couplings, N, m)
    table = np.zeros(table_size(N))
    table[: N + 1] = D
    # the rows |m| <= S of a sector are the first 2S + 1 in order of |m|: running min and max
    order = np.argsort(np.abs(m), kind="stable")
    d_lo = np.minimum.accumulate(D[order])[lay.two_S]
    d_hi = np.maximum.accumulate(D[order])[lay.two_S]
    d1, d0, dm1 = _diagonal(model, couplings, N, np.array([1.0, 0.0, -1.0]))
    curv = abs(d1 + dm1 - 2.0 * d0) / 2.0  # 4J/N + 16K/N³ for LMG4
    hS = 2.0 * h * (lay.two_S / 2.0)
    scale = np.maximum((d_hi - d_lo) + hS + curv + h, _MIN_SCALE)  # H = 0 still has a unit
    margin = 1e-6 * scale
    # h = 0: the rows decouple (zero couplings), so a trial energy equal to a diagonal entry would
    # stall the Sturm recurrence at p = 0; a field of 1e-30 of the energy scale keeps every
    # coupling nonzero and moves the levels by ~1e-60 of the scale (second order): not at all
    h_dev = h if h > 0 else _TINY_FIELD * float(scale.max())
    return Problem(model=model, couplings=couplings, h=float(h), lay=lay,
                   coef=Coef(diag=table, h=np.float64(h_dev)), lo=d_lo - hS - margin,
                   hi=d_hi + hS + margin, scale=scale, zero_point=N * curv / 4.0 + h)


def classical_minimum(prob: Problem) -> np.ndarray:
    """Per block, ``min_θ [D(S cosθ) - 2hS sinθ]``: the classical (spin-coherent) energy minimum
    of its sector, on a grid of ``θ`` (``[0, π/2]`` for Z₂-symmetric models, else ``[0, π]``;
    spacing ``π/1024``).  A starting point only: :func:`.solvers.block_bounds` certifies."""
    lay = prob.lay
    N = lay.N
    two_S, inv = np.unique(lay.two_S, return_inverse=True)
    th = np.linspace(0.0, 0.5 * np.pi if lay.z2 else np.pi, 513 if lay.z2 else 1025)
    out = np.empty(two_S.size)
    for i in range(0, two_S.size, _BATCH):
        S = two_S[i: i + _BATCH, None] / 2.0
        mz = S * np.cos(th)[None, :]
        e = _diagonal(prob.model, prob.couplings, N, mz) - 2.0 * prob.h * S * np.sin(th)
        out[i: i + _BATCH] = e.min(axis=1)
    return out[np.asarray(inv).reshape(-1)]
