"""Shared by the figure modules: sweep data, small batches, threads and the drawing lock."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import jax
import numpy as np

from ..sweeps import load_spec, open_sweep, run_sweep

__all__ = ["DRAWING", "SMALL_BATCH", "Background", "in_small_batches", "sweep_dataset"]

#: Held while a figure is drawn: ``jaxlmg reproduce`` computes figures in several threads (XLA
#: compiles and computes without the GIL), but matplotlib is not thread-safe, so every use of it
#: (creating, drawing, saving a Figure) happens under this lock, one figure at a time.
DRAWING = threading.RLock()

#: The smallest padded batch of the engines (``jaxlmg._batch.BUCKETS[0]``).  A figure's grid of
#: a few hundred points evaluated in slices of this size reuses the program already compiled for
#: the lines of :func:`jaxlmg.phase_diagram` (tens of points) instead of compiling a second,
#: 1024-point one (compiling a certified kernel takes 10-40 s; running it on 64 points, ms).
SMALL_BATCH = 64


class Background:
    """``fn(*args, **kwargs)`` started in a thread; :meth:`result` waits for it.

    For concurrent figure work: XLA compiles and computes without the GIL, so a second thread
    keeps the second core busy.  The thread is a daemon: a Ctrl-C in the main thread ends the
    command without waiting for it.
    """

    def __init__(self, fn, *args, name: str = "jaxlmg-figure", **kwargs):
        self._value = self._error = None

        def run():
            try:
                self._value = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised by result()
                self._error = e

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self):
        """The return value of ``fn``, or its exception raised here."""
        while self._thread.is_alive():
            self._thread.join(0.2)  # short waits: a Ctrl-C reaches the waiting main thread
        if self._error is not None:
            raise self._error
        return self._value


def in_small_batches(fn, *args, size: int = SMALL_BATCH):
    """``fn(*args)`` evaluated on consecutive slices of at most ``size`` points.

    Args:
        fn: a batched engine call (arguments broadcast, returns a pytree, e.g. a NamedTuple, of
            arrays of the broadcast shape, possibly followed by the leaf's own axes).
        args: its array arguments, NumPy-broadcastable (scalars allowed).
        size: points per call (``>= 1``).
    Returns:
        the pytree of ``fn`` with NumPy leaves of the broadcast shape of ``args`` (+ own axes):
        the same numbers as one call (an engine's point does not depend on its batch).
    """
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in args])
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    n = flat[0].size
    parts = [fn(*[a[i:i + size] for a in flat]) for i in range(0, max(n, 1), size)]
    return jax.tree_util.tree_map(
        lambda *xs: np.concatenate([np.asarray(x) for x in xs]).reshape(
            shape + np.shape(xs[0])[1:]), *parts)


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
