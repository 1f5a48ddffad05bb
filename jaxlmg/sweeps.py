"""Parameter sweeps at scale: specs (``sweeps/*.toml``), sharded execution, resumable Zarr stores.

Public entry points (the ``jaxlmg sweep`` command line is a thin wrapper around them)::

    from jaxlmg.sweeps import load_spec, run_sweep, open_sweep

    spec, text = load_spec("sweeps/fig2_canonical_hk.toml", out="fig2.zarr")
    report = run_sweep(spec, "fig2.zarr", spec_text=text)   # resumes if interrupted
    ds = open_sweep("fig2.zarr")                            # xarray.Dataset over (h, K, T)

New per-point quantities become sweepable with :func:`register_kernel` (one line).
This module touches the disk; the numerical core never imports it.
"""

from ._kernels import AXES as AXES
from ._kernels import KERNELS as KERNELS
from ._kernels import Kernel as Kernel
from ._kernels import available_outputs as available_outputs
from ._kernels import register_kernel as register_kernel
from ._spec import SpecError as SpecError
from ._spec import SweepSpec as SweepSpec
from ._spec import estimate_bytes as estimate_bytes
from ._spec import load_spec as load_spec
from ._spec import parse_spec as parse_spec
from ._store import SweepError as SweepError
from ._store import open_sweep as open_sweep
from ._sweep import ChunkPlan as ChunkPlan
from ._sweep import SweepReport as SweepReport
from ._sweep import plan_chunks as plan_chunks
from ._sweep import run_sweep as run_sweep

__all__ = [
    "AXES", "KERNELS", "ChunkPlan", "Kernel", "SpecError", "SweepError", "SweepReport",
    "SweepSpec", "available_outputs", "estimate_bytes", "load_spec", "open_sweep", "parse_spec",
    "plan_chunks", "register_kernel", "run_sweep",
]
