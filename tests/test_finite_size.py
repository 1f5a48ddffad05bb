"""Exact finite-N thermodynamics (``jaxlmg.finite_size``, issue #6).

References used here are independent of the package's algorithm:

* dense diagonalization of the full ``2^N x 2^N`` Hamiltonian of eq. (1) built from Kronecker
  products of Pauli matrices (``N <= 10``), with eigenvectors for ``⟨(Sᶻ)²⟩``, ``⟨(Sᶻ)⁴⟩``;
* LAPACK (``scipy.linalg.eigh_tridiagonal``) on every full (not parity-split) sector matrix;
* exact integer arithmetic for the degeneracies ``g(S)`` (eq. 6);
* the canonical mean-field engine ``jaxlmg.canonical`` for ``N → ∞``.

Tolerances: levels and thermodynamic functions agree with dense diagonalization to 1e-10
(absolute, energies of order ``N``), the float64 accuracy of both methods being ~1e-13 here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _dense import collective_operators
from scipy.linalg import eigh_tridiagonal

import jaxlmg as jl

fs = jl.finite_size

# (N, h, K): even and odd N, h = 0 (diagonal blocks), K = 0 (plain LMG), the first-order region
BRUTE_CASES = [(1, 0.7, 0.2), (2, 1.0, 0.0), (3, 0.4, 0.9), (4, 0.0, 0.3), (5, 1.3, 0.4),
               (6, 2.5, 0.1), (7, 1.9, 0.3), (8, 0.0, 0.0), (9, 3.0, 0.6)]


def full_hamiltonian(N, h, K, J=1.0):
    """Eq. (1) on the 2^N product basis, and the diagonal of Sᶻ."""
    Mz, X = collective_operators(N)
    H = np.diag(-(J / N) * Mz**2 - (K / N**3) * Mz**4) - h * X
    return H, Mz / 2.0


@pytest.fixture(scope="module")
def brute():
    """Dense eigen-decompositions, cached for the module."""
    cache = {}

    def get(N, h, K):
        if (N, h, K) not in cache:
            H, Sz = full_hamiltonian(N, h, K)
            w, v = np.linalg.eigh(H)
            p2 = (v**2).T
            cache[N, h, K] = (w, p2 @ Sz**2, p2 @ Sz**4)
        return cache[N, h, K]

    return get


def sector_levels(N, h, K, J=1.0):
    """LAPACK levels of every full sector (no parity split), S decreasing, with ln g(S)."""
    sec = fs.sectors(N)
    out = []
    for tS, lg in zip(sec.two_S, sec.log_g, strict=True):
        S = tS / 2
        m = np.arange(-S, S + 1)
        d = -(4 * J / N) * m**2 - (16 * K / N**3) * m**4
        e = -h * np.sqrt(S * (S + 1) - m[:-1] * (m[:-1] + 1))
        w = eigh_tridiagonal(d, e, eigvals_only=True) if d.size > 1 else d
        out.append((S, lg, w))
    return out


# --------------------------------------------------------------------------- sectors, eq. (6)


def exact_degeneracies(N):
    """g(S) for S = N/2, N/2 - 1, ... from binomials updated in exact integer arithmetic."""
    c, prev, out = 1, 0, []
    for j in range(N // 2 + 1):
        if j:
            prev, c = c, c * (N - j + 1) // j
        out.append(c - prev)
    return out


@pytest.mark.parametrize("N", [*range(1, 41), 101, 1000, 10001])
def test_degeneracies_sum_to_2_pow_N_exactly(N):
    g = exact_degeneracies(N)
    two_S = fs.sectors(N).two_S
    assert sum((int(tS) + 1) * gi for tS, gi in zip(two_S, g, strict=True)) == 2**N
    for tS in (two_S[0], two_S[len(two_S) // 2], two_S[-1]):  # the public exact function
        assert fs.degeneracy(N, int(tS)) == g[(N - int(tS)) // 2]


@pytest.mark.parametrize("N", [1, 2, 7, 60, 2001, 10000])
def test_log_degeneracy_matches_exact_integers(N):
    sec = fs.sectors(N)
    exact = np.array([math.log(g) for g in exact_degeneracies(N)])
    np.testing.assert_allclose(sec.log_g, exact, rtol=1e-14, atol=1e-14)
    assert np.all(np.isfinite(sec.log_g))


# --------------------------------------------------------------------------- vs brute force


@pytest.mark.parametrize("N,h,K", [*BRUTE_CASES, (10, 1.9, 0.3)])
def test_spectrum_with_multiplicities_equals_dense_diagonalization(N, h, K, brute):
    w = brute(N, h, K)[0] if N < 10 else np.linalg.eigvalsh(full_hamiltonian(N, h, K)[0])
    sp = fs.spectrum(N, h, K)
    E = np.asarray(sp.energy)
    g = np.rint(np.exp(np.asarray(sp.log_g))).astype(np.int64)
    assert g.sum() == 2**N and bool(np.all(np.asarray(sp.mask)))
    np.testing.assert_allclose(np.sort(np.repeat(E, g)), w, rtol=0, atol=1e-10)
    assert int(sp.status) == jl.Status.OK


@pytest.mark.parametrize("N", [200, 201])
def test_zero_field_levels_are_the_diagonal(N):
    """h = 0: every block is diagonal, levels -(4J/N) m² - (16K/N³) m⁴ exactly (no couplings:
    the Sturm recurrence meets exact zeros of leading minors on the way)."""
    K = 0.3
    sp = fs.spectrum(N, 0.0, K)
    E, two_S, par = (np.asarray(a) for a in (sp.energy, sp.two_S, sp.parity))
    for tS in (N, N - 2, N - 10, N % 2):
        for P in (1, -1):
            sel = (two_S == tS) & (par == P)
            if not sel.any():
                continue
            S = tS / 2
            m = np.arange(S % 1 if P > 0 or N % 2 else 1.0, S + 1)  # m >= 0 of the block
            ref = np.sort(-(4.0 / N) * m**2 - (16.0 * K / N**3) * m**4)
            np.testing.assert_allclose(np.sort(E[sel]), ref, rtol=0, atol=1e-12 * N)
    assert int(sp.status) == jl.Status.OK


@pytest.mark.parametrize("N,h,K", BRUTE_CASES)
def test_thermodynamics_equal_dense_diagonalization(N, h, K, brute):
    w, sz2, sz4 = brute(N, h, K)
    Ts = np.array([0.0, 0.05, 0.3, 1.0, 4.0])
    th = fs.free_energy(N, h, K, Ts)
    for i, T in enumerate(Ts):
        if T > 0:
            lw = -(w - w[0]) / T
            lz = math.log(np.sum(np.exp(lw))) - w[0] / T
            p = np.exp(-w / T - lz)
        else:
            p = (w <= w[0] + 1e-9).astype(float)
            p /= p.sum()
        E = p @ w
        ref = {
            "f": -T * lz / N if T > 0 else w[0] / N,
            "energy": E / N,
            "entropy": (lz + E / T) / N if T > 0 else math.log(np.sum(w <= w[0] + 1e-9)) / N,
            "specific_heat": p @ (w - E) ** 2 / (N * T * T) if T > 0 else 0.0,
            "Mz2": 4 * (p @ sz2) / N**2,
            "binder": 1 - (p @ sz4) / (3 * (p @ sz2) ** 2),
        }
        for name, value in ref.items():
            got = float(np.asarray(getattr(th, name))[i])
            assert abs(got - value) < 1e-10, (N, h, K, T, name, got, value)
        if T > 0:
            assert abs(float(np.asarray(th.log_Z)[i]) - lz) < 1e-10 * max(1.0, abs(lz))


@pytest.mark.parametrize("J", [0.5, 2.0])
def test_other_J_equals_dense_diagonalization(J):
    N, h, K, T = 7, 0.8, 0.3, 0.7
    w, v = np.linalg.eigh(full_hamiltonian(N, h, K, J)[0])
    Sz = full_hamiltonian(N, h, K, J)[1]
    lw = -(w - w[0]) / T
    p = np.exp(lw) / np.exp(lw).sum()
    th = fs.free_energy(N, h, K, T, J)
    assert abs(float(th.f) - (w[0] - T * math.log(np.exp(lw).sum())) / N) < 1e-12
    assert abs(float(th.Mz2) - 4 * (p @ ((v**2).T @ Sz**2)) / N**2) < 1e-12


@pytest.mark.parametrize("N,h,K", [(6, 1.0, 0.2), (9, 1.9, 0.3), (9, 3.0, 0.6)])
def test_density_of_states_equals_dense_diagonalization(N, h, K, brute):
    w, _, _ = brute(N, h, K)
    edges = np.linspace(w[0] / N - 0.05, w[-1] / N + 0.05, 9)
    dos = fs.entropy(N, h, K, edges)
    counts, _ = np.histogram(w / N, edges)
    with np.errstate(divide="ignore"):
        ref = np.log(counts.astype(float))
    got = np.asarray(dos.log_count)
    assert np.array_equal(np.isfinite(got), counts > 0)
    np.testing.assert_allclose(got[counts > 0], ref[counts > 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dos.entropy), got / N)
    assert abs(float(dos.log_total) - N * math.log(2)) < 1e-12


def test_microcanonical_temperature_is_centred_difference():
    edges = np.linspace(-1.3, 1.3, 14)
    dos = fs.entropy(40, 1.0, 0.2, edges)
    s, eps = np.asarray(dos.entropy), np.asarray(dos.eps)
    beta = (s[2:] - s[:-2]) / (eps[2:] - eps[:-2])
    fin = np.isfinite(beta)
    np.testing.assert_allclose(np.asarray(dos.beta)[1:-1][fin], beta[fin])
    np.testing.assert_allclose(np.asarray(dos.temperature)[1:-1][fin], 1 / beta[fin])
    assert np.isnan(np.asarray(dos.beta)[0]) and np.isnan(np.asarray(dos.beta)[-1])


# --------------------------------------------------------------------------- larger N vs LAPACK


@pytest.mark.parametrize("N,h,K", [(600, 1.9, 0.3), (601, 0.5, 1.0), (640, 3.0, 0.0)])
def test_spectrum_equals_lapack_sector_by_sector(N, h, K):
    """Large enough for the continuation in S (blocks predicted from their neighbours)."""
    sp = fs.spectrum(N, h, K)
    E = np.asarray(sp.energy)
    two_S = np.asarray(sp.two_S)
    scale = N * (1.0 + K + h)
    for S, _, w in sector_levels(N, h, K):
        ours = np.sort(E[two_S == round(2 * S)])
        np.testing.assert_allclose(ours, w, rtol=0, atol=1e-13 * scale)
    assert int(sp.status) == jl.Status.OK


def test_windowed_spectrum_is_the_bottom_of_the_full_one():
    N, h, K, e_max = 301, 1.2, 0.4, -0.9
    full = fs.spectrum(N, h, K)
    win = fs.spectrum(N, h, K, e_max=e_max)
    E_full = np.asarray(full.energy)
    keep = E_full <= e_max * N
    m = np.asarray(win.mask)
    assert m.sum() == keep.sum()
    np.testing.assert_allclose(np.sort(np.asarray(win.energy)[m]), np.sort(E_full[keep]),
                               rtol=0, atol=1e-10)


def test_observables_match_eigenvectors(brute):
    N, h, K = 9, 1.3, 0.5
    w, sz2, sz4 = brute(N, h, K)
    sp = fs.spectrum(N, h, K, observables=True)
    g = np.rint(np.exp(np.asarray(sp.log_g))).astype(np.int64)
    E = np.repeat(np.asarray(sp.energy), g)
    order = np.argsort(E, kind="stable")
    # compare sums over (numerically) degenerate groups: basis independent
    for ours, ref in ((np.repeat(np.asarray(sp.Sz2), g)[order], sz2),
                      (np.repeat(np.asarray(sp.Sz4), g)[order], sz4)):
        groups = np.cumsum(np.r_[True, np.diff(w) > 1e-8])
        np.testing.assert_allclose(np.bincount(groups, ours), np.bincount(groups, ref),
                                   rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- large N, low T


def test_log_partition_function_at_N_10000_low_T():
    """ln Z of 10^4 spins (~2.8e5 at T = 0.05) against an independent sum over the lowest levels
    of the sectors S = N/2 - j, j < 6, from LAPACK: relative accuracy ~1e-15."""
    N, h, K = 10_000, 1.0, 0.2
    Ts = np.array([0.05, 0.2])
    th = fs.free_energy(N, h, K, Ts, magnetization=False)
    lz = np.asarray(th.log_Z)
    assert np.all(np.isfinite(lz)) and np.all(np.asarray(th.log_tail) <= -40)
    sec = fs.sectors(N)
    E0 = None
    terms = {T: [] for T in Ts}
    for j in range(6):
        S = N / 2 - j
        m = np.arange(-S, S + 1)
        d = -(4 / N) * m**2 - (16 * K / N**3) * m**4
        e = -h * np.sqrt(S * (S + 1) - m[:-1] * (m[:-1] + 1))
        if E0 is None:
            E0 = eigh_tridiagonal(d, e, eigvals_only=True, select="i", select_range=(0, 0))[0]
        w = eigh_tridiagonal(d, e, eigvals_only=True, select="v",
                             select_range=(E0 - 1.0, E0 + 60 * Ts.max()))
        for T in Ts:
            terms[T].append(sec.log_g[j] - (w - E0) / T)
    for i, T in enumerate(Ts):
        t = np.concatenate(terms[T])
        ref = t.max() + math.log(np.sum(np.exp(t - t.max()))) - E0 / T
        assert abs(lz[i] - ref) <= 1e-13 * abs(ref), (T, lz[i], ref)
        assert abs(float(np.asarray(th.f)[i]) + T * ref / N) < 1e-12


# --------------------------------------------------------------------------- N → ∞


@pytest.mark.parametrize("h,K,T", [(0.5, 0.2, 0.3), (3.0, 0.1, 1.0), (1.0, 0.0, 0.5)])
def test_free_energy_converges_to_mean_field(h, K, T):
    """Away from transitions: |f_N - f_MF| shrinks at least like ln N / N."""
    cmp = fs.mean_field_comparison([100, 400, 1600], h, K, T)
    d = np.abs(np.asarray(cmp.difference))
    scaled = np.abs(np.asarray(cmp.scaled))
    assert np.all(np.diff(d) < 0)
    assert d[-1] < 2e-3
    assert scaled[2] <= scaled[1] <= scaled[0]  # |Δf| N / ln N bounded (here: decreasing)
    # and the extrapolation lands on the mean field much closer than the largest N does
    assert abs(float(cmp.extrapolated.limit) - float(cmp.f_mean_field)) < 0.2 * d[-1]


def test_extrapolate_recovers_a_known_form():
    Ns = np.array([50.0, 100.0, 200.0, 400.0, 800.0])
    y = -1.25 + 0.7 * np.log(Ns) / Ns - 0.3 / Ns
    ex = fs.extrapolate(Ns, np.stack([y, 2 * y], axis=1))
    np.testing.assert_allclose(np.asarray(ex.limit), [-1.25, -2.5], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ex.coef)[:, 0], [-1.25, 0.7, -0.3], rtol=1e-9)
    assert float(np.max(ex.residual)) < 1e-12


# --------------------------------------------------------------------------- API behaviour


def test_batched_equals_loop_of_points():
    hs, Ks = np.array([0.5, 1.9]), np.array([0.0, 0.3])
    th = fs.free_energy(12, hs[:, None], Ks[None, :], 0.7)
    assert th.f.shape == (2, 2)
    for i, h in enumerate(hs):
        for j, K in enumerate(Ks):
            one = fs.free_energy(12, h, K, 0.7)
            assert float(th.f[i, j]) == float(one.f)
            assert float(th.binder[i, j]) == float(one.binder)
    sp = fs.spectrum(12, hs, 0.3)
    assert sp.energy.shape == (2, fs.blocks.layout(12).n_levels)
    one = fs.spectrum(12, 1.9, 0.3)
    np.testing.assert_array_equal(np.asarray(sp.energy[1]), np.asarray(one.energy))


def test_ground_state_energy_and_high_temperature_limit():
    N = 50
    th = fs.free_energy(N, 1.0, 0.2, [0.0, 1e4])
    E0 = min(w.min() for _, _, w in sector_levels(N, 1.0, 0.2))
    assert abs(float(th.f[0]) - E0 / N) < 1e-12
    assert abs(float(th.entropy[1]) - math.log(2)) < 1e-4  # all 2^N states equally likely


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", None, True])
def test_bad_N_is_rejected_with_its_range(bad):
    with pytest.raises(ValueError, match=r"N must be an integer in \[1, inf\)"):
        fs.free_energy(bad, 1.0, 0.2, 0.5)


@pytest.mark.parametrize("name,kwargs", [("h", dict(h=-1.0)), ("K", dict(K=-0.1)),
                                         ("T", dict(T=-0.5)), ("J", dict(J=0.0)),
                                         ("J", dict(J=-1.0))])
def test_bad_parameters_are_named(name, kwargs):
    args = dict(h=1.0, K=0.2, T=0.5, J=1.0) | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        fs.free_energy(8, args["h"], args["K"], args["T"], args["J"])


def test_too_large_N_is_refused_with_a_memory_estimate():
    with pytest.raises(ValueError, match=r"N = 1000000: the full spectrum needs about [0-9.]+ GiB"):
        fs.spectrum(1_000_000, 1.0, 0.2)
    assert fs.estimate_bytes(1_000_000) > 2**40


def test_bad_bins_and_forms_are_rejected():
    with pytest.raises(ValueError, match="eps_edges"):
        fs.entropy(8, 1.0, 0.2, [0.5, 0.1])
    with pytest.raises(ValueError, match="form"):
        fs.extrapolate([10, 20, 40], [1, 2, 3], form="exp")


def test_traced_inputs_are_refused():
    import jax

    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda h: fs.free_energy(8, h, 0.2, 0.5).f)(1.0)


def test_no_recompilation_across_sizes_and_points():
    """All device work runs on fixed-size chunks: new N or parameters reuse the compiled code."""
    kernels = [fs.stages.shared_chunk, fs.stages.refine_chunk, fs.stages.local_chunk,
               fs.kernel.count_chunk, fs.kernel.observables_chunk]
    fs.free_energy(700, 1.0, 0.2, [0.3, 2.0])
    fs.spectrum(700, 1.0, 0.2)
    before = [k._cache_size() for k in kernels]
    fs.free_energy(720, 1.3, 0.1, [0.2, 2.5])
    fs.spectrum(733, 0.9, 0.4)
    assert [k._cache_size() for k in kernels] == before


def test_cli_prints_table_and_mean_field(capsys):
    import argparse

    from jaxlmg._cli_finite_size import register, run

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["finite-size", "--N", "20", "40", "80", "--h", "0.5", "--K", "0.1",
                              "--T", "0", "0.3"])
    assert run(args) == 0
    out = capsys.readouterr().out
    th = fs.free_energy(40, 0.5, 0.1, 0.3)
    assert f"{float(th.f):.10f}" in out and "MF" in out and "N->inf" in out
    bad = parser.parse_args(["finite-size", "--N", "0"])
    assert run(bad) == 2
    assert "N must be an integer" in capsys.readouterr().err
