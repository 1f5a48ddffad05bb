"""Figures of the paper, regenerated from the sweep specs in ``sweeps/`` (``jaxlmg reproduce``).

Each figure module has ``plot(out_dir, *, spec_dir=..., data_dir=..., progress=...) -> Path | list``
(keyword arguments it does not accept are not passed).  To add a figure: write a module here
with such a ``plot``, add its name to :data:`FIGURE_MODULES`, and add one line per figure file to
``figures/README.md``.  Sweeps are run through :func:`jaxlmg.figures._data.sweep_dataset`, so
every figure is reproducible from its spec.

Only the figures and the CLI import matplotlib (backend Agg).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["FIGURE_MODULES", "reproduce"]

#: Figure modules, in order.  Optional ones (written elsewhere) are skipped when absent.
FIGURE_MODULES: tuple[str, ...] = ("phase_diagrams", "ensembles", "finite_size")
_OPTIONAL = {"finite_size"}


def reproduce(out_dir="figures", spec_dir="sweeps", *, data_dir=None,
              progress: bool | None = None) -> list[Path]:
    """Regenerate every figure.

    Args:
        out_dir: where the figure files go (created if needed).
        spec_dir: directory of the sweep specs (``sweeps/`` of the repository).
        data_dir: where the sweep stores are kept (reused, i.e. resumed or skipped, on the next
            call); default: a temporary directory, deleted afterwards.
        progress: progress bars (default: when stderr is a terminal).
    Returns:
        The paths written, in order.
    """
    out_dir, spec_dir = Path(out_dir), Path(spec_dir)
    if not spec_dir.is_dir():
        raise FileNotFoundError(f"spec directory {spec_dir} not found (run from the repository "
                                "root, or pass spec_dir / --specs)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jaxlmg-figures-") as tmp:
        data = Path(data_dir) if data_dir is not None else Path(tmp)
        kwargs = {"spec_dir": spec_dir, "data_dir": data, "progress": progress}
        written: list[Path] = []
        for name in FIGURE_MODULES:
            try:
                mod = importlib.import_module(f"{__name__}.{name}")
            except ImportError as e:
                if name in _OPTIONAL and e.name == f"{__name__}.{name}":
                    continue
                raise
            params = inspect.signature(mod.plot).parameters
            accepted = {k: v for k, v in kwargs.items() if k in params}
            t0 = time.perf_counter()
            res = mod.plot(out_dir, **accepted)
            paths = [Path(p) for p in (res if isinstance(res, list | tuple) else [res])]
            print(f"jaxlmg: {name}: {', '.join(map(str, paths))} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
            written += paths
    return written
