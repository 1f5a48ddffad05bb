"""Fig. 2 (both ensembles), Fig. 3 (tricritical K against T) and the inequivalence map.

Everything is computed from the exact boundary functions of :mod:`jaxlmg` (no sketching, no
low-temperature formula except where drawn for comparison); the lines of Fig. 2 and of the
inequivalence map are those of :func:`jaxlmg.phase_diagram`, drawn by
:func:`jaxlmg.figures.phase_diagrams.draw_boundaries`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib
import numpy as np
from matplotlib.figure import Figure

import jaxlmg as jl

from ._data import DRAWING, in_small_batches
from .phase_diagrams import draw_boundaries

N_LINE = 48  # points per line (<= 64: one compiled batch size for every line)
N_CHECK = 32  # ensemble_agreement check grid per axis (32², evaluated in slices of 64 points)


def _fig3(out_dir: Path) -> Path:
    T = np.linspace(0.02, 1.98, 197)
    # slices of 64: the programs compiled for phase_diagram's tricritical points are reused
    ce = in_small_batches(lambda t: jl.tricritical(t, "canonical").K, T)
    mce = in_small_batches(lambda t: jl.tricritical(t, "microcanonical").K, T)
    with DRAWING:
        return _draw_fig3(out_dir, T, ce, mce)


def _draw_fig3(out_dir: Path, T, ce, mce) -> Path:
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


def _diagram(T, K, h=None):
    return jax.tree_util.tree_map(np.asarray, jl.phase_diagram(T, K=K, h=h))


def _fig2(out_dir: Path) -> Path:
    """Both ensembles, every line from :func:`jaxlmg.phase_diagram`: βJ = 2 (whole view and a zoom
    on the tricritical points) and βJ = 1/2."""
    views = [(0.5, (0.0, 1.5), (1.6, 3.3)),
             (0.5, (0.24, 0.3), (1.996, 2.02)),
             (2.0, (0.0, 3.0), (0.0, 3.3))]
    diagrams = []
    for T, K_range, h_range in views:
        K = np.linspace(*K_range, N_LINE)
        hc = float(jl.critical_field(T)) if T <= 2 else 0.0
        # fields for the MCE boundaries: denser next to h_c, where the region starts
        h = hc + (h_range[1] - hc) * np.linspace(0.0, 1.0, N_LINE + 1)[1:] ** 2
        diagrams.append(_diagram(T, K, h))
    with DRAWING:
        fig = Figure(figsize=(15, 4.6))
        axes = fig.subplots(1, 3)
        for ax, (T, K_range, h_range), pd in zip(axes, views, diagrams, strict=True):
            handles = draw_boundaries(ax, pd)
            ax.set(xlim=K_range, ylim=h_range, xlabel="K / J", ylabel="h / J",
                   title=f"T = {T:g} J (βJ = {1 / T:g})")
            ax.legend(handles=handles, fontsize=6, loc="lower right", framealpha=0.9)
        fig.suptitle("Fig. 2: (K, h) diagram in both ensembles, every boundary computed "
                     "(jaxlmg.phase_diagram); middle: zoom on the tricritical points at βJ = 2")
        path = out_dir / "fig2_ensembles.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def _inequivalence_data(T, h_range, K_range):
    """The region boundaries from :func:`jaxlmg.phase_diagram` and a coarse point-by-point
    :func:`jaxlmg.ensemble_agreement` grid ``(K, h, code, bad)`` as a check."""
    hg = np.linspace(*h_range, N_CHECK)
    Kg = np.linspace(*K_range, N_CHECK)
    # slices of 64: the same program as phase_diagram's folds (one compilation)
    ag = in_small_batches(jl.ensemble_agreement, hg[:, None], Kg[None, :], T)
    KK, HH = np.meshgrid(Kg, hg)
    K = np.linspace(*K_range, N_LINE)
    hc = float(jl.critical_field(T))
    hb = hc + (h_range[1] - hc) * np.linspace(0.0, 1.0, N_LINE + 1)[1:] ** 2
    pd = _diagram(T, K, hb)
    return pd, (KK, HH, ag.code, ag.status != jl.Status.OK)


def _inequivalence_panel(ax, data, h_range, K_range, legend_loc):
    """Draw :func:`_inequivalence_data`: lines, with the agreement codes as markers."""
    pd, (KK, HH, code, bad) = data
    handles = draw_boundaries(ax, pd)
    cmap = matplotlib.colormaps["tab10"]
    for a in jl.Agreement:
        sel = (code == a) & ~bad
        if sel.any():
            handles += ax.plot(KK[sel], HH[sel], "s", ms=2.5, color=cmap(int(a)), alpha=0.8,
                               label=f"ensemble_agreement: {a.name}")
    if bad.any():
        handles += ax.plot(KK[bad], HH[bad], "x", ms=3, color="k",
                           label=f"ensemble_agreement: status not OK ({int(bad.sum())})")
    ax.set(xlim=K_range, ylim=h_range, xlabel="K / J", ylabel="h / J")
    ax.set_title(f"lines: phase_diagram; squares: {N_CHECK} x {N_CHECK} ensemble_agreement",
                 fontsize=8)
    if legend_loc == "outside":
        ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif legend_loc is not None:
        ax.legend(handles=handles, fontsize=6, loc=legend_loc)


def _inequivalence(out_dir: Path) -> Path:
    T = 1.0
    hc = float(jl.critical_field(T))
    # right: zoom on the tricritical points, where the CE jumps and the MCE passes continuously
    # (c < 0); the left panel has no legend (the same as the right one)
    panels = [((1.7, 2.2), (0.15, 0.7), None),
              ((hc - 0.001, hc + 0.004), (0.2, 0.3), "outside")]
    data = [_inequivalence_data(T, h_range, K_range) for h_range, K_range, _ in panels]
    with DRAWING:
        fig = Figure(figsize=(13, 4.8))
        for ax, d, (h_range, K_range, loc) in zip(fig.subplots(1, 2), data, panels,
                                                  strict=True):
            _inequivalence_panel(ax, d, h_range, K_range, loc)
        fig.suptitle(f"Ensemble (in)equivalence at T = {T:g} J: region boundaries from "
                     "jaxlmg.phase_diagram, checked point by point; right: zoom on the "
                     "tricritical points")
        path = out_dir / "inequivalence_map.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def plot(out_dir) -> list[Path]:
    """Write ``fig2_ensembles.png``, ``fig3_tricritical.png`` and ``inequivalence_map.png``."""
    out_dir = Path(out_dir)
    # The map first: ``jaxlmg reproduce`` runs this module next to ``phase_diagrams``, whose lines
    # compile the same programs (a program asked for by two threads is compiled once, the second
    # waits); the map's agreement grid compiles the one those lines need last, meanwhile.
    inequivalence = _inequivalence(out_dir)
    return [_fig2(out_dir), _fig3(out_dir), inequivalence]
