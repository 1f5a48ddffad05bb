"""Throughput of the canonical engine, against a per-point SciPy baseline.

    python benchmarks/bench_canonical.py [--n 1000000] [--baseline-n 200] [--seed 0]
                                         [--chunk 65536] [--no-sweep]

Random (h, K, T) with h in [0, 3], K in [0, 1], T in [0, 2.5] (J = 1), float64.  The engine
(``jl.canonical``) is timed after a warm-up call of the same shape (compilation excluded; reported
separately), best of ``--repeat`` runs, in two ways:

* one call on all points (one XLA program: on CPU it keeps about one core busy);
* all cores: the same points in chunks of ``--chunk``, one chunk per core at a time from a thread
  pool, which is how ``jaxlmg sweep`` runs on a single CPU device.

Then (unless ``--no-sweep``) ``jaxlmg.sweeps.run_sweep`` end to end on a regular 100 x 100 x 100
grid over the same ranges (including compilation, Zarr writes and compression) into a temporary
directory.  The baseline is an honest per-point SciPy solve of the
same problem: minimize eq. (19), f(s, mz) = -J s²mz² - K s⁴mz⁴ - h s sqrt(1-mz²) - T S(s), with
L-BFGS-B (bounds, analytic gradient) from 2 starts per point (one ordered, one paramagnetic), in
the smooth variables s = tanh(y), mz = cos(θ), keeping the lower result.  The ratio printed is
engine points/s over baseline points/s, both measured in this run.  The baseline's free energies
are compared with the engine's on the same points (it finds the global minimum less reliably).
"""

from __future__ import annotations

import os

# One BLAS thread for the baseline: L-BFGS-B on 2 variables is ~10x slower with a multi-threaded
# OpenBLAS on a small shared CPU; this favours the baseline (must be set before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import xlogy  # noqa: E402

import jaxlmg as jl  # noqa: E402

SWEEP_SPEC = """
ensemble = "canonical"
outputs = ["s", "mz", "f", "n_minima", "status"]
chunk_size = {chunk}

[grid]
h = {{ start = 0.0, stop = 3.0, num = 100 }}
K = {{ start = 0.0, stop = 1.0, num = 100 }}
T = {{ start = 0.0, stop = 2.5, num = 100 }}
"""


def _S(s):
    p, q = 0.5 * (1.0 + s), 0.5 * (1.0 - s)
    return -(xlogy(p, p) + xlogy(q, q))


def baseline_point(h, K, T, J=1.0):
    """Per-point SciPy solve: L-BFGS-B over (y, θ), s = tanh y, mz = cos θ, from 2 starts."""

    def fun(x):
        y, th = x
        s, c, sn = np.tanh(y), np.cos(th), np.sin(th)
        M = s * c
        val = -J * M * M - K * M**4 - h * s * sn - T * _S(s)
        dfds = -2 * J * s * c * c - 4 * K * s**3 * c**4 - h * sn + T * y  # artanh(tanh y) = y
        dfdth = (2 * J * s * s * c + 4 * K * s**4 * c**3) * sn - h * s * c
        return val, np.array([dfds * (1.0 - s * s), dfdth])

    best = np.inf
    for x0 in ((np.arctanh(0.95), 0.3), (np.arctanh(0.5), np.pi / 2 - 0.05)):
        r = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, 20.0), (0.0, np.pi / 2)],
                     options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
        best = min(best, float(r.fun))
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="engine grid points")
    ap.add_argument("--baseline-n", type=int, default=200, help="SciPy baseline points")
    ap.add_argument("--repeat", type=int, default=3, help="timed engine runs (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=65536, help="points per chunk (all cores)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the end-to-end sweep")
    a = ap.parse_args(argv)

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print(f"python {platform.python_version()}, {platform.machine()}, float64: "
          f"{jax.config.read('jax_enable_x64')}")

    rng = np.random.default_rng(a.seed)
    h = rng.uniform(0.0, 3.0, a.n)
    K = rng.uniform(0.0, 1.0, a.n)
    T = rng.uniform(0.0, 2.5, a.n)

    t0 = time.perf_counter()
    r = jl.canonical(h, K, T)
    jax.block_until_ready(r)
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        r = jl.canonical(h, K, T)
        jax.block_until_ready(r)
        times.append(time.perf_counter() - t0)
    t_eng = min(times)
    status = np.asarray(r.status)
    eng_pps = a.n / t_eng
    print(f"engine:   {a.n} points, first call (compile + run) {t_first:.2f} s, "
          f"run {t_eng:.3f} s (best of {a.repeat}: {', '.join(f'{x:.3f}' for x in times)})")
    print(f"          {eng_pps:,.0f} points/s; status: {jl._status.describe(status)}")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    starts = range(0, a.n, a.chunk)

    def chunk(i):
        sl = slice(i, i + a.chunk)
        return np.asarray(jl.canonical(h[sl], K[sl], T[sl]).f)

    with ThreadPoolExecutor(max_workers=cores) as pool:
        f_par = np.concatenate(list(pool.map(chunk, starts)))  # warm-up (both chunk shapes)
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            f_par = np.concatenate(list(pool.map(chunk, starts)))
            times.append(time.perf_counter() - t0)
    t_par = min(times)
    par_pps = a.n / t_par
    same = np.array_equal(f_par, np.asarray(r.f), equal_nan=True)
    print(f"all cores: {cores} threads, chunks of {a.chunk}: run {t_par:.3f} s "
          f"(best of {a.repeat}), {par_pps:,.0f} points/s; f identical to the single call: {same}")

    if not a.no_sweep:
        from jaxlmg.sweeps import parse_spec, run_sweep

        spec = parse_spec(SWEEP_SPEC.format(chunk=a.chunk))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rep = run_sweep(spec, f"{tmp}/bench.zarr", progress=False)
            t_sw = time.perf_counter() - t0
        t_run = t_sw - rep.compile_seconds
        print(f"sweep:    {spec.n_points:,} grid points end to end (Zarr store) in {t_sw:.2f} s "
              f"= compile {rep.compile_seconds:.1f} s + run {t_run:.2f} s: "
              f"{spec.n_points / t_run:,.0f} points/s after compilation; {rep.status_counts}")

    nb = min(a.baseline_n, a.n)
    t0 = time.perf_counter()
    fb = np.array([baseline_point(h[i], K[i], T[i]) for i in range(nb)])
    t_base = time.perf_counter() - t0
    base_pps = nb / t_base
    fe = np.asarray(r.f)[:nb]
    diff = fb - fe
    print(f"baseline: {nb} points (scipy L-BFGS-B, 2 starts/point) in {t_base:.2f} s, "
          f"{base_pps:,.1f} points/s")
    print(f"          baseline f - engine f on those points: min {diff.min():.2e}, "
          f"max {diff.max():.2e}; {int((diff > 1e-9).sum())} points where the baseline "
          "missed the engine's minimum by > 1e-9")
    print(f"ratio (engine / baseline points/s): one call {eng_pps / base_pps:,.0f}x, "
          f"all cores {par_pps / base_pps:,.0f}x")


if __name__ == "__main__":
    main()
