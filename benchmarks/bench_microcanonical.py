"""Throughput of the microcanonical engine (issue #3), against a per-point SciPy baseline.

    python benchmarks/bench_microcanonical.py [--n 200000] [--n-baseline 400]

Random (h, K, eps) with h in [0, 3], K in [0, 1] (J = 1) and eps uniform over the spectrum
[eps_min, eps_max] (both temperature signs), float64.  The engine is timed after a warm-up call
of the same shape (compilation excluded; reported separately).  The baseline solves the same
exact 1-D problem per point with SciPy: min over m of s²(m) = m² + ((u(m) - eps)/h)² by a
64-point scan and bounded Brent in the best bracket, then sigma = S(s) and beta from the envelope
theorem (no specific heat: that would need a second solve).  The ratio printed is
engine points/s over baseline points/s, both measured in this run.  Also timed: ensemble_agreement
(every MCE state of T: roots in Mz of the canonical stationarity, each verified).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np
from scipy.optimize import minimize_scalar

import jaxlmg  # noqa: F401  (enables float64)
from jaxlmg._inequivalence import ensemble_agreement
from jaxlmg._microcanonical import energy_range, microcanonical


def baseline_point(h, K, eps, J=1.0):
    """Per-point SciPy solve of the same reduction (sigma, beta)."""
    m = np.linspace(0.0, 1.0, 64)

    def s2(x):
        return x * x + ((-J * x * x - K * x**4 - eps) / h) ** 2

    v = s2(m)
    i = int(np.argmin(v))
    lo, hi = m[max(i - 1, 0)], m[min(i + 1, m.size - 1)]
    r = minimize_scalar(s2, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    x = r.x if r.fun < v[i] else m[i]
    q = min(s2(x), 1.0)
    s = np.sqrt(q)
    Mx = (-J * x * x - K * x**4 - eps) / h
    p, qq = (1 + s) / 2, (1 - s) / 2
    sigma = -(p * np.log(p) + (qq * np.log(qq) if qq > 0 else 0.0))
    beta = (np.arctanh(s) / s if s > 0 else 1.0) * Mx / h
    return sigma, beta


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="points for the engine")
    ap.add_argument("--n-baseline", type=int, default=400, help="points for the SciPy baseline")
    ap.add_argument("--n-scan-points", type=int, default=20000,
                    help="(h, K, T) points for the ensemble_agreement timing")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    n = args.n
    h = rng.uniform(0.0, 3.0, n)
    K = rng.uniform(0.0, 1.0, n)
    r = energy_range(h, K)
    eps = np.asarray(r.eps_min) + rng.uniform(0.0, 1.0, n) * np.asarray(r.eps_max - r.eps_min)

    t0 = time.perf_counter()
    st = microcanonical(h, K, eps)
    jax.block_until_ready(st)
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        st = microcanonical(h, K, eps)
        jax.block_until_ready(st)
        best = min(best, time.perf_counter() - t0)
    ok = float(np.mean(np.asarray(st.status) == 0))
    engine = n / best

    nb = args.n_baseline
    t0 = time.perf_counter()
    ref = [baseline_point(h[i], K[i], eps[i]) for i in range(nb)]
    base = nb / (time.perf_counter() - t0)
    dsig = np.max(np.abs(np.array([x[0] for x in ref]) - np.asarray(st.entropy)[:nb]))

    ns = args.n_scan_points
    hs, Ks, Ts = rng.uniform(0.5, 2.5, ns), rng.uniform(0.0, 1.0, ns), rng.uniform(0.3, 2.0, ns)
    t0 = time.perf_counter()
    jax.block_until_ready(ensemble_agreement(hs, Ks, Ts))
    first_scan = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(ensemble_agreement(hs + 0.01, Ks, Ts))
    scan_rate = ns / (time.perf_counter() - t0)

    print(f"machine: {platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}, "
          f"jax {jax.__version__}, float64")
    print(f"microcanonical: {n} random (h, K, eps): {engine:,.0f} points/s "
          f"(best of {args.repeat}; first call incl. compilation {first:.1f} s); "
          f"status OK: {ok:.4%}")
    print(f"SciPy per-point baseline (same reduction, {nb} points): {base:,.0f} points/s; "
          f"max |sigma - sigma_baseline| = {dsig:.1e}")
    print(f"ratio engine / baseline: {engine / base:,.0f}x")
    print(f"ensemble_agreement (states of T from the stationary family, each verified): "
          f"{scan_rate:,.1f} points/s (first call incl. compilation {first_scan:.1f} s)")


if __name__ == "__main__":
    main()
