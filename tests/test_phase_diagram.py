"""The phase diagram at fixed T as boundaries (issue #12, item 3): every returned point satisfies
the exact condition that defines its curve, checked with the independent public engines.

Lean on purpose (one diagram, one set of fields, reused by every test): the expensive part is
compiling the certified MCE transition, once for the boundary solver and once for the checks.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxlmg as jl

T = 1.0
K_GRID = np.linspace(0.0, 1.2, 24)
H_GRID = 1.9150080481545375 + np.array([0.002, 0.01, 0.03, 0.1, 0.3, 0.6])  # h_c(1) + ...


@pytest.fixture(scope="module")
def pd():
    return jl.phase_diagram(T, K=K_GRID, h=H_GRID)


def test_jump_boundaries_are_roots_of_their_temperature(pd):
    """On ``jump_below`` the MCE jump starts exactly at T (``T_below = T``), on ``jump_above``
    it ends at T; both to 1e-9, at every field (all exist at T = J for h > h_c)."""
    for curve, field in ((pd.jump_below, "temperature_below"),
                         (pd.jump_above, "temperature_above")):
        assert np.all(np.asarray(curve.status) == jl.Status.OK)
        np.testing.assert_array_equal(np.asarray(curve.h), H_GRID)
        tr = jl.microcanonical_first_order(curve.h, curve.K)
        assert np.all(np.asarray(tr.status) == jl.Status.OK)
        np.testing.assert_allclose(np.asarray(getattr(tr, field)), T, rtol=0, atol=1e-9)
    # the band is K_below < K < K_above, starting at the MCE tricritical K = J³/h²
    kb, ka = np.asarray(pd.jump_below.K), np.asarray(pd.jump_above.K)
    assert np.all(kb < ka) and np.all(kb > 1.0 / H_GRID ** 2)


def test_jump_region_agrees_with_ensemble_agreement(pd):
    """The agreement code flips across both boundaries: just inside the band the MCE temperature
    jumps over T, just outside it does not (relative offsets 1e-4 in K)."""
    kb, ka = np.asarray(pd.jump_below.K)[2:5], np.asarray(pd.jump_above.K)[2:5]
    h = H_GRID[2:5]
    d = 1e-4
    K = np.stack([kb * (1 - d), kb * (1 + d), ka * (1 - d), ka * (1 + d)])
    ag = jl.ensemble_agreement(np.broadcast_to(h, K.shape), K, T)
    assert np.all(np.asarray(ag.status) == jl.Status.OK)
    code = np.asarray(ag.code)
    jump = jl.Agreement.MCE_TEMPERATURE_JUMP
    assert np.all(code[1:3] == jump), code
    assert np.all(code[[0, 3]] != jump), code


@pytest.mark.slow
def test_jump_boundary_derivative_matches_finite_differences():
    """The implicit derivative of K_below and K_above along a direction in (h, T) vs centred
    differences (one jvp: each derivative compiles the certified transition's own rule)."""
    p0, dp, d = np.array([2.0, 1.2]), np.array([0.6, 0.8]), 1e-5

    def f(p):
        b, a = jl.microcanonical_jump_boundaries(p[0], p[1])
        return jax.numpy.stack([b.K, a.K])

    _, tangent = jax.jvp(f, (jax.numpy.asarray(p0),), (jax.numpy.asarray(dp),))
    fd = (np.asarray(f(p0 + d * dp)) - np.asarray(f(p0 - d * dp))) / (2 * d)
    assert np.all(np.isfinite(fd))
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=1e-6)


def test_canonical_lines_and_tricritical_points(pd):
    """h_c up to each tricritical K; h_1 at equal free energies with the para spinodal = h_c;
    tricritical points equal to jl.tricritical."""
    hc = float(jl.critical_field(T))
    for curve, ens in ((pd.critical_canonical, "canonical"),
                       (pd.critical_microcanonical, "microcanonical")):
        tc = jl.tricritical(T, ens)
        on = K_GRID <= float(tc.K)
        assert on.any() and not on.all()
        np.testing.assert_array_equal(np.asarray(curve.h)[on], hc)
        assert np.all(np.isnan(np.asarray(curve.h)[~on]))
        assert np.all(np.asarray(curve.status)[~on] == jl.Status.NO_TRANSITION)
        got = pd.tricritical_canonical if ens == "canonical" else pd.tricritical_microcanonical
        assert float(got.h) == float(tc.h) and float(got.K) == float(tc.K)

    co = jl.coexistence(K_GRID, T)
    ok = np.asarray(pd.first_order.status) == jl.Status.OK
    assert np.array_equal(ok, K_GRID > float(pd.tricritical_canonical.K))
    f_ferro = np.asarray(co.energy) - T * np.asarray(co.entropy)
    f_para = np.asarray(co.energy_para) - T * np.asarray(co.entropy_para)
    np.testing.assert_allclose(f_ferro[ok], f_para[ok], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(pd.first_order.h)[ok], np.asarray(co.h)[ok])
    np.testing.assert_allclose(np.asarray(pd.para_spinodal.h)[ok], hc, rtol=1e-12)
    h1, hf = np.asarray(pd.first_order.h)[ok], np.asarray(pd.ferro_spinodal.h)[ok]
    assert np.all((hc <= h1) & (h1 <= hf))


def test_folds_bound_the_region_where_the_mce_passes_continuously(pd):
    """Between the two tricritical points the MCE passes continuously through c < 0 states: the
    number of its states of temperature T changes on both canonical spinodals (folds of T(ε)).
    Beyond the MCE tricritical point it is first order: h_c is no longer a fold there."""
    kce, kmce = float(pd.tricritical_canonical.K), float(pd.tricritical_microcanonical.K)
    between = (K_GRID > kce) & (K_GRID < kmce)
    assert between.any()
    for fold, spinodal in ((pd.fold_para, pd.para_spinodal),
                           (pd.fold_ordered, pd.ferro_spinodal)):
        ok = np.asarray(fold.status) == jl.Status.OK
        assert np.all(ok[between])
        np.testing.assert_array_equal(np.asarray(fold.h)[ok], np.asarray(spinodal.h)[ok])
    assert not np.any((np.asarray(pd.fold_para.status) == jl.Status.OK)[K_GRID > kmce])


def test_no_jump_boundary_below_the_critical_field():
    """At h <= h_c(T) the MCE jump never reaches T: NaN with NO_TRANSITION (T > 0); the
    fields given are checked one by one."""
    b, a = jl.microcanonical_jump_boundaries(np.array([0.5, 1.9]), T)
    assert np.all(np.asarray(b.status) == jl.Status.NO_TRANSITION)
    assert np.all(np.isnan(np.asarray(a.K)))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"T": -1.0}, "T"), ({"T": np.nan}, "T"), ({"T": [1.0, 2.0]}, "T"), ({"T": 1.0, "J": 0.0}, "J"),
    ({"T": 1.0, "K": [-0.1, 0.2]}, "K"), ({"T": 1.0, "K": np.ones((2, 2))}, "K"),
    ({"T": 1.0, "h": [0.0, 1.0]}, "h"), ({"T": 1.0, "n": 1}, "n"),
])
def test_bad_input_is_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        jl.phase_diagram(**kwargs)


def test_bad_input_of_the_boundary_solver():
    with pytest.raises(ValueError, match="^h must"):
        jl.microcanonical_jump_boundaries(-1.0, 1.0)
    with pytest.raises(ValueError, match="^T must"):
        jl.microcanonical_jump_boundaries(1.0, 0.0)
    with pytest.raises(ValueError, match="^T must be concrete"):
        jax.jit(lambda t: jl.phase_diagram(t).first_order.h)(1.0)
