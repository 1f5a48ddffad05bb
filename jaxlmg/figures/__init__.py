"""Figures of the paper, regenerated from the sweep specs in ``sweeps/`` (``jaxlmg reproduce``).

The specs ship inside the package (the repository's top-level ``sweeps/`` is copied into the wheel
as ``jaxlmg/_specs``), so ``jaxlmg reproduce`` runs from any directory of an installed package;
:func:`spec_directory` says which copy is used.

Each figure module has ``plot(out_dir, *, spec_dir=..., data_dir=..., progress=...) -> Path | list``
(keyword arguments it does not accept are not passed).  To add a figure: write a module here
with such a ``plot``, add its name to :data:`FIGURE_MODULES`, and add one line per figure file to
``figures/README.md``.  Sweeps are run through :func:`jaxlmg.figures._data.sweep_dataset`, so
every figure is reproducible from its spec.

Only the figures and the CLI import matplotlib (backend Agg).
"""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import sys
import tempfile
import time
from pathlib import Path

from .._host import cpu_cores

__all__ = ["FIGURE_MODULES", "packaged_spec_directory", "reproduce", "spec_directory"]

#: Figure modules, in order.  Optional ones (written elsewhere) are skipped when absent.
FIGURE_MODULES: tuple[str, ...] = ("phase_diagrams", "ensembles", "finite_size")
_OPTIONAL = {"finite_size"}

#: Where the wheel puts the repository's ``sweeps/`` (pyproject.toml,
#: ``[tool.hatch.build.targets.wheel.force-include]``).
PACKAGED_SPECS = "_specs"


def packaged_spec_directory() -> Path:
    """The figure specs that come with the installed package.

    In a wheel they are ``jaxlmg/_specs`` (a copy of the repository's ``sweeps/``); in a source
    checkout or an editable install, where that copy does not exist, the repository's ``sweeps/``
    next to the ``jaxlmg`` package.

    Returns:
        The directory (a real path on disk: wheels are installed unzipped).
    Raises:
        FileNotFoundError: neither exists (a broken installation).
    """
    packaged = importlib.resources.files("jaxlmg") / PACKAGED_SPECS
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "sweeps"
    if checkout.is_dir() and any(checkout.glob("*.toml")):
        return checkout
    raise FileNotFoundError("jaxlmg's figure specs are missing from this installation (neither "
                            f"{packaged} nor {checkout} exists); reinstall jaxlmg or pass --specs")


def spec_directory(spec_dir=None, cwd=None) -> Path:
    """The directory of sweep specs that :func:`reproduce` uses.

    Args:
        spec_dir: an explicit directory (``jaxlmg reproduce --specs``); it must exist.
        cwd: where to look for ``./sweeps`` (default: the current directory).
    Returns:
        ``spec_dir`` if given; else ``./sweeps`` if it is a jaxlmg spec directory (it holds every
        spec file of :func:`packaged_spec_directory`, e.g. the repository root, where you may
        have edited them); else the packaged copy.
    Raises:
        FileNotFoundError: ``spec_dir`` is given but is not a directory.
    """
    if spec_dir is not None:
        spec_dir = Path(spec_dir)
        if not spec_dir.is_dir():
            raise FileNotFoundError(f"spec directory {spec_dir} not found (--specs / spec_dir: "
                                    "a directory of sweep specs such as the repository's sweeps/)")
        return spec_dir
    packaged = packaged_spec_directory()
    local = Path.cwd() if cwd is None else Path(cwd)
    local = local / "sweeps"
    names = sorted(p.name for p in packaged.glob("*.toml"))
    if local.is_dir() and names and all((local / n).is_file() for n in names):
        return local
    return packaged


def reproduce(out_dir="figures", spec_dir=None, *, data_dir=None,
              progress: bool | None = None) -> list[Path]:
    """Regenerate every figure.

    The figure modules run at once, one thread each, on a machine with more than one CPU core:
    a first run is mostly XLA compilation, which runs without the GIL, so every core works.
    JAX compiles a program once even when two threads ask for it at the same time (the second
    waits), so modules that share programs (``ensembles`` and ``phase_diagrams``) may run
    together; each starts with programs the other needs later.  Figures are drawn one at a time
    (under :data:`jaxlmg.figures._data.DRAWING`: matplotlib is not thread-safe).

    Args:
        out_dir: where the figure files go (created if needed).
        spec_dir: directory of the sweep specs; default (``None``): ``./sweeps`` when it is a
            jaxlmg spec directory (the repository root), else the copy inside the package
            (see :func:`spec_directory`).
        data_dir: where the sweep stores are kept (reused, i.e. resumed or skipped, on the next
            call); default: a temporary directory, deleted afterwards.
        progress: progress bars (default: when stderr is a terminal).
    Returns:
        The paths written, in order.
    Raises:
        FileNotFoundError: ``spec_dir`` is given but does not exist.
    """
    out_dir, spec_dir = Path(out_dir), spec_directory(spec_dir)
    print(f"jaxlmg: sweep specs from {spec_dir}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = {}
    for name in FIGURE_MODULES:
        try:
            modules[name] = importlib.import_module(f"{__name__}.{name}")
        except ImportError as e:
            if name in _OPTIONAL and e.name == f"{__name__}.{name}":
                continue
            raise
    with tempfile.TemporaryDirectory(prefix="jaxlmg-figures-") as tmp:
        data = Path(data_dir) if data_dir is not None else Path(tmp)
        kwargs = {"spec_dir": spec_dir, "data_dir": data, "progress": progress}

        def run(name: str) -> list[Path]:
            mod = modules[name]
            params = inspect.signature(mod.plot).parameters
            accepted = {k: v for k, v in kwargs.items() if k in params}
            t0 = time.perf_counter()
            res = mod.plot(out_dir, **accepted)
            paths = [Path(p) for p in (res if isinstance(res, list | tuple) else [res])]
            print(f"jaxlmg: {name}: {', '.join(map(str, paths))} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
            return paths

        if cpu_cores() > 1 and len(modules) > 1:
            from ._data import Background

            started = {n: Background(run, n, name=f"jaxlmg-{n}") for n in modules}
            done = {n: thread.result() for n, thread in started.items()}
        else:
            done = {n: run(n) for n in modules}
        return [p for name in modules for p in done[name]]
