"""Host memory of a sweep stays flat when the grid grows 10x (chunks stream to disk).

Runs ``jaxlmg sweep`` in fresh subprocesses on a canonical grid of N and 10 N points and
reports each one's peak resident set size (``ru_maxrss`` of that child, via ``os.wait4``), the
wall time and the ratio 10N / N.  For contrast, the same grids computed with
one in-memory ``jaxlmg.canonical`` call (``--naive``, default on).

Only the leading axis ``h`` grows (``K`` x ``T`` = 256 x 4 fixed), so both sweeps run the same
chunk shape, i.e. the same compiled executable: the comparison isolates the data volume.  (The
compiled program's own size depends on the chunk shape, by ~100 MiB on CPU.)

    python benchmarks/bench_sweep_memory.py [--points 200000] [--chunk 16384] [--no-naive]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """
ensemble = "canonical"
outputs = ["s", "mz", "Mz", "Mx", "f", "energy", "entropy", "n_minima", "status"]
chunk_size = {chunk}

[grid]
h = {{ start = 0.0, stop = 3.0, num = {n} }}
K = {{ start = 0.0, stop = 1.5, num = 256 }}
T = [0.25, 0.5, 1.0, 2.0]
"""

NAIVE = """
import sys, numpy as np, jax, jaxlmg as jl
n = int(sys.argv[1])
h = np.linspace(0, 3, n)[:, None, None]; K = np.linspace(0, 1.5, 256)[None, :, None]
T = np.array([0.25, 0.5, 1.0, 2.0])[None, None, :]
r = jax.block_until_ready(jl.canonical(h, K, T))
host = [np.asarray(x) for x in r]
print(sum(a.nbytes for a in host))
"""


def run(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS of that child in MiB)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    # Both sweeps compile their executable (no persistent cache hit for the second one), so the
    # comparison isolates the data volume.
    env["JAXLMG_NO_COMPILATION_CACHE"] = "1"
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode() if p.stderr else ""
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000, help="N (the small grid)")
    ap.add_argument("--chunk", type=int, default=16_384, help="chunk_size of the spec")
    ap.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 10):
            n = max(1, round(scale * args.points / 1024))
            spec = Path(tmp) / f"s{scale}.toml"
            spec.write_text(SPEC.format(n=n, chunk=args.chunk))
            pts = n * 1024
            wall, rss = run([sys.executable, "-m", "jaxlmg.cli", "sweep", str(spec), "-o",
                             str(Path(tmp) / f"s{scale}.zarr"), "-q", "--no-progress"])
            rows.append(("sweep", pts, wall, rss))
            print(f"sweep  {pts:>10,} points  {wall:6.1f} s  peak RSS {rss:7.1f} MiB", flush=True)
            if args.naive:
                wall, rss = run([sys.executable, "-c", NAIVE, str(n)])
                rows.append(("naive", pts, wall, rss))
                print(f"naive  {pts:>10,} points  {wall:6.1f} s  peak RSS {rss:7.1f} MiB",
                      flush=True)
    for kind in ("sweep", "naive"):
        r = [x for x in rows if x[0] == kind]
        if len(r) == 2:
            print(f"{kind}: 10x the points -> peak RSS x {r[1][3] / r[0][3]:.2f} "
                  f"({r[0][3]:.0f} -> {r[1][3]:.0f} MiB)")


if __name__ == "__main__":
    main()
