"""Finite-N exact thermodynamics converging to the mean field (issue #6): ``finite_size.png``.

Panels (``J = 1``):

a. ``⟨Mz²⟩(T)`` at ``h = 1, K = 0.2`` (a second-order transition at ``h/2 = tanh(h/T)``,
   ``T_c ≈ 1.82``) for ``N = 50, 200, 1000`` from the exact spectrum, against the canonical mean
   field ``Mz²`` (:func:`jaxlmg.canonical`).
b. ``|f_N - f_MF|`` against ``N`` at two points away from transitions, with a ``ln N / N`` guide.
c. The finite-N microcanonical caloric curve ``T(ε)`` (:func:`jaxlmg.finite_size.entropy`) at
   ``h = 1.9, K = 0.3``, where the canonical mean field jumps (first order, latent heat: the
   horizontal segment) while ``T(ε)`` bends back inside the jump (negative specific heat).  The
   mean-field microcanonical curve is overlaid when ``jaxlmg.microcanonical`` is available.

Computed on the fly (about 10 s of CPU); no sweep spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot", "FILENAME"]

FILENAME = "finite_size.png"


def plot(out_dir) -> list[Path]:
    """Write ``finite_size.png`` into ``out_dir`` (created if needed); returns its path."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state (Agg canvas)
    from matplotlib.ticker import NullFormatter

    import jaxlmg as jl

    fs = jl.finite_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3)

    # (a) order parameter vs T
    h, K = 1.0, 0.2
    T = np.linspace(0.05, 3.0, 60)
    for N, c in ((50, "C0"), (200, "C1"), (1000, "C2")):
        th = fs.free_energy(N, h, K, T)
        ax_a.plot(T, np.asarray(th.Mz2), color=c, label=f"N = {N}")
    mf = jl.canonical(h, K, T)
    ax_a.plot(T, np.asarray(mf.Mz) ** 2, "k--", label="mean field")
    ax_a.set(xlabel="T / J", ylabel=r"$\langle M_z^2\rangle$",
             title=f"(a) h = {h:g} J, K = {K:g} J: exact N vs mean field")
    ax_a.legend(frameon=False)

    # (b) convergence of the free energy
    Ns = np.array([25, 50, 100, 200, 400, 800])
    for (hh, KK, TT), m in (((0.5, 0.2, 0.3), "o"), ((3.0, 0.1, 1.0), "s")):
        cmp = fs.mean_field_comparison(Ns, hh, KK, TT)
        ax_b.loglog(Ns, np.abs(np.asarray(cmp.difference)), m + "-",
                    label=f"h = {hh:g}, K = {KK:g}, T = {TT:g}")
    ax_b.loglog(Ns, 0.2 * np.log(Ns) / Ns, "k:", label=r"$\propto \ln N / N$")
    ax_b.set(xlabel="N", ylabel=r"$|f_N - f_{\rm MF}|$ / J", title="(b) free energy per spin")
    ax_b.set_xticks(Ns, [str(n) for n in Ns])
    ax_b.xaxis.set_minor_formatter(NullFormatter())
    ax_b.legend(frameon=False, fontsize=8)

    # (c) microcanonical caloric curve through a canonical first-order jump
    h, K = 1.9, 0.3
    for N, w, c in ((400, 0.03, "C0"), (2000, 0.02, "C3")):
        edges = np.arange(-1.93, -1.50, w)
        dos = fs.entropy(N, h, K, edges)
        ax_c.plot(np.asarray(dos.eps), np.asarray(dos.temperature), ".-", color=c, ms=4,
                  label=f"N = {N}, microcanonical")
    Tc = np.linspace(0.3, 2.0, 60)
    st = jl.canonical(h, K, Tc)
    ax_c.plot(np.asarray(st.energy), Tc, "k-", lw=1, label="mean field, canonical")
    if hasattr(jl, "microcanonical"):
        eps = np.linspace(-1.9, -1.52, 200)
        mc = jl.microcanonical(h, K, eps)
        ax_c.plot(eps, np.asarray(mc.temperature), "k--", lw=1, label="mean field, microcanonical")
    ax_c.set(xlabel=r"$\varepsilon = E/N$ / J", ylabel="T / J", ylim=(0.6, 1.8),
             title=f"(c) caloric curve, h = {h:g} J, K = {K:g} J")
    ax_c.legend(frameon=False, fontsize=8, loc="upper left")

    path = out / FILENAME
    fig.savefig(path, dpi=120)
    return [path]
