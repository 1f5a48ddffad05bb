"""Microcanonical engine (issue #3) and MCE first-order transitions (issue #4).

Reference values come from an independent implementation written here with NumPy/SciPy: the
paper's own route (eqs. 33-36), minimal energy at fixed spin length ``e_min(s)`` by a dense grid
plus Brent over the direction, then a Brent root in ``s`` of ``e_min(s) = eps``.  It shares no code
with the engine (which minimizes the spin length on the energy shell instead).
"""

import jax
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

import jaxlmg as jl
from jaxlmg._batch import flat_kernel
from jaxlmg._canonical import paramagnetic_stiffness
from jaxlmg._microcanonical import energy_range, microcanonical
from jaxlmg._microcanonical_transitions import (
    microcanonical_at_temperature,
    microcanonical_first_order,
)
from jaxlmg.models import LMG4, LMGCouplings

J = 1.0


# --------------------------------------------------------------------------- independent reference


def S_ref(s):
    p, q = (1 + s) / 2, (1 - s) / 2
    return -(p * np.log(p) if p > 0 else 0.0) - (q * np.log(q) if q > 0 else 0.0)


THETA = np.linspace(0.0, np.pi / 2, 2001)


def e_edge(s, h, K, side):
    """min (side=+1, φ = 0) or max (side=-1, φ = π) over θ of eq. (13) at spin length s."""

    def f(t):
        return side * (-J * s * s * np.cos(t) ** 2 - K * s**4 * np.cos(t) ** 4) - h * s * np.sin(t)

    vals = f(THETA)
    i = int(np.argmin(vals))
    lo, hi = THETA[max(i - 1, 0)], THETA[min(i + 1, THETA.size - 1)]
    r = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-15})
    t = r.x if r.fun < vals[i] else THETA[i]
    return side * min(r.fun, vals[i]), np.cos(t)


def reference(h, K, eps):
    """(sigma, s, Mz): the smallest s whose energy band [e_min(s), e_max(s)] reaches eps."""
    side = 1 if eps <= 0 else -1  # e(s = 0) = 0 splits the two temperature signs
    s = brentq(lambda s: e_edge(s, h, K, side)[0] - eps, 0.0, 1.0, xtol=1e-15, rtol=1e-15)
    return S_ref(s), s, s * e_edge(s, h, K, side)[1]


def random_points(rng, n):
    h = np.concatenate([10 ** rng.uniform(-2.5, 0.5, n // 2), rng.uniform(1.5, 2.5, n - n // 2)])
    K = rng.uniform(0.0, 1.5, n)
    e_min = np.array([e_edge(1.0, hh, KK, 1)[0] for hh, KK in zip(h, K, strict=True)])
    eps = e_min + rng.uniform(0.001, 0.999, n) * (h - e_min)
    return h, K, eps


# --------------------------------------------------------------------------- entropy


def test_entropy_matches_independent_reference():
    rng = np.random.default_rng(11)
    h, K, eps = random_points(rng, 64)
    st = microcanonical(h, K, eps)
    assert np.all(st.status == jl.Status.OK)
    ref = np.array([reference(*p) for p in zip(h, K, eps, strict=True)])
    assert (eps > 0).sum() > 5 and (eps < 0).sum() > 20  # both temperature signs
    # both are exact to rounding; 1e-10 leaves room for the reference's nested solvers
    np.testing.assert_allclose(st.entropy, ref[:, 0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(st.s, ref[:, 1], rtol=0, atol=1e-10)
    # the reference's direction comes from a Brent minimization: ~sqrt(eps) in the angle
    np.testing.assert_allclose(st.Mz, ref[:, 2], rtol=0, atol=1e-6)
    # the state lies on the shell: eq. (13) gives back eps, and T has the sign of eps's side
    e = -J * st.Mz**2 - K * st.Mz**4 - h * st.Mx
    np.testing.assert_allclose(e, eps, rtol=0, atol=1e-12)
    assert np.all(np.sign(st.temperature) == np.where(eps < 0, 1, -1))


def test_paramagnetic_branch_eq36():
    """mz = 0 states: sigma = S(-eps/h), beta = artanh(-eps/h)/h (eq. 36, both signs of T)."""
    rng = np.random.default_rng(12)
    h, K, eps = random_points(rng, 64)
    st = microcanonical(h, K, eps)
    para = np.asarray(st.Mz) == 0
    assert para.sum() >= 10 and np.any(eps[para] > 0) and np.any(eps[para] < 0)
    s = np.abs(eps[para]) / h[para]
    np.testing.assert_allclose(st.s[para], s, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(st.entropy[para], [S_ref(x) for x in s], rtol=0, atol=1e-14)
    np.testing.assert_allclose(st.beta[para], np.arctanh(-eps[para] / h[para]) / h[para],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(st.Mx[para], -eps[para] / h[para], rtol=1e-14, atol=1e-15)


def test_agrees_with_canonical_where_ensembles_are_equivalent():
    """At the CE energy eps(h, K, T), the MCE gives the CE state back and temperature T."""
    rng = np.random.default_rng(13)
    n = 400
    h, K, T = rng.uniform(0.05, 3.0, n), rng.uniform(0.0, 1.0, n), rng.uniform(0.3, 3.0, n)
    ce = jl.canonical(h, K, T)
    st = microcanonical(h, K, ce.energy)
    stiff = np.asarray(jax.vmap(lambda hh, KK, TT: paramagnetic_stiffness(
        LMG4(), LMGCouplings(J, KK), hh, TT))(h, K, T))
    # one CE minimum, away from the critical line (where the quartic landscape makes Mz only
    # ~sqrt(eps)-accurate), and 1 - s > 1e-5 (below that, T(eps) is ill-conditioned in float64)
    sel = (np.asarray(ce.n_minima) == 1) & (np.abs(stiff) > 0.02) & (1 - np.asarray(ce.s) > 1e-5)
    assert sel.sum() > 250
    assert np.all(st.status[sel] == jl.Status.OK)
    np.testing.assert_allclose(st.s[sel], ce.s[sel], rtol=0, atol=1e-9)
    np.testing.assert_allclose(st.mz[sel], ce.mz[sel], rtol=0, atol=1e-9)
    np.testing.assert_allclose(st.temperature[sel], T[sel], rtol=1e-9, atol=0)


# --------------------------------------------------------------------------- branches and edges


def test_h_zero_exact_branch_and_its_limit():
    K = np.array([0.0, 0.1, 0.3])
    eps = np.array([-0.3, -0.9, -1.2])
    st = microcanonical(0.0, K, eps)
    # u(m) = eps: m² = (-J + sqrt(J² - 4 K eps)) / (2K)  (m² = -eps/J at K = 0)
    m2 = np.where(K > 0, (-J + np.sqrt(J * J - 4 * K * eps)) / (2 * np.where(K > 0, K, 1)),
                  -eps / J)
    m = np.sqrt(m2)
    np.testing.assert_allclose(st.s, m, rtol=1e-14)
    np.testing.assert_allclose(st.Mx, 0.0, atol=0)
    np.testing.assert_allclose(st.beta, np.arctanh(m) / (2 * J * m + 4 * K * m**3), rtol=1e-13)
    # h -> 0 is continuous
    near = microcanonical(1e-9, K, eps)
    np.testing.assert_allclose(near.s, st.s, rtol=1e-12)
    np.testing.assert_allclose(near.beta, st.beta, rtol=1e-9)
    # the top of the h = 0 spectrum: T = 2J and the Curie-Weiss specific heat 3/(2 - 12K/J)
    top = microcanonical(0.0, K, 0.0)
    np.testing.assert_allclose(top.temperature, 2 * J, rtol=1e-14)
    np.testing.assert_allclose(top.specific_heat, 3 / (2 - 12 * K / J), rtol=1e-12)


def test_energy_range_and_out_of_range_energies():
    h = np.array([0.0, 0.5, 1.9, 2.5, 3.0, 2.0, 1.0, 0.1])
    K = np.array([0.3, 0.2, 0.6, 0.3, 0.0, 0.26, 0.0, 2.0])
    rng = energy_range(h, K)
    np.testing.assert_allclose(rng.eps_min, jl.ground_state(h, K).energy, rtol=0, atol=1e-13)
    np.testing.assert_allclose(rng.eps_max, h, rtol=0, atol=1e-15)
    width = np.asarray(rng.eps_max - rng.eps_min)
    below, above = rng.eps_min - 1e-6 * width, rng.eps_max + 1e-6 * width
    st = microcanonical(h[:4], K[:4], np.concatenate([below[:2], above[2:4]]))
    assert np.all(st.status == jl.Status.ENERGY_OUT_OF_RANGE)
    assert np.all(np.isnan(st.s)) and np.all(np.isnan(st.beta)) and np.all(st.n_maxima == 0)
    # the bottom edge itself is the ground state, s = 1 (T -> 0 only as 1/ln(1/(1 - s)): a
    # rounding error of eps leaves T ~ 0.1, so T is not tested here)
    st = microcanonical(h, K, rng.eps_min)
    assert np.all(st.status == jl.Status.OK)
    np.testing.assert_allclose(st.s, 1.0, atol=1e-7)
    gs = jl.ground_state(h, K)
    np.testing.assert_allclose(st.Mz, gs.Mz, atol=1e-6)


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(h=1.0, K=0.1, eps=-0.5, J=0.0), "J"),
    (dict(h=-1.0, K=0.1, eps=-0.5), "h"),
    (dict(h=1.0, K=-0.1, eps=-0.5), "K"),
    (dict(h=1.0, K=0.1, eps=np.nan), "eps"),
    (dict(h=[1.0, np.inf], K=0.1, eps=-0.5), "h"),
])
def test_invalid_scalars_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        microcanonical(**kwargs)


def test_traced_bad_points_get_a_status_not_an_exception():
    f = jax.jit(lambda h, e: microcanonical(h, 0.2, e))
    st = f(np.array([1.0, -1.0, 1.0, 1.0]), np.array([-0.5, -0.5, np.nan, 5.0]))
    assert list(np.asarray(st.status)) == [jl.Status.OK, jl.Status.OUT_OF_DOMAIN,
                                           jl.Status.NONFINITE, jl.Status.ENERGY_OUT_OF_RANGE]
    assert np.all(np.isnan(np.asarray(st.entropy)[1:]))


def test_batched_equals_loop_and_no_recompilation():
    rng = np.random.default_rng(14)
    h, K, eps = random_points(rng, 8)
    batch = microcanonical(h, K, eps)
    for i in range(8):
        one = microcanonical(h[i], K[i], eps[i])
        for f in batch._fields:
            np.testing.assert_array_equal(getattr(one, f), getattr(batch, f)[i])
    size = flat_kernel.cache_info().currsize, _compiled()
    assert size[1] >= 1  # the program of those calls is the one counted
    microcanonical(h + 0.01, K, eps)
    microcanonical(h[0] + 0.01, K[0], eps[0])
    assert (flat_kernel.cache_info().currsize, _compiled()) == size


def _compiled():
    """Executables compiled for the microcanonical kernel (all shapes and both variants)."""
    from jaxlmg._batch import BLOCK
    from jaxlmg._microcanonical import _state_kernel
    from jaxlmg._shell import FAST_ROUNDS, MAX_ROUNDS

    # the fast pass with escalation, and the thorough pass alone (small calls); called as
    # jaxlmg._batch.batched calls them (functools.cache tells positional from keyword)
    static = (("model", LMG4()), ("max_rounds", FAST_ROUNDS))
    escalate = (("max_rounds", MAX_ROUNDS),)
    return (flat_kernel(_state_kernel, static, BLOCK, escalate)._cache_size()
            + flat_kernel(_state_kernel, static, BLOCK, escalate, thorough=True)._cache_size())


# --------------------------------------------------------------------------- derivatives


def test_derivatives_are_exact_implicit_ones():
    """dσ/dε = β (envelope theorem), dβ/dε = -β²/c, and ∂σ/∂K: autodiff vs central differences."""
    h, K, eps = 1.2, 0.3, -1.5
    st = microcanonical(h, K, eps)
    sig = lambda e: microcanonical(h, K, e).entropy  # noqa: E731
    beta = lambda e: microcanonical(h, K, e).beta  # noqa: E731
    np.testing.assert_allclose(jax.grad(sig)(eps), st.beta, rtol=1e-13)
    db = jax.grad(beta)(eps)
    np.testing.assert_allclose(db, -st.beta**2 / st.specific_heat, rtol=1e-12)
    d = 1e-5  # central differences: truncation ~d² |β'''| ~ 1e-10, rounding ~1e-16/d ~ 1e-11
    np.testing.assert_allclose(db, (beta(eps + d) - beta(eps - d)) / (2 * d), rtol=1e-6)
    sK = lambda K: microcanonical(h, K, eps).entropy  # noqa: E731
    np.testing.assert_allclose(jax.grad(sK)(K), (sK(K + d) - sK(K - d)) / (2 * d), rtol=1e-6)


# --------------------------------------------------------------------------- energy <-> temperature


def test_states_at_temperature():
    rng = np.random.default_rng(15)
    n = 16
    h, K, T = rng.uniform(0.1, 3.0, n), rng.uniform(0.0, 1.0, n), rng.uniform(0.5, 3.0, n)
    # the paper's inequivalent point (3 states) and the negative-temperature branch
    hc = brentq(lambda x: x / (2 * J) - np.tanh(x / 1.0), 0.5, 2.0)  # eq. (25) at T = 1
    h = np.concatenate([h, [hc, 1.5, 2.0, 1.0]])
    K = np.concatenate([K, [0.25, 0.2, 0.5, 0.1]])
    T = np.concatenate([T, [1.004, -0.8, -2.5, 0.0]])
    sol = microcanonical_at_temperature(h, K, T)
    assert sol.eps.shape == (n + 4, 3) and sol.state.s.shape == (n + 4, 3)
    assert np.all(sol.status == jl.Status.OK) and np.all(sol.n_solutions >= 1)
    used = np.asarray(sol.state.status) == jl.Status.OK
    assert np.all(used.sum(axis=1) == np.minimum(sol.n_solutions, 3))
    pos = T > 0
    # every state found has temperature T (1 - s > 1e-5: T(eps) well conditioned)
    well = used & (1 - np.asarray(sol.state.s) > 1e-5) & (T != 0)[:, None]
    Tb = np.broadcast_to(T[:, None], used.shape)
    np.testing.assert_allclose(np.asarray(sol.state.temperature)[well], Tb[well], rtol=1e-9)
    # the CE state is one of them
    ce = jl.canonical(h[pos], K[pos], T[pos])
    dist = np.nanmin(np.abs(np.asarray(sol.eps)[pos] - np.asarray(ce.energy)[:, None]), axis=1)
    assert np.all(dist < 1e-9)
    # three states at the inequivalent point: c > 0, c < 0, c > 0 with increasing energy
    c = np.asarray(sol.state.specific_heat)[n]
    assert sol.n_solutions[n] == 3 and c[0] > 0 and c[1] < 0 and c[2] > 0
    # negative T is paramagnetic: eps = -h tanh(h/T) (eq. 37 with beta < 0)
    np.testing.assert_allclose(sol.eps[n + 1:n + 3, 0], -h[n + 1:n + 3] * np.tanh(
        h[n + 1:n + 3] / T[n + 1:n + 3]), rtol=1e-12)
    assert np.all(sol.n_solutions[n + 1:n + 3] == 1)
    # T = 0 is the ground state
    np.testing.assert_allclose(sol.eps[n + 3, 0], jl.ground_state(h[-1], K[-1]).energy, atol=1e-14)


# --------------------------------------------------------------------------- MCE first order


def test_mce_first_order_transition():
    h = np.array([1.9, 1.5, 2.0, 1.0, 0.0])
    K = np.array([0.6, 0.5, 0.3, 0.1, 0.5])
    tr = microcanonical_first_order(h, K)
    assert list(np.asarray(tr.status)) == [0, 0, 0, jl.Status.NO_TRANSITION,
                                           jl.Status.NO_TRANSITION]
    ok = slice(0, 3)
    e, hh, KK = np.asarray(tr.eps)[ok], h[ok], K[ok]
    # both states lie on the shell eps and have the same length (= the same entropy)
    for Mz, Mx in ((tr.Mz_below, tr.Mx_below), (tr.Mz_above, tr.Mx_above)):
        Mz, Mx = np.asarray(Mz)[ok], np.asarray(Mx)[ok]
        np.testing.assert_allclose(-J * Mz**2 - KK * Mz**4 - hh * Mx, e, rtol=0, atol=1e-13)
        np.testing.assert_allclose(np.hypot(Mz, Mx), np.asarray(tr.s)[ok], rtol=0, atol=1e-13)
    assert np.all(np.abs(tr.Mz_below[ok] - tr.Mz_above[ok]) > 0.1)
    assert np.all(tr.beta_below[ok] < tr.beta_above[ok])  # convex kink of sigma
    # the MCE engine on either side of eps_t: the two states, two entropy maxima
    d = 1e-9
    below, above = microcanonical(hh, KK, e - d), microcanonical(hh, KK, e + d)
    np.testing.assert_allclose(below.Mz, tr.Mz_below[ok], atol=1e-6)
    np.testing.assert_allclose(above.Mz, tr.Mz_above[ok], atol=1e-6)
    np.testing.assert_allclose(below.temperature, tr.temperature_below[ok], rtol=1e-6)
    np.testing.assert_allclose(above.temperature, tr.temperature_above[ok], rtol=1e-6)
    assert np.all(below.n_maxima == 2) and np.all(above.n_maxima == 2)


def test_mce_first_order_next_to_its_tricritical_point():
    """A few 1e-3 from the MCE tricritical line the jump is small (|ΔMz| ~ 0.02-0.07) and the
    coexistence system ill-conditioned (cond ~1e5-1e7): still found, converged to rounding, and
    consistent with the MCE engine on either side of the transition energy."""
    h = np.array([1.97, 1.9733333333333334])
    K = np.array([0.25897435897435894, 0.2569230769230769])
    tr = microcanonical_first_order(h, K)
    assert list(np.asarray(tr.status)) == [jl.Status.OK, jl.Status.OK]
    e = np.asarray(tr.eps)
    for Mz, Mx in ((tr.Mz_below, tr.Mx_below), (tr.Mz_above, tr.Mx_above)):
        Mz, Mx = np.asarray(Mz), np.asarray(Mx)
        np.testing.assert_allclose(-J * Mz**2 - K * Mz**4 - h * Mx, e, rtol=0, atol=1e-13)
        np.testing.assert_allclose(np.hypot(Mz, Mx), np.asarray(tr.s), rtol=0, atol=1e-12)
    jump = np.abs(np.asarray(tr.Mz_below) - np.asarray(tr.Mz_above))
    assert np.all((jump > 0.01) & (jump < 0.1)), jump
    # the ferromagnetic branch is steep here (dMz/deps ~ 1e5 at the second point): step 1e-12
    d = 1e-12
    below, above = microcanonical(h, K, e - d), microcanonical(h, K, e + d)
    np.testing.assert_allclose(below.Mz, tr.Mz_below, atol=1e-6)
    np.testing.assert_allclose(above.Mz, tr.Mz_above, atol=1e-6)
    assert np.all(below.n_maxima == 2) and np.all(above.n_maxima == 2)


def test_mce_first_order_implicit_gradient():
    f = lambda h, K: microcanonical_first_order(h, K).eps  # noqa: E731
    g = lambda h, K: microcanonical_first_order(h, K).temperature_below  # noqa: E731
    h, K, d = 1.9, 0.6, 1e-5  # central differences: error ~d² and ~1e-15/d, both < 1e-9
    for fn in (f, g):
        gh, gK = jax.grad(fn, argnums=(0, 1))(h, K)
        np.testing.assert_allclose(gh, (fn(h + d, K) - fn(h - d, K)) / (2 * d), rtol=1e-6)
        np.testing.assert_allclose(gK, (fn(h, K + d) - fn(h, K - d)) / (2 * d), rtol=1e-6)
