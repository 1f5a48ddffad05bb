"""Grid-based refinement of the structure of σ (a cross-check and fallback of the exact route
of :mod:`jaxlmg._mce_structure`): candidate non-concave intervals from the upper hull of σ on a
grid, refined to double tangents by Newton with the exact dβ/dε, and negative-specific-heat runs
refined by bisection.  Host-side NumPy on top of a callable ``mce(eps) -> MicrocanonicalState``.
"""

from __future__ import annotations

import numpy as np

from ._status import Status

__all__ = ["double_tangent", "grid_nonconcave", "negative_c_intervals", "upper_hull"]


def upper_hull(x, y):
    """Indices of the upper concave hull of points ``(x, y)``, ``x`` increasing (monotone chain)."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross >= 0:  # b is on or below the chord a -> i
                hull.pop()
            else:
                break
        hull.append(i)
    return np.asarray(hull)


def grid_nonconcave(mce, eps, sig, ok, n_newton: int = 12):
    """Non-concave intervals seen by the grid's hull, refined to double tangents:
    ``(intervals (k, 2), temperatures (k,))``."""
    idx = np.nonzero(ok & np.isfinite(sig))[0]
    out, temps = [], []
    if idx.size < 2:
        return np.zeros((0, 2)), np.zeros((0,))
    x, y = eps[idx], sig[idx]
    hull = upper_hull(x, y)
    env = np.interp(x, x[hull], y[hull])
    tol = 1e-12 * (1.0 + np.abs(y))
    for a, b in zip(hull[:-1], hull[1:], strict=True):
        if b > a + 1 and np.any(y[a + 1:b] < env[a + 1:b] - tol[a + 1:b]):
            lo, hi, bt = double_tangent(mce, x[a], x[b], n_newton)
            if np.isfinite(lo):
                out.append((lo, hi))
                temps.append(1.0 / bt)
    return np.asarray(out, np.float64).reshape(-1, 2), np.asarray(temps, np.float64)


def double_tangent(mce, a: float, b: float, n_newton: int):
    """Refine a hull edge ``[a, b]`` to the double tangent of σ: ``β(a) = β(b)`` and
    ``σ(b) - σ(a) = β (b - a)``; 2-D Newton with the exact ``dβ/dε = -β²/c``.  Returns
    ``(a, b, β)`` or NaNs if it does not converge."""
    z = np.array([a, b], np.float64)
    for _ in range(n_newton):
        st = mce(z)
        if np.any(st.status != Status.OK):
            return np.nan, np.nan, np.nan
        s, bt, c = st.entropy, st.beta, st.specific_heat
        db = -bt * bt / c
        L = z[1] - z[0]
        bm = 0.5 * (bt[0] + bt[1])
        E = np.array([bt[0] - bt[1], s[1] - s[0] - bm * L])
        Jm = np.array([[db[0], -db[1]],
                       [-bt[0] + bm - 0.5 * db[0] * L, bt[1] - bm - 0.5 * db[1] * L]])
        step = np.linalg.solve(Jm, -E)
        z = z + step
        if np.all(np.abs(step) <= 1e-13 * (1.0 + np.abs(z))):
            break
    st = mce(z)
    good = (np.all(st.status == Status.OK) and z[0] < z[1]
            and abs(st.beta[0] - st.beta[1]) <= 1e-9 * (1.0 + abs(st.beta[0])))
    return (z[0], z[1], 0.5 * (st.beta[0] + st.beta[1])) if good else (np.nan, np.nan, np.nan)


def negative_c_intervals(mce, eps, st, ok, n_bisect: int):
    """Intervals with ``c < 0``: grid runs, each end refined by bisection on the sign of ``c``
    (the end is a zero of dβ/dε, a kink of β at an MCE critical point, or an MCE jump)."""
    neg = ok & (st.specific_heat < 0)
    edges = []
    i = 0
    n = eps.size
    while i < n:
        if neg[i]:
            j = i
            while j + 1 < n and neg[j + 1]:
                j += 1
            edges.append((i, j))
            i = j + 1
        else:
            i += 1
    if not edges:
        return np.zeros((0, 2))
    # bracket each end between a grid point with c < 0 and its neighbour with c >= 0
    lo_in = np.array([eps[i] for i, _ in edges])
    lo_out = np.array([eps[i - 1] if i > 0 else eps[i] for i, _ in edges])
    hi_in = np.array([eps[j] for _, j in edges])
    hi_out = np.array([eps[j + 1] if j + 1 < n else eps[j] for _, j in edges])
    a = np.concatenate([lo_in, hi_in])
    b = np.concatenate([lo_out, hi_out])
    for _ in range(n_bisect):
        mid = 0.5 * (a + b)
        c = mce(mid).specific_heat
        inside = c < 0
        a = np.where(inside, mid, a)
        b = np.where(inside, b, mid)
    ends = 0.5 * (a + b)
    k = len(edges)
    return np.stack([ends[:k], ends[k:]], axis=1)
