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
* **Before compiling**, process 0 takes the store's lock (:mod:`.lock`), removes what killed runs
  left (:mod:`.store`), and checks every file of the chunks marked done (:mod:`.verify`),
  unmarking damaged ones; a complete, intact store returns without compiling anything.
* **Stopping.**  ``stop`` (a ``threading.Event``, set by the CLI's Ctrl-C handler) ends the
  sweep at the next chunk boundary; a ``KeyboardInterrupt`` abandons the chunks in flight.  Either
  way every chunk marked done is whole.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import itertools
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._host import cpu_cores
from .._status import Status
from .._version import __version__
from . import kernels
from .lock import StoreLock, StoreLocked
from .plan import ChunkPlan, chunk_inputs, padded_size, plan_chunks
from .spec import SweepSpec, load_spec
from .spec_models import SPEC_MODELS
from .store import (
    SweepError,
    SweepStore,
    clean_leftovers,
    create_store,
    open_store,
    remove_store,
)
from .verify import check_store

__all__ = ["ChunkPlan", "SweepReport", "plan_chunks", "run_sweep"]

_AXIS = "points"


class SweepReport(NamedTuple):
    """What :func:`run_sweep` did.

    Attributes:
        path: the store.
        n_points: grid points in the sweep.
        n_chunks: chunks in the sweep.
        computed: chunks computed by this process in this call.
        skipped: chunks of this process found already done (resume).
        seconds: wall time of this call.
        status_counts: ``{Status name: count}`` over the whole store when it stores
            ``status`` (points of chunks not done yet count as ``"not computed"``); else over
            the points computed in this call (empty when the ensemble reports no status).
        complete: every chunk of the sweep is done and the store is finalized.
        devices: the devices this process used.
        compile_seconds: time spent compiling (0 when the executable was cached).
        interrupted: the call stopped early on request (``stop``); rerun to resume.
        done_chunks: chunks of the whole store marked done when the call returned.
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
    interrupted: bool = False
    done_chunks: int = 0


# --------------------------------------------------------------------------- compiled runner


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
              log=None, stop: threading.Event | None = None,
              abandon: threading.Event | None = None) -> SweepReport:
    """Run (or resume) a sweep into a Zarr store.

    Before any compilation, under the store's lock (:mod:`jaxlmg.sweeps.lock`; one writer per
    store), the store is opened and every file of every chunk marked done is checked
    (:func:`jaxlmg.sweeps.verify.check_store`): damaged chunks are reported through ``log`` and
    recomputed.  A store found complete and intact returns at once.

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
        max_chunks: stop after computing this many chunks, ``>= 0`` (the store stays resumable).
        log: callable receiving one-line messages (default: none).
        stop: when this event is set (e.g. by a Ctrl-C handler), the sweep stops at the next
            chunk boundary: chunks being computed are finished and written, no new one is
            started, and the report says ``interrupted``.
        abandon: when this event is set, the chunks being computed are abandoned (not written)
            and ``KeyboardInterrupt`` is raised from the sweep's wait loop.
    Returns:
        :class:`SweepReport`.
    Raises:
        SpecError: invalid spec.
        ValueError: ``max_chunks < 0``.
        SweepError: the store cannot be created, locked, resumed or written (an ``OSError`` such
            as a full disk or a read-only directory is reported as a one-line SweepError).
        KeyboardInterrupt: ``abandon`` was set, or a Ctrl-C not routed through ``stop``; chunks
            in flight are abandoned (not written) and the store stays resumable.
    """
    out = Path(out)
    if max_chunks is not None and max_chunks < 0:
        raise ValueError(f"max_chunks must be >= 0, got {max_chunks}")
    if not isinstance(spec, SweepSpec):
        spec, spec_text = load_spec(spec, out=None if out.exists() else out)
    try:
        return _run(spec, out, spec_text, overwrite, devices, progress, max_chunks,
                    log or (lambda msg: None), stop or threading.Event(),
                    abandon or threading.Event())
    except OSError as e:
        raise SweepError(_os_error(out, e)) from None


def _os_error(out: Path, e: OSError) -> str:
    where = e.filename or out
    what = e.strerror or str(e) or type(e).__name__
    hint = {errno.ENOSPC: "the disk is full; free space, then rerun the same command to resume",
            errno.EDQUOT: "over the disk quota; free space, then rerun the same command to "
                          "resume",
            errno.EROFS: "the file system is read-only; choose another output path",
            errno.EACCES: "no permission; choose another output path or fix its permissions",
            errno.EPERM: "no permission; choose another output path or fix its permissions",
            }.get(e.errno or 0, "rerun the same command to resume once this is fixed")
    return f"{out}: cannot read or write {where}: {what} ({hint})"


def _run(spec, out, spec_text, overwrite, devices, progress, max_chunks, say, stop, abandon):
    t0 = time.perf_counter()
    pid, nproc = jax.process_index(), jax.process_count()
    devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
    if not devices:
        raise SweepError("no devices to run on")
    foreign = [d for d in devices if d.process_index != pid]
    if foreign:
        raise SweepError(f"devices must be local to this process, got {foreign}")
    plan = plan_chunks(spec.shape, spec.chunk_size)
    padded = padded_size(plan.block_points, len(devices))
    run_info = {
        "jaxlmg_version": __version__,
        "jax_version": jax.__version__,
        "backend": devices[0].platform,
        "devices": ", ".join(f"{d.device_kind} ({d.platform}:{d.id})" for d in devices),
        "n_devices": len(devices),
        "process_count": nproc,
    }
    mine = [i for i in range(plan.n_chunks) if i % nproc == pid]

    def report(store, computed, skipped, status_counts, complete, compile_seconds=0.0,
               interrupted=False):
        n_done = int(store.done().sum()) if store is not None else 0
        return SweepReport(out, spec.n_points, plan.n_chunks, computed, skipped,
                           time.perf_counter() - t0, status_counts, complete,
                           tuple(str(d) for d in devices), compile_seconds, interrupted,
                           n_done)

    with contextlib.ExitStack() as held:
        # 1. Process 0 locks, cleans up, opens and checks the store: no compilation yet.
        store: SweepStore | None = None
        all_done = False
        if pid == 0:
            try:
                try:
                    held.enter_context(StoreLock(out))
                except StoreLocked as e:
                    raise SweepError(str(e)) from None
                clean_leftovers(out)
                if overwrite:
                    remove_store(out)
                store = open_store(out, spec)
                if store is not None:
                    store = _repair(store, spec, plan, say)
                    all_done = bool(store.done().all())
            except BaseException:
                _agree("jaxlmg-sweep-open", False)
                raise
        if not _agree("jaxlmg-sweep-open", True):
            raise SweepError(f"process 0 could not open or create {out} (see its error)")
        all_done = _agree("jaxlmg-sweep-all-done", all_done)
        if all_done:  # 2a. complete and intact: finalize if a kill interrupted that, and stop
            if pid != 0:
                store = _open_other(out, spec, pid)
            complete = _finalize(store, pid, say, out, run_info, t0)
            return report(store, 0, len(mine), _status_counts(store, spec, plan), complete)
        if stop.is_set() and nproc == 1:
            return report(store, 0, 0, {}, False, interrupted=True)

        # 2b. Work to do: compile (the persistent compilation cache makes a rerun's cheap).
        tc = time.perf_counter()
        runner = _runner(_Layout.of(spec), devices, padded)
        compile_seconds = time.perf_counter() - tc
        if stop.is_set() and nproc == 1:
            return report(store, 0, 0, {}, False, compile_seconds, True)
        if pid == 0:
            try:
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
                        say(f"note: {out} was started on {n_before} device(s), now "
                            f"{len(devices)}: results agree to ~1e-12 but are not "
                            "bit-identical across device counts")
            except BaseException:
                _agree("jaxlmg-sweep-created", False)
                raise
        if not _agree("jaxlmg-sweep-created", True):
            raise SweepError(f"process 0 could not open or create {out} (see its error)")
        if pid != 0:
            store = _open_other(out, spec, pid)
        assert store is not None

        # 3. Compute this process's chunks that are not done.
        done = store.done()
        todo = [i for i in mine if not done[i]]
        skipped = len(mine) - len(todo)
        if max_chunks is not None:
            todo = todo[:max_chunks]
        counts = np.zeros(64, np.int64)
        computed, interrupted = _compute(store, spec, plan, runner, todo, mine, done, counts,
                                         progress, stop, abandon)
        if interrupted and nproc == 1:
            return report(store, computed, skipped, {}, False, compile_seconds, True)
        _barrier("jaxlmg-sweep-computed")
        complete = _finalize(store, pid, say, out, run_info, t0)
        if "status" in spec.output_names and pid == 0:
            status_counts = _status_counts(store, spec, plan)
        else:  # this call's points only
            status_counts = _named_counts(counts) if runner.has_status else {}
        return report(store, computed, skipped, status_counts, complete, compile_seconds,
                      interrupted)


def _open_other(out, spec, pid) -> SweepStore:
    store = open_store(out, spec)
    if store is None:
        raise SweepError(f"{out} is not visible from process {pid}: the output must be on a "
                         "file system shared by all processes")
    return store


def _repair(store: SweepStore, spec, plan, say) -> SweepStore:
    """Remove temporaries of killed writes; recompute chunks whose files were lost."""
    store.remove_partial_files()
    check = check_store(store, plan, spec.output_names, spec.coords())
    if check.problems:
        more = f" (and {len(check.problems) - 1} more)" if len(check.problems) > 1 else ""
        say(f"warning: {store.path}: {len(check.damaged)} chunk(s) marked done have missing or "
            f"unreadable files, recomputing them: {check.problems[0]}{more}")
        store.unmark(check.damaged)
        coords = spec.coords()
        for axis in check.bad_axes:
            store.write(axis, slice(None), coords[axis])
    return store


def _finalize(store, pid, say, out, run_info, t0) -> bool:
    """Process 0 marks a store whose chunks are all done complete (once); all agree."""
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
    return complete


def _named_counts(counts) -> dict[str, int]:
    return {Status(c).name if c in Status._value2member_map_ else str(c): int(n)
            for c, n in enumerate(counts) if n}


def _status_counts(store, spec, plan) -> dict[str, int]:
    """``{status name: points}`` over the whole store (chunks not done count as
    ``"not computed"``); empty when no ``status`` output is stored."""
    if store is None or "status" not in spec.output_names:
        return {}
    counts = np.zeros(65, np.int64)
    for i in range(plan.n_chunks):
        v = store.read("status", plan.region(i)).reshape(-1)
        counts += np.bincount(np.clip(v, -1, 63) + 1, minlength=65)[:65]
    out = _named_counts(counts[1:])
    if counts[0]:
        out["not computed"] = int(counts[0])
    return out


def _bar_columns() -> int:
    """Width of the progress bar: the terminal's, or 80 where it reports less than 20 columns
    (a zero-width terminal would otherwise draw an empty bar)."""
    cols = shutil.get_terminal_size(fallback=(80, 24)).columns
    return cols if cols >= 20 else 80


def _compute(store, spec, plan, runner, todo, mine, done, counts, progress, stop, abandon):
    """Compute and write chunks ``todo``; returns ``(computed, interrupted)``."""
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
               ncols=_bar_columns())

    def compute(i):
        """Run chunk ``i`` and copy its results to the host (in a worker thread)."""
        region = plan.region(i)
        xs = chunk_inputs(coords, region, runner.padded, runner.in_dtype)
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
    pool = ThreadPoolExecutor(max_workers=workers)
    written, interrupted = 0, False
    try:
        for i in itertools.islice(todo_iter, workers + 1):
            queue.append(pool.submit(compute, i))
        while queue:
            if stop.is_set() and not interrupted:
                # Stop at a chunk boundary: drop the chunks not started, finish the others.
                interrupted = True
                queue = collections.deque(f for f in queue if not f.cancel())
                if not queue:
                    break
            fut = queue.popleft()
            while True:  # wait in short steps, so that `stop` is seen while a chunk computes
                try:
                    item = fut.result(timeout=0.1)
                    break
                except FuturesTimeout:
                    if abandon.is_set():
                        raise KeyboardInterrupt from None
                    if stop.is_set() and not interrupted:
                        interrupted = True
                        queue = collections.deque(f for f in queue if not f.cancel())
            if not interrupted:
                nxt = next(todo_iter, None)
                if nxt is not None:
                    queue.append(pool.submit(compute, nxt))
            write(item)
            written += 1
    except BaseException:
        # Abandon the chunks in flight (not written: their flags stay unset).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return written, interrupted


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
