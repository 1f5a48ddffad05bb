"""Real processes killed at random moments (SIGKILL, SIGINT), then resumed (issue 13; slow).

``jaxlmg sweep`` runs as a subprocess and is killed: at random moments of whole runs, while its
store is being created, while ``--overwrite`` deletes the old one, and interrupted with Ctrl-C
(once: stop at a chunk boundary; twice: abandon the chunks in flight).  After every kill the
store is absent or a valid store whose done chunks are intact; rerunning the same command ends
in a store bit-identical (values and NaN positions) to an uninterrupted run, with no temporary
files left.  20 kills that hit a running sweep in all.  The subprocesses share JAX's persistent
compilation cache (in a temporary XDG cache home), which keeps a kill cycle to a few seconds.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr
from _specs import TINY_SPEC

from jaxlmg.sweeps import verify_store
from jaxlmg.sweeps.store import is_store

pytestmark = pytest.mark.slow

# 60 x 5 x 2 = 600 points in 20 chunks of (3, 5, 2): the chunk shape of the tiny spec.
SPEC = TINY_SPEC.replace("num = 11", "num = 60")
N_CHUNKS = 20
NAMES = ("Mz", "f", "n_minima", "status")
SEED = int(os.environ.get("JAXLMG_KILL_SEED", "20261130"))


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint64) if a.dtype == np.float64 else a


def load(path) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(path), mode="r", use_consolidated=False)
    return {n: g[n][:] for n in NAMES}


class Sweeps:
    """Runs ``jaxlmg sweep SPEC -o OUT`` in subprocesses sharing one compilation cache."""

    def __init__(self, root):
        self.root = root
        self.spec = root / "spec.toml"
        self.spec.write_text(SPEC)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_COMPILATION_CACHE_DIR",
                                 "JAXLMG_NO_COMPILATION_CACHE")}
        self.env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
                        XDG_CACHE_HOME=str(root / "cache"))

    def start(self, out, *extra) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "jaxlmg.cli", "sweep", str(self.spec),
                                 "-o", str(out), "-q", "--no-progress", *extra],
                                env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def run(self, out, *extra) -> float:
        t0 = time.monotonic()
        p = self.start(out, *extra)
        err = p.communicate(timeout=300)[1]
        assert p.returncode == 0, err[-3000:]
        return time.monotonic() - t0


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The runner, the uninterrupted reference and its wall time (which also fills the cache)."""
    s = Sweeps(tmp_path_factory.mktemp("kill"))
    s.run(s.root / "warm.zarr")  # compiles and fills the persistent cache
    cache = s.root / "cache" / "jaxlmg" / "jax-compilation-cache"
    assert cache.is_dir() and any(cache.iterdir()), "the CLI did not use the compilation cache"
    wall = s.run(s.root / "ref.zarr")
    return s, load(s.root / "ref.zarr"), wall


def wait_until(p, cond, timeout=120.0) -> bool:
    """Poll ``cond()`` every ms until true (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if p.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError("timed out")


def kill(p, sig) -> bool:
    """Send ``sig`` if ``p`` still runs; wait for it.  Returns whether it was delivered."""
    delivered = p.poll() is None
    if delivered:
        p.send_signal(sig)
    try:
        p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return delivered


def assert_consistent(out):
    """After a kill: no store, or a jaxlmg store whose chunks marked done are intact."""
    if out.exists():
        assert is_store(out), sorted(os.listdir(out))
        v = verify_store(out)
        assert v.ok, v.problems


def assert_finished(sweeps, out, ref):
    got = load(out)
    for n in NAMES:
        np.testing.assert_array_equal(bits(got[n]), bits(ref[n]), err_msg=n)
    for root, _, files in os.walk(out):
        assert not [f for f in files if f.endswith(".partial")], root
    left = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
    assert all(x.endswith(".lock") for x in left), left
    assert zarr.open_group(str(out), mode="r").attrs["jaxlmg_store_state"] == "complete"


def test_sigkill_at_random_moments_then_resume(sweeps, tmp_path):
    s, ref, wall = sweeps
    rng = random.Random(SEED)
    out = tmp_path / "o.zarr"
    # A resumed run is shorter than the reference (its done chunks are skipped), and the
    # machine's load changes between the reference and the kills, so a kill drawn at a random
    # moment can come after the run ended.  Such a miss starts the next cycle from scratch; the
    # cycles go on until 8 kills hit a running process (at most 24 attempts).
    delivered = attempts = 0
    while delivered < 8 and attempts < 24:
        attempts += 1
        p = s.start(out)
        time.sleep(rng.uniform(0.2, 1.1 * wall))
        hit = kill(p, signal.SIGKILL)
        delivered += hit
        assert_consistent(out)
        if not hit:  # it finished: start the next cycle from scratch
            shutil.rmtree(out)
    assert delivered == 8, \
        f"only {delivered} of {attempts} kills hit a running process (seed {SEED})"
    s.run(out)  # the same command
    assert_finished(s, out, ref)


def test_sigkill_during_creation_and_overwrite_then_resume(sweeps, tmp_path):
    s, ref, _ = sweeps
    out = tmp_path / "o.zarr"

    def sibling(kind):
        return lambda: any(p.name.startswith(f".{out.name}.{kind}-") for p in tmp_path.iterdir())

    hits = 0
    for _ in range(3):  # while the store is being created
        p = s.start(out)
        hits += wait_until(p, sibling("creating"))
        kill(p, signal.SIGKILL)
        assert_consistent(out)
    s.run(out)
    assert_finished(s, out, ref)
    for _ in range(3):  # while --overwrite deletes the old store (or creates the new one)
        p = s.start(out, "--overwrite")
        hits += wait_until(p, lambda: sibling("trash")() or sibling("creating")())
        kill(p, signal.SIGKILL)
        assert_consistent(out)
    assert hits >= 4, f"only {hits} of 6 kills hit creation or deletion"
    s.run(out, "--overwrite")  # the same command
    assert_finished(s, out, ref)


DONE_LINE = re.compile(r"jaxlmg: error: interrupted: (\d+) of (\d+) chunks done; rerun the same "
                       r"command to resume$")


def test_sigint_at_random_moments_then_resume(sweeps, tmp_path):
    s, ref, wall = sweeps
    rng = random.Random(SEED + 1)
    out = tmp_path / "o.zarr"
    owner = tmp_path / f".{out.name}.owner.json"
    # As for SIGKILL: a Ctrl-C after the run ended is a miss, and the cycles go on until 6
    # Ctrl-C interrupted a sweep (at most 20 attempts).
    interrupted = k = 0
    while interrupted < 6 and k < 20:
        k += 1
        owner.unlink(missing_ok=True)
        p = s.start(out)
        # Ctrl-C once the sweep runs (its lock taken), at a random moment after that.
        if wait_until(p, owner.exists):
            time.sleep(rng.uniform(0.0, 0.6 * wall))
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            if k % 3 == 2:  # a second Ctrl-C: abandon the chunks in flight
                time.sleep(rng.uniform(0.02, 0.3))
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=120)[1]
        assert "Traceback" not in err, err
        if p.returncode == -signal.SIGINT:
            # The sweep had finished: the signal came during the interpreter's teardown, after
            # Python restored the default handler (what a shell shows as status 130 too).
            assert err == "" and verify_store(out).complete, err
        else:
            assert p.returncode in (0, 130), (p.returncode, err)
        if p.returncode == 130:
            interrupted += 1
            m = DONE_LINE.search(err.strip().splitlines()[-1])
            assert m, err
            n_done = int(zarr.open_group(str(out), mode="r", use_consolidated=False)
                         ["_sweep/done"][:].sum()) if out.exists() else 0
            assert (int(m[1]), int(m[2])) == (n_done, N_CHUNKS)
        assert_consistent(out)
        if p.returncode in (0, -signal.SIGINT):  # it finished first: start again from scratch
            shutil.rmtree(out)
    assert interrupted == 6, f"only {interrupted} of {k} Ctrl-C interrupted a sweep"
    s.run(out)
    assert_finished(s, out, ref)


def test_concurrent_creation_one_writer_wins(sweeps, tmp_path):
    """Two sweeps started at once on the same new OUT: one computes, the other is refused in
    one line naming the first (exit 1); the store is the uninterrupted one."""
    s, ref, _ = sweeps
    out = tmp_path / "o.zarr"
    procs = [s.start(out) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], (codes, errs)
    loser = errs[[p.returncode for p in procs].index(1)]
    assert "Traceback" not in loser and len(loser.strip().splitlines()) == 1, loser
    winner = procs[[p.returncode for p in procs].index(0)]
    assert f"being written by another process (pid {winner.pid} on " in loser
    assert_finished(s, out, ref)
