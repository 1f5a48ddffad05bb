"""``jaxlmg finite-size``: exact finite-N thermodynamics next to the mean field (issue #6).

    jaxlmg finite-size --N 100 400 1600 --h 1.0 --K 0.2 --T 0.5 1.0 [--J 1.0] [--no-magnetization]

Prints, for every ``N`` and ``T``, the exact free energy, energy, entropy and specific heat per
spin, ``⟨Mz²⟩`` and the Binder cumulant (:func:`jaxlmg.finite_size.free_energy`), then the
canonical mean-field values (:func:`jaxlmg.canonical`, eq. 19) and, with three sizes or more, the
``N → ∞`` extrapolation ``a + b ln N/N + c/N`` of the free energy.
"""

from __future__ import annotations

import sys

__all__ = ["register", "run"]


def register(subparsers) -> None:
    """Add the ``finite-size`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "finite-size", help="exact finite-N free energy etc. vs the mean field",
        description="Exact canonical thermodynamics of N spins from the exact spectrum (all total-"
                    "spin sectors, eqs. 4-10), per spin, next to the mean-field values (eq. 19).")
    p.add_argument("--N", type=int, nargs="+", default=[100, 400, 1600], metavar="N",
                   help="numbers of spins (default: 100 400 1600)")
    p.add_argument("--h", type=float, default=1.0, help="transverse field (default: 1.0)")
    p.add_argument("--K", type=float, default=0.2, help="4-spin coupling (default: 0.2)")
    p.add_argument("--T", type=float, nargs="+", default=[0.5], metavar="T",
                   help="temperatures, 0 = ground state (default: 0.5)")
    p.add_argument("--J", type=float, default=1.0, help="2-spin coupling (default: 1.0)")
    p.add_argument("--no-magnetization", action="store_true",
                   help="skip <Mz^2> and the Binder cumulant (one sweep fewer)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the subcommand; returns the exit status (0 ok, 2 invalid input)."""
    import numpy as np

    import jaxlmg as jl

    fs = jl.finite_size
    mag = not args.no_magnetization
    T = np.asarray(args.T, float)
    try:
        rows = [(N, fs.free_energy(N, args.h, args.K, T, args.J, magnetization=mag))
                for N in args.N]
        mf = jl.canonical(args.h, args.K, T, args.J)
    except ValueError as e:
        print(f"jaxlmg: error: {e}", file=sys.stderr)
        return 2
    print(f"# exact finite-N thermodynamics, J = {args.J:g}, h = {args.h:g}, K = {args.K:g} "
          "(per spin; <Mz^2> with Mz = 2Sz/N)")
    head = f"{'N':>8} {'T':>8} {'f':>15} {'energy':>13} {'entropy':>11} {'C':>11}"
    print(head + (f" {'<Mz^2>':>10} {'Binder':>9}" if mag else "") + "  status")
    for N, th in rows:
        for i, t in enumerate(T):
            line = (f"{N:>8} {t:>8.4g} {float(th.f[i]):>15.10f} {float(th.energy[i]):>13.8f} "
                    f"{float(th.entropy[i]):>11.7f} {float(th.specific_heat[i]):>11.6f}")
            if mag:
                line += f" {float(th.Mz2[i]):>10.6f} {float(th.binder[i]):>9.5f}"
            print(line + f"  {jl.Status(int(th.status[i])).name}")
    for i, t in enumerate(T):
        line = (f"{'MF':>8} {t:>8.4g} {float(mf.f[i]):>15.10f} {float(mf.energy[i]):>13.8f} "
                f"{float(mf.entropy[i]):>11.7f} {'':>11}")
        if mag:
            line += f" {float(mf.Mz[i]) ** 2:>10.6f} {'':>9}"
        print(line + f"  {jl.Status(int(mf.status[i])).name}")
    if len(args.N) >= 3:
        ex = fs.extrapolate(args.N, np.stack([np.asarray(th.f) for _, th in rows]))
        for i, t in enumerate(T):
            print(f"{'N->inf':>8} {t:>8.4g} {float(ex.limit[i]):>15.10f}   (fit a + b lnN/N + c/N; "
                  f"mean field - fit = {float(mf.f[i]) - float(ex.limit[i]):.2e})")
    return 0
