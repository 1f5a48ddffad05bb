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

    def row(label, t, f, energy, entropy, c, mz2, binder, status):
        """One table line; ``None`` leaves a column blank."""
        cell = lambda v, w, p: f" {'':>{w}}" if v is None else f" {float(v):>{w}.{p}f}"  # noqa: E731
        line = (f"{label:>8} {t:>8.4g}" + cell(f, 15, 10) + cell(energy, 13, 8)
                + cell(entropy, 11, 7) + cell(c, 11, 6))
        if mag:
            line += cell(mz2, 10, 6) + cell(binder, 9, 5)
        return line + f"  {jl.Status(int(status)).name}"

    for N, th in rows:
        for i, t in enumerate(T):
            print(row(N, t, th.f[i], th.energy[i], th.entropy[i], th.specific_heat[i],
                      th.Mz2[i] if mag else None, th.binder[i] if mag else None, th.status[i]))
    for i, t in enumerate(T):
        print(row("MF", t, mf.f[i], mf.energy[i], mf.entropy[i], None,
                  float(mf.Mz[i]) ** 2 if mag else None, None, mf.status[i]))
    if len(args.N) >= 3:
        ex = fs.extrapolate(args.N, np.stack([np.asarray(th.f) for _, th in rows]))
        for i, t in enumerate(T):
            print(f"{'N->inf':>8} {t:>8.4g} {float(ex.limit[i]):>15.10f}   (fit a + b lnN/N + c/N; "
                  f"mean field - fit = {float(mf.f[i]) - float(ex.limit[i]):.2e})")
    return 0
