"""Fig. 2 (both ensembles), Fig. 3 (tricritical K against T) and the inequivalence map.

Everything is computed from the exact boundary functions of :mod:`jaxlmg` (no sketching, no
low-temperature formula except where drawn for comparison).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import jaxlmg as jl


def _fig3(out_dir: Path) -> Path:
    T = np.linspace(0.02, 1.98, 197)
    ce = np.asarray(jl.tricritical(T, "canonical").K)
    mce = np.asarray(jl.tricritical(T, "microcanonical").K)
    x = np.exp(-4.0 / T)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    ax.plot(T, mce, color="C3", label="microcanonical, exact (b2 = b4 = 0)")
    ax.plot(T, ce, color="C0", label="canonical, exact (b2 = b4 = 0)")
    ax.plot(T, 0.25 + x, "--", color="C3", lw=1, label="eq. (39), low-T")
    ax.plot(T, 0.25 - 2 * x / T, "--", color="C0", lw=1, label="eq. (32), low-T")
    ax.plot(T, 0.25 + x - 2 * x / T, ":", color="k", lw=1,
            label="J/4 + J e^{-4J/T} - 2(J²/T) e^{-4J/T}")
    ax.axhline(1 / 6, color="0.6", lw=0.8)
    ax.annotate("h → 0 classical tricritical K = J/6 at T = 2J", (0.05, 1 / 6 + 0.005), fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(0.12, 3.0)
    ax.set_xlim(0, 2)
    ax.set_xlabel("T / J")
    ax.set_ylabel("K_tcp / J")
    ax.set_title("Fig. 3: tricritical coupling against temperature")
    ax.legend(fontsize=7, loc="upper left")
    path = out_dir / "fig3_tricritical.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def _fig2_panel(ax, T, K_range, h_range):
    K = np.linspace(*K_range, 241)
    ce = jl.tricritical(T, "canonical")
    mce = jl.tricritical(T, "microcanonical")
    h1 = np.asarray(jl.first_order_field(K, T))
    hc = float(jl.critical_field(T))
    if np.isfinite(hc):
        Kce, Kmce = float(ce.K), float(mce.K)
        ax.plot([K_range[0], Kce], [hc, hc], color="C0", lw=2, label="second order (both)")
        ax.plot([Kce, Kmce], [hc, hc], color="C3", lw=2, ls="--",
                label="second order, MCE only")
        ax.plot(Kce, hc, "o", color="C0", label=f"CE tricritical K = {Kce:.5f}")
        ax.plot(Kmce, hc, "s", color="C3", label=f"MCE tricritical K = {Kmce:.5f}")
    ax.plot(K, h1, color="k", lw=1.5, label="CE first order (exact coexistence)")
    ax.set_xlim(*K_range)
    ax.set_ylim(*h_range)
    ax.set_xlabel("K / J")
    ax.set_ylabel("h / J")
    ax.set_title(f"T = {T:g} J (βJ = {1 / T:g})")
    ax.legend(fontsize=6, loc="lower right")


def _fig2(out_dir: Path) -> Path:
    fig = Figure(figsize=(10, 4.2))
    a, b = fig.subplots(1, 2)
    _fig2_panel(a, 0.5, (0.2, 0.32), (1.9, 2.1))
    _fig2_panel(b, 2.0, (0.0, 1.2), (0.0, 3.0))
    fig.suptitle("Fig. 2: (K, h) diagram in both ensembles, boundaries computed exactly")
    path = out_dir / "fig2_ensembles.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def _inequivalence_panel(ax, T, h, K, legend_loc):
    ag = jl.ensemble_agreement(h[:, None], K[None, :], T)
    code = np.asarray(ag.code, float)
    n_bad = int(np.sum(np.asarray(ag.status) != jl.Status.OK))
    code[np.asarray(ag.status) != jl.Status.OK] = np.nan
    names = [a.name for a in jl.Agreement]
    im = ax.pcolormesh(K, h, code, cmap="tab10", vmin=-0.5, vmax=9.5, shading="nearest")
    present = sorted({int(c) for c in np.unique(code[np.isfinite(code)])})
    for c in present:
        ax.plot([], [], "s", color=im.cmap(im.norm(c)), label=names[c])
    Kf = np.linspace(K[0], K[-1], 200)
    h1 = np.asarray(jl.first_order_field(Kf, T))
    ax.plot(Kf, h1, color="k", lw=0.8, label="CE first order (exact)")
    ce, mce = jl.tricritical(T, "canonical"), jl.tricritical(T, "microcanonical")
    hc = float(jl.critical_field(T))
    ax.plot([K[0], float(mce.K)], [hc, hc], color="k", lw=0.8, ls=":",
            label="critical field (second order)")
    ax.plot(float(ce.K), float(ce.h), "o", color="k", label="CE tricritical")
    ax.plot(float(mce.K), float(mce.h), "s", color="k", label="MCE tricritical")
    ax.set_xlim(K[0], K[-1])
    ax.set_ylim(h[0], h[-1])
    ax.set_xlabel("K / J")
    ax.set_ylabel("h / J")
    note = f"; {n_bad} points not converged (white)" if n_bad else ""
    ax.set_title(f"{h.size} x {K.size} points{note}", fontsize=8)
    if legend_loc == "outside":
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=6, loc=legend_loc)


def _inequivalence(out_dir: Path) -> Path:
    T = 1.0
    fig = Figure(figsize=(12.5, 4.6))
    a, b = fig.subplots(1, 2)
    _inequivalence_panel(a, T, np.linspace(1.7, 2.2, 51), np.linspace(0.15, 0.7, 51), "upper left")
    # zoom on the tricritical points: the CE jumps, the MCE passes continuously (c < 0)
    hc = float(jl.critical_field(T))
    _inequivalence_panel(b, T, np.linspace(hc - 0.001, hc + 0.004, 31), np.linspace(0.2, 0.3, 41),
                         "outside")
    fig.suptitle(f"Ensemble (in)equivalence at T = {T:g} J (ensemble_agreement, exact MCE states "
                 "of temperature T); right: zoom on the tricritical points")
    path = out_dir / "inequivalence_map.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def plot(out_dir) -> list[Path]:
    """Write ``fig2_ensembles.png``, ``fig3_tricritical.png`` and ``inequivalence_map.png``."""
    out_dir = Path(out_dir)
    return [_fig2(out_dir), _fig3(out_dir), _inequivalence(out_dir)]
