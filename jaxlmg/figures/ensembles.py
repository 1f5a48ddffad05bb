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


def _inequivalence(out_dir: Path) -> Path:
    T = 0.5
    h = np.linspace(1.95, 2.08, 40)
    K = np.linspace(0.22, 0.30, 40)
    ag = jl.ensemble_agreement(h[:, None], K[None, :], T)
    code = np.asarray(ag.code, float)
    code[np.asarray(ag.status) != jl.Status.OK] = np.nan
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.subplots()
    names = [a.name for a in jl.Agreement]
    im = ax.pcolormesh(K, h, code, cmap="tab10", vmin=-0.5, vmax=9.5, shading="nearest")
    present = sorted({int(c) for c in np.unique(code[np.isfinite(code)])})
    for c in present:
        ax.plot([], [], "s", color=im.cmap(im.norm(c)), label=names[c])
    ce, mce = jl.tricritical(T, "canonical"), jl.tricritical(T, "microcanonical")
    ax.plot(float(ce.K), float(ce.h), "o", color="k", label="CE tricritical")
    ax.plot(float(mce.K), float(mce.h), "s", color="k", label="MCE tricritical")
    ax.set_xlabel("K / J")
    ax.set_ylabel("h / J")
    ax.set_title(f"Ensemble (in)equivalence at T = {T:g} J")
    ax.legend(fontsize=6, loc="upper left")
    path = out_dir / "inequivalence_map.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def plot(out_dir) -> list[Path]:
    """Write ``fig2_ensembles.png``, ``fig3_tricritical.png`` and ``inequivalence_map.png``."""
    out_dir = Path(out_dir)
    return [_fig2(out_dir), _fig3(out_dir), _inequivalence(out_dir)]
