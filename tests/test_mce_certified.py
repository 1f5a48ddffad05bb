"""The certified microcanonical maximum (issue 12, items 1 and 6).

Independent reference, written here with NumPy only: for LMG4 at ``h > 0`` the stationary points of
the spin length on the shell, ``s²(x) = x + ((u - ε)/h)²`` with ``x = Mz²``, are ``x = 0`` and the
roots of the cubic ``h² + (ε + Jx + Kx²)(2J + 4Kx)`` (``numpy.roots``, or the eigenvalues of its
companion matrix for many energies at once, then Newton steps in NumPy);
for PSpin(3) (``u = -J m³``) they are ``m = 0`` and the roots of ``3J² m⁴ + 3Jε m + h²``.  The
global maximum of the entropy is the candidate of smallest ``s²``, compared through
``s² - s²(0) = m² + u (u - 2ε)/h²`` (``u(0) = 0``), which has no cancellation against the O(1)
``s²``: two states a distance ``δ`` in energy from an MCE jump differ by ~1e-4 δ there,
resolved down to ``δ ~ 1e-12``.  Test points are concentrated 1e-10 ... 1e-2 from MCE jumps
(located by the reference with Brent's method) and from ``K = J³/h²``, the start of the MCE
first-order region.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import jaxlmg as jl
from jaxlmg.models import LMG4, LMGCouplings, PSpin, PSpinCouplings

J = 1.0


# --------------------------------------------------------------------------- references (NumPy)


def lmg4_candidates(h, K, eps):
    """Stationary points ``Mz >= 0`` of s² on the shell (x = 0 first) and their local-min flags."""
    poly = np.polymul([K, J, eps], [4 * K, 2 * J])
    poly[-1] += h * h
    roots = np.roots(np.trim_zeros(poly, "f"))
    xs = [0.0]
    for r in roots:
        if abs(r.imag) <= 1e-9 * (1 + abs(r)) and 0 < r.real <= 1:
            x = r.real
            for _ in range(2):  # polish in float64
                g = np.polyval(poly, x)
                dg = np.polyval(np.polyder(poly), x)
                x = x - g / dg if dg != 0 else x
            xs.append(x)
    xs = np.array(xs)
    g = np.polyval(poly, xs)
    dg = np.polyval(np.polyder(poly), xs)
    is_min = np.where(xs == 0, g > 0, dg > 0)
    return np.sqrt(xs), is_min


def pspin_candidates(h, eps):
    """Stationary points m in [-1, 1] of s² for PSpin(3), J = 1: m = 0 and 3m⁴ + 3εm + h² = 0."""
    roots = np.roots([3 * J * J, 0.0, 0.0, 3 * J * eps, h * h])
    ms = [0.0]
    poly = np.array([3 * J * J, 0.0, 0.0, 3 * J * eps, h * h])
    for r in roots:
        if abs(r.imag) <= 1e-9 * (1 + abs(r)) and -1 <= r.real <= 1 and r.real != 0:
            m = r.real
            for _ in range(2):
                m = m - np.polyval(poly, m) / np.polyval(np.polyder(poly), m)
            ms.append(m)
    ms = np.array(ms)
    # R(m) = m q(m): at a root of q, R' = m q'(m); at m = 0, R' = q(0) = h² > 0 (always a minimum)
    is_min = np.where(ms == 0, True, ms * np.polyval(np.polyder(poly), ms) > 0)
    return ms, is_min


def ranked(h, eps, ms, u):
    """``s² - s²(0)`` of each candidate (u(0) = 0 for both models)."""
    uu = u(ms)
    return ms * ms + uu * (uu - 2 * eps) / (h * h)


def lmg4_u(K):
    return lambda m: -J * m**2 - K * m**4


def pspin_u(m):
    return -J * m**3


def reference(kind, h, c, eps):
    """(Mz, n_maxima) of the global entropy maximum; None where the energy is off the spectrum."""
    if kind == "lmg4":
        ms, is_min = lmg4_candidates(h, c, eps)
        u = lmg4_u(c)
    else:
        ms, is_min = pspin_candidates(h, eps)
        u = pspin_u
    rel = ranked(h, eps, ms, u)
    s2 = rel + (eps / h) ** 2
    feasible = s2 <= 1 + 1e-13
    cand = is_min & feasible
    k = np.argmin(np.where(cand, rel, np.inf))
    order = np.sort(rel[cand])
    gap = order[1] - order[0] if order.size > 1 else np.inf
    return ms[k], int(cand.sum()), gap


def _real_roots(polys, lo, hi):
    """Real roots in ``[lo, hi]`` of each row of ``polys`` (leading coefficient first, nonzero):
    eigenvalues of the stacked companion matrices (what ``numpy.roots`` does, for many polynomials
    at once), then two Newton steps in float64.  Returns ``(roots, valid)``, shape ``(n, deg)``."""
    n, d = polys.shape[0], polys.shape[1] - 1
    comp = np.zeros((n, d, d))
    comp[:, 0, :] = -polys[:, 1:] / polys[:, :1]
    comp[:, np.arange(1, d), np.arange(d - 1)] = 1.0
    r = np.linalg.eigvals(comp)
    x = r.real.copy()
    valid = (np.abs(r.imag) <= 1e-9 * (1 + np.abs(r))) & (x >= lo) & (x <= hi)
    dpolys = polys[:, :-1] * np.arange(d, 0, -1)
    for _ in range(2):
        g = sum(polys[:, [k]] * x ** (d - k) for k in range(d + 1))
        dg = sum(dpolys[:, [k]] * x ** (d - 1 - k) for k in range(d))
        x = np.where(valid & (dg != 0), x - g / np.where(dg != 0, dg, 1.0), x)
    valid &= (x >= lo) & (x <= hi)
    return x, valid


def jump_energies_diff(kind, h, c, es):
    """``min s² - s²(0)`` over the ordered local minima of s² at each energy of ``es`` (NaN where
    the paramagnet is not a local minimum or there is no ordered one), vectorized."""
    es = np.asarray(es, float)
    n = es.size
    if kind == "lmg4":
        K = c
        polys = np.stack([np.full(n, 4 * K * K), np.full(n, 6 * J * K),
                          2 * J * J + 4 * K * es, 2 * J * es + h * h], axis=1)
        if K == 0:  # the cubic is linear
            polys = polys[:, 2:]
        x, valid = _real_roots(polys, 1e-300, 1.0)
        valid &= x > 0
        dpoly = polys[:, :-1] * np.arange(polys.shape[1] - 1, 0, -1)
        dg = sum(dpoly[:, [k]] * x ** (dpoly.shape[1] - 1 - k) for k in range(dpoly.shape[1]))
        ms = np.sqrt(np.where(valid, x, 0.0))
        is_min = valid & (dg > 0)
        para_min = (2 * J * es + h * h) > 0  # g(0) > 0
        u = -J * ms**2 - K * ms**4
    else:
        polys = np.stack([np.full(n, 3 * J * J), np.zeros(n), np.zeros(n), 3 * J * es,
                          np.full(n, h * h)], axis=1)
        ms, valid = _real_roots(polys, -1.0, 1.0)
        valid &= ms != 0
        dq = 12 * J * J * ms**3 + 3 * J * es[:, None]
        is_min = valid & (ms * dq > 0)
        para_min = np.ones(n, bool)
        u = -J * ms**3
    rel = ms * ms + u * (u - 2 * es[:, None]) / (h * h)
    best = np.min(np.where(is_min, rel, np.inf), axis=1)
    return np.where(para_min & np.isfinite(best), best, np.nan)


def jump_energy(kind, h, c, window):
    """An MCE jump energy in ``window`` by Brent on the s² difference of the two lowest minima
    (NaN if there is none)."""

    def diff(e):
        return float(jump_energies_diff(kind, h, c, [e])[0])

    lo, hi = window
    for es in (lo + (hi - lo) * np.concatenate([[0.0], np.logspace(-12, 0, 80)]),
               np.linspace(lo, hi, 2000)):  # geometric from the window's start, then dense
        d = jump_energies_diff(kind, h, c, es)
        ok = np.isfinite(d[:-1]) & np.isfinite(d[1:]) & (np.sign(d[:-1]) != np.sign(d[1:]))
        if ok.any():
            break
    else:
        return np.nan
    i = int(np.nonzero(ok)[0][0])
    return brentq(diff, es[i], es[i + 1], xtol=1e-15, rtol=1e-15)


# --------------------------------------------------------------------------- test points


def lmg4_points(rng):
    h, K, eps = [], [], []
    # (a) near MCE jumps: K above J³/h², the para <-> ordered jump found by the reference
    while len(h) < 900:
        hh = rng.uniform(0.6, 2.5)
        offsets = 3
        KK = J**3 / hh**2 * (1 + 10 ** rng.uniform(-3, 0))
        e_c = -hh * hh / (2 * J)  # the paramagnet is a local maximum of sigma above it
        et = jump_energy("lmg4", hh, KK, (e_c + 1e-12, 0.0))
        if not np.isfinite(et) or (et / hh) ** 2 > 1 - 1e-3:  # the paramagnet's s = |eps|/h
            continue
        for sgn in rng.choice([-1, 1], offsets):
            h.append(hh)
            K.append(KK)
            eps.append(et + sgn * 10 ** rng.uniform(-10, -2) * max(1.0, abs(et)))
    # (b) near K = J³/h², around the critical energy, both sides
    n = 700
    hh = rng.uniform(0.5, 1.9, n)  # the critical energy -h²/2J inside the spectrum
    KK = J**3 / hh**2 * (1 + rng.choice([-1, 1], n) * 10 ** rng.uniform(-10, -2, n))
    e_c = -hh * hh / (2 * J)
    ee = e_c + rng.choice([-1, 1], n) * 10 ** rng.uniform(-10, -2, n)
    h += list(hh)
    K += list(KK)
    eps += list(ee)
    # (c) the whole spectrum, both temperature signs
    n = 500
    hh = rng.uniform(0.05, 3.0, n)
    KK = rng.uniform(0.0, 1.5, n)
    lo = np.asarray(jl.energy_range(hh, KK).eps_min)
    ee = lo + rng.uniform(0, 1, n) * (hh - lo)
    h += list(hh)
    K += list(KK)
    eps += list(ee)
    return np.array(h), np.array(K), np.array(eps)


@pytest.fixture(scope="module")
def lmg4_case():
    rng = np.random.default_rng(2026)
    h, K, eps = lmg4_points(rng)
    st = jl.microcanonical(h, K, eps)
    return h, K, eps, jax.tree_util.tree_map(np.asarray, st)


def test_lmg4_zero_wrong_global_maxima(lmg4_case):
    h, K, eps, st = lmg4_case
    assert h.size >= 2000 and (eps > 0).sum() > 50 and (eps < 0).sum() > 1500
    ref = [reference("lmg4", *p) for p in zip(h, K, eps, strict=True)]
    Mz = np.array([r[0] for r in ref])
    n_max = np.array([r[1] for r in ref])
    assert np.all(st.status == jl.Status.OK)
    # the reference's own resolution: the two best minima must differ by more than its rounding
    resolved = np.array([r[2] for r in ref]) > 1e-15
    assert resolved.sum() > 0.95 * h.size
    wrong = resolved & (np.abs(st.Mz - Mz) > 1e-6)
    assert wrong.sum() == 0, (h[wrong][:5], K[wrong][:5], eps[wrong][:5])
    np.testing.assert_array_equal(st.n_maxima[resolved], n_max[resolved])
    # consistency: the state is on the shell and beta = artanh(s)/s Mx/h (eq. 36)
    np.testing.assert_allclose(-J * st.Mz**2 - K * st.Mz**4 - h * st.Mx, eps, rtol=0, atol=1e-12)
    well = st.s < 1 - 1e-6
    beta = np.where(st.s > 0, np.arctanh(st.s) / np.where(st.s > 0, st.s, 1), 1) * st.Mx / h
    np.testing.assert_allclose(st.beta[well], beta[well], rtol=1e-9, atol=1e-12)
    assert np.all(np.sign(st.beta) == np.sign(st.Mx))


def test_pspin3_zero_wrong_global_maxima():
    rng = np.random.default_rng(7)
    model, c = PSpin(3), PSpinCouplings(J)
    h, eps = [], []
    while len(h) < 1000:  # near the jumps
        hh = rng.uniform(0.3, 1.25)
        offsets = 4
        lo = float(jl.energy_range_state(model, c, hh).eps_min)
        et = jump_energy("pspin", hh, None, (lo + 1e-9, 0.0))
        if not np.isfinite(et):
            continue
        for sgn in rng.choice([-1, 1], offsets):
            h.append(hh)
            eps.append(et + sgn * 10 ** rng.uniform(-10, -2) * max(1.0, abs(et)))
    hh = rng.uniform(0.05, 2.0, 1000)  # the whole spectrum
    rg = jl.energy_range_state(model, c, hh)
    ee = np.asarray(rg.eps_min) + rng.uniform(0, 1, 1000) * np.asarray(rg.eps_max - rg.eps_min)
    h, eps = np.concatenate([h, hh]), np.concatenate([eps, ee])
    st = jax.tree_util.tree_map(np.asarray, jl.microcanonical_state(model, c, h, eps))
    assert (eps > 0).sum() > 50
    ref = [reference("pspin", hh, None, e) for hh, e in zip(h, eps, strict=True)]
    Mz = np.array([r[0] for r in ref])
    resolved = np.array([r[2] for r in ref]) > 1e-15
    assert resolved.sum() > 0.95 * h.size
    assert np.all(st.status == jl.Status.OK)
    wrong = resolved & (np.abs(st.Mz - Mz) > 1e-6)
    assert wrong.sum() == 0, (h[wrong][:5], eps[wrong][:5])
    n_max = np.array([r[1] for r in ref])
    np.testing.assert_array_equal(st.n_maxima[resolved], n_max[resolved])
    np.testing.assert_allclose(-J * st.Mz**3 - h * st.Mx, eps, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- issue inputs, edges


def test_issue_input_1_ordered_state_next_to_a_jump():
    st = jl.microcanonical(1.2, 0.7, -0.7199943899390397)
    assert st.status == jl.Status.OK
    np.testing.assert_allclose(st.Mz, 0.0535878, atol=1e-7)
    np.testing.assert_allclose(st.entropy, 0.50040566421982, rtol=0, atol=1e-13)
    np.testing.assert_allclose(st.beta, 0.575308148, rtol=0, atol=1e-9)
    # two entropy maxima on this shell: the paramagnet (metastable) and the ordered state
    assert st.n_maxima == 2


def test_beta_is_infinite_at_the_bottom_of_the_spectrum():
    rng = np.random.default_rng(30)
    h, K = rng.uniform(0.0, 3.0, 30), rng.uniform(0.0, 1.5, 30)
    lo = jl.energy_range(h, K).eps_min
    st = jl.microcanonical(h, K, lo)
    assert np.all(st.status == jl.Status.OK)
    assert np.all(np.asarray(st.beta) == np.inf) and np.all(np.asarray(st.temperature) == 0)


def test_n_maxima_at_the_energy_of_the_saturated_state():
    """eps = -(J + K) = u(1): the shell touches Mz = 1 at s = 1, which is not a local maximum of
    the entropy (d s²/dx = 1 > 0 there); the reference counts the true maxima."""
    h = np.array([1.0, 0.5, 1.5, 2.5])
    K = np.array([0.0, 0.3, 0.6, 0.2])
    eps = -(J + K)
    st = jl.microcanonical(h, K, eps)
    assert st.n_maxima[0] == 1
    ref = [reference("lmg4", *p)[1] for p in zip(h, K, eps, strict=True)]
    ok = np.asarray(st.status) == jl.Status.OK
    np.testing.assert_array_equal(np.asarray(st.n_maxima)[ok], np.asarray(ref)[ok])


def test_nan_inside_jit_is_nonfinite():
    f = jax.jit(lambda h, K, e: jl.microcanonical(h, K, e))
    st = f(np.array([np.nan, 1.0, 1.0, -1.0]), np.array([0.2, np.nan, 0.2, 0.2]),
           np.array([-0.5, -0.5, np.inf, -0.5]))
    assert list(np.asarray(st.status)) == [jl.Status.NONFINITE] * 3 + [jl.Status.OUT_OF_DOMAIN]
    assert np.all(np.isnan(np.asarray(st.entropy)))


def test_no_deprecation_warning_on_jax_arrays():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = jl.microcanonical(jnp.asarray([1.0, 1.5]), jnp.asarray(0.3), jnp.asarray(-0.8))
    assert np.all(np.asarray(st.status) == jl.Status.OK)


def test_generic_model_equals_lmg4():
    """microcanonical_state(LMG4(), ...) is the LMG4 function; PSpin(2) is LMG4 with K = 0."""
    h, eps = np.array([0.5, 1.0, 2.0]), np.array([-0.6, -0.3, 0.4])
    a = jl.microcanonical(h, 0.0, eps)
    b = jl.microcanonical_state(PSpin(2), PSpinCouplings(J), h, eps)
    c = jl.microcanonical_state(LMG4(), LMGCouplings(J, 0.0), h, eps)
    for f in ("s", "Mz", "beta", "specific_heat"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(getattr(a, f), getattr(c, f))
