"""The ``jaxlmg`` command line: ``sweep``, ``reproduce``, ``info`` (+ ``finite-size`` if present).

    jaxlmg sweep SPEC.toml -o OUT.zarr [--overwrite] [--devices N] [--max-chunks N] [--dry-run]
                 [--coordinator HOST:PORT --num-processes N --process-id I | --distributed]
    jaxlmg reproduce [--out figures] [--specs DIR] [--data DIR]
    jaxlmg info

Exit status: 0 success, 1 the sweep could not run (e.g. the store belongs to another spec),
2 invalid spec or command line.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

__all__ = ["main"]


def _err(msg: str) -> None:
    print(f"jaxlmg: error: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- sweep


def _init_distributed(args) -> None:
    """``jax.distributed.initialize`` from the flags (before anything touches a JAX backend)."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(x is None for x in explicit):
        return
    import jax

    if args.distributed:
        jax.distributed.initialize()  # auto-detection: SLURM, Open MPI, TPU pods, JAX_* env vars
        return
    if any(x is None for x in explicit):
        raise SystemExit("jaxlmg: error: --coordinator, --num-processes and --process-id go "
                         "together (or use --distributed to auto-detect a cluster)")
    jax.distributed.initialize(coordinator_address=args.coordinator,
                               num_processes=args.num_processes, process_id=args.process_id)


def _cmd_sweep(args) -> int:
    from ._spec import SpecError, estimate_bytes, load_spec
    from ._store import SweepError

    out = Path(args.out)
    try:
        spec, text = load_spec(args.spec, out=None if out.exists() else out)
    except SpecError as e:
        _err(str(e))
        return 2
    if args.dry_run:
        from ._spec import _fmt_bytes
        from ._sweep import plan_chunks

        plan = plan_chunks(spec.shape, spec.chunk_size)
        print(f"spec:     {args.spec} (valid; hash {spec.spec_hash()[:12]})")
        print(f"ensemble: {spec.ensemble}, axes {' x '.join(spec.axes)} = "
              f"{' x '.join(map(str, spec.shape))} = {spec.n_points:,} points")
        print(f"chunks:   {plan.n_chunks} of shape {plan.block} (<= {spec.chunk_size} points)")
        print(f"outputs:  {', '.join(spec.output_names)}")
        print(f"store:    {out}, at most {_fmt_bytes(estimate_bytes(spec))} uncompressed")
        return 0
    _init_distributed(args)
    import jax

    from ._sweep import run_sweep

    devices = jax.local_devices()
    if args.devices is not None:
        if not 1 <= args.devices <= len(devices):
            _err(f"--devices must be in [1, {len(devices)}] (local devices), got {args.devices}")
            return 2
        devices = devices[:args.devices]
    quiet = args.quiet
    log = (lambda m: None) if quiet else (lambda m: print(f"jaxlmg: {m}", file=sys.stderr))
    try:
        rep = run_sweep(spec, out, spec_text=text, overwrite=args.overwrite, devices=devices,
                        progress=args.progress, max_chunks=args.max_chunks, log=log)
    except SweepError as e:
        _err(str(e))
        return 1
    if not quiet:
        work = max(rep.seconds - rep.compile_seconds, 1e-9)
        rate = rep.n_points * rep.computed / max(rep.n_chunks, 1) / work
        proc = f" (process {jax.process_index()}/{jax.process_count()})" \
            if jax.process_count() > 1 else ""
        print(f"{out}: {rep.n_points:,} points, {rep.n_chunks} chunks; computed {rep.computed}, "
              f"already done {rep.skipped}{proc}; {rep.seconds:.1f} s (compile "
              f"{rep.compile_seconds:.1f} s, then ~{rate:,.0f} points/s) on {len(rep.devices)} "
              "device(s)")
        if rep.status_counts:
            print("status: " + ", ".join(f"{k} {v:,}" for k, v in rep.status_counts.items()))
        if not rep.complete:
            print("incomplete: rerun the same command to continue")
    return 0


# --------------------------------------------------------------------------- reproduce / info


def _cmd_reproduce(args) -> int:
    from ._spec import SpecError
    from ._store import SweepError
    from .figures import reproduce

    try:
        paths = reproduce(args.out, args.specs, data_dir=args.data, progress=args.progress)
    except (FileNotFoundError, SpecError) as e:
        _err(str(e))
        return 2
    except SweepError as e:
        _err(str(e))
        return 1
    for p in paths:
        print(p)
    return 0


def _cmd_info(args) -> int:
    import jax

    import jaxlmg

    rows = [
        ("jaxlmg", jaxlmg.__version__),
        ("python", platform.python_version()),
        ("jax", jax.__version__),
    ]
    try:
        import jaxlib

        rows.append(("jaxlib", jaxlib.__version__))
    except ImportError:  # pragma: no cover
        pass
    rows += [
        ("backend", jax.default_backend()),
        ("devices", ", ".join(f"{d.device_kind} ({d.platform}:{d.id})"
                              for d in jax.local_devices())),
        ("process", f"{jax.process_index()} of {jax.process_count()}"),
        ("float64", "enabled" if jax.config.read("jax_enable_x64") else "DISABLED"),
    ]
    for mod in ("numpy", "zarr", "xarray", "pydantic"):
        try:
            rows.append((mod, __import__(mod).__version__))
        except ImportError:
            rows.append((mod, "not installed"))
    from ._kernels import KERNELS

    rows.append(("ensembles", ", ".join(f"{k} ({', '.join(v.axes)})" for k, v in KERNELS.items())))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    p = argparse.ArgumentParser(
        prog="jaxlmg",
        description="Canonical and microcanonical phase diagrams of the LMG model with a 4-spin "
                    "term (Defenu, Mukamel, Ruffo, PRL 133, 050403 (2024)), in JAX.")
    p.add_argument("--version", action="version", version=f"jaxlmg {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser(
        "sweep", help="run (or resume) a parameter sweep from a TOML spec into a Zarr store",
        description="Run a sweep spec (see sweeps/*.toml) into a Zarr store, chunk by chunk, "
                    "on every local device.  Rerunning the same command resumes an interrupted "
                    "sweep; results are bit-identical to an uninterrupted run on the same "
                    "devices.")
    s.add_argument("spec", metavar="SPEC", help="sweep spec, a .toml file")
    s.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output Zarr store (a directory, e.g. out/fig2.zarr)")
    s.add_argument("--overwrite", action="store_true",
                   help="discard an existing store at OUT (only a jaxlmg store is deleted)")
    s.add_argument("--devices", type=int, metavar="N",
                   help="use the first N local devices (default: all)")
    s.add_argument("--max-chunks", type=int, metavar="N",
                   help="stop after N chunks (rerun to continue; e.g. for time-limited jobs)")
    s.add_argument("--dry-run", action="store_true",
                   help="validate the spec, print the plan and the store size, and exit")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar with points/s and ETA (default: when stderr is a terminal)")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    d = s.add_argument_group(
        "several processes / hosts",
        "Each process runs on its local devices and takes every N-th chunk; OUT must be on a "
        "file system shared by all processes.")
    d.add_argument("--coordinator", metavar="HOST:PORT",
                   help="address of process 0 (jax.distributed coordinator)")
    d.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    d.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1")
    d.add_argument("--distributed", action="store_true",
                   help="jax.distributed.initialize() with auto-detection (SLURM, Open MPI, "
                        "JAX_COORDINATOR_ADDRESS, ...)")
    s.set_defaults(func=_cmd_sweep)

    r = sub.add_parser(
        "reproduce", help="regenerate every figure of the paper from the sweep specs",
        description="Run the sweeps behind every figure and write the figures (PNG).")
    r.add_argument("--out", default="figures", help="output directory (default: figures)")
    r.add_argument("--specs", default=None, metavar="DIR",
                   help="spec directory (default: ./sweeps if it holds jaxlmg's figure specs, "
                        "e.g. in the repository root, else the specs installed with jaxlmg)")
    r.add_argument("--data", default=None, metavar="DIR",
                   help="keep the sweep stores in DIR (reused on the next run); default: a "
                        "temporary directory")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")
    r.set_defaults(func=_cmd_reproduce)

    i = sub.add_parser("info", help="versions, JAX devices and backend, float64 status",
                       description="Print versions, the JAX backend and devices, and whether "
                                   "float64 is enabled.")
    i.set_defaults(func=_cmd_info)

    try:
        from ._cli_finite_size import register
    except ImportError:
        pass
    else:
        register(sub)
    return p


def main(argv=None) -> int:
    """Entry point of the ``jaxlmg`` console script; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # A subcommand registered elsewhere may provide ``run(args)`` instead of a default.
        try:
            from ._cli_finite_size import run as func  # noqa: F811
        except ImportError:
            parser.error(f"no handler for {args.command!r}")
    rc = func(args)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
