"""First-order transitions and spinodals of models without a paramagnet ``Mz = 0`` (issue 11).

LMG4 in a longitudinal field b (u = -J m² - K m⁴ - b m) has a first-order line in h between a
strongly and a weakly polarized state, which ends at a critical end point in b; the odd p-spin
has one between a ferromagnet and the quasi-paramagnet Mz = 0.  The reference is an independent
brute force of eq. (19) written here: f(m) = u(m) + G(m), G(m) = min over the spin length s in
[|m|, 1] of -h sqrt(s² - m²) - T S(s) (a convex 1-D problem, solved by brentq on its
stationarity condition), with f'(m) = u'(m) + h m / sqrt(s² - m²) (envelope theorem).  Stationary
points are roots of f' (brentq after a dense scan); a spinodal is where the local extremum of f'
between a minimum and its barrier reaches zero (the minimum and the maximum merge).
"""

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

import jaxlmg as jl

J, K = 1.0, 0.5
B_L = np.array([1e-6, 0.05, 0.1])  # near the Z2 limit, first order, beyond the end point
T_S = np.array([[0.0], [0.3]])


def _u(m, b):
    return -J * m**2 - K * m**4 - b * m


def _du(m, b):
    return -2 * J * m - 4 * K * m**3 - b


def _inner(m, h, T):
    """Spin length minimizing -h sqrt(s² - m²) - T S(s) at fixed m (s = 1 at T = 0)."""
    if T == 0:
        return 1.0
    a = abs(m)
    if a == 0:  # a free spin in the field h
        return np.tanh(h / T)
    phi = lambda s: T * np.arctanh(s) * np.sqrt(s * s - a * a) - h * s  # noqa: E731
    top = 1 - 2**-53  # the largest float64 below 1: the optimum is not resolved above it
    return brentq(phi, a, top, xtol=1e-16, rtol=1e-15) if phi(top) > 0 else top


def _entropy(s):
    p, q = (1 + s) / 2, (1 - s) / 2
    return -sum(x * np.log(x) if x > 0 else 0.0 for x in (p, q))


class Landscape:
    """f(m) and f'(m) of eq. (19) at fixed (h, T) for an interaction u, du."""

    def __init__(self, u, du, h, T):
        self.u, self.du, self.h, self.T = u, du, h, T

    def f(self, m):
        s = _inner(m, self.h, self.T)
        return self.u(m) - self.h * np.sqrt(s * s - m * m) - self.T * _entropy(s)

    def df(self, m):
        s = _inner(m, self.h, self.T)
        return self.du(m) + self.h * m / np.sqrt(s * s - m * m)

    def minima(self, lo=-0.999, hi=0.999, n=801):
        """Every local minimum (m, f) on [lo, hi]: rising sign changes of f', refined."""
        grid = np.linspace(lo, hi, n)
        d = np.array([self.df(m) for m in grid])
        out = []
        for i in np.nonzero((d[:-1] < 0) & (d[1:] >= 0))[0]:
            m = brentq(self.df, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-15)
            out.append((m, self.f(m)))
        return out


def _longitudinal(b, h, T):
    return Landscape(lambda m: _u(m, b), lambda m: _du(m, b), h, T)


def _pspin(h, T):
    return Landscape(lambda m: -(m**3), lambda m: -3 * m * m, h, T)


def _nearest(minima, m):
    return min(minima, key=lambda x: abs(x[0] - m))


def _fold(make, h0, m_lo, m_hi, sense):
    """Field near h0 where the local extremum of f' on [m_lo, m_hi] is zero (sense +1: its local
    maximum, between a minimum and the barrier above it; -1: its local minimum)."""

    def extremum(h):
        land = make(h)
        r = minimize_scalar(lambda m: -sense * land.df(m), bounds=(m_lo, m_hi),
                            method="bounded", options={"xatol": 1e-11})
        assert m_lo + 1e-6 < r.x < m_hi - 1e-6  # an interior extremum, not the window's edge
        return -sense * r.fun

    return brentq(extremum, h0 - 1e-4, h0 + 1e-4, xtol=1e-15, rtol=1e-15)


def _at(co, i, j):
    return type(co)(*[None if v is None else np.asarray(v)[i, j] for v in co])


@pytest.fixture(scope="module")
def longitudinal():
    # one call (one compilation) for every (T, b) of this file
    return jl.coexistence_state(jl.LongitudinalLMG4(), jl.LongitudinalCouplings(J, K, B_L), T_S)


@pytest.mark.parametrize("it", [0, 1])
def test_longitudinal_first_order_line_against_brute_force(longitudinal, it):
    T, b = float(T_S[it, 0]), float(B_L[1])
    co = _at(longitudinal, it, 1)
    assert int(co.status) == jl.Status.OK
    h = float(co.h)
    # two minima of equal free energy at h, where the library says (both polarized: Mz > 0)
    mins = _longitudinal(b, h, T).minima(0.0, 0.999)
    strong, weak = _nearest(mins, float(co.Mz)), _nearest(mins, float(co.Mz_para))
    assert strong[0] == pytest.approx(float(co.Mz), abs=1e-9)
    assert weak[0] == pytest.approx(float(co.Mz_para), abs=1e-9)
    assert strong[0] - weak[0] > 0.3  # a genuine jump between two distinct minima
    assert abs(strong[1] - weak[1]) < 1e-13

    # the brute-force equal-free-energy field (the two minima tracked by Brent)
    def gap(hh):
        land = _longitudinal(b, hh, T)
        ms = [minimize_scalar(land.f, bounds=(m - 0.02, m + 0.02), method="bounded",
                              options={"xatol": 1e-10}).fun for m in (strong[0], weak[0])]
        return ms[0] - ms[1]

    assert brentq(gap, h - 1e-4, h + 1e-4, xtol=1e-15) == pytest.approx(h, abs=1e-10)
    # just below h the strongly polarized minimum is the global one, just above the weak one
    for hh, side in ((h - 1e-5, strong), (h + 1e-5, weak)):
        glob = min(_longitudinal(b, hh, T).minima(), key=lambda x: x[1])
        assert glob[0] == pytest.approx(side[0], abs=1e-3)
    # spinodals: where the weak (below) and the strong (above) minimum merge with the barrier
    mid = 0.5 * (strong[0] + weak[0])
    ps = _fold(lambda hh: _longitudinal(b, hh, T), float(co.para_spinodal), weak[0], mid, +1)
    fs = _fold(lambda hh: _longitudinal(b, hh, T), float(co.ferro_spinodal), mid, strong[0], -1)
    assert float(co.para_spinodal) == pytest.approx(ps, abs=1e-8)
    assert float(co.ferro_spinodal) == pytest.approx(fs, abs=1e-8)
    assert ps < h < fs


def test_longitudinal_field_to_zero_and_beyond_the_critical_end_point(longitudinal):
    # b -> 0: the line tends to LMG4's, with slope dh1/db = ΔMz/ΔMx (d ΔF = -ΔMx dh - ΔMz db = 0)
    for i, T in enumerate(T_S[:, 0]):
        z2 = jl.coexistence(K, float(T), J)
        co = _at(longitudinal, i, 0)
        assert int(co.status) == jl.Status.OK
        slope = (float(z2.Mz) - float(z2.Mz_para)) / (float(z2.Mx_para) - float(z2.Mx))
        assert (float(co.h) - float(z2.h)) / B_L[0] == pytest.approx(slope, rel=1e-4)
        # the weak state's spinodal tends to the paramagnet's (the critical field)
        assert float(co.para_spinodal) == pytest.approx(float(z2.para_spinodal), abs=1e-3)
        assert float(co.ferro_spinodal) == pytest.approx(float(z2.ferro_spinodal), abs=1e-5)
    # beyond the critical end point: no transition, and the brute-force landscape has a single
    # polarized minimum at every field across the former line
    for i in range(2):
        co = _at(longitudinal, i, 2)
        assert int(co.status) == jl.Status.NO_TRANSITION
        assert np.isnan(float(co.h)) and np.isnan(float(co.ferro_spinodal))
    for hh in np.linspace(2.2, 2.5, 13):
        assert len(_longitudinal(B_L[2], hh, 0.3).minima(0.0, 0.999, 401)) == 1


def test_pspin3_spinodals():
    T = np.array([0.0, 0.4])
    co = jl.coexistence_state(jl.PSpin(3), jl.PSpinCouplings(1.0), T)
    assert np.all(np.asarray(co.status) == jl.Status.OK)
    # T = 0: e(m) = -J m³ - h sqrt(1 - m²) is stationary at h = 3J m sqrt(1 - m²); the ordered
    # minimum merges with the barrier where this is largest, m² = 1/2: h = 3J/2.
    assert float(co.ferro_spinodal[0]) == pytest.approx(1.5, abs=1e-12)
    # T > 0: brute force, the local minimum of f' between the barrier and the ferromagnet
    h, mz = float(co.h[1]), float(co.Mz[1])
    fs = _fold(lambda hh: _pspin(hh, 0.4), float(co.ferro_spinodal[1]), 0.3, mz, -1)
    assert float(co.ferro_spinodal[1]) == pytest.approx(fs, abs=1e-8)
    assert h < fs
    # no para spinodal: f''(0) = T-or-h > 0 (u''(0) = 0), the quasi-paramagnet Mz = 0 is a local
    # minimum down to h = 0
    assert np.all(np.isnan(np.asarray(co.para_spinodal)))
    land = _pspin(1e-3, 0.4)
    assert all(land.df(m) > 0 for m in np.linspace(1e-3, 0.1, 50))


def test_canonical_state_with_five_stationary_points():
    """Inside the coexistence window of a longitudinal field the landscape has five stationary
    points (a reversed minimum, two maxima, the weak and the strong minimum); the engine once kept
    four slots and lost the strong, global minimum with status OK (e.g. b = 0.01, h = 2.09,
    T = 0: Mz -0.7267 instead of 0.7407).  The global minimum against the brute force, T = 0 and
    T = 0.3, for fields around the transition."""
    h = np.array([2.05, 2.07, 2.09, 2.1])
    T = np.array([[0.0], [0.3]])
    st = jl.canonical_state(jl.LongitudinalLMG4(), jl.LongitudinalCouplings(J, K, 0.01), h, T)
    assert (np.asarray(st.status) == jl.Status.OK).all()
    for i, Ti in enumerate(T[:, 0]):
        for j, hj in enumerate(h):
            m, f = min(_longitudinal(0.01, hj, Ti).minima(), key=lambda x: x[1])
            assert abs(np.asarray(st.Mz)[i, j] - m) <= 1e-9, (hj, Ti, np.asarray(st.Mz)[i, j], m)
            assert abs(np.asarray(st.f)[i, j] - f) <= 1e-11
