"""Sweep data for figures: run (or reuse) a spec from ``sweeps/``, load it as an xarray Dataset."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..sweeps import load_spec, open_sweep, run_sweep

__all__ = ["sweep_dataset"]


def sweep_dataset(name: str, spec_dir="sweeps", data_dir=None, progress=None):
    """Run ``spec_dir/name.toml`` into ``data_dir/name.zarr`` (resuming/reusing it) and load it.

    Returns:
        the ``xarray.Dataset`` of the sweep, loaded into memory.
    """
    spec_path = Path(spec_dir) / f"{name}.toml"
    if data_dir is None:
        with tempfile.TemporaryDirectory(prefix="jaxlmg-") as tmp:
            return sweep_dataset(name, spec_dir, tmp, progress)
    out = Path(data_dir) / f"{name}.zarr"
    spec, text = load_spec(spec_path, out=None if out.exists() else out)
    run_sweep(spec, out, spec_text=text, progress=progress)
    with open_sweep(out) as ds:
        return ds.load()
