"""Canonical engine (``jl.canonical`` / ``jl.ground_state``) against independent references.

Every reference here is written with NumPy/SciPy and shares no code with the engine:

* the exact transverse-field Curie-Weiss critical line ``h/(2J) = tanh(h/T)`` (scipy ``brentq``);
* the classical h = 0 Curie-Weiss magnet with a 4-spin term, minimized over ``m`` with SciPy;
* the T = 0 energy ``e(mz) = -J mz² - K mz⁴ - h sqrt(1 - mz²)`` minimized on a dense grid + Brent;
* a 2-D brute force of eq. (19) over ``(s, mz)`` (grid, then L-BFGS-B from the grid's minima).

To keep the suite fast (every new input shape costs one XLA compilation, several seconds on a
small CPU), all bulk engine calls go through :func:`engine`, which pads to a fixed size ``N_PAD``.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.special import xlogy

import jaxlmg as jl
from jaxlmg import _batch, _canonical

N_PAD = 512
FIELDS = ("s", "mz", "Mz", "Mx", "f", "energy", "entropy", "n_minima", "status")


def engine(h, K, T, J=1.0):
    """``jl.canonical`` on broadcast inputs, evaluated in padded chunks of ``N_PAD`` points
    (one compilation for the whole module); returns a dict of NumPy arrays of the broadcast
    shape."""
    h, K, T, J = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (h, K, T, J)))
    shape, n = h.shape, h.size
    flat = [x.ravel() for x in (h, K, T, J)]
    pad_value = (1.0, 0.0, 1.0, 1.0)  # a harmless, well-conditioned point
    chunks = []
    for start in range(0, max(n, 1), N_PAD):
        args = []
        for x, p in zip(flat, pad_value, strict=True):
            c = x[start:start + N_PAD]
            args.append(np.concatenate([c, np.full(N_PAD - c.size, p)]))
        r = jl.canonical(*args[:3], J=args[3])
        chunks.append({k: np.asarray(getattr(r, k)) for k in FIELDS})
    return {k: np.concatenate([c[k] for c in chunks])[:n].reshape(shape) for k in FIELDS}


# --------------------------------------------------------------------------- references


def S_ref(s):
    """Entropy per spin, eq. (14), written directly (``xlogy(0, 0) = 0``)."""
    p, q = 0.5 * (1.0 + s), 0.5 * (1.0 - s)
    return -(xlogy(p, p) + xlogy(q, q))


def f_ref(s, mz, h, K, T, J=1.0):
    """Eq. (19) with φ = 0 in (s, mz): -J s²mz² - K s⁴mz⁴ - h s sqrt(1-mz²) - T S(s)."""
    M = s * mz
    return -J * M**2 - K * M**4 - h * s * np.sqrt(np.maximum(1.0 - mz * mz, 0.0)) - T * S_ref(s)


def classical_min(K, T, J=1.0, m_min=0.0):
    """min over m in [m_min, 1] of g(m) = -J m² - K m⁴ - T S(m) (h = 0), T > 0.

    In the variable y = artanh(m) (m near 1 at low T is resolved there), g'(m) has the sign of
    φ(y) = T y - 2J m - 4K m³; every minimum is a root of φ where it goes from - to +, located on a
    dense y grid and polished with ``brentq``.  The endpoint m_min is a candidate too.
    """

    def g(m):
        return -J * m * m - K * m**4 - T * S_ref(m)

    def phi(y):
        m = np.tanh(y)
        return T * y - 2 * J * m - 4 * K * m**3

    y0 = np.arctanh(m_min)
    y = np.linspace(y0, (2 * J + 4 * K) / T + 1.0, 20001)  # φ > 0 beyond (2J + 4K)/T
    p = phi(y)
    cands = [float(g(m_min))]
    for i in np.flatnonzero((p[:-1] < 0) & (p[1:] >= 0)):
        r = brentq(phi, y[i], y[i + 1], xtol=1e-15, rtol=8.9e-16)
        cands.append(float(g(np.tanh(r))))
    return min(cands)


def t0_direct(h, K, J=1.0, mz_min=0.0):
    """T = 0: min over mz in [mz_min, 1] of e(mz) = -J mz² - K mz⁴ - h sqrt(1 - mz²).

    Dense grid (1e5 points), bounded Brent in the best grid bracket, then (Brent's minimizer is
    only sqrt(eps) accurate in mz) a ``brentq`` root of the analytic e'(mz) in the same bracket,
    which is accurate to ~eps/e''.  Returns (e_min, mz, n_grid_minima, gap) where gap is the energy
    difference between the two lowest discrete grid minima (inf if only one).
    """

    def e(x):
        return -J * x * x - K * x**4 - h * np.sqrt(np.maximum(1.0 - x * x, 0.0))

    def de(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -2 * J * x - 4 * K * x**3 + h * x / np.sqrt(np.maximum(1.0 - x * x, 0.0))

    m = np.linspace(mz_min, 1.0, 100001)
    v = e(m)
    i = int(np.argmin(v))
    lo, hi = m[max(i - 1, 0)], m[min(i + 1, m.size - 1)]
    cands = [(float(v[i]), float(m[i])), (float(e(mz_min)), mz_min), (float(e(1.0)), 1.0)]
    r = minimize_scalar(e, bounds=(lo, hi), method="bounded", options={"xatol": 1e-15})
    cands.append((float(r.fun), float(r.x)))
    best = min(cands)
    dlo, dhi = de(lo), de(hi)
    x = None
    if np.isfinite(dlo) and np.isfinite(dhi) and dlo < 0 < dhi:
        x = brentq(de, lo, hi, xtol=1e-16, rtol=8.9e-16)
    elif hi == 1.0 and dlo < 0 and h > 0:  # e' -> +inf at mz = 1 when h > 0
        x = brentq(de, lo, 1.0 - 1e-16, xtol=1e-16, rtol=8.9e-16)
    if x is not None and e(x) <= best[0] + 1e-14:  # prefer the root: same e, accurate mz
        best = (float(e(x)), x)
    # discrete local minima of the grid (for "away from a first-order line" filtering)
    left = np.concatenate([[np.inf], v[:-1]])
    right = np.concatenate([v[1:], [np.inf]])
    mins = np.sort(v[(v <= left) & (v < right)])
    gap = mins[1] - mins[0] if mins.size > 1 else np.inf
    return best[0], best[1], mins.size, gap


S_GRID = np.linspace(0.0, 1.0, 241)
MZ_GRID = np.linspace(0.0, 1.0, 241)


def brute_force(h, K, T, J=1.0, n_starts=5):
    """Global min of eq. (19) over (s, mz) by brute force.

    A 241 x 241 grid of (s, mz); then L-BFGS-B (bounds, analytic gradient) from the lowest
    ``n_starts`` discrete local minima of the grid (distinct basins, so a near-degenerate second
    phase is not missed).  The refinement runs in the smooth variables s = tanh(y), mz = cos(θ)
    (the entropy gradient -artanh(s) and d sqrt(1-mz²)/dmz are singular at the bounds s = 1 and
    mz = 1, which hampers a quasi-Newton method; in (y, θ) everything is smooth and the bounds are
    y in [0, 20] (tanh 20 = 1 in float64), θ in [0, π/2]).
    """
    Sg, Mg = np.meshgrid(S_GRID, MZ_GRID, indexing="ij")
    F = f_ref(Sg, Mg, h, K, T, J)
    P = np.pad(F, 1, constant_values=np.inf)
    is_min = np.ones_like(F, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nb = P[1 + di:1 + di + F.shape[0], 1 + dj:1 + dj + F.shape[1]]
            is_min &= F <= nb
    idx = np.flatnonzero(is_min)
    idx = idx[np.argsort(F.ravel()[idx])][:n_starts]
    best = float(F.min())

    def fun(x):
        y, th = x
        s, c, sn = np.tanh(y), np.cos(th), np.sin(th)
        M = s * c
        val = -J * M**2 - K * M**4 - h * s * sn - T * S_ref(s)
        dfds = -2 * J * s * c * c - 4 * K * s**3 * c**4 - h * sn + T * y  # artanh(tanh y) = y
        dfdth = (2 * J * s * s * c + 4 * K * s**4 * c**3) * sn - h * s * c
        return val, np.array([dfds * (1.0 - s * s), dfdth])

    for k in idx:
        s0, m0 = Sg.ravel()[k], Mg.ravel()[k]
        # start at s <= 0.999: at larger s the y-gradient carries a factor sech² y ~ 1 - s² and
        # the quasi-Newton method would stall near the grid's s = 1 row
        x0 = (np.arctanh(min(s0, 0.999)), np.arccos(m0))
        r = minimize(fun, x0, jac=True, method="L-BFGS-B",
                     bounds=[(0.0, 20.0), (0.0, np.pi / 2)],
                     options={"ftol": 1e-16, "gtol": 1e-13, "maxiter": 1000})
        best = min(best, float(r.fun))
    if T == 0:
        # At T = 0 the minimum lies on the face s = 1, where the y-gradient carries sech² y -> 0
        # and L-BFGS-B can stall ~1e-9 above it (SciPy 1.17): minimize on that face directly.
        best = min(best, t0_direct(h, K, J)[0])
    return best


@contextlib.contextmanager
def single_thread_blas():
    """Run SciPy's bundled OpenBLAS on one thread: L-BFGS-B on a 2-variable problem is ~10x slower
    with a multi-threaded BLAS on a small, shared CPU.  A no-op where the library is not found."""
    import scipy

    lib = None
    for path in glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs",
                                       "*openblas*")):
        with contextlib.suppress(OSError, AttributeError):
            cand = ctypes.CDLL(path)
            cand.scipy_openblas_set_num_threads, cand.scipy_openblas_get_num_threads  # noqa: B018
            lib = cand
            break
    if lib is None:
        yield
        return
    old = lib.scipy_openblas_get_num_threads()
    lib.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads(old)


def h1_t0(K, J=1.0):
    """The T = 0 first-order field h1(K) (K > J/4, vectorized over K) by bisection on the engine's
    Mz > 0 (ferromagnet below, paramagnet above).  Returns the bracket (h_lo, h_hi)."""
    K = np.asarray(K, float)
    lo = np.full_like(K, 1.5 * J)  # ferromagnetic for every K >= 0 (h < 2J)
    hi = np.full_like(K, 2.0 * J + 4.0 * K + 1.0)  # above the ferromagnetic spinodal
    assert np.all(engine(lo, K, 0.0, J)["Mz"] > 0) and np.all(engine(hi, K, 0.0, J)["Mz"] == 0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        ferro = engine(mid, K, 0.0, J)["Mz"] > 0
        lo, hi = np.where(ferro, mid, lo), np.where(ferro, hi, mid)
    return lo, hi


# --------------------------------------------------------------------------- exact critical line


CW_T = np.linspace(0.05, 1.95, 12)  # T / J, all of (0, 2J)



def cw_critical_fields(J):
    """h_c(T) from the exact transverse-field Curie-Weiss condition h/(2J) = tanh(h/T)."""
    T = CW_T * J
    hc = np.array([brentq(lambda h, t=t: h / (2 * J) - np.tanh(h / t), 1e-12 * J, 2 * J,
                          xtol=1e-15, rtol=8.9e-16) for t in T])
    return T, hc


@pytest.mark.parametrize("J", [1.0, 0.7])
def test_quantum_curie_weiss_order_vanishes_above_hc(J):
    T, hc = cw_critical_fields(J)
    above = engine(hc * (1 + 1e-6), 0.0, T, J)
    assert np.all(above["status"] == jl.Status.OK)
    # the order parameter vanishes exactly just above h_c (paramagnet b = 0 is exact)
    assert np.all(above["Mz"] == 0.0), above["Mz"]
    # and well below h_c it is clearly ordered
    below = engine(hc * (1 - 1e-3), 0.0, T, J)
    assert np.all(below["status"] == jl.Status.OK)
    assert np.all(below["Mz"] > 1e-3), below["Mz"]  # Landau: Mz ~ sqrt(1e-3) x O(1)


@pytest.mark.parametrize("J", [1.0, 0.7])
def test_quantum_curie_weiss_order_just_below_hc(J):
    T, hc = cw_critical_fields(J)
    below = engine(hc * (1 - 1e-6), 0.0, T, J)
    assert np.all(below["status"] == jl.Status.OK), below["status"]
    # Landau: Mz² ∝ (h_c - h) ≈ 1e-6 h_c, so Mz ~ 1e-3 (times an O(1) factor); 1e-5 is far below.
    assert np.all(below["Mz"] > 1e-5), below["Mz"]


def test_no_order_at_or_above_2J_for_K0():
    # exact for K = 0: no second-order line at h > 0 for T >= 2J, and no order at all
    T = np.array([2.0, 2.1, 3.0])
    h = np.array([1e-9, 1e-3, 0.5])
    r = engine(h[:, None], 0.0, T[None, :])
    assert np.all(r["status"] == jl.Status.OK)
    assert np.all(r["Mz"] == 0.0)


# --------------------------------------------------------------------------- h -> 0 classical limit


def test_classical_limit_free_energy():
    rng = np.random.default_rng(5)
    n = 40
    K = rng.uniform(0.0, 1.0, n)
    T = rng.uniform(0.02, 3.0, n)
    ref = np.array([classical_min(k, t) for k, t in zip(K, T, strict=True)])
    for h in (0.0, 1e-9):
        r = engine(h, K, T)
        assert np.all(r["status"] == jl.Status.OK)
        # both are exact minima to rounding (f error ~ curvature x (sqrt(eps))^2 for Brent);
        # at h = 1e-9 the quantum correction is O(h²/T) < 1e-16.  1e-12 leaves a wide margin.
        np.testing.assert_allclose(r["f"], ref, rtol=0, atol=1e-12)


CONTINUOUS_K = [0.0, 0.05, 0.1, 0.15]
FIRST_ORDER_K = [0.2, 0.3, 0.5]


def classical_tc(K, J=1.0):
    """h = 0: transition temperature by bisection on the engine's Mz > 0 (vectorized over K).
    Returns (T_lo, Mz at T_lo (1 - 1e-6)): the ordered end of the bracket and Mz just below it."""
    K = np.asarray(K, float)
    lo = np.full_like(K, 1.0 * J)
    hi = 2.0 * J + 4.0 * K + 1.0
    assert np.all(engine(0.0, K, lo, J)["Mz"] > 0) and np.all(engine(0.0, K, hi, J)["Mz"] == 0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        ferro = engine(0.0, K, mid, J)["Mz"] > 0
        lo, hi = np.where(ferro, mid, lo), np.where(ferro, hi, mid)
    r = engine(0.0, K, lo * (1 - 1e-6), J)
    assert np.all(r["status"] == jl.Status.OK), r["status"]
    return lo, r["Mz"]


def test_classical_tricritical_continuous_side():
    """h = 0, K < J/6: the transition in T is continuous, at T_c = 2J."""
    J = 1.0
    tc, just_below = classical_tc(CONTINUOUS_K, J)
    # The engine resolves a ferromagnet only when it is below the paramagnet by more than a few
    # eps: ΔF ≈ 1.5 δ² (δ = 1 - T/2J) at K = 0, so the bisection may stop ~1e-7 below 2J; 1e-6 is
    # the tolerance.
    np.testing.assert_allclose(tc, 2.0 * J, rtol=1e-6)
    # Landau: Mz² = J δ / (2 (J/6 - K)) <= 3e-5 at δ = 1e-6 for K <= 0.15, i.e. Mz < 0.0055.
    assert np.all(just_below < 0.01), just_below
    assert np.all(just_below > 0.0), just_below


def test_classical_tricritical_first_order_side():
    """h = 0, K > J/6: first order (T_c > 2J, Mz jumps); T_c agrees with an independent
    scipy computation of the crossing of the ferromagnet with the paramagnet f = -T ln 2."""
    J = 1.0
    K = np.array(FIRST_ORDER_K)
    tc, just_below = classical_tc(K, J)
    assert np.all(tc > 2.0 * J + 1e-3)
    # Landau-6 estimate of the jump: Mz ~ 0.5 at K = 0.2, larger above; 0.1 is a safe floor.
    assert np.all(just_below > 0.1), just_below
    for k, t in zip(K, tc, strict=True):
        ref = brentq(lambda T, k=k: classical_min(k, T, m_min=0.05) + T * np.log(2.0),
                     2.0 * J + 1e-6, 2.0 * J + 4.0 * k + 1.0, xtol=1e-14)
        # slope of ΔF in T is the entropy jump, O(0.1); f is accurate to ~1e-15: 1e-10 is wide.
        assert abs(t - ref) < 1e-10, (k, t, ref)


# --------------------------------------------------------------------------- T = 0


def test_ground_state_matches_direct_minimization():
    rng = np.random.default_rng(7)
    h = rng.uniform(0.0, 3.0, 130)
    K = rng.uniform(0.0, 1.0, 130)
    refs = [t0_direct(a, b) for a, b in zip(h, K, strict=True)]
    # "Away from the first-order line": a unique grid minimum or two separated by > 1e-6;
    # away from the second-order line h = 2J too, where Mz is ill-conditioned (Mz ~ sqrt(2J - h)).
    keep = np.array([r[3] > 1e-6 for r in refs]) & (np.abs(h - 2.0) > 1e-3)
    assert keep.sum() >= 100
    h, K = h[keep], K[keep]
    e_ref = np.array([r[0] for r, k in zip(refs, keep, strict=True) if k])
    mz_ref = np.array([r[1] for r, k in zip(refs, keep, strict=True) if k])
    r = engine(h, K, 0.0)
    assert np.all(r["status"] == jl.Status.OK)
    # both sides are exact minima: energy error ~ e'' (δmz)² ~ 1e-16 ⇒ 1e-12 is a safe margin;
    # mz from a root of e' (both sides) is accurate to ~eps/e'' <~ 1e-12 away from h = 2J.
    np.testing.assert_allclose(r["energy"], e_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["f"], e_ref, rtol=0, atol=1e-12)  # T S = 0 exactly at T = 0
    np.testing.assert_allclose(r["Mz"], mz_ref, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(r["s"], 1.0)
    gs = jl.ground_state(np.concatenate([h, np.ones(N_PAD - h.size)]),
                         np.concatenate([K, np.zeros(N_PAD - h.size)]), 1.0)
    assert np.all(np.asarray(gs.status)[:h.size] == jl.Status.OK)
    np.testing.assert_allclose(np.asarray(gs.energy)[:h.size], e_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gs.Mz)[:h.size], mz_ref, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(np.asarray(gs.s)[:h.size], 1.0)


def test_first_order_line_t0():
    K = 0.5
    h_lo, h_hi = (float(x[0]) for x in h1_t0(np.array([K])))
    assert h_hi - h_lo < 1e-12
    assert h_lo > 2.0  # first order lies above the T = 0 second-order field 2J for K > J/4
    r = engine(np.array([h_lo, h_hi, h_lo - 1e-3, h_hi + 1e-3]), K, 0.0)
    assert np.all(r["status"] == jl.Status.OK)
    # the order parameter jumps
    assert r["Mz"][0] > 0.1 and r["Mz"][1] == 0.0
    # two states of equal free energy at the bracket ends (the jump in f across Δh < 1e-12 is
    # < |ΔMx| Δh < 1e-12) -- 1e-10 tolerance
    assert abs(r["f"][0] - r["f"][1]) < 1e-10
    # independently: the ferromagnetic branch (direct minimization restricted to mz >= 0.1) is
    # degenerate with the paramagnet e = -h at h1
    e_ferro, mz_ferro, _, _ = t0_direct(h_lo, K, mz_min=0.1)
    assert abs(e_ferro - (-h_lo)) < 1e-10, (e_ferro, -h_lo)
    assert abs(mz_ferro - r["Mz"][0]) < 1e-6
    # metastability on both sides of the line
    np.testing.assert_array_equal(r["n_minima"][2:], 2)


# --------------------------------------------------------------------------- brute force


@pytest.fixture(scope="module")
def brute_points():
    rng = np.random.default_rng(2024)
    n = 300
    h = rng.uniform(0.0, 3.0, n)
    K = rng.uniform(0.0, 1.0, n)
    T = rng.uniform(0.0, 2.5, n)
    # edge cases: T = 0, h = 0, both
    h_e = np.array([0.0, 0.0, 0.0, 1.0, 2.5, 0.0, 2.0, 2.0])
    K_e = np.array([0.0, 0.5, 1.0, 0.3, 0.9, 0.1, 0.25, 0.0])
    T_e = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 2.0])
    # ~60 points within 1e-3 of the T = 0 first-order line
    Kl = rng.uniform(0.3, 1.0, 60)
    lo, hi = h1_t0(Kl)
    sign = rng.choice([-1.0, 1.0], 60)
    hl = 0.5 * (lo + hi) + sign * rng.uniform(0.0, 1e-3, 60)
    h = np.concatenate([h, h_e, hl])
    K = np.concatenate([K, K_e, Kl])
    T = np.concatenate([T, T_e, np.zeros(60)])
    with single_thread_blas():
        brute = np.array([brute_force(*p) for p in zip(h, K, T, strict=True)])
    return h, K, T, brute


def test_brute_force(brute_points):
    h, K, T, brute = brute_points
    r = engine(h, K, T)
    assert np.all(r["status"] == jl.Status.OK)
    # The engine's global minimum is never above the brute-force one (1e-12: rounding of f ~ 1e-15).
    worst = np.argmax(r["f"] - brute)
    assert np.all(r["f"] <= brute + 1e-12), (
        h[worst], K[worst], T[worst], r["f"][worst] - brute[worst])
    # ... nor below it: the brute force converges to ~1e-13 in f (L-BFGS-B to gtol 1e-13 in a
    # quadratic basin; even in a quartic, critical basin, f is flat).  1e-9 is far below any
    # wrong-branch error (|ΔMx| x distance to the line, >= 1e-7 for nearly all line points).
    np.testing.assert_allclose(r["f"], brute, rtol=0, atol=1e-9)
    # self-consistency: the engine's f is eq. (19) evaluated at its own state (s, mz)
    np.testing.assert_allclose(r["f"], f_ref(r["s"], r["mz"], h, K, T), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["Mz"], r["s"] * r["mz"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r["Mx"], r["s"] * np.sqrt(1 - r["mz"] ** 2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["entropy"], S_ref(r["s"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["f"], r["energy"] - T * r["entropy"], rtol=0, atol=1e-13)
    assert np.all((r["n_minima"] >= 1) & (r["n_minima"] <= 2))


# --------------------------------------------------------------------------- batching, compilation


def test_batched_equals_loop():
    rng = np.random.default_rng(3)
    h = rng.uniform(0.0, 3.0, N_PAD)
    K = rng.uniform(0.0, 1.0, N_PAD)
    T = rng.uniform(0.0, 2.5, N_PAD)
    T[:4] = 0.0
    batch = jl.canonical(h, K, T)
    for i in range(12):
        one = jl.canonical(float(h[i]), float(K[i]), float(T[i]))
        for k in FIELDS:
            a, b = np.asarray(getattr(one, k)), np.asarray(getattr(batch, k))[i]
            assert a.shape == ()
            # same math, but a vmapped batch may be fused differently by XLA: 1e-14
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-14, err_msg=k)
    # broadcasting: (16, 1) x (32,) -> (16, 32) equals the flat evaluation
    hb, Tb = h[:16, None], T[None, :32]
    br = jl.canonical(hb, 0.3, Tb)
    assert br.f.shape == (16, 32) and br.status.shape == (16, 32)
    flat = jl.canonical(np.broadcast_to(hb, (16, 32)).ravel(), 0.3,
                        np.broadcast_to(Tb, (16, 32)).ravel())
    for k in FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(br, k)).ravel(),
                                      np.asarray(getattr(flat, k)))


def test_small_calls_run_the_thorough_pass_only_with_the_same_numbers():
    """A concrete call of at most 64 points runs only the thorough pass of an escalating engine
    (a smaller program); every point equals, bit for bit, the same point inside a 1000-point
    call (fast pass, then escalation), for the canonical, microcanonical and agreement engines,
    with points next to the critical line (1e-12 ... 1e-3 below h_c) and the tricritical point."""
    from jaxlmg import _batch

    rng = np.random.default_rng(23)
    n = 1000
    h, K, T = rng.uniform(0, 3, n), rng.uniform(0, 1.5, n), rng.uniform(0, 2.5, n)
    K[:100], T[:100], h[:100] = rng.uniform(0.24, 0.26, 100), 0.5, rng.normal(2.0, 1e-3, 100)
    hc = np.asarray(jl.critical_field(T[100:300]))
    below = hc * (1 - 10.0 ** rng.uniform(-12, -3, 200))
    h[100:300] = np.where(np.isfinite(hc), below, h[100:300])
    eps = rng.uniform(-1.5, 0.5, n)
    assert _batch.THOROUGH_ONLY == 64
    for fn, args in ((jl.canonical, (h, K, T)), (jl.microcanonical, (h, K, eps)),
                     (jl.ensemble_agreement, (h, K, T))):
        big = fn(*args)
        for start in range(0, n, 64):
            small = fn(*[a[start:start + 64] for a in args])
            for f in big._fields:
                np.testing.assert_array_equal(np.asarray(getattr(small, f)),
                                              np.asarray(getattr(big, f))[start:start + 64],
                                              err_msg=f"{fn.__name__}.{f}")


class _CompileCounter(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.n = 0

    def emit(self, record):
        if "ompil" in record.getMessage():
            self.n += 1


def test_no_recompilation_same_shapes():
    rng = np.random.default_rng(9)

    def call():
        r = jl.canonical(rng.uniform(0, 3, N_PAD), rng.uniform(0, 1, N_PAD),
                         rng.uniform(0, 2.5, N_PAD))
        jax.block_until_ready(r)

    call()  # warm (compiled already if earlier tests ran)
    kernel = _batch.flat_kernel(
        _canonical._canonical_kernel,
        (("model", jl.LMG4()), ("n_scan", _canonical.N_SCAN),
         ("max_rounds", _canonical.FAST_ROUNDS)),
        _batch.BLOCK, (("max_rounds", _canonical.FULL_ROUNDS),))
    size = kernel._cache_size()
    counter = _CompileCounter()
    logger = logging.getLogger("jax")
    old_level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles():
            call()
            call()
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old_level)
    assert kernel._cache_size() == size
    assert counter.n == 0


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"J": -0.5}, "J"),  # J = 0 (the pure 4-spin model) is allowed since issue 11
        ({"J": -1.0}, "J"),
        ({"J": np.nan}, "J"),
        ({"h": -0.1}, "h"),
        ({"h": np.array([1.0, -1.0])}, "h"),
        ({"h": np.nan}, "h"),
        ({"h": np.inf}, "h"),
        ({"K": -1e-3}, "K"),
        ({"K": np.nan}, "K"),
        ({"T": -1.0}, "T"),
        ({"T": np.nan}, "T"),
        ({"T": np.inf}, "T"),
    ],
)
def test_validation(kwargs, name):
    args = {"h": 1.0, "K": 0.2, "T": 0.5, "J": 1.0} | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must"):
        jl.canonical(args["h"], args["K"], args["T"], args["J"])


def test_ground_state_validation():
    with pytest.raises(ValueError, match=r"^J must"):
        jl.ground_state(1.0, 0.2, -1.0)  # J = 0 (pure 4-spin) is allowed since issue 11
    with pytest.raises(ValueError, match=r"^h must"):
        jl.ground_state(-1.0, 0.2, 1.0)
    with pytest.raises(ValueError, match=r"^K must"):
        jl.ground_state(1.0, np.nan, 1.0)


def test_precision():
    with pytest.raises(ValueError, match="precision"):
        jl.canonical(1.0, 0.2, 0.5, precision="float16")
    with pytest.warns(UserWarning, match="float32"):
        r = jl.canonical(np.array([1.0, 2.5]), 0.2, 0.5, precision="float32")
    r64 = jl.canonical(1.0, 0.2, 0.5)
    # the float32 result is the same state to single precision (the warning says ~1e-6)
    assert abs(float(r.f[0]) - float(r64.f)) < 1e-5


def test_float32_results_are_float32():
    with pytest.warns(UserWarning):
        r = jl.canonical(np.array([1.0, 2.5]), 0.2, 0.5, precision="float32")
    assert r.f.dtype == jnp.float32 and r.Mz.dtype == jnp.float32


def test_bad_points_inside_jit_are_isolated():
    h = jnp.array([1.0, jnp.nan, 0.5, -1.0, 2.0])
    T = jnp.array([0.3, 0.3, jnp.inf, 0.3, 0.0])
    r = jax.jit(jl.canonical)(h, 0.2, T)
    status = np.asarray(r.status)
    assert status[0] == jl.Status.OK and status[4] == jl.Status.OK
    assert np.all(status[1:4] != jl.Status.OK)
    assert status[3] == jl.Status.OUT_OF_DOMAIN
    for k in ("s", "mz", "Mz", "Mx", "f", "energy", "entropy"):
        v = np.asarray(getattr(r, k))
        assert np.all(np.isnan(v[1:4])), k
        assert np.all(np.isfinite(v[[0, 4]])), k
    np.testing.assert_array_equal(np.asarray(r.n_minima)[1:4], 0)
    # the good points are unaffected by their neighbours
    for i in (0, 4):
        one = jl.canonical(float(h[i]), 0.2, float(T[i]))
        for k in FIELDS:
            np.testing.assert_allclose(np.asarray(getattr(r, k))[i], np.asarray(getattr(one, k)),
                                       rtol=0, atol=1e-14, err_msg=k)


def test_mean_value_exclusion_is_sound_and_sharp():
    """``slope_excludes`` on g(x) = (x - 0.3)² - eps with exact slope bounds on each interval:
    it never excludes an interval that holds a root (checked by exact roots), and it excludes the
    intervals far from the roots (so the test can fail both ways)."""
    from jaxlmg._search import slope_excludes

    rng = np.random.default_rng(3)
    a = rng.uniform(-1.0, 1.5, 4000)
    w = 10 ** rng.uniform(-4, 0, 4000)
    eps = 10 ** rng.uniform(-8, -1, 4000) * rng.choice([-1.0, 1.0], 4000)
    c = a + w
    g = lambda x: (x - 0.3) ** 2 - eps  # noqa: E731
    d_lo, d_hi = 2 * (a - 0.3), 2 * (c - 0.3)  # g' = 2 (x - 0.3) is increasing
    ex = np.asarray(jax.jit(slope_excludes)(g(a), g(c), w, d_lo, d_hi))
    roots = 0.3 + np.sqrt(np.abs(eps)) * np.array([[-1.0], [1.0]])
    holds = np.any((roots >= a) & (roots <= c), axis=0) & (eps >= 0)
    assert not np.any(ex & holds)
    far = (np.minimum(np.abs(a - 0.3), np.abs(c - 0.3)) > 0.1) & ~holds & (w < 0.01)
    assert far.sum() > 100 and np.all(ex[far])


def test_magnetization_slope_is_exact_and_decreasing():
    """dMz/db of the residual's parts (closed form) equals autodiff of the free-spin state, and
    decreases in b >= 0 (Mz concave), which the certified exclusion relies on."""
    from jaxlmg._model import field_state
    from jaxlmg.models import LMG4, LMGCouplings

    b = jnp.linspace(1e-6, 6.0, 400)
    for h, T in [(0.5, 0.3), (1.2, 0.0), (2.0, 1.5), (0.0, 0.7), (0.05, 2.4)]:
        h, T = jnp.float64(h), jnp.float64(T)
        st = jax.vmap(_canonical.stationarity, (None, None, None, None, 0))
        d = np.asarray(st(LMG4(), LMGCouplings(1.0, 0.5), h, T, b)[1][6])
        mz = jax.grad(lambda x, h, T: field_state(x, h, T).Mz)
        ad = np.asarray(jax.vmap(mz, (0, None, None))(b, h, T))
        # the autodiff reference differentiates tanh(r/T) b/r term by term: its rounding is
        # ~eps absolute (where dMz/db ~ 1e-7 its relative error reaches ~1e-9)
        np.testing.assert_allclose(d, ad, rtol=1e-12, atol=1e-14)
        assert np.all(np.diff(d) <= 1e-15 * d[:-1])
