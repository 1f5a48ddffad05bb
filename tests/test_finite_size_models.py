"""Model-generic finite N (issue 11): ``spectrum_state``, ``free_energy_state``, ``entropy_state``.

References, independent of the package's algorithm and of ``model.interaction``:

* dense diagonalization of the full ``2^N x 2^N`` Hamiltonian ``H = N u(Σσᶻ/N) - h Σσˣ`` built
  here from Kronecker products of Pauli matrices, with ``u`` written out in the test
  (``N <= 10``), with eigenvectors for the magnetization moments;
* LAPACK (``scipy.linalg.eigh_tridiagonal``) on every whole sector matrix (larger ``N``: the
  continuation in ``S`` on blocks without parity split);
* the canonical mean-field engine ``jaxlmg.canonical_state`` for ``N → ∞``.

Tolerances: 1e-10 absolute on levels (energies of order ``N``) and on free energies per spin;
both methods are accurate to ~1e-13 here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _dense import collective_operators
from scipy.linalg import eigh_tridiagonal

import jaxlmg as jl

fs = jl.finite_size

PSPIN3 = (jl.PSpin(3), jl.PSpinCouplings(J=1.0), lambda m: -(m**3))
LONGITUDINAL = (jl.LongitudinalLMG4(), jl.LongitudinalCouplings(J=1.0, K=0.3, b=0.2),
                lambda m: -(m**2) - 0.3 * m**4 - 0.2 * m)
MODELS = {"pspin3": PSPIN3, "longitudinal": LONGITUDINAL}


def dense_hamiltonian(N, h, u):
    """``N u(Σσᶻ/N) - h Σσˣ`` on the 2^N product basis, and the diagonal of ``Sᶻ = Σσᶻ/2``."""
    Mz, X = collective_operators(N)
    return np.diag(N * u(Mz / N)) - h * X, Mz / 2.0


CASES = [(name, N, h) for name in MODELS for N, h in
         [(1, 0.7), (2, 0.0), (3, 1.1), (4, 0.4), (5, 1.3), (6, 2.0), (7, 0.9), (8, 0.0), (9, 1.6),
          (10, 0.8)]]


@pytest.mark.parametrize("name,N,h", CASES)
def test_levels_and_free_energy_equal_dense_diagonalization(name, N, h):
    model, couplings, u = MODELS[name]
    H, Sz = dense_hamiltonian(N, h, u)
    w, v = np.linalg.eigh(H)
    sp = fs.spectrum_state(model, couplings, N, h)
    E = np.asarray(sp.energy)
    g = np.rint(np.exp(np.asarray(sp.log_g))).astype(np.int64)
    assert g.sum() == 2**N and np.all(np.asarray(sp.parity) == 0)  # whole sectors: no Z2
    np.testing.assert_allclose(np.sort(np.repeat(E, g)), w, rtol=0, atol=1e-10)
    assert int(sp.status) == jl.Status.OK
    # canonical: f = -T/N ln Tr e^{-H/T}, and the magnetization moments from the eigenvectors
    Ts = np.array([0.05, 0.4, 1.0, 3.0])
    th = fs.free_energy_state(model, couplings, N, h, Ts)
    p2 = (v**2).T
    for i, T in enumerate(Ts):
        lw = -(w - w[0]) / T
        lz = math.log(np.sum(np.exp(lw))) - w[0] / T
        p = np.exp(-w / T - lz)
        sz1, sz2, sz4 = p @ (p2 @ Sz), p @ (p2 @ Sz**2), p @ (p2 @ Sz**4)
        ref = {"f": -T * lz / N, "energy": p @ w / N, "Mz": 2 * sz1 / N, "Mz2": 4 * sz2 / N**2,
               "binder": 1 - sz4 / (3 * sz2**2)}
        for key, value in ref.items():
            got = float(np.asarray(getattr(th, key))[i])
            assert abs(got - value) < 1e-10, (name, N, h, T, key, got, value)
    assert np.all(np.asarray(th.status) == jl.Status.OK)


@pytest.mark.parametrize("name", list(MODELS))
def test_ground_state_and_density_of_states_equal_dense(name):
    model, couplings, u = MODELS[name]
    N, h = 9, 0.8
    w = np.linalg.eigvalsh(dense_hamiltonian(N, h, u)[0])
    th = fs.free_energy_state(model, couplings, N, h, 0.0)
    assert abs(float(th.f) - w[0] / N) < 1e-12
    edges = np.linspace(w[0] / N - 0.05, w[-1] / N + 0.05, 9)
    dos = fs.entropy_state(model, couplings, N, h, edges)
    counts, _ = np.histogram(w / N, edges)
    got = np.asarray(dos.log_count)
    assert np.array_equal(np.isfinite(got), counts > 0)
    np.testing.assert_allclose(got[counts > 0], np.log(counts[counts > 0]), rtol=0, atol=1e-12)
    assert abs(float(dos.log_total) - N * math.log(2)) < 1e-12


def test_per_level_magnetization_equals_eigenvectors():
    """Hellmann-Feynman ⟨Sᶻ⟩, ⟨(Sᶻ)²⟩ of each level (no eigenvectors) against eigenvectors,
    summed over groups of (numerically) degenerate levels: basis independent."""
    model, couplings, u = LONGITUDINAL
    N, h = 8, 0.9
    H, Sz = dense_hamiltonian(N, h, u)
    w, v = np.linalg.eigh(H)
    p2 = (v**2).T
    sp = fs.spectrum_state(model, couplings, N, h, observables=True)
    g = np.rint(np.exp(np.asarray(sp.log_g))).astype(np.int64)
    order = np.argsort(np.repeat(np.asarray(sp.energy), g), kind="stable")
    groups = np.cumsum(np.r_[True, np.diff(w) > 1e-8])
    for ours, ref in ((sp.Sz, p2 @ Sz), (sp.Sz2, p2 @ Sz**2), (sp.Sz4, p2 @ Sz**4)):
        ours = np.repeat(np.asarray(ours), g)[order]
        np.testing.assert_allclose(np.bincount(groups, ours), np.bincount(groups, ref),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,N,h", [("pspin3", 600, 1.1), ("longitudinal", 601, 0.9)])
def test_whole_sector_spectrum_equals_lapack(name, N, h):
    """Large enough for the continuation in S on whole sectors (no parity split)."""
    model, couplings, u = MODELS[name]
    sp = fs.spectrum_state(model, couplings, N, h)
    E, two_S = np.asarray(sp.energy), np.asarray(sp.two_S)
    for tS in range(N, -1, -2):
        S = tS / 2
        m = np.arange(-S, S + 1)
        d = N * u(2 * m / N)
        e = -h * np.sqrt(S * (S + 1) - m[:-1] * (m[:-1] + 1))
        ref = eigh_tridiagonal(d, e, eigvals_only=True) if d.size > 1 else d
        np.testing.assert_allclose(np.sort(E[two_S == tS]), ref, rtol=0, atol=1e-12 * N)
    assert int(sp.status) == jl.Status.OK


def test_pspin2_equals_lmg4_without_quartic_term():
    """PSpin(2) is Z2-symmetric: parity blocks, the same levels as LMG4 with K = 0."""
    N, h = 300, 1.3
    a = fs.spectrum_state(jl.PSpin(2), jl.PSpinCouplings(J=0.8), N, h)
    b = fs.spectrum(N, h, 0.0, 0.8)
    assert np.array_equal(np.asarray(a.parity), np.asarray(b.parity))
    np.testing.assert_allclose(np.asarray(a.energy), np.asarray(b.energy), rtol=0, atol=1e-12 * N)


def test_lmg4_functions_are_the_state_forms():
    N, h, K, J = 40, 1.2, 0.3, 0.9
    a = fs.free_energy(N, h, K, [0.0, 0.5], J)
    b = fs.free_energy_state(jl.LMG4(), jl.LMGCouplings(J, K), N, h, [0.0, 0.5])
    for key in ("f", "energy", "entropy", "specific_heat", "Mz2", "binder", "log_Z"):
        np.testing.assert_array_equal(np.asarray(getattr(a, key)), np.asarray(getattr(b, key)))
    assert np.all(np.asarray(a.Mz) == 0.0)  # Z2: <Mz> = 0 exactly
    # J = 0, the pure 4-spin model, is a model-generic point (LMG4's wrapper keeps J > 0)
    th = fs.free_energy_state(jl.LMG4(), jl.LMGCouplings(0.0, 1.0), 6, 0.5, 0.7)
    w = np.linalg.eigvalsh(dense_hamiltonian(6, 0.5, lambda m: -(m**4))[0])
    assert abs(float(th.f) + 0.7 * math.log(np.sum(np.exp(-(w - w[0]) / 0.7))) / 6
               - w[0] / 6) < 1e-12


def test_batched_couplings_equal_a_loop():
    model = jl.LongitudinalLMG4()
    bs = np.array([-0.2, 0.0, 0.3])
    th = fs.free_energy_state(model, jl.LongitudinalCouplings(1.0, 0.3, bs[:, None]), 10,
                              np.array([0.5, 1.5]), 0.6)
    assert th.f.shape == (3, 2)
    for i, b in enumerate(bs):
        for j, h in enumerate((0.5, 1.5)):
            one = fs.free_energy_state(model, jl.LongitudinalCouplings(1.0, 0.3, b), 10, h, 0.6)
            assert float(th.f[i, j]) == float(one.f) and float(th.Mz[i, j]) == float(one.Mz)
    # b -> -b mirrors the magnetization
    np.testing.assert_allclose(np.asarray(th.Mz[0]),
                               -np.asarray(fs.free_energy_state(
                                   model, jl.LongitudinalCouplings(1.0, 0.3, 0.2), 10,
                                   np.array([0.5, 1.5]), 0.6).Mz), rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- N → ∞


@pytest.mark.slow
@pytest.mark.parametrize("name,h,T", [("pspin3", 1.5, 0.5), ("pspin3", 0.3, 0.3),
                                      ("longitudinal", 1.0, 0.5)])
def test_free_energy_converges_to_the_mean_field(name, h, T):
    """Away from transitions (a paramagnet, and ordered states whose metastable minimum lies
    O(1) higher in f: its weight is e^{-N Δf/T}) the error decreases monotonically, and at
    N = 1600 it is below T ln N / N: the exact Z is a sum over O(N) sectors and O(N) levels of a
    Laplace-type integrand e^{-N f(m)/T} whose prefactors are powers of N, so f_N - f_MF =
    T (a ln N + b)/N with a, b = O(1) (a = 1/2 for one Gaussian integral over the collective
    coordinate: the :func:`extrapolate` form); the bound allows |a ln N + b| <= ln N.  (Measured:
    T (0.005 ... 0.5)/N.)"""
    model, couplings, _ = MODELS[name]
    mf = jl.canonical_state(model, couplings, h, T)
    assert int(mf.status) == jl.Status.OK
    Ns = [100, 400, 1600]
    err = [abs(float(fs.free_energy_state(model, couplings, n, h, T, magnetization=False).f)
               - float(mf.f)) for n in Ns]
    assert err[0] > err[1] > err[2], err
    assert err[2] < T * math.log(Ns[2]) / Ns[2], err


def test_smooth_microcanonical_beta_of_an_exponential_count():
    """The figure's smooth β (panel c): for levels E_i = i whose cumulative count is exactly
    e^{β E} (ln 𝒩 linear), the Gaussian-smoothed derivative is β (unit-spaced samples of a
    Gaussian of width 4 sum to 1 within 1e-12); and it does not depend on the level order."""
    from jaxlmg.figures.finite_size import smooth_beta

    beta, n = 0.7, 400
    E = np.arange(n, dtype=float)
    log_g = beta * E + np.log1p(-np.exp(-beta))
    log_g[0] = 0.0  # 𝒩(0) = 1
    perm = np.random.default_rng(1).permutation(n)
    eps = np.linspace(0.1, 0.9, 9)  # E = N ε with N = 400: far from both ends
    got = smooth_beta(E[perm], log_g[perm], np.ones(n, bool), n, eps, sigma_E=4.0)
    np.testing.assert_allclose(got, beta, rtol=1e-12)
