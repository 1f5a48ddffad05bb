"""Dense references for the finite-N tests: collective operators on the full 2^N product basis,
built from Pauli matrices with NumPy only (independent of the package)."""

from __future__ import annotations

import numpy as np


def collective_operators(N: int):
    """``(Σσᶻ, Σσˣ)`` of ``N`` spins ½: the diagonal of ``Σσᶻ`` (``(2^N,)``) and the dense
    ``Σσˣ`` (``(2^N, 2^N)``)."""
    sz, sx = np.array([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
    Mz = np.zeros(2**N)
    X = np.zeros((2**N, 2**N))
    for site in range(N):
        left, right = 2**site, 2 ** (N - site - 1)
        Mz += np.kron(np.ones(left), np.kron(sz, np.ones(right)))
        X += np.kron(np.eye(left), np.kron(sx, np.eye(right)))
    return Mz, X
