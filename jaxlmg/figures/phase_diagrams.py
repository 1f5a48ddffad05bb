"""Fig. 1 (ground state, (K/J, h/J)) and Fig. 2 (canonical (h/J, K/J) at T = 0.25 J and T = 2 J).

Data: the sweeps ``sweeps/fig1_ground_state.toml`` and ``sweeps/fig2_canonical_hk.toml`` (the
order parameter ``Mz``, the number of local minima ``n_minima`` and ``status`` on the grid).
Lines:

* second-order line ``h_c(T)``: :func:`jaxlmg.critical_field`, the exact root of
  ``h/(2J) = tanh(h/T)`` (eq. 25; ``2J`` at ``T = 0``), drawn for ``K`` below the tricritical ``K``;
* tricritical point: :func:`jaxlmg.tricritical` (``b2 = b4 = 0``; ``(2J, J/4)`` at ``T = 0``,
  ``(0, J/6)`` at ``T = 2J``);
* first-order line: ``jaxlmg.first_order_field(K, T)`` (exact coexistence) where the core
  provides it, and, always, the jump of the order parameter in the sweep data (dots) as an
  independent check; Fig. 1 also shows the paper's near-tricritical expansion, eq. (18).

Hatched: two local minima (``n_minima == 2``, metastability between the spinodals).  Grey: grid
points whose ``status`` is not OK (the engine's failures are shown, not hidden).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ._data import sweep_dataset

__all__ = ["plot", "plot_fig1", "plot_fig2", "critical_field", "tricritical_K", "jump_line"]

FIG1_SPEC = "fig1_ground_state"
FIG2_SPEC = "fig2_canonical_hk"
N_EXACT = 48  # K values at which the exact first-order field is evaluated (one compile for all)


# --------------------------------------------------------------------------- exact lines (numpy)


def critical_field(T: float, J: float = 1.0) -> float:
    """Exact second-order field (eq. 25) from the core, :func:`jaxlmg.critical_field`:
    ``2J`` at ``T = 0``, ``0`` at ``T = 2J``, NaN above."""
    import jaxlmg

    return float(jaxlmg.critical_field(T, J))


def tricritical_K(T: float, J: float = 1.0) -> tuple[float, float]:
    """Canonical tricritical point ``(h, K)`` at temperature ``T`` from the core,
    :func:`jaxlmg.tricritical` (``(2J, J/4)`` at ``T = 0``, ``(0, J/6)`` at ``T = 2J``, NaN
    above)."""
    import jaxlmg

    tc = jaxlmg.tricritical(T, "canonical", J)
    return float(tc.h), float(tc.K)


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


def _exact_first_order(K: np.ndarray, T: np.ndarray) -> np.ndarray | None:
    """``jaxlmg.first_order_field`` at the points ``(K, T)`` (one call), or ``None`` if it fails
    (the figure then shows the data line only)."""
    import jaxlmg

    try:
        return np.asarray(jaxlmg.first_order_field(K, T, 1.0), dtype=float)
    except Exception as e:  # noqa: BLE001 - a figure must not die of a core bug; say it loudly
        print(f"jaxlmg: first_order_field failed ({type(e).__name__}: {e}); drawing the "
              "first-order line from the sweep data only", file=sys.stderr)
        return None


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
              exact: np.ndarray | None = None, K_exact: np.ndarray | None = None) -> Path:
    """Fig. 1: ground state (T = 0) in the (K/J, h/J) plane; writes ``fig1_ground_state.png``."""
    ds = sweep_dataset(FIG1_SPEC, spec_dir, data_dir, progress).isel(T=0)
    h, K = ds.h.values, ds.K.values
    Mz, nm, st = ds.Mz.values, ds.n_minima.values, ds.status.values  # [h, K]
    fig = _figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    im, n_bad = _panel(ax, K, h, Mz, nm, st, transpose=False)
    fig.colorbar(im, ax=ax, label=r"$M_z = s\,m_z$")
    k2 = np.linspace(0.0, 0.25, 2)
    handles = [ax.plot(k2, [2.0, 2.0], color="tab:blue", lw=2, label="second order, h = 2J")[0]]
    if exact is not None and np.isfinite(exact).any():
        handles += ax.plot(K_exact, exact, color="tab:red", lw=2,
                           label="first order (exact, first_order_field" + _failed(exact) + ")")
    Kj, hj = jump_line(Mz, h, K)
    sel = Kj > 0.25
    handles += ax.plot(Kj[sel], hj[sel], ".", color="tab:red", ms=3,
                       label=r"first order: $M_z$ jump in the sweep")
    Ke = np.linspace(0.25, K[-1], 200)
    he = _eq18_field(Ke)
    handles += ax.plot(Ke, he, "--", color="orange", lw=1, label="eq. (18), expansion near TCP")
    handles += ax.plot([0.25], [2.0], "o", color="k", ms=6, label="tricritical (J/4, 2J)")
    handles += _legend_proxies(ax, n_bad)
    ax.set(xlabel="K/J", ylabel="h/J", xlim=(K[0], K[-1]), ylim=(h[0], h[-1]),
           title="Ground state (T = 0): paramagnet above, ferromagnet below")
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.9)
    path = Path(out_dir) / "fig1_ground_state.png"
    fig.savefig(path, dpi=130)
    return path


def _failed(values: np.ndarray) -> str:
    """Legend note on the points where the exact line is NaN (a gap in the line)."""
    n = int(np.isnan(values).sum())
    return f"; NaN at {n} of {values.size} K" if n else ""


def _eq18_field(K, J=1.0):
    """Inverse of eq. (18), ``K/J = h/(8J) + sqrt(h (h/J - 2)/J) / 2``, for ``h >= 2J``."""
    h = np.linspace(2.0 * J, 6.0 * J, 4001)
    Kh = h / 8.0 + 0.5 * np.sqrt(h * (h / J - 2.0) / J)
    return np.interp(K, Kh, h, right=np.nan)


def plot_fig2(out_dir, *, spec_dir="sweeps", data_dir=None, progress=None,
              exact: dict | None = None, K_exact: np.ndarray | None = None) -> Path:
    """Fig. 2 (canonical): (h/J, K/J) at T = 0.25 J and 2 J; writes ``fig2_canonical_hk.png``."""
    ds = sweep_dataset(FIG2_SPEC, spec_dir, data_dir, progress)
    h, K = ds.h.values, ds.K.values
    fig = _figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, len(ds.T))
    for ax, T in zip(np.atleast_1d(axes), ds.T.values, strict=True):
        d = ds.sel(T=T)
        im, n_bad = _panel(ax, h, K, d.Mz.values, d.n_minima.values, d.status.values,
                           transpose=True)
        handles = []
        hc = critical_field(T)
        htc, Ktc = tricritical_K(T)
        if np.isfinite(hc) and hc > 0:
            handles += ax.plot([hc, hc], [0.0, Ktc], color="tab:blue", lw=2,
                               label=f"second order, h_c = {hc:.4g} J (eq. 25)")
        ex = None if exact is None else exact.get(float(T))
        if ex is not None and np.isfinite(ex).any():
            valid = K_exact > Ktc if np.isfinite(Ktc) else np.ones_like(K_exact, bool)
            handles += ax.plot(ex, K_exact, color="tab:red", lw=2,
                               label="first order (exact, first_order_field"
                                     + _failed(ex[valid]) + ")")
        Kj, hj = jump_line(d.Mz.values, h, K)
        sel = Kj > Ktc if np.isfinite(Ktc) else slice(None)
        handles += ax.plot(hj[sel], Kj[sel], ".", color="tab:red", ms=3,
                           label=r"first order: $M_z$ jump in the sweep")
        if np.isfinite(Ktc):
            handles += ax.plot([htc], [Ktc], "o", color="k", ms=6,
                               label=f"tricritical ({htc:.3g} J, {Ktc:.4g} J)")
        handles += _legend_proxies(ax, n_bad)
        beta = "" if T == 0 else f", βJ = {1 / T:g}"
        ax.set(xlabel="h/J", ylabel="K/J", xlim=(h[0], h[-1]), ylim=(K[0], K[-1]),
               title=f"canonical, T = {T:g} J{beta}")
        ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.9)
    fig.colorbar(im, ax=axes, label=r"$M_z$")
    path = Path(out_dir) / "fig2_canonical_hk.png"
    fig.savefig(path, dpi=130)
    return path


def plot(out_dir, *, spec_dir="sweeps", data_dir=None, progress=None) -> list[Path]:
    """Write Fig. 1 and Fig. 2 to ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The exact first-order field for both figures in one call (one compilation).
    K1 = np.linspace(0.25, 0.6, N_EXACT + 1)[1:]
    K2 = np.linspace(0.0, 1.5, N_EXACT + 1)[1:]
    Ts = (0.25, 2.0)
    K_all = np.concatenate([K1, *[K2] * len(Ts)])
    T_all = np.concatenate([np.zeros_like(K1), *[np.full_like(K2, T) for T in Ts]])
    ex = _exact_first_order(K_all, T_all)
    ex1 = ex2 = None
    if ex is not None:
        ex1 = ex[:N_EXACT]
        ex2 = {T: ex[N_EXACT * (i + 1):N_EXACT * (i + 2)] for i, T in enumerate(Ts)}
    kw = {"spec_dir": spec_dir, "data_dir": data_dir, "progress": progress}
    return [plot_fig1(out_dir, exact=ex1, K_exact=K1, **kw),
            plot_fig2(out_dir, exact=ex2, K_exact=K2, **kw)]
