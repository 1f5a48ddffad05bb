"""Fig. 1 (ground state, (K/J, h/J)) and Fig. 2 ((h/J, K/J) at βJ = 2 and βJ = 1/2).

Data: the sweeps ``sweeps/fig1_ground_state.toml`` and ``sweeps/fig2_canonical_hk.toml`` (the
order parameter ``Mz``, the number of local minima ``n_minima`` and ``status`` on the grid).
Lines: every one from :func:`jaxlmg.phase_diagram` (one call per temperature, drawn by
:func:`draw_boundaries`): the second-order line ``h_c(T)`` up to the canonical and up to the
microcanonical tricritical point, both tricritical points, the canonical first-order line and its
spinodals, and the boundaries of the region where the microcanonical temperature jumps over ``T``.
The jump of the order parameter in the sweep data (dots) is an independent check of the
first-order line; Fig. 1 also shows the paper's near-tricritical expansion, eq. (18).

Hatched: two local minima (``n_minima == 2``, metastability between the spinodals).  Grey: grid
points whose ``status`` is not OK (the engine's failures are shown, not hidden).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ._data import DRAWING, Background, sweep_dataset

__all__ = ["plot", "plot_fig1", "plot_fig2", "draw_boundaries", "jump_line"]

FIG1_SPEC = "fig1_ground_state"
FIG2_SPEC = "fig2_canonical_hk"
FIG2_TEMPERATURES = (0.5, 2.0)  # βJ = 2 and βJ = 1/2 (the paper's); = the T of FIG2_SPEC
N_EXACT = 48  # K values per line (<= 64: every call reuses the smallest compiled batch)


# --------------------------------------------------------------------------- lines from the core


def _diagram(T: float, K: np.ndarray, h: np.ndarray | None = None):
    """:func:`jaxlmg.phase_diagram` at ``T`` as NumPy, or ``None`` if it fails (the figure then
    shows the sweep data only, and says so on stderr)."""
    import jax

    import jaxlmg

    try:
        return jax.tree_util.tree_map(np.asarray, jaxlmg.phase_diagram(T, K=K, h=h))
    except Exception as e:  # noqa: BLE001 - a figure must not die of a core bug; say it loudly
        print(f"jaxlmg: phase_diagram(T={T}) failed ({type(e).__name__}: {e}); drawing the "
              "sweep data only", file=sys.stderr)
        return None


def _line(curve, *ends):
    """``(K, h)`` of the OK points of a :class:`jaxlmg.BoundaryCurve`, with end points (``(K, h)``
    pairs, e.g. a tricritical point) added where finite, sorted along the curve's parameter."""
    ok = curve.status == 0
    K, h = list(curve.K[ok]), list(curve.h[ok])
    for k, hh in ends:
        if np.isfinite(k) and np.isfinite(hh):
            K.append(float(k))
            h.append(float(hh))
    return np.asarray(K), np.asarray(h)


def draw_boundaries(ax, pd, *, transpose: bool = False, spinodals: bool = True) -> list:
    """Draw every line of a :class:`jaxlmg.PhaseDiagram` (NumPy leaves) on ``ax``.

    Axes ``(K, h)``, or ``(h, K)`` with ``transpose``.  Returns the legend handles.  No physics
    here: the points are those of :func:`jaxlmg.phase_diagram`, only joined.
    """
    xy = (lambda K, h: (h, K)) if transpose else (lambda K, h: (K, h))  # noqa: E731
    ce, mce = pd.tricritical_canonical, pd.tricritical_microcanonical
    tce = (float(ce.K), float(ce.h))
    tmce = (float(mce.K), float(mce.h))
    out = []
    K, h = _line(pd.critical_canonical, tce)
    if K.size > 1 and np.all(h > 0):  # T >= 2J: no second-order line at h > 0
        out += ax.plot(*xy(K, h), color="tab:blue", lw=2, label="second order, both ensembles")
    K, h = _line(pd.critical_microcanonical, tce, tmce)
    sel = K >= tce[0] if np.isfinite(tce[0]) else np.ones(K.shape, bool)
    if sel.sum() > 1 and np.all(h > 0):
        out += ax.plot(*xy(K[sel], h[sel]), color="tab:red", lw=2, ls="--",
                       label="second order, MCE only")
    K, h = _line(pd.first_order, tce)
    o = np.argsort(K)
    out += ax.plot(*xy(K[o], h[o]), color="k", lw=1.8, label="CE first order (equal f)")
    if spinodals:
        K, h = _line(pd.ferro_spinodal, tce)
        o = np.argsort(K)
        out += ax.plot(*xy(K[o], h[o]), color="0.45", lw=1, ls=":",
                       label="CE spinodals (ordered; para = h_c)")
        K, h = _line(pd.para_spinodal)
        ax.plot(*xy(K, h), color="0.45", lw=1, ls=":")
        # the folds: the spinodal points where the number of MCE states of temperature T changes
        first = True
        for curve in (pd.fold_para, pd.fold_ordered):
            ok = curve.status == 0
            if ok.sum() > 1:
                line = ax.plot(*xy(curve.K[ok], curve.h[ok]), color="tab:purple", lw=2.5,
                               alpha=0.6, label="outer boundary of inequivalence (folds)"
                               if first else None)
                out += line if first else []
                first = False
    # the MCE jump region: at each h, jump_below.K < K < jump_above.K (curves from the MCE TCP)
    both = (pd.jump_below.status == 0) & (pd.jump_above.status == 0)
    hj = np.concatenate([[tmce[1]], pd.jump_below.h[both]]) if np.isfinite(tmce[0]) \
        else pd.jump_below.h[both]
    kb = np.concatenate([[tmce[0]], pd.jump_below.K[both]]) if np.isfinite(tmce[0]) \
        else pd.jump_below.K[both]
    ka = np.concatenate([[tmce[0]], pd.jump_above.K[both]]) if np.isfinite(tmce[0]) \
        else pd.jump_above.K[both]
    if hj.size > 1:
        fill = ax.fill_between if transpose else ax.fill_betweenx
        out.append(fill(hj, kb, ka, color="tab:orange", alpha=0.35, lw=0,
                        label="MCE temperature jumps over T"))
        out += ax.plot(*xy(kb, hj), color="tab:orange", lw=1.2,
                       label="MCE jump boundaries: T_below = T, T_above = T")
        ax.plot(*xy(ka, hj), color="tab:orange", lw=1.2)
    if np.isfinite(tce[0]):
        out += ax.plot(*xy(*tce), "o", color="k", ms=6,
                       label=f"CE tricritical ({tce[0]:.5g} J, {tce[1]:.5g} J)")
    if np.isfinite(tmce[0]):
        out += ax.plot(*xy(*tmce), "s", color="tab:red", ms=6,
                       label=f"MCE tricritical ({tmce[0]:.5g} J, {tmce[1]:.5g} J)")
    return out


def jump_line(Mz: np.ndarray, h: np.ndarray, K: np.ndarray, *, threshold: float = 0.02,
              min_jump: float = 0.25):
    """First-order points from the data: for each ``K``, the last ferro -> para step along ``h``
    whose order-parameter jump exceeds ``min_jump``; returns ``(K, h_mid)`` arrays.

    ``Mz`` has shape ``(len(h), len(K))``; NaN points (status not OK) are skipped over.
    """
    Ks, hs = [], []
    for j, k in enumerate(K):
        col = Mz[:, j]
        ok = np.isfinite(col)
        hh, mm = h[ok], col[ok]
        ferro = mm > threshold
        steps = np.nonzero(ferro[:-1] & ~ferro[1:])[0]
        if steps.size and mm[steps[-1]] - mm[steps[-1] + 1] > min_jump:
            i = steps[-1]
            Ks.append(k)
            hs.append(0.5 * (hh[i] + hh[i + 1]))
    return np.asarray(Ks), np.asarray(hs)


# --------------------------------------------------------------------------- drawing helpers


def _figure(*args, **kwargs):
    from matplotlib.figure import Figure  # no pyplot: no global backend state is touched

    return Figure(*args, **kwargs)


def _panel(ax, x, y, Mz, n_min, status, *, transpose: bool):
    """Colour by Mz, hatch n_minima == 2, grey status != OK.  Data indexed [h, K]."""
    Z, N, S = (a.T if transpose else a for a in (Mz, n_min, status))
    im = ax.pcolormesh(x, y, Z, cmap="viridis", vmin=0.0, vmax=1.0, shading="nearest",
                       rasterized=True)
    meta = np.where(N == 2, 1.0, 0.0)
    if meta.any():
        ax.contourf(x, y, meta, levels=[0.5, 1.5], colors="none", hatches=["////"])
        ax.contour(x, y, meta, levels=[0.5], colors="white", linewidths=0.6)
    bad = S != 0
    if bad.any():
        grey = np.ma.masked_where(~bad, np.ones_like(Z))
        ax.pcolormesh(x, y, grey, cmap="Greys", vmin=0, vmax=2, shading="nearest",
                      rasterized=True)
    return im, int(bad.sum())


def _legend_proxies(ax, n_bad: int):
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="none", edgecolor="k", hatch="////",
                     label="two local minima (metastable)")]
    if n_bad:
        handles.append(Patch(facecolor="0.5", label=f"status not OK ({n_bad} points)"))
    return handles


# --------------------------------------------------------------------------- figures


def plot_fig1(out_dir, *, spec_dir="sweeps", data_dir=None, progress=None,
              pd=None, ds=None) -> Path:
    """Fig. 1: ground state (T = 0) in the (K/J, h/J) plane; writes ``fig1_ground_state.png``.
    ``pd``: :func:`jaxlmg.phase_diagram` at ``T = 0`` (NumPy leaves) or ``None``; ``ds``: the
    dataset of the sweep ``FIG1_SPEC`` (default: run or reuse it)."""
    if ds is None:
        ds = sweep_dataset(FIG1_SPEC, spec_dir, data_dir, progress)
    with DRAWING:
        return _draw_fig1(out_dir, ds.isel(T=0), pd)


def _draw_fig1(out_dir, ds, pd) -> Path:
    h, K = ds.h.values, ds.K.values
    Mz, nm, st = ds.Mz.values, ds.n_minima.values, ds.status.values  # [h, K]
    fig = _figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    im, n_bad = _panel(ax, K, h, Mz, nm, st, transpose=False)
    fig.colorbar(im, ax=ax, label=r"$M_z = s\,m_z$")
    handles = []
    if pd is not None:
        handles += draw_boundaries(ax, pd, spinodals=False)
    Kj, hj = jump_line(Mz, h, K)
    sel = Kj > 0.25
    handles += ax.plot(Kj[sel], hj[sel], ".", color="tab:red", ms=3,
                       label=r"first order: $M_z$ jump in the sweep")
    Ke = np.linspace(0.25, K[-1], 200)
    he = _eq18_field(Ke)
    handles += ax.plot(Ke, he, "--", color="orange", lw=1, label="eq. (18), expansion near TCP")
    handles += _legend_proxies(ax, n_bad)
    ax.set(xlabel="K/J", ylabel="h/J", xlim=(K[0], K[-1]), ylim=(h[0], h[-1]),
           title="Ground state (T = 0): paramagnet above, ferromagnet below")
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.9)
    path = Path(out_dir) / "fig1_ground_state.png"
    fig.savefig(path, dpi=130)
    return path


def _eq18_field(K, J=1.0):
    """Inverse of eq. (18), ``K/J = h/(8J) + sqrt(h (h/J - 2)/J) / 2``, for ``h >= 2J`` (the
    paper's near-tricritical expansion, drawn for comparison only)."""
    h = np.linspace(2.0 * J, 6.0 * J, 4001)
    Kh = h / 8.0 + 0.5 * np.sqrt(h * (h / J - 2.0) / J)
    return np.interp(K, Kh, h, right=np.nan)


def plot_fig2(out_dir, *, spec_dir="sweeps", data_dir=None, progress=None,
              diagrams: dict | None = None, ds=None) -> Path:
    """Fig. 2: (h/J, K/J) at βJ = 2 and βJ = 1/2, the canonical sweep (colour: ``Mz``) under every
    line of :func:`jaxlmg.phase_diagram` in both ensembles; writes ``fig2_canonical_hk.png``.
    ``diagrams``: ``{T: PhaseDiagram}`` (NumPy leaves) for the sweep's temperatures; ``ds``: the
    dataset of the sweep ``FIG2_SPEC`` (default: run or reuse it)."""
    if ds is None:
        ds = sweep_dataset(FIG2_SPEC, spec_dir, data_dir, progress)
    with DRAWING:
        return _draw_fig2(out_dir, ds, diagrams)


def _draw_fig2(out_dir, ds, diagrams) -> Path:
    h, K = ds.h.values, ds.K.values
    fig = _figure(figsize=(12, 5.2), layout="constrained")
    axes = fig.subplots(1, len(ds.T))
    for ax, T in zip(np.atleast_1d(axes), ds.T.values, strict=True):
        d = ds.sel(T=T)
        im, n_bad = _panel(ax, h, K, d.Mz.values, d.n_minima.values, d.status.values,
                           transpose=True)
        pd = None if diagrams is None else diagrams.get(float(T))
        handles = [] if pd is None else draw_boundaries(ax, pd, transpose=True)
        Kj, hj = jump_line(d.Mz.values, h, K)
        Ktc = np.inf if pd is None else float(pd.tricritical_canonical.K)
        sel = Kj > Ktc if np.isfinite(Ktc) else slice(None)
        handles += ax.plot(hj[sel], Kj[sel], ".", color="tab:red", ms=3,
                           label=r"first order: $M_z$ jump in the sweep")
        handles += _legend_proxies(ax, n_bad)
        beta = "" if T == 0 else f", βJ = {1 / T:g}"
        ax.set(xlabel="h/J", ylabel="K/J", xlim=(h[0], h[-1]), ylim=(K[0], K[-1]),
               title=f"T = {T:g} J{beta}: canonical Mz, lines in both ensembles")
        ax.legend(handles=handles, loc="upper left", fontsize=6, framealpha=0.9)
    fig.colorbar(im, ax=axes, label=r"$M_z$ (canonical)")
    path = Path(out_dir) / "fig2_canonical_hk.png"
    fig.savefig(path, dpi=130)
    return path


def _sweeps(spec_dir, data_dir, progress):
    return [sweep_dataset(name, spec_dir, data_dir, progress) for name in (FIG1_SPEC, FIG2_SPEC)]


def plot(out_dir, *, spec_dir="sweeps", data_dir=None, progress=None) -> list[Path]:
    """Write Fig. 1 and Fig. 2 to ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The sweeps (one compiled canonical program) run in a second thread while the lines are
    # computed (programs of their own): both compile at once, on two cores.
    sweeps = Background(_sweeps, spec_dir, data_dir, progress, name="jaxlmg-sweeps")
    # <= 64 points per line: every call reuses the smallest compiled batch of each engine.
    # T > 0 first: the MCE jump boundaries (none at T = 0) compile early, while the `ensembles`
    # figures (run at the same time by `jaxlmg reproduce`) compile ensemble_agreement.
    K2 = np.linspace(0.0, 1.5, N_EXACT)
    diagrams = {T: _diagram(T, K2) for T in FIG2_TEMPERATURES}
    pd1 = _diagram(0.0, np.linspace(0.0, 0.6, N_EXACT))
    ds1, ds2 = sweeps.result()
    return [plot_fig1(out_dir, pd=pd1, ds=ds1), plot_fig2(out_dir, diagrams=diagrams, ds=ds2)]
