"""Parameter sweeps at scale: specs (``sweeps/*.toml``), sharded execution, resumable Zarr stores.

Public entry points (the ``jaxlmg sweep`` command line is a thin wrapper around them)::

    from jaxlmg.sweeps import load_spec, run_sweep, open_sweep

    spec, text = load_spec("sweeps/fig2_canonical_hk.toml", out="fig2.zarr")
    report = run_sweep(spec, "fig2.zarr", spec_text=text)   # resumes if interrupted
    ds = open_sweep("fig2.zarr")                            # xarray.Dataset over (h, K, T)

A spec's ``model`` key selects a built-in model of :mod:`jaxlmg.models` (``lmg4``, the default;
``pspin`` with ``p``; ``longitudinal_lmg4``), each coupling a constant or a grid axis
(:mod:`jaxlmg.sweeps.spec_models`).  Stores survive kills at any moment, have one writer at a
time (:mod:`jaxlmg.sweeps.lock`) and are checked chunk by chunk on every resume
(:mod:`jaxlmg.sweeps.verify`).

New per-point quantities become sweepable with :func:`register_kernel` (one line).
:func:`verify_store` checks a store's files (``jaxlmg verify OUT``).
This module touches the disk; the numerical core never imports it.
"""

from .kernels import AXES as AXES
from .kernels import KERNELS as KERNELS
from .kernels import Kernel as Kernel
from .kernels import available_outputs as available_outputs
from .kernels import register_kernel as register_kernel
from .runner import ChunkPlan as ChunkPlan
from .runner import SweepReport as SweepReport
from .runner import plan_chunks as plan_chunks
from .runner import run_sweep as run_sweep
from .spec import SpecError as SpecError
from .spec import SweepSpec as SweepSpec
from .spec import estimate_bytes as estimate_bytes
from .spec import load_spec as load_spec
from .spec import parse_spec as parse_spec
from .store import SweepError as SweepError
from .store import open_sweep as open_sweep
from .verify import Verification as Verification
from .verify import verify_store as verify_store

__all__ = [
    "AXES", "KERNELS", "ChunkPlan", "Kernel", "SpecError", "SweepError", "SweepReport",
    "SweepSpec", "available_outputs", "estimate_bytes", "load_spec", "open_sweep", "parse_spec",
    "plan_chunks", "register_kernel", "run_sweep", "Verification", "verify_store",
]
