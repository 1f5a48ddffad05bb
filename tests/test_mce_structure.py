"""Exact structure of σ(ε) (issue 12, item 2 and inputs 2-4): MCE jumps, non-concave intervals,
states of a temperature and the agreement codes, independent of any grid.

Right values of the issue inputs come from an independent 30-digit reference; the jumps next to
``K = J³/h²`` are compared with a reference written here (Brent's method on the entropy difference
of the paramagnet and the ordered state from the cubic of ``tests/test_mce_certified.py``).
"""

import numpy as np
import pytest
from test_mce_certified import jump_energy

import jaxlmg as jl
from jaxlmg.models import PSpin, PSpinCouplings

J = 1.0


def test_issue_input_2_mce_first_order():
    tr = jl.microcanonical_first_order(np.array([1.2, 1.0]), np.array([0.7, 1.001]))
    assert list(np.asarray(tr.status)) == [jl.Status.OK, jl.Status.OK]
    np.testing.assert_allclose(tr.eps, [-0.719994302787474, -0.49999993758584], rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(tr.Mz_below[0], 0.0533857, atol=1e-7)
    assert tr.Mz_above[0] == 0
    np.testing.assert_allclose([tr.temperature_below[0], tr.temperature_above[0]],
                               [1.73814659373, 1.73125257731], rtol=0, atol=1e-10)
    np.testing.assert_allclose(abs(tr.Mz_below[1] - tr.Mz_above[1]), 0.0158, atol=1e-4)


@pytest.mark.parametrize("n", [401, 801])
def test_issue_input_3_nonconcave_interval_does_not_depend_on_the_grid(n):
    h, K = 1.9197961844146372, 0.26
    rng = jl.energy_range(h, K)
    c = jl.entropy_curve(h, K, np.linspace(float(rng.eps_min), h, n))
    np.testing.assert_allclose(c.nonconcave, [[-1.8593497619176, -1.83897374301411]], rtol=0,
                               atol=1e-10)
    np.testing.assert_allclose(c.coexistence_temperature, [1.0], rtol=0, atol=1e-10)
    # every c < 0 interval lies inside the non-concave one
    for lo, hi in c.negative_specific_heat:
        assert c.nonconcave[0, 0] <= lo <= hi <= c.nonconcave[0, 1]


def test_issue_input_4_classical_limit():
    T = np.array([2.35, 2.5])
    for h in (0.0, 1e-3):
        a = jl.ensemble_agreement(h, 0.5, T)
        assert list(np.asarray(a.status)) == [0, 0]
        np.testing.assert_allclose(a.ce_energy, jl.canonical(h, 0.5, T).energy, rtol=0, atol=1e-9)
        assert list(np.asarray(a.code)) == [jl.Agreement.CE_FIRST_ORDER_MCE_CONTINUOUS,
                                            jl.Agreement.EQUIVALENT]
        assert list(np.asarray(a.n_mce_states)) == [3, 1]


def test_jumps_next_to_the_mce_tricritical_field():
    """K = J³/h² (1 + δ), δ from 1e-4 to 1e-1 (ΔMz down to ~5e-3): every jump is found, to 1e-10
    in energy; below K = J³/h² there is none.  (Closer, the reference's Brent bracket on a
    geometric energy grid no longer resolves the jump.)"""
    rng = np.random.default_rng(5)
    h = rng.uniform(0.7, 1.8, 16)
    delta = 10 ** np.linspace(-4, -1, 16)
    K = J**3 / h**2 * (1 + delta)
    tr = jl.microcanonical_first_order(h, K)
    ref = np.array([jump_energy("lmg4", hh, KK, (-hh * hh / 2 + 1e-15, 0.0))
                    for hh, KK in zip(h, K, strict=True)])
    assert np.all(np.asarray(tr.status) == jl.Status.OK)
    # (the reference's bracket scan misses a few; compare where it found the jump)
    found = np.isfinite(ref)
    assert found.sum() >= 12
    np.testing.assert_allclose(np.asarray(tr.eps)[found], ref[found], rtol=0, atol=1e-10)
    below = jl.microcanonical_first_order(h, J**3 / h**2 * (1 - delta))
    assert np.all(np.asarray(below.status) == jl.Status.NO_TRANSITION)


def test_states_of_a_temperature_have_that_temperature():
    rng = np.random.default_rng(8)
    n = 24
    h, K, T = rng.uniform(0.2, 2.5, n), rng.uniform(0.0, 1.2, n), rng.uniform(0.4, 2.5, n)
    sol = jl.microcanonical_at_temperature(h, K, T, max_solutions=5)
    assert np.all(np.asarray(sol.status) == jl.Status.OK)
    used = np.asarray(sol.state.status) == jl.Status.OK
    st = jl.microcanonical(np.broadcast_to(h[:, None], used.shape)[used],
                           np.broadcast_to(K[:, None], used.shape)[used],
                           np.asarray(sol.eps)[used])
    well = np.asarray(st.s) < 1 - 1e-5
    Tb = np.broadcast_to(T[:, None], used.shape)[used]
    np.testing.assert_allclose(np.asarray(st.temperature)[well], Tb[well], rtol=1e-9)
    # the canonical state is one of them
    ce = jl.canonical(h, K, T)
    dist = np.nanmin(np.abs(np.asarray(sol.eps) - np.asarray(ce.energy)[:, None]), axis=1)
    assert np.all(dist < 1e-9)


def test_pspin3_generic_functions():
    model, c = PSpin(3), PSpinCouplings(J)
    h = np.array([0.9, 1.0, 1.1])
    tr = jl.microcanonical_first_order_state(model, c, h)
    assert np.all(np.asarray(tr.status) == jl.Status.OK)
    lo = np.asarray(jl.energy_range_state(model, c, h).eps_min)
    ref = np.array([jump_energy("pspin", hh, None, (e + 1e-9, 0.0))
                    for hh, e in zip(h, lo, strict=True)])
    np.testing.assert_allclose(tr.eps, ref, rtol=0, atol=1e-10)
    # the states of the temperature of each side of the jump have that temperature
    T = np.asarray(tr.temperature_below)
    sol = jl.microcanonical_at_temperature_state(model, c, h, T)
    used = np.asarray(sol.state.status) == jl.Status.OK
    assert np.all(used.sum(axis=1) >= 1)
    np.testing.assert_allclose(np.asarray(sol.state.temperature)[used],
                               np.broadcast_to(T[:, None], used.shape)[used], rtol=1e-8)
    a = jl.ensemble_agreement_state(model, c, h, T)
    assert np.all(np.asarray(a.status) == jl.Status.OK)


def test_tiny_jumps_next_to_the_mce_tricritical_condition():
    """0 < K h²/J³ - 1 = δ <= 1e-6 (ΔMz ~ 1e-5 ... 1e-3): every jump is found and Mz_below is
    the exact root of the elimination cubic 2K²x³ + 5JKx² + 4J²x = h² - J³/K (x = Mz², its
    right side from the exact rational value of the inputs) to 1e-8, ε_t to 1e-10.  The
    residual's constant term is ~δ there, so a form that cancels to 1e-16 would be off by
    1e-16/δ (issue 12: such jumps were missed, or Mz_below was off by 2e-7)."""
    from fractions import Fraction

    rng = np.random.default_rng(12)
    h = rng.uniform(0.5, 1.9, 8)
    K = J**3 / h**2 * (1 + 10 ** np.linspace(-9.5, -6, 8))
    tr = jl.microcanonical_first_order(h, K)
    assert np.all(np.asarray(tr.status) == jl.Status.OK)
    for hh, KK, Mz, eps in zip(h, K, np.asarray(tr.Mz_below), np.asarray(tr.eps), strict=True):
        R = float(Fraction(hh) ** 2 - Fraction(J) ** 3 / Fraction(KK))
        x = R / (4 * J**2)
        for _ in range(60):  # Newton from the right (the left side is convex increasing)
            x -= (2 * KK**2 * x**3 + 5 * J * KK * x**2 + 4 * J**2 * x - R) / (
                6 * KK**2 * x**2 + 10 * J * KK * x + 4 * J**2)
        assert abs(Mz / np.sqrt(x) - 1) <= 1e-8, (hh, KK, Mz, np.sqrt(x))
        assert abs(eps + (J**2 + 4 * J * KK * x + 3 * KK**2 * x**2) / (2 * KK)) <= 1e-10


def test_entropy_curve_intervals_do_not_depend_on_the_grid():
    """Issue input 3 as a class: for random (h, K) with a canonical first-order transition, the
    non-concave interval, its temperature and the c < 0 intervals are the same (to 1e-10) on three
    different grids, and the double tangent joins the two lowest-free-energy stationary points of
    the canonical landscape at its temperature (a NumPy scan of the self-consistency, written in
    tests/test_mce_reference.py): equal free energies, energies at the interval's ends."""
    from test_mce_reference import X_GRID, lmg_self_consistency, scan_roots

    rng = np.random.default_rng(13)
    h = rng.uniform(0.3, 1.95, 5)
    K = rng.uniform(1.2, 4.0, 5) / h**2
    for hh, KK in zip(h, K, strict=True):
        e0 = float(jl.energy_range(hh, KK).eps_min)
        out = []
        for n, shift in ((301, 0.0), (601, 0.37), (1001, 0.11)):
            grid = np.linspace(e0, hh, n)
            grid[1:-1] += shift * (grid[1] - grid[0])
            c = jl.entropy_curve(hh, KK, grid)
            out.append([np.asarray(c.nonconcave), np.asarray(c.coexistence_temperature),
                        np.asarray(c.negative_specific_heat)])
        for other in out[1:]:
            for a, b in zip(out[0], other, strict=True):
                assert a.shape == b.shape, (hh, KK, out)
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
        (lo, hi), = out[0][0]
        Tc = out[0][1][0]
        # reference: the canonical stationary points at Tc, their energies and free energies
        _, x = scan_roots(lmg_self_consistency, X_GRID, tuple(np.array([v]) for v in (hh, KK, Tc)))
        x = np.concatenate([[0.0], x])
        cc = 2 * J + 4 * KK * x
        r = np.sqrt(hh**2 + x * cc**2)
        s = np.tanh(r / Tc)
        e = -J * x - KK * x**2 - hh * s * hh / r
        S = np.log(2) - 0.5 * ((1 + s) * np.log1p(s) + (1 - s) * np.log1p(-s))
        f = e - Tc * S
        two = np.argsort(f)[:2]
        np.testing.assert_allclose(f[two[0]], f[two[1]], rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.sort(e[two]), [lo, hi], rtol=0, atol=1e-8)
