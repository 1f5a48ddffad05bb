"""The ``jaxlmg`` command line: ``sweep``, ``verify``, ``reproduce``, ``info`` (+ ``finite-size``).

    jaxlmg sweep SPEC.toml -o OUT.zarr [--overwrite] [--devices N] [--max-chunks N] [--dry-run]
                 [--verify] [--coordinator HOST:PORT --num-processes N --process-id I |
                 --distributed]
    jaxlmg verify OUT.zarr
    jaxlmg reproduce [--out figures] [--specs DIR] [--data DIR]
    jaxlmg info

Exit status (see ``SWEEP_EXIT_CODES``): 0 success, 1 the sweep could not run (a runtime
failure: the store belongs to another spec or another process, a full disk, a read-only
directory, a damaged store found by ``verify``), 2 invalid spec or command line, 130
interrupted (Ctrl-C; rerun the same command to resume).  Errors are one line each, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import textwrap
from pathlib import Path

__all__ = ["SWEEP_EXIT_CODES", "main"]

SWEEP_EXIT_CODES = """\
exit status:
  0    success (the store is complete, or --max-chunks reached; rerun to continue)
  1    runtime failure: the store belongs to another spec or is being written by another
       process, the disk is full, OUT is not writable, verify found damaged chunks
  2    invalid spec (every problem listed as FILE: key: what is wrong) or command line
  130  interrupted (Ctrl-C): the chunks in flight are finished (a second Ctrl-C abandons
       them); rerun the same command to resume"""


def _count(lo: int):
    """An argparse type: an integer ``>= lo`` (else a one-line usage error, exit 2)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    return parse


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


def _enable_compilation_cache() -> None:
    """JAX's persistent compilation cache under the user cache directory (a rerun, resume or
    second ``reproduce`` then loads the compiled programs instead of compiling them again).

    Opt out with ``JAXLMG_NO_COMPILATION_CACHE=1``; ``JAX_COMPILATION_CACHE_DIR`` (JAX's own
    setting) takes precedence over the default directory.
    """
    if os.environ.get("JAXLMG_NO_COMPILATION_CACHE", "") not in ("", "0"):
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return  # set by the user (JAX_COMPILATION_CACHE_DIR or jax.config)
    import platformdirs

    path = Path(platformdirs.user_cache_dir("jaxlmg")) / "jax-compilation-cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # no writable cache directory: compile every time
    jax.config.update("jax_compilation_cache_dir", str(path))


class _CtrlC:
    """SIGINT while a sweep runs: the first Ctrl-C asks the sweep to stop at the next chunk
    boundary (chunks being computed are finished and written); a second one asks it to abandon
    them.  The handler only sets events (the sweep polls them): an exception raised from a
    signal handler could land anywhere, e.g. in a garbage-collection callback."""

    def __init__(self):
        import threading

        self.stop = threading.Event()
        self.abandon = threading.Event()
        self._previous = None

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame):
        if self.stop.is_set():
            self.abandon.set()
            msg = "jaxlmg: abandoning the chunks in flight\n"
        else:
            self.stop.set()
            msg = ("jaxlmg: interrupted: finishing the chunks in flight (Ctrl-C again to abandon "
                   "them)\n")
        try:
            os.write(2, msg.encode())  # not print(): no buffered I/O inside a signal handler
        except OSError:
            pass


def _chunks_done(out: Path, spec) -> tuple[int, int]:
    """``(done, total)`` chunks of the store at ``out`` (0 done when it cannot be read)."""
    from .sweeps import plan_chunks

    total = plan_chunks(spec.shape, spec.chunk_size).n_chunks
    try:
        import zarr

        g = zarr.open_group(str(out), mode="r", use_consolidated=False)
        return int((g["_sweep/done"][:] != 0).sum()), total
    except Exception:  # noqa: BLE001 - no store (yet), or an unreadable one: nothing counted
        return 0, total


def _interrupted(out: Path, spec) -> int:
    n, m = _chunks_done(out, spec)
    _err(f"interrupted: {n} of {m} chunks done; rerun the same command to resume")
    return 130


def _cmd_sweep(args) -> int:
    from .sweeps import SpecError, SweepError, estimate_bytes, load_spec

    out = Path(args.out)
    try:
        spec, text = load_spec(args.spec, out=None if out.exists() else out)
    except SpecError as e:
        _err(str(e))
        return 2
    if args.dry_run:
        from .sweeps import plan_chunks
        from .sweeps.spec import format_bytes

        plan = plan_chunks(spec.shape, spec.chunk_size)
        print(f"spec:     {args.spec} (valid; hash {spec.spec_hash()[:12]})")
        print(f"ensemble: {spec.ensemble}, model {spec.model}, axes {' x '.join(spec.axes)} = "
              f"{' x '.join(map(str, spec.shape))} = {spec.n_points:,} points")
        print(f"chunks:   {plan.n_chunks} of shape {plan.block} (<= {spec.chunk_size} points)")
        print(f"outputs:  {', '.join(spec.output_names)}")
        print(f"store:    {out}, at most {format_bytes(estimate_bytes(spec))} uncompressed")
        return 0
    if args.verify:
        from .sweeps import verify_store

        try:
            return _print_verification(verify_store(out, spec))
        except SweepError as e:
            _err(str(e))
            return 1
    with _CtrlC() as ctrl_c:
        try:
            return _run_sweep_command(args, spec, text, out, ctrl_c)
        except KeyboardInterrupt:
            return _interrupted(out, spec)
        except SweepError as e:
            _err(str(e))
            return 1


def _run_sweep_command(args, spec, text, out, ctrl_c) -> int:
    _init_distributed(args)
    import jax

    from .sweeps import run_sweep

    _enable_compilation_cache()
    devices = jax.local_devices()
    if args.devices is not None:
        if not 1 <= args.devices <= len(devices):
            _err(f"--devices must be in [1, {len(devices)}] (local devices), got {args.devices}")
            return 2
        devices = devices[:args.devices]
    quiet = args.quiet

    def log(msg: str) -> None:  # -q keeps the warnings (e.g. lost chunk files being recomputed)
        if not quiet or msg.startswith("warning:"):
            print(f"jaxlmg: {msg}", file=sys.stderr)

    rep = run_sweep(spec, out, spec_text=text, overwrite=args.overwrite, devices=devices,
                    progress=args.progress, max_chunks=args.max_chunks, log=log,
                    stop=ctrl_c.stop, abandon=ctrl_c.abandon)
    if rep.interrupted:
        return _interrupted(out, spec)
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
            print(f"incomplete: {rep.done_chunks} of {rep.n_chunks} chunks done; rerun the same "
                  "command to continue")
    return 0


def _print_verification(v) -> int:
    for p in v.problems:
        print(f"damaged: {p}")
    state = "complete" if v.complete else \
        f"incomplete ({v.done_chunks} of {v.n_chunks} chunks done)"
    if v.problems:
        _err(f"{v.path}: {len(v.problems)} problem(s) in {len(v.damaged)} chunk(s); rerun "
             "`jaxlmg sweep` with the same spec and output to recompute them")
        return 1
    print(f"{v.path}: OK, every file of the {v.done_chunks} done chunks is present and readable; "
          f"{state}")
    return 0


def _cmd_verify(args) -> int:
    from .sweeps import SpecError, SweepError, verify_store

    try:
        return _print_verification(verify_store(args.store))
    except SpecError as e:
        _err(f"{args.store}: the spec stored in it is invalid: {e}")
        return 1
    except SweepError as e:
        _err(str(e))
        return 2 if "not a jaxlmg sweep store" in str(e) else 1


# --------------------------------------------------------------------------- reproduce / info


def _cmd_reproduce(args) -> int:
    from .figures import reproduce

    _enable_compilation_cache()
    from .sweeps import SpecError, SweepError

    try:
        paths = reproduce(args.out, args.specs, data_dir=args.data, progress=args.progress)
    except KeyboardInterrupt:
        _err("interrupted")
        import threading

        if any(t.daemon and t.name.startswith("jaxlmg-") for t in threading.enumerate()):
            # figure threads may be inside XLA, on which the interpreter's shutdown aborts
            # ("terminate called ..."): leave at once, without it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
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
    from .sweeps import KERNELS

    rows.append(("ensembles", ", ".join(f"{k} ({', '.join(v.axes)})" for k, v in KERNELS.items())))
    from .sweeps.spec_models import SPEC_MODELS

    rows.append(("sweep models", ", ".join(SPEC_MODELS)))
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
        description=textwrap.fill(
            "Run a sweep spec (see sweeps/*.toml) into a Zarr store, chunk by chunk, "
                    "on every local device.  Rerunning the same command resumes an interrupted "
                    "sweep; results are bit-identical to an uninterrupted run on the same "
                    "devices.  One writer per store: a second process on the same OUT is refused "
                    "(the lock is released however the first one ends, kill -9 included).  Every "
                    "run first checks the files of the chunks already done and recomputes lost "
                    "or damaged ones.", 78),
        epilog=SWEEP_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("spec", metavar="SPEC", help="sweep spec, a .toml file")
    s.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output Zarr store (a directory, e.g. out/fig2.zarr)")
    s.add_argument("--overwrite", action="store_true",
                   help="discard an existing store at OUT (only a jaxlmg store is deleted)")
    s.add_argument("--devices", type=_count(1), metavar="N",
                   help="use the first N local devices (default: all)")
    s.add_argument("--max-chunks", type=_count(0), metavar="N",
                   help="stop after N chunks, N >= 0 (rerun to continue; e.g. for time-limited "
                        "jobs)")
    s.add_argument("--dry-run", action="store_true",
                   help="validate the spec, print the plan and the store size, and exit")
    s.add_argument("--verify", action="store_true",
                   help="compute nothing: check that OUT is a store of SPEC whose done chunks "
                        "are all present and readable (exit 0), else exit 1")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar with points/s and ETA (default: when stderr is a terminal)")
    s.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors and warnings")
    d = s.add_argument_group(
        "several processes / hosts",
        textwrap.fill("Each process runs on its local devices and takes every N-th chunk; OUT "
                      "must be on a file system shared by all processes.", 76))
    d.add_argument("--coordinator", metavar="HOST:PORT",
                   help="address of process 0 (jax.distributed coordinator)")
    d.add_argument("--num-processes", type=_count(1), metavar="N", help="number of processes")
    d.add_argument("--process-id", type=_count(0), metavar="I", help="this process, 0 .. N-1")
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

    v = sub.add_parser(
        "verify", help="check that every chunk file of a sweep store is present and readable",
        description="Check a sweep store against the spec stored in it, without changing it: "
                    "every file of every chunk marked done must exist and decode, and the "
                    "coordinates must be the spec's.  Damaged chunks are listed; rerunning the "
                    "sweep recomputes them.",
        epilog="exit status: 0 intact (complete or not), 1 damaged, 2 not a sweep store",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("store", metavar="OUT", help="the sweep store (a directory)")
    v.set_defaults(func=_cmd_verify)

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
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C while the parser imports
        return 130
    func = getattr(args, "func", None)
    if func is None:
        # A subcommand registered elsewhere may provide ``run(args)`` instead of a default.
        try:
            from ._cli_finite_size import run as func  # noqa: F811
        except ImportError:
            parser.error(f"no handler for {args.command!r}")
    try:
        rc = func(args)
    except KeyboardInterrupt:  # Ctrl-C outside a sweep's own handling: no traceback
        _err("interrupted")
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
