"""Exact phase boundaries: critical line, tricritical points, canonical coexistence line.

References are exact conditions (the root of h/(2J) = tanh(h/T) by an independent scipy solve,
b2 = b4 = 0 evaluated by the engine's own autodiff and by the closed forms that eqs. (29) and
(35) give exactly at b2 = 0), equal free energies, finite differences and Clausius-Clapeyron;
the paper's low-T formulas (32), (39) are compared only asymptotically.
"""

import jax
import numpy as np
import pytest
from scipy.optimize import brentq

import jaxlmg as jl

TS = np.array([0.05, 0.2, 0.5, 0.8, 1.0, 1.3, 1.6, 1.9, 1.99])


def hc_reference(T, J=1.0):
    return brentq(lambda h: h / (2 * J) - np.tanh(h / T), 1e-12, 2 * J, xtol=1e-15, rtol=1e-15)


def test_critical_field_matches_independent_root():
    for J in (1.0, 0.7):
        hc = np.asarray(jl.critical_field(TS * J, J))
        ref = np.array([hc_reference(t * J, J) for t in TS])
        # 1e-12 relative: the root is well conditioned away from T -> 2J.
        np.testing.assert_allclose(hc, ref, rtol=1e-12)
    assert np.asarray(jl.critical_field(0.0)) == 2.0
    # T = 2J is the closed end of the line (its limit, 0); above it there is none.
    assert np.asarray(jl.critical_field(2.0)) == 0.0
    assert np.all(np.isnan(np.asarray(jl.critical_field(np.array([2.0 + 1e-12, 3.0])))))


@pytest.mark.parametrize("ensemble", ["canonical", "microcanonical"])
def test_tricritical_points_zero_both_landau_coefficients(ensemble):
    tc = jl.tricritical(TS, ensemble)
    assert np.all(np.asarray(tc.status) == jl.Status.OK)
    lc = jl.landau_coefficients(tc.h, tc.K, TS, ensemble=ensemble)
    assert np.max(np.abs(np.asarray(lc.b2))) < 1e-10
    assert np.max(np.abs(np.asarray(lc.b4))) < 1e-10
    t0 = jl.tricritical(0.0, ensemble)
    assert float(t0.h) == pytest.approx(2.0, abs=1e-14)
    assert float(t0.K) == pytest.approx(0.25, abs=1e-14)
    bad = jl.tricritical(np.array([2.0 + 1e-12, 2.5]), ensemble)
    assert np.all(np.isnan(np.asarray(bad.K)))
    assert np.all(np.asarray(bad.status) == jl.Status.NO_TRANSITION)


def test_tricritical_closed_forms_and_ensemble_ordering():
    # At b2 = 0, s0 = h/(2J); eq. (35) gives K_MCE = J/(4 s0^2) exactly and eq. (29) gives
    # K_CE = J/(4 s0^2) - beta J^2 (1 - s0^2)/(2 s0^2) exactly (only s0's low-T form is
    # approximate).
    ce, mce = jl.tricritical(TS, "canonical"), jl.tricritical(TS, "microcanonical")
    np.testing.assert_allclose(np.asarray(ce.h), np.asarray(mce.h), rtol=1e-14)
    s0 = np.asarray(ce.h) / 2.0
    np.testing.assert_allclose(np.asarray(mce.K), 1 / (4 * s0**2), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ce.K), 1 / (4 * s0**2) - (1 - s0**2) / (2 * TS * s0**2),
                               rtol=1e-11)
    # Strictly lower wherever the difference (~ e^{-4J/T}) is representable in float64.
    resolvable = np.exp(-4 / TS) > 1e-12
    assert np.all(np.asarray(ce.K)[resolvable] < np.asarray(mce.K)[resolvable])
    assert np.all(np.asarray(ce.K) <= np.asarray(mce.K))


def test_low_temperature_asymptotics_and_eq32_correction():
    T = np.array([0.6, 0.5, 0.4, 0.3])
    beta, x = 1 / T, np.exp(-4 / T)
    K_ce = np.asarray(jl.tricritical(T, "canonical").K)
    K_mce = np.asarray(jl.tricritical(T, "microcanonical").K)
    eq32 = 0.25 - 2 * beta * x
    eq39 = 0.25 + x
    # Relative to the leading correction, eq. (39) becomes exact; eq. (32) misses +J e^{-4 beta J}.
    r_mce = np.abs(K_mce - eq39) / x
    assert np.all(np.diff(r_mce) < 0) and r_mce[-1] < 0.05
    corrected = np.abs(K_ce - (eq32 + x)) / (beta * x)
    assert np.all(np.diff(corrected) < 0) and corrected[-1] < 0.05
    # and without the correction the gap does not close relative to e^{-4 beta J}:
    assert np.all(np.abs((K_ce - eq32) / x - 1.0) < 0.3)


def test_tricritical_exponents():
    T = 0.8
    tc = jl.tricritical(T)
    for K, expected in ((float(tc.K), 0.25), (float(tc.K) - 0.05, 0.5)):
        hc = float(jl.critical_field(T))
        d = np.array([1e-4, 1e-6])
        Mz = np.asarray(jl.canonical(hc * (1 - d), K, T).Mz)
        slope = np.diff(np.log(Mz)) / np.diff(np.log(d))
        assert slope[0] == pytest.approx(expected, abs=0.02)


def test_gradients_match_finite_differences():
    def fd(f, x, eps=1e-6):
        return (f(x + eps) - f(x - eps)) / (2 * eps)

    checks = [
        (lambda T: jl.critical_field(T), 0.9),
        (lambda J: jl.critical_field(1.0, J), 1.2),
        (lambda T: jl.tricritical(T).K, 0.9),
        (lambda T: jl.tricritical(T, "microcanonical").K, 0.9),
    ]
    for f, x in checks:
        g = float(jax.grad(f)(x))
        assert g == pytest.approx(float(fd(f, x)), rel=1e-6)
    # First-order line: one forward-mode Jacobian in (K, T, J) (one compilation).
    p0 = np.array([0.5, 0.5, 1.0])
    line = lambda p: jl.first_order_field(p[0], p[1], p[2])  # noqa: E731
    jac = np.asarray(jax.jacfwd(line)(p0))
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-6
        fd_i = (float(line(p0 + e)) - float(line(p0 - e))) / 2e-6
        assert jac[i] == pytest.approx(fd_i, rel=1e-6)


def test_coexistence_equal_free_energy_and_clausius_clapeyron():
    K, T = 0.5, 0.5
    c = jl.coexistence(K, T)
    assert int(c.status) == jl.Status.OK
    h = float(c.h)
    f_ferro = float(c.energy) - T * float(c.entropy)
    f_para = float(c.energy_para) - T * float(c.entropy_para)
    assert f_ferro == pytest.approx(f_para, abs=1e-12)
    # Two local minima on both sides, and the global one switches.
    lo, hi = jl.canonical(h - 1e-3, K, T), jl.canonical(h + 1e-3, K, T)
    assert int(lo.n_minima) == 2 and int(hi.n_minima) == 2
    assert float(lo.Mz) > 0.1 and float(hi.Mz) == 0.0
    # Spinodals bracket the coexistence field.
    assert float(c.para_spinodal) < h < float(c.ferro_spinodal)
    # Clausius-Clapeyron: dh/dT = -(S_f - S_p)/(Mx_f - Mx_p).
    slope = float(jax.jacfwd(lambda p: jl.first_order_field(p[0], p[1], p[2]))(
        np.array([K, T, 1.0]))[1])
    cc = -(float(c.entropy) - float(c.entropy_para)) / (float(c.Mx) - float(c.Mx_para))
    assert slope == pytest.approx(cc, rel=1e-8)


def test_ground_state_first_order_line_and_continuous_region():
    K = np.array([0.1, 0.2, 0.3, 0.5, 1.0])
    h1 = np.asarray(jl.first_order_field(K, 0.0))
    assert np.all(np.isnan(h1[:2]))
    # Against an independent T = 0 minimization over mz on a dense grid: at h1 the two
    # minima (mz = 0 and mz > 0) of e(mz) = -J mz^2 - K mz^4 - h sqrt(1 - mz^2) are degenerate.
    mz = np.linspace(0, 1, 200001)
    for k, h in zip(K[2:], h1[2:], strict=True):
        e = -mz**2 - k * mz**4 - h * np.sqrt(1 - mz**2)
        assert e.min() == pytest.approx(e[0], abs=1e-9)
        assert mz[np.argmin(e[1:]) + 1] > 0.1
    # Near the tricritical point the exact line approaches the leading expansion of eq. (17),
    # K = h/8 + sqrt(h (h - 2J) / 8) (for J = 1); the printed eq. (18) has 1/2 in place of
    # 1/sqrt(8) in front of the square root, and does not converge to the exact line.
    k = np.array([0.26, 0.2525, 0.2501])
    h = np.asarray(jl.first_order_field(k, 0.0))
    rel = np.abs(h / 8 + np.sqrt(h * (h - 2) / 8) - k) / (k - 0.25)
    assert np.all(np.diff(rel) < 0) and rel[-1] < 0.01
    rel18 = np.abs(h / 8 + 0.5 * np.sqrt(h * (h - 2)) - k) / (k - 0.25)
    assert rel18[-1] > 0.3


def test_bad_input():
    with pytest.raises(ValueError, match="T"):
        jl.critical_field(-1.0)
    with pytest.raises(ValueError, match="J"):
        jl.tricritical(1.0, J=0.0)
    with pytest.raises(ValueError, match="ensemble"):
        jl.tricritical(1.0, "grand")
    with pytest.raises(ValueError, match="K"):
        jl.first_order_field(-0.1)
