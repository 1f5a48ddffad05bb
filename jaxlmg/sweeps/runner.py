"""Sweeps at scale: a spec's grid, in fixed-shape chunks, over every local device, streamed to disk.

Execution model (a layer on top of the numerical core, which never imports it):

* **Chunks.**  The grid (shape ``(n_0, ..., n_{d-1})``, C order) is cut into hyper-rectangular
  blocks ``(1, ..., 1, b, n_{k+1}, ..., n_{d-1})`` of at most ``chunk_size`` points
  (:func:`plan_chunks`); one block is one Zarr chunk of every output, so a chunk is written,
  flagged done, and resumed as a unit.  Every chunk is padded to the same number of points
  (a multiple of the device count, padding = copies of the chunk's last point), so one compiled
  executable serves the whole sweep: no recompilation between chunks.
* **Devices.**  The padded chunk is one array sharded over a 1-D mesh of the local devices
  (``NamedSharding``); the kernels run per device under ``jax.shard_map``.
* **Streaming.**  Chunks are computed in worker threads while the main thread writes the
  finished ones in order, so the devices stay busy while the host writes, and host memory holds
  a few chunks whatever the grid size.  On a single CPU device, where one XLA program keeps
  about one core busy, one chunk per core is computed at once.
* **Several processes** (``jax.distributed`` initialized, ``process_count > 1``): process ``p``
  takes the chunks ``i`` with ``i % process_count == p`` and writes only their regions; process
  0 creates the store before the others open it, and finalizes it after all are done
  (barriers: ``multihost_utils.sync_global_devices``).  The store must be on a file system
  shared by all processes.
* **Resume.**  Rerunning the same spec into the same store computes only the chunks whose
  ``done`` flag is not set; with the same devices the result is bit-identical to an
  uninterrupted run (every chunk is computed by the same executable from the same inputs).
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._host import cpu_cores
from .._status import Status
from . import kernels
from .spec import SweepSpec, load_spec
from .spec_models import SPEC_MODELS
from .store import SweepError, SweepStore, create_store, open_store, remove_store

__all__ = ["ChunkPlan", "SweepReport", "plan_chunks", "run_sweep"]

_AXIS = "points"


class ChunkPlan(NamedTuple):
    """How a grid is cut into chunks.

    Attributes:
        shape: grid shape.
        block: shape of one chunk (= the Zarr chunk shape); chunks at the upper edge of the
            split axis may be smaller (they are padded for the computation).
        counts: number of chunks along each axis (``ceil(shape / block)``).
    """

    shape: tuple[int, ...]
    block: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def n_chunks(self) -> int:
        return math.prod(self.counts)

    @property
    def block_points(self) -> int:
        return math.prod(self.block)

    def region(self, i: int) -> tuple[slice, ...]:
        """Index region of chunk ``i`` (C order over ``counts``)."""
        idx = np.unravel_index(i, self.counts)
        return tuple(slice(j * b, min((j + 1) * b, n))
                     for j, b, n in zip(idx, self.block, self.shape, strict=True))

    def points(self, i: int) -> int:
        return math.prod(s.stop - s.start for s in self.region(i))


def plan_chunks(shape, chunk_size: int) -> ChunkPlan:
    """Cut ``shape`` into C-order blocks ``(1, ..., 1, b, n_{k+1}, ...)`` of ``<= chunk_size``
    points.

    ``k`` is the first axis such that the trailing axes ``k+1, ...`` hold at most ``chunk_size``
    points (the last axis is cut when it alone is larger), and ``b`` is as large as allowed.
    """
    shape = tuple(int(n) for n in shape)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    d = len(shape)
    k = d - 1
    while k > 0 and math.prod(shape[k:]) <= chunk_size:
        k -= 1
    trailing = math.prod(shape[k + 1:])
    b = max(1, min(shape[k], chunk_size // trailing))
    block = (1,) * k + (b,) + shape[k + 1:]
    counts = tuple(-(-n // c) for n, c in zip(shape, block, strict=True))
    return ChunkPlan(shape, block, counts)


class SweepReport(NamedTuple):
    """What :func:`run_sweep` did.

    Attributes:
        path: the store.
        n_points: grid points in the sweep.
        n_chunks: chunks in the sweep.
        computed: chunks computed by this process in this call.
        skipped: chunks of this process found already done (resume).
        seconds: wall time of this call.
        status_counts: ``{Status name: count}`` over the points computed in this call (empty
            when the ensemble reports no status).
        complete: every chunk of the sweep is done and the store is finalized.
        devices: the devices this process used.
        compile_seconds: time spent compiling (0 when the executable was cached).
    """

    path: Path
    n_points: int
    n_chunks: int
    computed: int
    skipped: int
    seconds: float
    status_counts: dict
    complete: bool
    devices: tuple[str, ...]
    compile_seconds: float = 0.0


# --------------------------------------------------------------------------- compiled runner


def padded_size(points: int, n_devices: int) -> int:
    """Points per padded chunk: a multiple of ``n_devices`` whose per-device part is rounded up
    to 4 significant bits (``m * 2**e``, ``8 <= m < 16``; at most 1/8 wasted), so that specs with
    similar chunk sizes share one compiled executable."""
    per = -(-points // n_devices)
    e = max(0, per.bit_length() - 4)
    per = -(-per >> e) << e if e else per
    return per * n_devices


class _Runner(NamedTuple):
    compiled: object
    names: tuple[str, ...]  # stored outputs, in the order of the executable's results
    dtypes: dict[str, np.dtype]
    has_status: bool  # an extra last result: the ensemble's status (for the report)
    in_sharding: NamedSharding
    scalar_sharding: NamedSharding
    padded: int
    in_dtype: np.dtype
    devices: tuple


class _Layout(NamedTuple):
    """What the compiled chunk function depends on besides devices and size (hashable)."""

    ensemble: str
    outputs: tuple[str, ...]
    precision: str
    model_name: str
    model: object  # a jaxlmg.models instance (hashable)
    axes: tuple[str, ...]  # the spec's grid axes, in storage order
    constants: tuple[str, ...]  # the couplings that are constants (runtime scalars), in order

    @classmethod
    def of(cls, spec: SweepSpec) -> _Layout:
        return cls(spec.ensemble, spec.output_names, spec.precision, spec.model,
                   spec.build_model(), spec.axes, tuple(spec.constants))


def _call_kernel(name: str, layout: _Layout, points: dict, consts: dict):
    """Evaluate kernel ``name`` on the chunk's ``points`` (axis -> array) with the constant
    couplings ``consts`` (name -> scalar)."""
    k = kernels.KERNELS[name]
    value = {**consts, **points}
    if k.generic:
        couplings_type = SPEC_MODELS[layout.model_name].couplings
        couplings = couplings_type(*[value[c] for c in couplings_type._fields])
        return k.fn(layout.model, couplings, *[points[a] for a in k.own_axes],
                    precision=layout.precision)
    # An LMG4 kernel (the spec's model is LMG4): its axes, a constant K broadcast, and J.
    n = next(iter(points.values()))
    args = [value[a] if a in points else jnp.full_like(n, value[a]) for a in k.axes]
    return k.fn(*args, value["J"], precision=layout.precision)


@functools.lru_cache(maxsize=16)
def _runner(layout: _Layout, devices: tuple, padded: int) -> _Runner:
    """Compile the per-chunk function once per (layout, devices, chunk size)."""
    ensemble, outputs, precision = layout.ensemble, layout.outputs, layout.precision
    resolved = [kernels.resolve_output(ensemble, o, layout.model_name) for o in outputs]
    # Also return the ensemble's status (for the report) when its kernel runs anyway.
    has_status = (ensemble in {k for k, _ in resolved}
                  and "status" in kernels.kernel_fields(ensemble))
    if has_status:
        resolved.append((ensemble, "status"))
    needed = list(dict.fromkeys(k for k, _ in resolved))
    mesh = Mesh(np.array(devices), (_AXIS,))
    part = PartitionSpec(_AXIS)
    n_axes, n_const = len(layout.axes), len(layout.constants)

    def local(*args):
        consts = dict(zip(layout.constants, args[:n_const], strict=True))
        points = dict(zip(layout.axes, args[n_const:], strict=True))
        res = {k: _call_kernel(k, layout, points, consts) for k in needed}
        return tuple(getattr(res[k], f) for k, f in resolved)

    in_specs = (PartitionSpec(),) * n_const + (part,) * n_axes
    fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=part,
                               check_vma=False))
    in_dtype = np.dtype(np.float64 if precision == "float64" else np.float32)
    in_sharding = NamedSharding(mesh, part)
    scalar_sharding = NamedSharding(mesh, PartitionSpec())
    args = [jax.ShapeDtypeStruct((), in_dtype, sharding=scalar_sharding)] * n_const
    args += [jax.ShapeDtypeStruct((padded,), in_dtype, sharding=in_sharding)] * n_axes
    compiled = fn.lower(*args).compile()
    out_info = compiled.out_info
    dtypes = {o: np.dtype(out_info[j].dtype) for j, o in enumerate(outputs)}
    return _Runner(compiled, tuple(outputs), dtypes, has_status, in_sharding, scalar_sharding,
                   padded, in_dtype, devices)


def _chunk_inputs(coords: list[np.ndarray], region, padded: int, dtype) -> list[np.ndarray]:
    """Flattened (C order) grid points of ``region``, padded with copies of the last point."""
    sub = [c[r] for c, r in zip(coords, region, strict=True)]
    mesh = np.meshgrid(*sub, indexing="ij")
    out = []
    for m in mesh:
        flat = m.reshape(-1).astype(dtype)
        out.append(np.pad(flat, (0, padded - flat.size), mode="edge"))
    return out


# --------------------------------------------------------------------------- multi-process


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _agree(name: str, ok: bool) -> bool:
    """Process 0's ``ok`` for everyone (a barrier that also carries whether process 0 failed)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


# --------------------------------------------------------------------------- the sweep


def run_sweep(spec, out, *, spec_text: str | None = None, overwrite: bool = False,
              devices=None, progress: bool | None = None, max_chunks: int | None = None,
              log=None) -> SweepReport:
    """Run (or resume) a sweep into a Zarr store.

    Args:
        spec: a :class:`SweepSpec`, or the path of a spec file (validated first, including the
            free-disk-space check at ``out``).
        out: the store directory (``*.zarr``).  If it holds a store of the same spec, the sweep
            resumes; of another spec, :class:`SweepError` (unless ``overwrite``).
        spec_text: the spec's TOML text, stored verbatim (default: read from the file, or
            ``spec.to_toml()``).
        overwrite: discard an existing store at ``out`` (only a jaxlmg store is ever deleted).
        devices: devices to spread each chunk over (default: ``jax.local_devices()``).
        progress: show a tqdm bar (points/s, ETA); default: only when stderr is a terminal.
        max_chunks: stop after computing this many chunks (the store stays resumable).
        log: callable receiving one-line messages (default: none).
    Returns:
        :class:`SweepReport`.
    Raises:
        SpecError: invalid spec.
        SweepError: the store cannot be created or resumed.
    """
    t0 = time.perf_counter()
    say = log or (lambda msg: None)
    out = Path(out)
    if not isinstance(spec, SweepSpec):
        spec, spec_text = load_spec(spec, out=None if out.exists() else out)
    pid, nproc = jax.process_index(), jax.process_count()
    devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
    if not devices:
        raise SweepError("no devices to run on")
    foreign = [d for d in devices if d.process_index != pid]
    if foreign:
        raise SweepError(f"devices must be local to this process, got {foreign}")
    plan = plan_chunks(spec.shape, spec.chunk_size)
    padded = padded_size(plan.block_points, len(devices))
    tc = time.perf_counter()
    runner = _runner(_Layout.of(spec), devices, padded)
    compile_seconds = time.perf_counter() - tc

    run_info = {
        "jaxlmg_version": _version(),
        "jax_version": jax.__version__,
        "backend": devices[0].platform,
        "devices": ", ".join(f"{d.device_kind} ({d.platform}:{d.id})" for d in devices),
        "n_devices": len(devices),
        "process_count": nproc,
    }

    store: SweepStore | None = None
    ok = True
    if pid == 0:
        try:
            if overwrite:
                remove_store(out)
            store = open_store(out, spec)
            if store is None:
                store = create_store(out, spec, spec_text=spec_text, chunks=plan.block,
                                     n_chunks=plan.n_chunks, dtypes=runner.dtypes,
                                     run_info=run_info)
                say(f"created {out}")
            else:
                say(f"resuming {out}")
                _check_dtypes(store, runner.dtypes)
                n_before = store.attrs.get("n_devices")
                if n_before not in (None, len(devices)):
                    say(f"note: {out} was started on {n_before} device(s), now {len(devices)}: "
                        "results agree to ~1e-12 but are not bit-identical across device counts")
        except BaseException:
            _agree("jaxlmg-sweep-open", False)
            raise
    if not _agree("jaxlmg-sweep-open", ok):
        raise SweepError(f"process 0 could not open or create {out} (see its error)")
    if pid != 0:
        store = open_store(out, spec)
        if store is None:
            raise SweepError(f"{out} is not visible from process {pid}: the output must be on a "
                             "file system shared by all processes")
    assert store is not None

    done = store.done()
    mine = [i for i in range(plan.n_chunks) if i % nproc == pid]
    todo = [i for i in mine if not done[i]]
    skipped = len(mine) - len(todo)
    if max_chunks is not None:
        todo = todo[:max(0, max_chunks)]
    counts = np.zeros(64, np.int64)
    computed = _compute(store, spec, plan, runner, todo, mine, done, counts, progress)

    _barrier("jaxlmg-sweep-computed")
    complete = False
    if pid == 0:
        if store.state == "complete" and store.is_consolidated():
            complete = True
        elif store.done().all():  # (also: killed between the two steps of finalize)
            store.finalize(seconds_last_run=round(time.perf_counter() - t0, 3), **run_info)
            complete = True
            say(f"finalized {out}")
    _barrier("jaxlmg-sweep-finalized")
    if pid != 0:
        complete = bool(store.done().all())
    status_counts = {Status(c).name if c in Status._value2member_map_ else str(c): int(n)
                     for c, n in enumerate(counts) if n} if runner.has_status else {}
    return SweepReport(out, spec.n_points, plan.n_chunks, computed, skipped,
                       time.perf_counter() - t0, status_counts, complete,
                       tuple(str(d) for d in devices), compile_seconds)


def _compute(store, spec, plan, runner, todo, mine, done, counts, progress) -> int:
    coords = list(spec.coords().values())
    consts = [jax.device_put(np.asarray(v, runner.in_dtype), runner.scalar_sharding)
              for v in spec.constants.values()]
    total = sum(plan.points(i) for i in mine)
    initial = sum(plan.points(i) for i in mine if done[i])
    if progress is None:
        progress = sys.stderr.isatty()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, unit="pt", unit_scale=True, smoothing=0.05,
               desc=f"{spec.ensemble} sweep", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def compute(i):
        """Run chunk ``i`` and copy its results to the host (in a worker thread)."""
        region = plan.region(i)
        xs = _chunk_inputs(coords, region, runner.padded, runner.in_dtype)
        args = [jax.device_put(x, runner.in_sharding) for x in xs]
        return i, region, [np.asarray(r) for r in runner.compiled(*consts, *args)]

    def write(item):
        i, region, results = item
        n = plan.points(i)
        block = tuple(s.stop - s.start for s in region)
        host = [r[:n] for r in results]
        if runner.has_status:
            counts[:] += np.bincount(np.clip(host[-1], 0, 63), minlength=64)[:64]
        store.write_chunk(i, region, {name: host[j].reshape(block)
                                      for j, name in enumerate(runner.names)})
        bar.update(n)

    # `workers` chunks compute at once (one per core on a single CPU device, where one XLA
    # program keeps about one core busy; else one, the devices being busy with it), and one more
    # is queued, while this thread writes the oldest: host memory holds at most workers + 2 chunks.
    workers = _workers(runner.devices)
    queue: collections.deque = collections.deque()
    todo_iter = iter(todo)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for i in itertools.islice(todo_iter, workers + 1):
                queue.append(pool.submit(compute, i))
            while queue:
                item = queue.popleft().result()
                nxt = next(todo_iter, None)
                if nxt is not None:
                    queue.append(pool.submit(compute, nxt))
                write(item)
        finally:
            for fut in queue:
                fut.cancel()
            bar.close()
    return len(todo)


def _workers(devices) -> int:
    """Chunks computed concurrently: one per core on a single CPU device, else one."""
    if len(devices) != 1 or devices[0].platform != "cpu":
        return 1
    return cpu_cores()


def _check_dtypes(store: SweepStore, dtypes: dict) -> None:
    for name, dt in dtypes.items():
        if name not in store.group or np.dtype(store.group[name].dtype) != np.dtype(dt):
            raise SweepError(f"{store.path}: stored output {name!r} does not match this sweep "
                             "(different jaxlmg version?); use --overwrite")


def _version() -> str:
    from .._version import __version__

    return __version__
