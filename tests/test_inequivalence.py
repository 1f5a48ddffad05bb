"""Ensemble inequivalence (issue #3): concave envelope, double tangents, the agreement map.

The canonical engine is independent of the microcanonical one (different variational problem,
eq. 19 vs eq. 16), so every agreement or disagreement asserted here is a cross-check.
"""

import numpy as np
import pytest
from scipy.optimize import brentq

import jaxlmg as jl
from jaxlmg._inequivalence import Agreement, ensemble_agreement, entropy_curve
from jaxlmg._microcanonical import energy_range, microcanonical
from jaxlmg._microcanonical_transitions import microcanonical_first_order

J = 1.0
T1 = 1.0
# The MCE (= CE) critical field at T = 1, eq. (25): h/(2J) = tanh(h/T), exact.
H_C = brentq(lambda h: h / (2 * J) - np.tanh(h / T1), 0.5, 2.0)


def grid(h, K, n=400):
    r = energy_range(h, K)
    return np.linspace(float(r.eps_min) + 1e-6, 0.0, n)


@pytest.fixture(scope="module")
def curves():
    # (H_C, 0.25): between the CE and MCE tricritical points at T = 1 (CE first order, MCE
    # continuous); (1.9, 0.6): beyond both (MCE first order too); (1.0, 0.1): equivalent.
    return {hk: entropy_curve(*hk, grid(*hk)) for hk in [(H_C, 0.25), (1.9, 0.6), (1.0, 0.1)]}


def test_concave_curve_has_no_inequivalence(curves):
    c = curves[(1.0, 0.1)]
    assert c.nonconcave.shape == (0, 2) and c.negative_specific_heat.shape == (0, 2)
    assert np.all(c.concave[c.status == 0]) and c.jump.status == jl.Status.NO_TRANSITION
    np.testing.assert_allclose(c.envelope, c.entropy, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hk", [(H_C, 0.25), (1.9, 0.6)])
def test_double_tangent_is_the_canonical_coexistence(curves, hk):
    """The non-concave interval is what the CE skips: at the slope temperature T_t the two CE
    states sit exactly at its ends (CE first-order jump with latent heat hi - lo)."""
    c = curves[hk]
    assert c.nonconcave.shape == (1, 2)
    (lo, hi), T_t = c.nonconcave[0], c.coexistence_temperature[0]
    ce = jl.canonical(*hk, np.array([T_t * (1 - 1e-9), T_t * (1 + 1e-9)]))
    # dε/dT is finite on both sides, so a 1e-9 step in T moves the CE energy by ~1e-9
    np.testing.assert_allclose(ce.energy, [lo, hi], rtol=0, atol=1e-7)
    inside = (c.eps > lo) & (c.eps < hi)
    assert inside.sum() > 2 and np.all(~c.concave[inside])
    assert np.all(c.entropy[inside] < c.envelope[inside])
    # the MCE has temperature T_t at both ends (equal slopes of the double tangent)
    st = microcanonical(*hk, np.array([lo, hi]))
    np.testing.assert_allclose(st.temperature, T_t, rtol=1e-9)


@pytest.mark.parametrize("hk", [(H_C, 0.25), (1.9, 0.6)])
def test_ce_skips_nonconcave_energies_but_agrees_outside(curves, hk):
    """MCE state at eps -> its temperature T(eps) -> CE state at T(eps): the same energy where
    sigma is concave, a different one (the CE jumps over eps) inside the non-concave interval."""
    c = curves[hk]
    st = microcanonical(*hk, c.eps)
    # T(eps) well conditioned (1 - s > 1e-5) and positive
    ok = (c.status == 0) & (1 - np.asarray(st.s) > 1e-5) & (c.beta > 0)
    ce = jl.canonical(hk[0], hk[1], np.where(ok, np.asarray(st.temperature), 1.0))
    lo, hi = c.nonconcave[0]
    margin = 1e-3 * (hi - lo)
    outside = ok & ((c.eps < lo - margin) | (c.eps > hi + margin))
    inside = ok & (c.eps > lo + margin) & (c.eps < hi - margin)
    assert outside.sum() > 100 and inside.sum() > 2
    np.testing.assert_allclose(np.asarray(ce.energy)[outside], c.eps[outside], rtol=0, atol=1e-9)
    assert np.all(np.abs(np.asarray(ce.energy)[inside] - c.eps[inside]) > 1e-4)


def test_ce_first_order_while_mce_continuous_with_negative_specific_heat(curves):
    """The paper's inequivalence (Fig. 2, eqs. 32, 39) at T = 1, K = 0.25, h = h_c(T)."""
    K = 0.25
    # CE along h at fixed T: the order parameter jumps (first order) near h_c
    hs = np.linspace(H_C - 0.1, H_C + 0.1, 401)
    Mz = np.asarray(jl.canonical(hs, K, T1).Mz)
    assert np.max(np.abs(np.diff(Mz))) > 0.1
    # MCE at fixed (h_c, K): continuous at the critical energy eps_c = -h_c²/(2J), where
    # T = 1 exactly (eq. 37: s = tanh(h/T) = h/(2J)), with negative specific heat below it
    eps_c = -H_C**2 / (2 * J)
    st = microcanonical(H_C, K, eps_c + np.array([-1e-4, -1e-6, -1e-8, 0.0, 1e-6]))
    Mz = np.asarray(st.Mz)
    assert np.all(Mz[:3] > 0) and np.all(np.diff(Mz[:4]) < 0) and np.all(Mz[3:] == 0)
    assert Mz[2] < 1e-3  # continuous: Mz -> 0 at eps_c
    np.testing.assert_allclose(st.temperature[3], T1, rtol=1e-13)
    assert np.all(st.specific_heat[:3] < 0) and np.all(st.specific_heat[3:] > 0)
    assert microcanonical_first_order(H_C, K).status == jl.Status.NO_TRANSITION
    c = curves[(H_C, K)]
    assert c.negative_specific_heat.shape == (1, 2)
    np.testing.assert_allclose(c.negative_specific_heat[0, 1], eps_c, rtol=0, atol=1e-9)
    # and the CE's first-order temperature at this h is above 1: at T = 1 the CE is still
    # ferromagnetic, while one of the MCE states of temperature 1 is the critical paramagnet
    assert c.coexistence_temperature[0] > T1


def test_mce_first_order_curve(curves):
    c = curves[(1.9, 0.6)]
    jump = c.jump
    assert jump.status == jl.Status.OK
    lo, hi = c.nonconcave[0]
    assert lo < jump.eps < hi  # the convex kink lies in the energy gap the CE skips
    assert jump.temperature_below > jump.temperature_above


def test_ensemble_agreement_codes():
    h = np.array([1.0, H_C, H_C, 1.9, 1.9, 2.5])
    K = np.array([0.1, 0.25, 0.25, 0.6, 0.6, 0.3])
    T = np.array([1.0, 1.0 - 1e-3, 1.004, 1.5, 1.0, 0.5])
    a = ensemble_agreement(h, K, T)
    assert list(np.asarray(a.status)) == [0] * 6
    expected = [Agreement.EQUIVALENT, Agreement.EQUIVALENT,
                Agreement.CE_FIRST_ORDER_MCE_CONTINUOUS, Agreement.MCE_TEMPERATURE_JUMP,
                Agreement.EQUIVALENT, Agreement.EQUIVALENT]
    assert list(np.asarray(a.code)) == [int(e) for e in expected]
    assert list(np.asarray(a.n_mce_states)) == [1, 1, 3, 2, 1, 1]
    assert list(np.asarray(a.negative_specific_heat)) == [False, False, True, False, False, False]
    # the CE state is one of the MCE states (the one of lowest e - T sigma) and it is jl.canonical
    np.testing.assert_allclose(a.ce_energy, jl.canonical(h, K, T).energy, rtol=0, atol=1e-9)
    # broadcasting: shapes follow the inputs, the MCE energies get a trailing axis
    b = ensemble_agreement(np.array([[1.0], [1.9]]), 0.6, np.array([1.0, 1.5, 1.7]))
    assert b.code.shape == (2, 3) and b.mce_eps.shape == (2, 3, 3)
    assert list(np.asarray(b.code)[1]) == [Agreement.EQUIVALENT, Agreement.MCE_TEMPERATURE_JUMP,
                                           Agreement.MCE_TEMPERATURE_JUMP]
