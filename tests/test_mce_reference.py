"""Acceptance test of the microcanonical engines against an independent reference (issue 12).

Everything on the reference side is NumPy only (no jaxlmg), written from the mean-field model:

* energy ``e = u(Mz) - h Mx``, spin length ``s² = Mz² + Mx²``, entropy ``S(s)`` decreasing in
  ``s``, so at energy ``ε`` the microcanonical state is the global MINIMUM of ``s²`` on the shell
  ``Mx = (u(Mz) - ε)/h``, and ``β = dσ/dε = artanh(s)/s · Mx/h`` (eq. 36);
* LMG4 (``J = 1``, ``u = -J Mz² - K Mz⁴``), ``x = Mz²``: ``s²(x) = x + ((ε + Jx + Kx²)/h)²``;
  its stationary points in ``x > 0`` are the roots of the cubic
  ``4K²x³ + 6JKx² + 2(2εK + J²)x + (2εJ + h²)``, at most one of them a local minimum
  (Descartes), and ``Δ(x) = s²(x) - s²(0) = x·g(x)/h²`` with
  ``g = (h² + 2εJ) + x(2εK + J²) + 2JKx² + K²x³`` (no cancellation at tiny ``x``);
* the MCE first-order transition is ``Δ = 0`` at a stationary ``x_t > 0``; eliminating ``ε``
  between ``g = 0`` and the cubic gives ``2K²x³ + 5JKx² + 4J²x = h² - J³/K`` (one root ``x_t > 0``
  iff ``K > J³/h²``) and ``ε_t = -(J² + 4JKx_t + 3K²x_t²)/(2K)``; it is a transition only if the
  paramagnet is a state there, ``|ε_t| <= h``.  Cross-checked below against a plain bisection on
  ``D(ε) = min_{x>0} s² - s²(0)`` with ``np.roots``;
* the states of temperature ``T`` are the solutions of ``Mz = tanh(r/T) b/r``, ``Mx = tanh(r/T)
  h/r``, ``b = -u'(Mz)``, ``r = sqrt(h² + b²)`` (any sign of ``T``), found by a dense scan in
  ``Mz²`` (or ``Mz``) and bisection, each kept only if it is the global minimum of ``s²`` on its
  own shell;
* PSpin(3) (``u = -J Mz³``): shell stationary points are ``m = 0`` and the real roots of
  ``3J²m⁴ + 3Jεm + h²``; the jump is at ``m_t = (h²/3J²)^(1/4)``, ``ε_t = -2h²/(3J m_t)`` (the same
  elimination), ``|ε_t| <= h`` iff ``h <= 3√3/4 J``.

Points are concentrated within 1e-10 ... 1e-2 (relative) of ``K = J³/h²``, of MCE jumps (in
``T``, both temperatures of each jump) and of canonical first-order transitions, both signs of
``T``.  Where float64 cannot decide whether a candidate is the shell minimum (``|g| < 1e-13``)
it is redone in 50 digits (mpmath); a point still undecided there is left out, and the test
asserts that these are rare.  The hard points (next to ``K = J³/h²`` and ``h >= 1.9``) are
checked by their own tests.
"""

from fractions import Fraction

import mpmath
import numpy as np
import pytest

import jaxlmg as jl

J = 1.0
EPS_TOL = 1e-10
# each engine compiles for ~20-60 s on first use
pytestmark = pytest.mark.slow
AMBIGUOUS = 1e-13


def _close(a, b, rtol):
    return np.abs(a - b) <= rtol * np.maximum(1.0, np.abs(b))


# --------------------------------------------------------------------------- LMG4 reference


def lmg_jump(h, K):
    """Closed-form MCE first-order transition of LMG4 (J = 1): dict of arrays, ``exists``."""
    h, K = np.broadcast_arrays(np.asarray(h, float), np.asarray(K, float))
    # h² - J³/K, rounded once from the exact rational value (it cancels near K = J³/h²)
    R = np.array([float(Fraction(hi) ** 2 - 1 / Fraction(ki)) if ki > 0 else -np.inf
                  for hi, ki in zip(h.ravel(), K.ravel(), strict=True)]).reshape(h.shape)
    pos = R > 0
    Rp = np.where(pos, R, 1.0)
    Ks = np.where(K > 0, K, 1.0)
    x = Rp / (4 * J**2)  # the LHS is convex increasing and >= 4J²x: Newton from the right
    for _ in range(100):
        f = 2 * Ks**2 * x**3 + 5 * J * Ks * x**2 + 4 * J**2 * x - Rp
        x = x - f / (6 * Ks**2 * x**2 + 10 * J * Ks * x + 4 * J**2)
    eps = -J**2 / (2 * Ks) - 2 * J * x - 1.5 * Ks * x**2
    s = -eps / h
    exists = pos & (s <= 1.0)
    s = np.where(exists, s, 0.5)
    Mx_o = -(eps + J * x + Ks * x**2) / h
    art = np.arctanh(s) / s
    beta_o, beta_p = art * Mx_o / h, art * s / h
    nan = lambda v: np.where(exists, v, np.nan)  # noqa: E731
    return dict(exists=exists, eps=nan(eps), Mz_below=nan(np.sqrt(x)), Mx_below=nan(Mx_o),
                Mx_above=nan(s), T_below=nan(1 / beta_o), T_above=nan(1 / beta_p))


def lmg_g(x, eps, h, K):
    """``(s²(x) - s²(0)) h²/x`` on the shell of energy ``eps``."""
    return (h**2 + 2 * eps * J) + x * (2 * eps * K + J**2) + 2 * J * K * x**2 + K**2 * x**3


def lmg_shell_minima(eps, h, K):
    """Positive local minima of s²(x) on the shell (roots of the cubic), as a list."""
    r = np.roots([4 * K**2, 6 * J * K, 2 * (2 * eps * K + J**2), 2 * eps * J + h**2])
    r = r.real[(np.abs(r.imag) <= 1e-9 * (1 + np.abs(r.real))) & (r.real > 0)]
    return r


def bisect(G, a, b, pars, iters=120):
    """Vectorized bisection of ``G(x, *pars)`` on brackets ``[a, b]`` with a sign change."""
    ga = G(a, *pars)
    for _ in range(iters):
        geo = (a > 0) & (b > 4 * a)
        m = np.where(geo, np.sqrt(np.abs(a * b)), 0.5 * (a + b))
        gm = G(m, *pars)
        left = np.sign(gm) == np.sign(ga)
        a, ga = np.where(left, m, a), np.where(left, gm, ga)
        b = np.where(left, b, m)
    return 0.5 * (a + b)


def scan_roots(G, grid, pars):
    """Every root of ``G`` on ``grid`` for each point, refined: (point index, root).

    Sign changes between grid nodes, plus the pairs of roots that fall inside two neighbouring
    intervals without a sign change at the nodes (next to a fold, where two roots merge): at
    every interior extremum of ``G`` on the grid the extremum itself is located (ternary search)
    and, where ``G`` changes sign there, each side is a bracket."""
    vals = G(grid[None, :], *(p[:, None] for p in pars))
    i, j = np.nonzero(np.sign(vals[:, :-1]) * np.sign(vals[:, 1:]) < 0)
    lo, hi, idx = [grid[j]], [grid[j + 1]], [i]
    dv = np.diff(vals, axis=1)
    same = (np.sign(vals[:, :-2]) == np.sign(vals[:, 1:-1])) & (
        np.sign(vals[:, 1:-1]) == np.sign(vals[:, 2:]))
    k, j = np.nonzero(same & (np.sign(dv[:, :-1]) != np.sign(dv[:, 1:])))
    if k.size:
        pk = tuple(p[k] for p in pars)
        a, b = grid[j], grid[j + 2]
        # a minimum of G where G > 0 (a maximum where G < 0) can cross zero
        sgn = np.sign(G(grid[j + 1], *pk))
        for _ in range(100):
            m1, m2 = a + (b - a) / 3, b - (b - a) / 3
            closer = sgn * G(m1, *pk) < sgn * G(m2, *pk)
            a, b = np.where(closer, a, m1), np.where(closer, m2, b)
        x_ext = 0.5 * (a + b)
        cross = np.sign(G(x_ext, *pk)) == -sgn
        k, j, x_ext = k[cross], j[cross], x_ext[cross]
        lo += [grid[j], x_ext]
        hi += [x_ext, grid[j + 2]]
        idx += [k, k]
    lo, hi, i = np.concatenate(lo), np.concatenate(hi), np.concatenate(idx)
    root = bisect(G, lo, hi, tuple(p[i] for p in pars))
    return i, root


X_GRID = np.concatenate([np.geomspace(1e-17, 1e-2, 601), np.linspace(1e-2, 1.0, 3001)[1:]])


def lmg_self_consistency(x, h, K, T):
    c = 2 * J + 4 * K * x  # b / Mz, with x = Mz²
    r = np.sqrt(h**2 + x * c**2)
    return 1.0 - np.tanh(r / T) * c / r


def lmg_states(h, K, T):
    """Reference MCE states of temperature T: per point a sorted list of (eps, Mz); and a flag
    per point where the global-maximum test is undecidable at 1e-13."""
    n = h.size
    cand = [[0.0] for _ in range(n)]  # x = 0 (the paramagnet) always solves the equations
    i, x = scan_roots(lmg_self_consistency, X_GRID, (h, K, T))
    for k, xv in zip(i, x, strict=True):
        cand[k].append(xv)
    states, ambiguous = [], np.zeros(n, bool)
    for k in range(n):
        hk, Kk, Tk = h[k], K[k], T[k]
        out = []
        for xv in cand[k]:
            Mz = np.sqrt(xv)
            c = 2 * J + 4 * Kk * xv
            r = np.sqrt(hk**2 + xv * c**2)
            Mx = np.tanh(r / Tk) * hk / r
            eps = -J * xv - Kk * xv**2 - hk * Mx
            if xv == 0.0:
                g = [lmg_g(y, eps, hk, Kk) for y in lmg_shell_minima(eps, hk, Kk)]
                gmin = min(g, default=np.inf)
                keep, amb = gmin >= 0, abs(gmin) < AMBIGUOUS
            else:
                g = lmg_g(xv, eps, hk, Kk)
                keep, amb = g <= 0, abs(g) < AMBIGUOUS
            if amb:  # decide in 50 digits
                eps, keep, amb = _lmg_candidate_mp(xv, hk, Kk, Tk)
                Mz = np.sqrt(xv)
            ambiguous[k] |= amb
            if keep:
                out.append((eps, Mz))
        states.append(sorted(out))
    return states, ambiguous


def _lmg_candidate_mp(x0, h, K, T):
    """The float candidate ``x0`` redone in 50 digits: (eps, is the shell minimum, undecided)."""
    with mpmath.workdps(50):
        h, K, T = mpmath.mpf(h), mpmath.mpf(K), mpmath.mpf(T)

        def G(x):
            c = 2 * J + 4 * K * x
            r = mpmath.sqrt(h**2 + x * c**2)
            return 1 - mpmath.tanh(r / T) * c / r

        if x0 == 0.0:
            x = mpmath.mpf(0)
        else:
            x = mpmath.findroot(G, mpmath.mpf(x0), tol=mpmath.mpf(10) ** -45)
        c = 2 * J + 4 * K * x
        r = mpmath.sqrt(h**2 + x * c**2)
        eps = -J * x - K * x**2 - h * mpmath.tanh(r / T) * h / r
        if x == 0:
            roots = mpmath.polyroots([4 * K**2, 6 * J * K, 2 * (2 * eps * K + J**2),
                                      2 * eps * J + h**2], maxsteps=200, extraprec=200)
            g = [lmg_g(mpmath.re(y), eps, h, K) for y in roots
                 if abs(mpmath.im(y)) < 1e-30 and mpmath.re(y) > 0]
            gmin = min(g, default=mpmath.inf)
            return float(eps), bool(gmin >= 0), bool(abs(gmin) < 1e-40)
        g = lmg_g(x, eps, h, K)
        return float(eps), bool(g <= 0), bool(abs(g) < 1e-40)


# --------------------------------------------------------------------------- reference self-checks


def test_reference_jump_matches_bisection_on_the_entropy_difference():
    """The closed-form LMG4 jump equals a plain bisection on D(ε) = min_{x>0} s² - s²(0)."""
    rng = np.random.default_rng(0)
    h = rng.uniform(0.5, 1.9, 30)
    K = rng.uniform(1.05, 6.0, 30) / h**2
    ref = lmg_jump(h, K)
    assert ref["exists"].all()
    for hk, Kk, e_t in zip(h, K, ref["eps"], strict=True):
        def D(eps, hk=hk, Kk=Kk):
            x = lmg_shell_minima(eps, hk, Kk)
            return min((y * lmg_g(y, eps, hk, Kk) / hk**2 for y in x), default=np.inf)
        lo, hi = -hk**2 / (2 * J), -hk**2 / (2 * J)  # paramagnet stable above eps_c = -h²/2J
        assert D(lo + 1e-12) < 0
        hi = lo
        while np.isfinite(D(hi + 1e-3)) and D(hi + 1e-3) < 0:
            hi += 1e-3
        hi += 1e-3
        for _ in range(200):  # D is increasing in ε; +inf where the ordered minimum is gone
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if D(mid) < 0 else (lo, mid)
        assert abs(0.5 * (lo + hi) - e_t) < 1e-12


# --------------------------------------------------------------------------- LMG4: the engines

# The band next to the MCE tricritical condition, 0 < K h²/J³ - 1 < 1e-5, and h >= 1.9 (where the
# paramagnet at the jump has s -> 1) are the hard points: there the ordered state just below the
# jump energy has Mz ~ 1e-5 and its s² equals the paramagnet's to ~Mz⁴.  They are checked
# separately (the tests name them in their failure messages).
TRICRITICAL_BAND = 1e-5
H_EDGE = 1.9


def _hard(h, K):
    d = K * h**2 / J**3 - 1.0
    return ((d > 0) & (d < TRICRITICAL_BAND)) | (h >= H_EDGE)


def _lmg_jump_points(rng, n_near=1500, n_far=600):
    h = rng.uniform(0.5, 2.5, n_near + n_far)
    delta = 10.0 ** rng.uniform(-10, -2, n_near) * rng.choice([-1.0, 1.0], n_near)
    far = 10.0 ** rng.uniform(-2, 1.3, n_far)
    ratio = np.concatenate([1.0 + delta, 1.0 + far])
    return h, ratio * J**3 / h**2


@pytest.fixture(scope="module")
def lmg_first_order():
    h, K = _lmg_jump_points(np.random.default_rng(1))
    eng = jl.microcanonical_first_order(h, K)
    return h, K, lmg_jump(h, K), {k: np.asarray(v) for k, v in eng._asdict().items()}


def _check_values(h, K, ref, eng, sel, keys):
    ok = sel & (eng["status"] == jl.Status.OK)  # (jumps below 1e-6 in Mz: reported or not)
    for key, rkey, tol in keys:
        rel = key == "Mz_below"
        err = np.abs(eng[key][ok] - ref[rkey][ok]) / (ref[rkey][ok] if rel else 1.0)
        bad = ~(err <= tol)
        assert not bad.any(), (key, list(zip(h[ok][bad][:5], K[ok][bad][:5], strict=True)),
                               err[bad][:5])
    assert (eng["Mz_above"][ok] == 0).all()


VALUES = (("Mz_below", "Mz_below", 1e-8), ("Mx_below", "Mx_below", 1e-9),
          ("Mx_above", "Mx_above", 1e-9), ("temperature_below", "T_below", 1e-8),
          ("temperature_above", "T_above", 1e-8))


def _check_first_order(h, K, ref, eng, sel):
    st = eng["status"]
    big = sel & ref["exists"] & (ref["Mz_below"] >= 1.01e-6)
    missed = big & (st != jl.Status.OK)
    assert not missed.any(), (f"{missed.sum()} of {big.sum()} jumps missed, e.g. (h, K) = "
                              f"{list(zip(h[missed][:5], K[missed][:5], strict=True))}, "
                              f"status {st[missed][:5]}")
    _check_values(h, K, ref, eng, sel, VALUES)


def test_lmg4_first_order_transitions(lmg_first_order):
    h, K, ref, eng = lmg_first_order
    st = eng["status"]
    easy = ~_hard(h, K)
    assert (easy & ref["exists"]).sum() >= 600 and (~ref["exists"]).sum() >= 500
    _check_first_order(h, K, ref, eng, easy)
    # everywhere (hard points included): no spurious jump, and every reported ε_t is right
    spurious = ~ref["exists"] & (st != jl.Status.NO_TRANSITION)
    assert not spurious.any(), (f"{spurious.sum()} spurious, e.g. (h, K) = "
                                f"{list(zip(h[spurious][:5], K[spurious][:5], strict=True))}")
    _check_values(h, K, ref, eng, np.ones(h.size, bool), (("eps", "eps", EPS_TOL),))


def test_lmg4_first_order_near_the_tricritical_condition(lmg_first_order):
    h, K, ref, eng = lmg_first_order
    _check_first_order(h, K, ref, eng, _hard(h, K))


def _lmg_temperature_points(rng, h, K, ref):
    """(h, K, T) near both temperatures of MCE jumps, inside their windows, near canonical
    first-order transitions and at T < 0."""
    J_idx = np.nonzero(ref["exists"])[0]
    pick = rng.choice(J_idx, 1500)
    side = rng.integers(0, 3, pick.size)
    d = 10.0 ** rng.uniform(-10, -2, pick.size) * rng.choice([-1.0, 1.0], pick.size)
    Tb, Ta = ref["T_below"][pick], ref["T_above"][pick]
    T = np.where(side == 0, Tb * (1 + d), np.where(side == 1, Ta * (1 + d),
                                                   Ta + rng.uniform(0, 1, pick.size) * (Tb - Ta)))
    hs, Ks = h[pick], K[pick]
    # canonical first-order transitions: T_ce of random (h, K) by bisection on which reference
    # state has the lowest free energy e - T S(s)
    n_ce = 400
    h2 = rng.uniform(0.3, 1.9, n_ce)
    K2 = rng.uniform(1.2, 8.0, n_ce) / h2**2
    lo, hi = np.full(n_ce, 0.02), np.full(n_ce, 6.0)
    for _ in range(34):
        mid = 0.5 * (lo + hi)
        ordered = _ce_is_ordered(h2, K2, mid)
        lo, hi = np.where(ordered, mid, lo), np.where(ordered, hi, mid)
    d2 = 10.0 ** rng.uniform(-8, -2, n_ce) * rng.choice([-1.0, 1.0], n_ce)
    T2 = 0.5 * (lo + hi) * (1 + d2)
    n_neg = 100
    h3, K3 = rng.uniform(0.3, 2.0, n_neg), rng.uniform(0.0, 5.0, n_neg)
    T3 = -(10.0 ** rng.uniform(-1, 1, n_neg))
    return (np.concatenate([hs, h2, h3]), np.concatenate([Ks, K2, K3]),
            np.concatenate([T, T2, T3]))


def _ce_is_ordered(h, K, T):
    """Whether the canonical state (lowest e - T S among the canonical stationary points) at
    T > 0 is ordered, per point; stationary points by a coarse scan (the canonical side is not
    under test here: this only places points near the transition)."""
    i, x = scan_roots(lmg_self_consistency, X_GRID[::4], (h, K, T))
    i, x = np.concatenate([np.arange(h.size), i]), np.concatenate([np.zeros(h.size), x])
    hi, Ki, Ti = h[i], K[i], T[i]
    c = 2 * J + 4 * Ki * x
    r = np.sqrt(hi**2 + x * c**2)
    s = np.tanh(r / Ti)
    S = -((1 + s) / 2 * np.log((1 + s) / 2) + (1 - s) / 2 * np.log(np.maximum((1 - s) / 2,
                                                                              1e-300)))
    f = -J * x - Ki * x**2 - hi * s * hi / r - Ti * S
    best = np.full(h.size, np.inf)
    np.minimum.at(best, i, f)
    return np.bincount(i, weights=(x > 0) & (f <= best[i]), minlength=h.size) > 0


@pytest.fixture(scope="module")
def lmg_temperature(lmg_first_order):
    h0, K0, ref0, _ = lmg_first_order
    h, K, T = _lmg_temperature_points(np.random.default_rng(2), h0, K0, ref0)
    states, amb = lmg_states(h, K, T)
    eng = jl.microcanonical_at_temperature(h, K, T, max_solutions=5)
    agr = jl.ensemble_agreement(h, K, np.abs(T))  # (only T > 0 is checked)
    return h, K, T, states, amb, eng, agr


def _wrong_states(eng, states, sel, *, signed: bool, mz_tol: float):
    """Indices in ``sel`` where the engine's states of a temperature differ from the reference's
    (status, count, energies to EPS_TOL, Mz to ``mz_tol``; ``|Mz|`` for a Z2 model)."""
    e_eps, e_n, e_st = (np.asarray(a) for a in (eng.eps, eng.n_solutions, eng.status))
    e_Mz = np.asarray(eng.state.Mz)
    e_Mz = e_Mz if signed else np.abs(e_Mz)
    wrong = []
    for k in np.nonzero(sel)[0]:
        ref = states[k]
        ok = e_st[k] == jl.Status.OK and e_n[k] == len(ref)
        if ok:
            m = min(len(ref), 5)
            r_eps = np.array([e for e, _ in ref][:m])
            r_Mz = np.array([z for _, z in ref][:m])
            ok = (np.all(_close(e_eps[k, :m], r_eps, EPS_TOL))
                  and np.all(np.abs(e_Mz[k, :m] - r_Mz) <= mz_tol))
        if not ok:
            wrong.append(k)
    return wrong


def _check_states(h, K, T, states, eng, sel):
    e_eps, e_n, e_st = (np.asarray(a) for a in (eng.eps, eng.n_solutions, eng.status))
    bad = [(h[k], K[k], T[k], [e for e, _ in states[k]], e_eps[k], e_n[k], e_st[k])
           for k in _wrong_states(eng, states, sel, signed=False, mz_tol=1e-6)]
    assert not bad, f"{len(bad)} of {sel.sum()} wrong, e.g. {bad[:4]}"


def test_lmg4_states_of_a_temperature(lmg_temperature):
    h, K, T, states, amb, eng, _ = lmg_temperature
    assert h.size >= 2000 and amb.mean() < 0.01
    easy = ~amb & ~_hard(h, K)
    assert easy.sum() >= 1300
    _check_states(h, K, T, states, eng, easy)
    neg = T < 0
    assert (np.asarray(eng.state.Mx)[neg][:, 0] < 0).all()
    assert sum(len(s) >= 2 for s, e in zip(states, easy, strict=True) if e) >= 500


def test_lmg4_states_of_a_temperature_near_the_tricritical_condition(lmg_temperature):
    """The hard points: the near-critical ordered state just below a tiny MCE jump is found,
    and the metastable one just above it is not returned, e.g. (h, K, T) = (0.6767920532517329,
    2.1831797716805736, 1.9211764115216114): states at eps = -3.2042414130525, -0.2290237416723
    (Mz 3.3e-5) and -0.2290237406493 (the paramagnet)."""
    h, K, T, states, amb, eng, _ = lmg_temperature
    hard = ~amb & _hard(h, K)
    assert hard.sum() >= 400
    _check_states(h, K, T, states, eng, hard)
    # (the near-critical ordered state occurs, with Mz below 1e-3)
    small = [any(0 < z < 1e-3 for _, z in s) for s, e in zip(states, hard, strict=True) if e]
    assert sum(small) >= 20


def _interior_minimum(G, grid, pars, T):
    """The lowest interior local minimum of ``G(x, *pars, T)`` over ``grid`` per point, located
    by ternary search (``+inf`` where there is none)."""
    vals = G(grid[None, :], *(p[:, None] for p in pars), T[:, None])
    dv = np.diff(vals, axis=1)
    is_min = (dv[:, :-1] < 0) & (dv[:, 1:] > 0)
    j = np.argmin(np.where(is_min, vals[:, 1:-1], np.inf), axis=1)
    a, b = grid[j], grid[j + 2]
    for _ in range(80):
        m1, m2 = a + (b - a) / 3, b - (b - a) / 3
        left = G(m1, *pars, T) < G(m2, *pars, T)
        a, b = np.where(left, a, m1), np.where(left, m2, b)
    return np.where(is_min.any(axis=1), G(0.5 * (a + b), *pars, T), np.inf)


def fold_temperature(G, grid, pars, lo=0.05, hi=30.0):
    """The temperature where the interior minimum of the self-consistency residual ``G`` (which
    increases with ``T``) reaches 0, per point: there the ordered pair of canonical stationary
    points merges (a canonical spinodal).  Returns ``(T_fold, found)``."""
    n = pars[0].size
    lo, hi = np.full(n, lo), np.full(n, hi)
    found = (_interior_minimum(G, grid, pars, lo) < 0) & (_interior_minimum(G, grid, pars, hi) > 0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        neg = _interior_minimum(G, grid, pars, mid) < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    return 0.5 * (lo + hi), found


@pytest.fixture(scope="module")
def lmg_folds():
    """(h, K, T) within 1e-10 ... 1e-3 (relative, both sides) of the canonical spinodal
    temperatures at fixed (h, K), where two stationary points of the canonical landscape merge:
    a fold of the MCE caloric curve where they are entropy maxima of their shells.  Both from the
    reference: the ordered pair merges at :func:`fold_temperature`, the paramagnet's partner
    where ``G(0) = 0`` (``G`` increases with ``T``: bisection)."""
    rng = np.random.default_rng(3)
    n = 300
    h = rng.uniform(0.3, 1.95, n)
    K = rng.uniform(1.0, 6.0, n) / h**2
    T_ordered, good = fold_temperature(lmg_self_consistency, X_GRID, (h, K))
    lo_c, hi_c = np.full(n, 0.05), np.full(n, 30.0)
    for _ in range(60):
        mid = 0.5 * (lo_c + hi_c)
        neg = lmg_self_consistency(0.0, h, K, mid) < 0
        lo_c, hi_c = np.where(neg, mid, lo_c), np.where(neg, hi_c, mid)
    T_fold = np.where(rng.integers(0, 2, n) == 0, T_ordered, 0.5 * (lo_c + hi_c))
    d = 10.0 ** rng.uniform(-10, -3, n) * rng.choice([-1.0, 1.0], n)
    h, K, T = h[good], K[good], (T_fold * (1 + d))[good]
    states, amb = lmg_states(h, K, T)
    eng = jl.microcanonical_at_temperature(h, K, T, max_solutions=5)
    return h, K, T, states, amb, eng


def test_lmg4_states_of_a_temperature_next_to_folds(lmg_folds):
    """Both states of a close pair next to a fold are found, e.g. (h, K, T) = (1.545406839215728,
    0.3420649676575124, 1.6507696601739854), 3e-10 below the ferromagnetic spinodal: ordered
    states at eps = -1.34007701720, -1.34005567121 (Mz 0.57269, 0.57267) and the paramagnet."""
    h, K, T, states, amb, eng = lmg_folds
    assert h.size >= 200 and amb.mean() < 0.01
    _check_states(h, K, T, states, eng, ~amb)
    # (close pairs of MCE states occur: ordered ones, or the paramagnet and a small ordered one)
    pairs = [any(abs(z1 - z2) < 1e-2 and z1 != z2 for (_, z1), (_, z2) in zip(s, s[1:],
                                                                            strict=False))
             for s in states]
    assert sum(pairs) >= 20


def _expected_codes(T, states, jump):
    window = jump["exists"] & (T > jump["T_above"]) & (T < jump["T_below"])
    n = np.array([len(s) for s in states])
    para = np.array([any(z == 0 for _, z in s) for s in states])
    ferro = np.array([any(z != 0 for _, z in s) for s in states])
    code = np.where(para & ferro, jl.Agreement.CE_FIRST_ORDER_MCE_CONTINUOUS,
                    jl.Agreement.MCE_NEGATIVE_SPECIFIC_HEAT)
    code = np.where(n == 1, jl.Agreement.EQUIVALENT, code)
    return np.where(window, jl.Agreement.MCE_TEMPERATURE_JUMP, code), n


def _check_codes(h, K, T, states, agr, sel):
    code, n = _expected_codes(T, states, lmg_jump(h, K))
    got, st, n_got = (np.asarray(a) for a in (agr.code, agr.status, agr.n_mce_states))
    bad = np.nonzero(sel & ((st != jl.Status.OK) | (got != code) | (n_got != n)))[0]
    assert bad.size == 0, (f"{bad.size} of {sel.sum()} wrong, e.g. (h, K, T, want, got, status) = "
                           f"{[(h[i], K[i], T[i], code[i], got[i], st[i]) for i in bad[:5]]}")
    return code


def test_lmg4_agreement_codes(lmg_temperature):
    h, K, T, states, amb, _, agr = lmg_temperature
    easy = (T > 0) & ~amb & ~_hard(h, K)
    code = _check_codes(h, K, T, states, agr, easy)
    # (MCE_NEGATIVE_SPECIFIC_HEAT, several states all in one phase, does not occur here)
    for c in (jl.Agreement.EQUIVALENT, jl.Agreement.CE_FIRST_ORDER_MCE_CONTINUOUS,
              jl.Agreement.MCE_TEMPERATURE_JUMP):
        assert (code[easy] == c).sum() >= 20, c


def test_lmg4_agreement_codes_near_the_tricritical_condition(lmg_temperature):
    h, K, T, states, amb, _, agr = lmg_temperature
    hard = (T > 0) & ~amb & _hard(h, K)
    code = _check_codes(h, K, T, states, agr, hard)
    assert (code[hard] == jl.Agreement.MCE_TEMPERATURE_JUMP).sum() >= 20


# --------------------------------------------------------------------------- PSpin(3)

PSPIN = jl.PSpin(3)
PSPIN_C = jl.PSpinCouplings(J)
M_GRID = np.concatenate([-np.linspace(1.0, 1e-2, 2000)[:-1], -np.geomspace(1e-2, 1e-12, 300),
                         np.geomspace(1e-12, 1e-2, 300), np.linspace(1e-2, 1.0, 2000)[1:]])


def pspin_jump(h):
    m = (h**2 / (3 * J**2)) ** 0.25
    eps = -2 * h**2 / (3 * J * m)
    exists = -eps / h <= 1
    s = np.where(exists, -eps / h, 0.5)
    Mx_o = -(eps + J * m**3) / h
    art = np.arctanh(s) / s
    return dict(exists=exists, eps=eps, Mz_below=m, T_below=h / (art * Mx_o), T_above=h / (art * s))


def pspin_delta(m, eps, h):
    """s²(m) - s²(0) on the shell of energy eps."""
    return m**2 + J * m**3 * (2 * eps + J * m**3) / h**2


def pspin_self_consistency(m, h, T):
    r = np.sqrt(h**2 + 9 * J**2 * m**4)
    return 1.0 - 3 * J * m * np.tanh(r / T) / r


def pspin_states(h, T):
    n = h.size
    i, m = scan_roots(pspin_self_consistency, M_GRID, (h, T))
    cand = [[0.0] for _ in range(n)]
    for k, mv in zip(i, m, strict=True):
        cand[k].append(mv)
    states, ambiguous = [], np.zeros(n, bool)
    for k in range(n):
        out = []
        for mv in cand[k]:
            r = np.sqrt(h[k] ** 2 + 9 * J**2 * mv**4)
            eps = -J * mv**3 - h[k] * np.tanh(r / T[k]) * h[k] / r
            roots = np.roots([3 * J**2, 0, 0, 3 * J * eps, h[k] ** 2])
            roots = roots.real[np.abs(roots.imag) <= 1e-9]
            others = [pspin_delta(y, eps, h[k]) for y in roots if abs(y - mv) > 1e-7]
            if mv != 0:
                others.append(0.0)
            d = pspin_delta(mv, eps, h[k])
            lowest = min(others, default=np.inf)
            ambiguous[k] |= abs(d - lowest) < AMBIGUOUS
            if d <= lowest:
                out.append((eps, mv))
        states.append(sorted(out))
    return states, ambiguous




# the engine answers NOT_CONVERGED for 1.023 <= h <= 1.030 (found on a grid) near the jump
# temperatures, both signs of T, e.g. at these (h, T)
PSPIN_FAILING = ((1.0293782687593274, -1.446996040558691),
                 (1.0293782687593274, -1.4469960023802506),
                 (1.026340334995087, 1.4491393494432188),
                 (1.0247023953382175, -1.450277028798166))
PSPIN_BAND = (1.02, 1.035)


@pytest.fixture(scope="module")
def pspin():
    rng = np.random.default_rng(3)
    h = rng.uniform(0.05, 1.45, 320)
    first = {k: np.asarray(v) for k, v in
             jl.microcanonical_first_order_state(PSPIN, PSPIN_C, h)._asdict().items()}
    # states of a temperature: near both temperatures of the jump, inside the window, and the
    # mirror images at T < 0 (the spectrum is symmetric under ε -> -ε, Mz -> -Mz)
    ok = pspin_jump(h)["exists"]
    hj = rng.choice(h[ok], 360)
    jr = pspin_jump(hj)
    side = rng.integers(0, 3, hj.size)
    d = 10.0 ** rng.uniform(-10, -2, hj.size) * rng.choice([-1.0, 1.0], hj.size)
    T = np.where(side == 0, jr["T_below"] * (1 + d),
                 np.where(side == 1, jr["T_above"] * (1 + d),
                          jr["T_above"] + rng.uniform(0, 1, hj.size)
                          * (jr["T_below"] - jr["T_above"])))
    T = rng.choice([-1.0, 1.0], hj.size) * T
    # and within 1e-10 ... 1e-3 of the canonical spinodal (the ordered pair merges), both signs
    hf = rng.uniform(0.05, 1.45, 120)
    T_f, found = fold_temperature(pspin_self_consistency, M_GRID[M_GRID > 0], (hf,))
    d = 10.0 ** rng.uniform(-10, -3, hf.size) * rng.choice([-1.0, 1.0], hf.size)
    T_f = rng.choice([-1.0, 1.0], hf.size) * T_f * (1 + d)
    hj = np.concatenate([hj, hf[found], [p[0] for p in PSPIN_FAILING]])
    T = np.concatenate([T, T_f[found], [p[1] for p in PSPIN_FAILING]])
    states, amb = pspin_states(hj, T)
    sol = jl.microcanonical_at_temperature_state(PSPIN, PSPIN_C, hj, T, max_solutions=5)
    agr = jl.ensemble_agreement_state(PSPIN, PSPIN_C, hj, np.abs(T))  # (only T > 0 is checked)
    failing = (hj >= PSPIN_BAND[0]) & (hj <= PSPIN_BAND[1])
    return h, first, hj, T, states, amb, sol, agr, failing


def test_pspin3_first_order(pspin):
    h, eng, *_ = pspin
    ref = pspin_jump(h)
    st = eng["status"]
    assert ref["exists"].sum() >= 250 and (~ref["exists"]).sum() >= 20
    assert (st[ref["exists"]] == jl.Status.OK).all(), h[ref["exists"] & (st != 0)]
    assert (st[~ref["exists"]] == jl.Status.NO_TRANSITION).all(), h[~ref["exists"] & (st != 5)]
    ok = ref["exists"]
    for key, rkey, tol in (("eps", "eps", EPS_TOL), ("Mz_below", "Mz_below", 1e-9),
                           ("temperature_below", "T_below", 1e-8),
                           ("temperature_above", "T_above", 1e-8)):
        err = np.abs(eng[key][ok] - ref[rkey][ok])
        assert (err <= tol).all(), (key, h[ok][err > tol][:5], err[err > tol][:5])


def _check_pspin_states(hj, T, states, sol, sel):
    e_eps, e_n, e_st = (np.asarray(a) for a in (sol.eps, sol.n_solutions, sol.status))
    bad = [(hj[k], T[k], [e for e, _ in states[k]], e_eps[k], e_n[k], e_st[k])
           for k in _wrong_states(sol, states, sel, signed=True, mz_tol=1e-8)]
    assert not bad, f"{len(bad)} of {sel.sum()} wrong, e.g. {bad[:4]}"


def test_pspin3_states_of_a_temperature_and_agreement(pspin):
    _, _, hj, T, states, amb, sol, agr, failing = pspin
    assert amb.mean() < 0.01 and (T < 0).sum() >= 100
    sel = ~amb & ~failing
    _check_pspin_states(hj, T, states, sol, sel)
    assert sum(len(s) >= 2 for s in states) >= 100
    jr = pspin_jump(hj)
    code, n = _expected_codes(T, states, jr)
    pos = sel & (T > 0)
    got, st = np.asarray(agr.code), np.asarray(agr.status)
    wrong = np.nonzero(pos & ((st != jl.Status.OK) | (got != code)))[0]
    assert wrong.size == 0, [(hj[i], T[i], code[i], got[i], st[i]) for i in wrong[:5]]
    assert np.array_equal(np.asarray(agr.n_mce_states)[pos], n[pos])


# (these came back NOT_CONVERGED before the states of a temperature were taken from the certified
# canonical stationary points, e.g. (h, T) in PSPIN_FAILING)
def test_pspin3_states_of_a_temperature_near_the_jump(pspin):
    _, _, hj, T, states, amb, sol, _, failing = pspin
    assert failing.sum() >= len(PSPIN_FAILING)
    _check_pspin_states(hj, T, states, sol, failing)
