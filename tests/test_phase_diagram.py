"""The phase diagram at fixed T as boundaries (issue #12, item 3): every returned point satisfies
the exact condition that defines its curve, checked with the independent public engines.

Lean on purpose (one diagram, one set of fields, reused by every test): the expensive part is
compiling the certified MCE transition, once for the boundary solver and once for the checks.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

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


def test_steep_jump_boundary_is_found_where_one_bit_of_K_moves_T_below_past_the_tolerance():
    """At T = J/2 and h ~ 3.09 J the MCE transition sits next to the top of the spin length
    (s = 1 - 2e-11): T_below rises by ~3e-8 per bit of K, more than the root tolerance, so the
    boundary is accepted from its bracket as the bisection evaluated it.  Re-evaluating the
    bracket ends after the loop (in another program, rounded differently) refused 2 of these 7
    fields (NOT_CONVERGED) in a draft that batched those evaluations.  Each is OK, and T_below
    crosses T between K (1 - 1e-12) and K (1 + 1e-12)."""
    h0 = 3.0921457011020483
    hs = h0 * (1 + np.arange(-3, 4) * 1e-12)
    below, _ = jl.microcanonical_jump_boundaries(hs, 0.5)
    assert np.all(np.asarray(below.status) == jl.Status.OK), np.asarray(below.status)
    K = np.asarray(below.K)
    tr = jl.microcanonical_first_order(np.concatenate([hs, hs]),
                                       np.concatenate([K * (1 - 1e-12), K * (1 + 1e-12)]))
    assert np.all(np.asarray(tr.status) == jl.Status.OK)
    t = np.asarray(tr.temperature_below).reshape(2, -1)
    assert np.all((t[0] - 0.5) * (t[1] - 0.5) < 0), t


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


# --------------------------------------------------------------------------- any model: LMG4 in J

# The generic diagram in the (J, h) plane of LMG4 at fixed K: h_c, both tricritical points, the
# first-order line and the jump boundaries all move with J (unlike in K), and the first-order
# side is at small J, so no LMG4 shortcut in K (J³/h², h_c independent of K) can pass.
K_FIXED = 0.3
J_GRID = np.array([0.45, 0.55, 0.7, 0.85, 1.0, 1.1, 1.16, 1.22, 1.3, 1.45])
HJ_GRID = np.array([1.0, 1.2, 1.5, 1.8])


@pytest.fixture(scope="module")
def pd_J():
    return jl.phase_diagram_state(jl.LMG4(), jl.LMGCouplings(1.2, K_FIXED), T, vary="J",
                                  values=J_GRID, h=HJ_GRID)


def _entropy_np(s):
    p, q = (1 + s) / 2, (1 - s) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(p > 0, p * np.log(p), 0.0) + np.where(q > 0, q * np.log(q), 0.0))


def _f_np(s, mz, J, h):
    """Eq. (19) at φ = 0 for LMG4 (NumPy, written here): u(s mz) - h s sinθ - T S(s)."""
    Mz = s * mz
    return -J * Mz ** 2 - K_FIXED * Mz ** 4 - h * s * np.sqrt(1 - mz * mz) - T * _entropy_np(s)


def _profile_np(mz, J, h):
    """min over the spin length s at fixed mz = cosθ (scipy's bounded Brent)."""
    r = minimize_scalar(lambda s: _f_np(s, mz, J, h), bounds=(0.0, 1.0 - 1e-16),
                        method="bounded", options={"xatol": 1e-14})
    return r.fun


def test_generic_diagram_equals_the_lmg4_wrapper(pd):
    """phase_diagram_state(LMG4(), (J, K = 0 as the Newton start)) on a subset of the points of
    jl.phase_diagram gives the same boundaries (the wrapper starts its Newton solves at K = J/4)."""
    k, hh = K_GRID[::3], H_GRID[:2]
    g = jl.phase_diagram_state(jl.LMG4(), jl.LMGCouplings(1.0, 0.0), T, values=k, h=hh)
    for name in ("critical_canonical", "critical_microcanonical", "first_order", "para_spinodal",
                 "ferro_spinodal", "fold_para", "fold_ordered"):
        a, b = getattr(g, name), getattr(pd, name)
        np.testing.assert_array_equal(np.asarray(a.status), np.asarray(b.status)[::3], name)
        np.testing.assert_allclose(np.asarray(a.h), np.asarray(b.h)[::3], rtol=1e-12,
                                   err_msg=name)
    for name in ("jump_below", "jump_above"):
        a, b = getattr(g, name), getattr(pd, name)
        np.testing.assert_array_equal(np.asarray(a.status), np.asarray(b.status)[:2])
        np.testing.assert_allclose(np.asarray(a.K), np.asarray(b.K)[:2], rtol=1e-12)
    for name in ("tricritical_canonical", "tricritical_microcanonical"):
        a, b = getattr(g, name), getattr(pd, name)
        np.testing.assert_allclose([float(a.h), float(a.K)], [float(b.h), float(b.K)], rtol=1e-12)


def test_generic_critical_lines_and_tricritical_points_in_J(pd_J):
    """On the critical line the paramagnet's stiffness vanishes, h = 2J tanh(h/T); the MCE line is
    where J³ >= K h² (eqs. 34-35); none at T > 2J.  The MCE tricritical point solves h = 2J
    tanh(h/T), J³ = K h²; the canonical one, scaled by J, is jl.tricritical(T/J) (a solve in K)."""
    ok_ce = np.asarray(pd_J.critical_canonical.status) == jl.Status.OK
    ok_mce = np.asarray(pd_J.critical_microcanonical.status) == jl.Status.OK
    for curve, ok in ((pd_J.critical_canonical, ok_ce), (pd_J.critical_microcanonical, ok_mce)):
        hc, J = np.asarray(curve.h)[ok], J_GRID[ok]
        np.testing.assert_allclose(2 * J * np.tanh(hc / T), hc, rtol=1e-12)
        assert np.all(np.isnan(np.asarray(curve.h)[~ok]))
    st = np.asarray(pd_J.critical_canonical.status)
    assert st[0] == jl.Status.NO_TRANSITION  # J = 0.45 < T/2: no critical line
    assert ok_ce.any() and ok_mce.any() and not ok_mce.all()
    hc = np.array([brentq(lambda x, J=J: 2 * J * np.tanh(x / T) - x, 1e-9, 2 * J)
                   if J > T / 2 else np.nan for J in J_GRID])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(ok_mce, J_GRID ** 3 >= K_FIXED * hc ** 2)
    # the canonical line stops where the canonical first-order line starts
    fo = np.asarray(pd_J.first_order.status) == jl.Status.OK
    assert not np.any(ok_ce & fo) and np.all(ok_ce | fo | (J_GRID < T / 2))

    tm = pd_J.tricritical_microcanonical
    assert int(tm.status) == jl.Status.OK
    h, J = float(tm.h), float(tm.K)
    np.testing.assert_allclose([2 * J * np.tanh(h / T), J ** 3], [h, K_FIXED * h * h], rtol=1e-10)
    tc = pd_J.tricritical_canonical
    assert int(tc.status) == jl.Status.OK
    ref = jl.tricritical(T / float(tc.K), "canonical")
    np.testing.assert_allclose([float(ref.h) * float(tc.K), float(ref.K) * float(tc.K)],
                               [float(tc.h), K_FIXED], rtol=1e-9)


def test_generic_first_order_line_in_J_by_brute_force(pd_J):
    """Each point of the canonical first-order line: the paramagnet and an ordered state are two
    global minima of eq. (19) of equal free energy (NumPy grid + scipy refinement, written
    here); the spinodals bracket it, and the para spinodal is h_c or absent (J < T/2)."""
    ok = np.asarray(pd_J.first_order.status) == jl.Status.OK
    assert ok.sum() >= 3
    mz = np.linspace(0.0, 1.0, 801)[:, None]
    s = np.linspace(0.0, 1.0 - 1e-12, 1601)[None, :]
    for i in np.flatnonzero(ok):
        J, h = J_GRID[i], float(np.asarray(pd_J.first_order.h)[i])
        coarse = _f_np(s, mz, J, h).min(axis=1)
        f_para = _profile_np(0.0, J, h)
        j = 40 + int(np.argmin(coarse[40:]))  # the ordered minimum, mz > 0.05
        assert 40 < j < len(mz) - 4
        lo, hi = mz[j - 4, 0], mz[j + 4, 0]  # (the coarse s grid can shift j by one or two)
        r = minimize_scalar(lambda m, J=J, h=h: _profile_np(m, J, h), bounds=(lo, hi),
                            method="bounded", options={"xatol": 1e-12})
        assert lo + 1e-6 < r.x < hi - 1e-6  # a local minimum inside the bracket
        assert abs(r.fun - f_para) <= 1e-10, (J, h, r.fun - f_para)
        assert coarse.min() >= f_para - 1e-12  # no third, lower minimum
        hs, hf = (float(np.asarray(c.h)[i]) for c in (pd_J.para_spinodal, pd_J.ferro_spinodal))
        assert h <= hf
        if J_GRID[i] > T / 2:
            assert hs <= h
            np.testing.assert_allclose(2 * J * np.tanh(hs / T), hs, rtol=1e-12)
        else:
            assert int(np.asarray(pd_J.para_spinodal.status)[i]) == jl.Status.NO_TRANSITION


def test_generic_jump_boundaries_in_J(pd_J):
    """Each point of a jump boundary in J: T_below (T_above) of the MCE transition equals T, and,
    by the scaling of LMG4 (energies in units of J), jl.microcanonical_jump_boundaries at
    (h/J, T/J) — a solve in K — puts its root at K/J."""
    n_ok = 0
    for curve, field, side in ((pd_J.jump_below, "temperature_below", 0),
                               (pd_J.jump_above, "temperature_above", 1)):
        ok = np.asarray(curve.status) == jl.Status.OK
        n_ok += ok.sum()
        J, h = np.asarray(curve.K)[ok], HJ_GRID[ok]
        np.testing.assert_array_equal(np.asarray(curve.h)[ok], h)
        tr = jl.microcanonical_first_order_state(jl.LMG4(), jl.LMGCouplings(J, K_FIXED), h)
        np.testing.assert_allclose(np.asarray(getattr(tr, field)), T, rtol=0, atol=1e-9)
        k_scaled = jl.microcanonical_jump_boundaries(h / J, T / J)[side].K
        np.testing.assert_allclose(np.asarray(k_scaled) * J, K_FIXED, rtol=1e-8)
    assert n_ok == 2 * len(HJ_GRID)  # every field has an MCE critical point with T_c > T


def test_generic_folds_lie_on_the_spinodals(pd_J):
    for fold, spinodal in ((pd_J.fold_para, pd_J.para_spinodal),
                           (pd_J.fold_ordered, pd_J.ferro_spinodal)):
        ok = np.asarray(fold.status) == jl.Status.OK
        assert np.all(np.asarray(spinodal.status)[ok] == jl.Status.OK)
        np.testing.assert_array_equal(np.asarray(fold.h)[ok], np.asarray(spinodal.h)[ok])


@pytest.mark.slow
def test_generic_jump_boundary_derivative_matches_finite_differences():
    """The implicit derivative of J_below and J_above at fixed K along a direction in (h, T) vs
    centred differences (a jvp shaped like the one of the K test above: the coupling is data, so
    both share one compiled derivative of the certified transition)."""
    p0, dp, d = np.array([1.5, 1.0]), np.array([0.6, 0.8]), 1e-5

    def f(p):
        b, a = jl.microcanonical_jump_boundaries_state(jl.LMG4(), jl.LMGCouplings(1.2, K_FIXED),
                                                       p[0], p[1], vary="J")
        return jax.numpy.stack([b.K, a.K])

    _, tangent = jax.jvp(f, (jax.numpy.asarray(p0),), (jax.numpy.asarray(dp),))
    fd = (np.asarray(f(p0 + d * dp)) - np.asarray(f(p0 - d * dp))) / (2 * d)
    assert np.all(np.isfinite(fd))
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=1e-6)


def test_generic_curves_a_model_lacks_are_statuses_not_errors():
    """The pure 4-spin model (LMG4 with J = 0, u''(0) = 0) has no critical line and no
    tricritical point, but a canonical first-order line: NaN with NO_TRANSITION for the former,
    the line itself, and OUT_OF_DOMAIN for the jump boundaries (no MCE tricritical point of the
    field to follow them from).  Default grids (n = 3)."""
    pd0 = jl.phase_diagram_state(jl.LMG4(), jl.LMGCouplings(0.0, 1.0), 0.3, n=3)
    np.testing.assert_allclose(np.asarray(pd0.critical_canonical.K), [0.0, 2.0, 4.0])
    for c in (pd0.critical_canonical, pd0.critical_microcanonical):
        assert np.all(np.asarray(c.status) == jl.Status.NO_TRANSITION)
        assert np.all(np.isnan(np.asarray(c.h)))
    for tc in (pd0.tricritical_canonical, pd0.tricritical_microcanonical):
        assert int(tc.status) == jl.Status.NO_TRANSITION and np.isnan(float(tc.h))
    fo = np.asarray(pd0.first_order.status)
    np.testing.assert_array_equal(fo, [jl.Status.NO_TRANSITION, jl.Status.OK, jl.Status.OK])
    assert np.all(np.asarray(pd0.para_spinodal.status) == jl.Status.NO_TRANSITION)
    for c in (pd0.jump_below, pd0.jump_above):
        assert np.all(np.asarray(c.status) == jl.Status.OUT_OF_DOMAIN)


def test_generic_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="^vary must"):
        jl.phase_diagram_state(jl.LMG4(), jl.LMGCouplings(1.0, 0.3), T, vary="L")
    with pytest.raises(ValueError, match="^model must be Z2"):
        jl.phase_diagram_state(jl.PSpin(3), jl.PSpinCouplings(1.0), T, vary="J")
    with pytest.raises(ValueError, match="^values must"):
        jl.phase_diagram_state(jl.LMG4(), jl.LMGCouplings(1.0, 0.3), T, values=np.ones((2, 2)))
    with pytest.raises(ValueError, match="^couplings.K must"):
        jl.phase_diagram_state(jl.LMG4(), jl.LMGCouplings(1.0, np.nan), T)
