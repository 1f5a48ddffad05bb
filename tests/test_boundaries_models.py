"""Model-generic phase boundaries and the canonical side's edges (issue 11, items 3 and 5).

References are independent: closed forms at T = 0 (the equal-energy conditions of
e(m) = u(m) - h sqrt(1 - m²), solved here analytically), mpmath roots, and a brute-force
minimization of f(s, mz) = u(s mz) - h s sqrt(1 - mz²) - T S(s) with scipy.
"""

import mpmath as mp
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

import jaxlmg as jl


def test_boundaries_at_the_closed_end_of_their_domain():
    # T = 2J closes the second-order line: h_c = 0 (the classical Curie point) ...
    assert float(jl.critical_field(2.0)) == 0.0
    assert float(jl.critical_field(1.4, J=0.7)) == 0.0
    # ... and the tricritical point is the classical 2+4 Curie-Weiss one, (h, K) = (0, J/6).
    for J in (1.0, 0.7):
        tc = jl.tricritical(2.0 * J, J=J)
        assert int(tc.status) == jl.Status.OK
        assert float(tc.h) == 0.0
        assert float(tc.K) == pytest.approx(J / 6, abs=1e-13)
    # The line approaches its end continuously (K_tcp - J/6 = O(2J - T)).
    near = jl.tricritical(np.array([2.0 - 1e-3, 2.0 - 1e-5]))
    gap = np.abs(np.asarray(near.K) - 1 / 6)
    assert gap[1] < gap[0] < 1e-2 and gap[1] < 1e-4
    # The microcanonical K = J/(4 s²) diverges as h -> 0; above 2J there is no line at all.
    assert int(jl.tricritical(2.0, "microcanonical").status) == jl.Status.NO_TRANSITION
    assert int(jl.tricritical(2.0 + 1e-9).status) == jl.Status.NO_TRANSITION
    # No second-order line: non-Z2 model, u''(0) = 0 (pure 4-spin, p = 4), T above the end.
    none = [jl.critical_field_state(jl.PSpin(3), jl.PSpinCouplings(1.0), 0.5),
            jl.critical_field_state(jl.PSpin(4), jl.PSpinCouplings(1.0), 0.5),
            jl.critical_field_state(jl.LMG4(), jl.LMGCouplings(0.0, 1.0), 0.5),
            jl.critical_field_state(jl.LMG4(), jl.LMGCouplings(1.0, 0.0), 2.5)]
    for c in none:
        assert np.isnan(float(c.h)) and int(c.status) == jl.Status.NO_TRANSITION


def test_tricritical_varying_another_coupling():
    # Solving b2 = b4 = 0 for J at the K of the (J = 1) tricritical point gives back J = 1.
    T = 0.8
    tc = jl.tricritical(T)
    st = jl.tricritical_state(jl.LMG4(), jl.LMGCouplings(0.9, float(tc.K)), T, vary="J")
    assert int(st.status) == jl.Status.OK
    assert float(st.K) == pytest.approx(1.0, abs=1e-10)  # (.K holds the varied coupling)
    assert float(st.h) == pytest.approx(float(tc.h), abs=1e-10)
    with pytest.raises(ValueError, match="vary"):
        jl.tricritical_state(jl.LMG4(), jl.LMGCouplings(1.0, 0.3), T, vary="b")


def test_coexistence_near_the_tricritical_point_is_exact():
    # T = 0: e(m) = -J m² - K m⁴ - h c, c = sqrt(1 - m²).  Equal energy with the paramagnet
    # (e = -h) at a stationary m gives c = (J + K y)/(J + 3 K y), y = m², and with c² = 1 - y:
    # 9K² y² + (6KJ - 8K²) y + J(J - 4K) = 0 (J = 1 here); h = c (2J + 4K y).
    K = 0.2501
    c1 = 6 * K - 8 * K**2
    y = 2 * (4 * K - 1) / (c1 + np.sqrt(c1**2 + 36 * K**2 * (4 * K - 1)))  # no cancellation
    c = (1 + K * y) / (1 + 3 * K * y)
    co = jl.coexistence(K, 0.0)
    assert int(co.status) == jl.Status.OK
    assert float(co.Mz) == pytest.approx(np.sqrt(y), abs=1e-10)  # 0.0199957513...
    assert float(co.h) == pytest.approx(c * (2 + 4 * K * y), abs=1e-12)


def _hc_mp(T, J=1):
    mp.mp.dps = 40
    return mp.findroot(lambda h: h / mp.tanh(h / T) - 2 * J,
                       mp.mpf(float(jl.critical_field(float(T), J))))


def _mz_below_hc(delta):
    # K = 0: b = 2J Mz and r = sqrt(h² + b²) solves the critical equation, so r = h_c and
    # Mz² = (h_c² - h²)/(2J)² exactly (for the float64 h actually passed).
    T = mp.mpf("1.9")
    hc = _hc_mp(T)
    h = float(hc - mp.mpf(delta))
    ref = mp.sqrt(hc**2 - mp.mpf(h) ** 2) / 2
    return float((mp.mpf(float(jl.canonical(h, 0.0, 1.9).Mz)) - ref) / ref)


def test_order_parameter_just_below_the_critical_field():
    # Measured: 2e-8 relative at 1e-8 below h_c (the float64 rounding of the stiffness
    # h coth(h/T) - 2J, ~4e-16, over its slope 0.26 at h_c, halved): within 1e-7.
    assert abs(_mz_below_hc(1e-8)) < 1e-7


@pytest.mark.parametrize("p, h1, mz", [(3, 3 * np.sqrt(3) / 4, np.sqrt(3) / 2),
                                       (4, 32 / 27, np.sqrt(8 / 9))])
def test_pspin_ground_state_first_order_field(p, h1, mz):
    model = jl.PSpin(p)
    # (J = 2 too: the field scales with the coupling)
    h = np.asarray(jl.first_order_field_state(model, jl.PSpinCouplings(np.array([1.0, 2.0])), 0.0))
    np.testing.assert_allclose(h, [h1, 2 * h1], rtol=0, atol=1e-12)
    co = jl.coexistence_state(model, jl.PSpinCouplings(1.0), 0.0)
    assert int(co.status) == jl.Status.OK
    assert float(co.h) == pytest.approx(h1, abs=1e-12)
    assert float(co.Mz) == pytest.approx(mz, abs=1e-10)
    assert float(co.Mz_para) == 0.0


def _entropy(s):
    p, q = (1 + s) / 2, (1 - s) / 2
    return -sum(x * np.log(x) if x > 0 else 0.0 for x in (p, q))


def _brute_first_order(p, T, lo, hi):
    """f(s, mz) = -(s mz)^p - h s sqrt(1 - mz²) - T S(s), nested bounded Brent minimizations:
    ordered branch mz in [0.3, 1], paramagnet mz = 0; brentq on their difference along h."""

    def f(s, mz, h):
        return -((s * mz) ** p) - h * s * np.sqrt(1 - mz * mz) - T * _entropy(s)

    def inner(mz, h):
        r = minimize_scalar(lambda s: f(s, mz, h), bounds=(0, 1), method="bounded",
                            options={"xatol": 1e-13})
        return r.fun

    def ordered(h):
        grid = np.linspace(0.3, 1.0, 71)
        k = int(np.argmin([inner(m, h) for m in grid]))
        a, b = grid[max(k - 1, 0)], grid[min(k + 1, 70)]
        return minimize_scalar(lambda m: inner(m, h), bounds=(a, b), method="bounded",
                               options={"xatol": 1e-12}).fun

    return brentq(lambda h: ordered(h) - inner(0.0, h), lo, hi, xtol=1e-12)


@pytest.mark.slow
def test_pspin_first_order_line_at_positive_temperature_against_brute_force():
    T = np.array([0.15, 0.4])
    line = np.asarray(jl.first_order_field_state(jl.PSpin(3), jl.PSpinCouplings(1.0), T))
    for t, h in zip(T, line, strict=True):
        ref = _brute_first_order(3, t, 0.5 * h, 1.5 * h)
        assert h == pytest.approx(ref, abs=1e-7)
    # Clausius-Clapeyron sign: the line bends down with temperature.
    assert line[1] < line[0] < 3 * np.sqrt(3) / 4


def test_pspin2_is_lmg4_without_the_four_spin_term():
    rng = np.random.default_rng(11)
    T = np.array([0.0, 0.3, 1.2, 1.9, 2.0])
    for J in (1.0, 0.6):
        a = np.asarray(jl.critical_field_state(jl.PSpin(2), jl.PSpinCouplings(J), T * J).h)
        np.testing.assert_allclose(a, np.asarray(jl.critical_field(T * J, J)), rtol=1e-14)
    # no tricritical point at K = 0: b4 > 0 on the whole line (even varying J)
    tc = jl.tricritical_state(jl.PSpin(2), jl.PSpinCouplings(1.0), np.array([0.3, 1.0]), "J")
    assert np.all(np.asarray(tc.status) == jl.Status.NO_TRANSITION)
    h, t, J = rng.uniform(0, 2.5, 40), rng.uniform(0, 2.2, 40), rng.uniform(0.3, 1.5, 40)
    ps = jl.canonical_state(jl.PSpin(2), jl.PSpinCouplings(J), h, t)
    lm = jl.canonical(h, 0.0, t, J)
    for name in ("Mz", "Mx", "s", "f"):
        np.testing.assert_allclose(np.asarray(getattr(ps, name)), np.asarray(getattr(lm, name)),
                                   rtol=1e-10, atol=1e-12)
