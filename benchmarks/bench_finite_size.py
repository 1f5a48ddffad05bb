"""Exact finite-N spectrum (issue #6): all levels of all total-spin sectors at one point.

``jaxlmg.finite_size.spectrum(N, h, K)`` (JAX, float64; timed after a warm-up call, best of
``--repeat``) against a per-sector loop of ``scipy.linalg.eigh_tridiagonal`` (LAPACK, default
driver, eigenvalues only) on the full ``(2S+1)``-dimensional sector matrices, measured in the same
run; optionally (``--split``) also the LAPACK loop over the parity-split blocks that jaxlmg solves
(the same matrices, half the work of the unsplit loop).  Both are checked against each other.
Then the scaling of the JAX spectrum with N, and the low-temperature free energy (energy window:
only the levels that matter) up to N = 2·10^4.  Runs on the default JAX device (GPU if present).

    python benchmarks/bench_finite_size.py [--N 2000] [--h 1.9] [--K 0.3] [--split]
                                           [--scaling 500 1000 2000 4000]
                                           [--window 5000 10000 20000] [--repeat 2] [--models]

``--models``: also the model-generic spectrum (``spectrum_state``) of ``PSpin(3)`` (J = 1) and
``LongitudinalLMG4`` (J = 1, K, b = 0.2) at the same N and h (no Z2 symmetry: whole sectors of
dimension 2S+1), against the same LAPACK loop on their sector matrices.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def scipy_model_sectors(N, h, u):
    """LAPACK eigenvalues of every whole sector of ``N u(2m/N) - 2h Sx``, sorted per sector."""
    from scipy.linalg import eigh_tridiagonal

    out = []
    for tS in range(N, -1, -2):
        S = tS / 2
        m = np.arange(-S, S + 1)
        d = N * u(2 * m / N)
        e = -h * np.sqrt(S * (S + 1) - m[:-1] * (m[:-1] + 1))
        out.append(eigh_tridiagonal(d, e, eigvals_only=True) if d.size > 1 else d)
    return out


def scipy_sectors(N, h, K, J=1.0, split=False):
    """LAPACK eigenvalues of every sector (or parity block), sorted per sector."""
    from scipy.linalg import eigh_tridiagonal

    out = []
    for tS in range(N, -1, -2):
        S = tS / 2
        if split:
            ws = []
            for P in (1, -1):
                if N % 2 == 0:
                    m = np.arange(0.0 if P > 0 else 1.0, S + 1)
                else:
                    m = np.arange(0.5, S + 1)
                if m.size == 0:
                    continue
                d = -(4 * J / N) * m**2 - (16 * K / N**3) * m**4
                e = -h * np.sqrt(S * (S + 1) - m[:-1] * (m[:-1] + 1))
                if N % 2 == 0 and P > 0 and m.size > 1:
                    e[0] *= np.sqrt(2.0)
                if N % 2 == 1:
                    d[0] -= P * h * (S + 0.5)
                ws.append(eigh_tridiagonal(d, e, eigvals_only=True) if d.size > 1 else d)
            out.append(np.sort(np.concatenate(ws)))
        else:
            m = np.arange(-S, S + 1)
            d = -(4 * J / N) * m**2 - (16 * K / N**3) * m**4
            e = -h * np.sqrt(S * (S + 1) - m[:-1] * (m[:-1] + 1))
            out.append(eigh_tridiagonal(d, e, eigvals_only=True) if d.size > 1 else d)
    return out


def best_of(f, repeat):
    ts, r = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        r = f()
        ts.append(time.perf_counter() - t)
    return min(ts), r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, default=2000)
    ap.add_argument("--h", type=float, default=1.9)
    ap.add_argument("--K", type=float, default=0.3)
    ap.add_argument("--split", action="store_true", help="also time LAPACK on the parity blocks")
    ap.add_argument("--scaling", type=int, nargs="*", default=[500, 1000, 2000, 4000])
    ap.add_argument("--window", type=int, nargs="*", default=[5000, 10000, 20000])
    ap.add_argument("--T", type=float, default=0.05, help="temperature of the window runs")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--models", action="store_true",
                    help="also PSpin(3) and LongitudinalLMG4 (spectrum_state, whole sectors)")
    args = ap.parse_args(argv)

    import jax

    import jaxlmg as jl

    fs = jl.finite_size
    print(f"# jax {jax.__version__}, device {jax.devices()[0].device_kind} "
          f"({jax.default_backend()}), float64")
    N, h, K = args.N, args.h, args.K

    def jax_spectrum(n):
        sp = fs.spectrum(n, h, K)
        return np.asarray(sp.energy), np.asarray(sp.two_S)

    t0 = time.perf_counter()
    jax_spectrum(N)
    first = time.perf_counter() - t0
    t_jax, (E, two_S) = best_of(lambda: jax_spectrum(N), args.repeat)
    t_sp, ref = best_of(lambda: scipy_sectors(N, h, K), 1)
    err = max(np.max(np.abs(np.sort(E[two_S == N - 2 * i]) - w)) for i, w in enumerate(ref))
    n_lev = E.size
    print(f"N = {N}, h = {h}, K = {K}: {n_lev:,} levels (sum over sectors of 2S+1), "
          f"{N // 2 + 1} sectors")
    print(f"  jaxlmg spectrum        {t_jax:8.3f} s   (first call incl. compilation {first:.1f} s)")
    print(f"  scipy per-sector loop  {t_sp:8.3f} s   (eigh_tridiagonal, full sectors)")
    print(f"  speed-up               {t_sp / t_jax:8.2f} x   max |difference| {err:.2e}")
    if args.split:
        t_split, _ = best_of(lambda: scipy_sectors(N, h, K, split=True), 1)
        print(f"  scipy per-block loop   {t_split:8.3f} s   (parity blocks)  -> "
              f"speed-up {t_split / t_jax:.2f} x")

    if args.models:
        print(f"\n# model-generic spectrum_state, N = {N}, h = {h} (whole sectors, no parity "
              "split), vs LAPACK on the same sector matrices")
        models = (("PSpin(3), J = 1", jl.PSpin(3), jl.PSpinCouplings(1.0), lambda m: -(m**3)),
                  (f"LongitudinalLMG4, J = 1, K = {K}, b = 0.2", jl.LongitudinalLMG4(),
                   jl.LongitudinalCouplings(1.0, K, 0.2), lambda m: -(m**2) - K * m**4 - 0.2 * m))
        for label, model, couplings, u in models:
            def run(model=model, couplings=couplings):
                sp = fs.spectrum_state(model, couplings, N, h)
                return np.asarray(sp.energy), np.asarray(sp.two_S)

            run()
            t_m, (E, two_S) = best_of(run, args.repeat)
            t_ref, ref = best_of(lambda u=u: scipy_model_sectors(N, h, u), 1)
            err = max(np.max(np.abs(np.sort(E[two_S == N - 2 * i]) - w))
                      for i, w in enumerate(ref))
            print(f"  {label:40s} {t_m:8.3f} s   scipy {t_ref:8.3f} s   speed-up "
                  f"{t_ref / t_m:6.2f} x   max |difference| {err:.2e}")

    print("\n# scaling of the full spectrum (one point, after warm-up)")
    print(f"{'N':>7} {'levels':>12} {'seconds':>9} {'ns/level':>9}")
    for n in args.scaling:
        jax_spectrum(n)
        t, (E, _) = best_of(lambda n=n: jax_spectrum(n), 1)
        print(f"{n:>7} {E.size:>12,} {t:>9.3f} {t / E.size * 1e9:>9.0f}")

    print(f"\n# low-temperature free energy, T = {args.T} (energy window, e^-40 tail bound)")
    print(f"{'N':>7} {'seconds':>9} {'first':>7} {'f':>18} {'ln Z':>16} {'log_tail':>9}")
    for n in args.window:
        t0 = time.perf_counter()
        fs.free_energy(n, h, K, args.T, magnetization=False)
        first = time.perf_counter() - t0
        t, th = best_of(lambda n=n: fs.free_energy(n, h, K, args.T, magnetization=False), 1)
        print(f"{n:>7} {t:>9.3f} {first:>7.1f} {float(th.f):>18.12f} {float(th.log_Z):>16.6f} "
              f"{float(th.log_tail):>9.1f}")


if __name__ == "__main__":
    main()
