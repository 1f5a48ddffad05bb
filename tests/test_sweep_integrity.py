"""Sweeps that never strand, silently lose or crash (issue 13), in process through the CLI.

Each numbered input of the issue is a test here; the kills of real processes are in
``test_sweep_kill.py``.  Every store is compared bit for bit with an uninterrupted run.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import zarr
from _specs import TINY_SPEC as SPEC

from jaxlmg.cli import main
from jaxlmg.sweeps import parse_spec, run_sweep, verify_store
from jaxlmg.sweeps import runner as runner_module
from jaxlmg.sweeps.lock import lock_path
from jaxlmg.sweeps.store import SweepStore

NAMES = ("Mz", "f", "n_minima", "status")


@pytest.fixture(autouse=True)
def _no_user_cache(monkeypatch):
    # In process, the CLI would enable JAX's persistent cache under the user's cache directory.
    monkeypatch.setenv("JAXLMG_NO_COMPILATION_CACHE", "1")


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint64) if a.dtype == np.float64 else a


def assert_same(a, b):
    ga = zarr.open_group(str(a), mode="r", use_consolidated=False)
    gb = zarr.open_group(str(b), mode="r", use_consolidated=False)
    for n in NAMES:
        np.testing.assert_array_equal(bits(ga[n][:]), bits(gb[n][:]), err_msg=n)


def one_line_error(err: str) -> str:
    """The error output is one line starting ``jaxlmg: error:``, never a traceback."""
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("jaxlmg: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec")
    (d / "s.toml").write_text(SPEC)
    return d / "s.toml"


@pytest.fixture(scope="module")
def reference(spec_file):
    out = spec_file.parent / "ref.zarr"
    assert run_sweep(parse_spec(SPEC), out, spec_text=SPEC).complete
    return out


def sweep(spec_file, out, *extra):
    return main(["sweep", str(spec_file), "-o", str(out), "-q", *extra])


def partial_files(root):
    return [os.path.join(r, f) for r, _, fs in os.walk(root) for f in fs if f.endswith(".partial")]


# ------------------------------------------------------------------ 1. stranded stores


def test_1_stranded_store_is_recovered(spec_file, reference, tmp_path, capsys):
    """A kill before the first metadata rename leaves only ``OUT/zarr.<id>.partial``."""
    out = tmp_path / "o.zarr"
    out.mkdir()
    (out / "zarr.x.partial").write_text("{")
    assert sweep(spec_file, out) == 0
    assert_same(out, reference)
    # ... and the same with --overwrite.
    shutil.rmtree(out)
    out.mkdir()
    (out / "zarr.y.partial").write_text("")
    assert sweep(spec_file, out, "--overwrite") == 0
    assert_same(out, reference)
    assert not partial_files(out)


def test_1_interrupted_overwrite_and_creation_are_recovered(spec_file, reference, tmp_path):
    """What a kill part-way through --overwrite or a creation leaves: the old store renamed to
    a trash sibling (and maybe no store), a half-made store in a creating sibling."""
    out = tmp_path / "o.zarr"
    trash = tmp_path / ".o.zarr.trash-0123"
    shutil.copytree(reference, trash)
    shutil.rmtree(trash / "Mz")  # half deleted
    creating = tmp_path / ".o.zarr.creating-4567"
    shutil.copytree(reference, creating)
    assert sweep(spec_file, out, "--overwrite") == 0
    assert_same(out, reference)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith((".lock",))) \
        == ["o.zarr"]
    # A store still marked "creating" (an older jaxlmg created in place) is recreated.
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    g.attrs["jaxlmg_store_state"] = "creating"
    shutil.rmtree(out / "f")
    assert sweep(spec_file, out) == 0
    assert_same(out, reference)


def test_1_a_directory_of_other_files_is_never_deleted(spec_file, tmp_path, capsys):
    junk = tmp_path / "j.zarr"
    junk.mkdir()
    (junk / "zarr.x.partial").write_text("")
    (junk / "precious.txt").write_text("keep me")
    assert sweep(spec_file, junk, "--overwrite") == 1
    assert "not a jaxlmg sweep store" in one_line_error(capsys.readouterr().err)
    assert (junk / "precious.txt").read_text() == "keep me"


# ------------------------------------------------------------------ 2. lost chunk files


@pytest.mark.parametrize("damage", ["delete", "truncate", "flag"])
def test_2_lost_or_damaged_chunk_files_are_found_and_recomputed(spec_file, reference, tmp_path,
                                                               capsys, damage):
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)
    store = SweepStore(zarr.open_group(str(out), mode="r", use_consolidated=False), out)
    region = (slice(3, 6), slice(0, 5), slice(0, 2))  # chunk 1
    victim = store.chunk_file("Mz", region)
    assert victim.is_file()
    if damage == "delete":
        victim.unlink()
    elif damage == "truncate":
        os.truncate(victim, 10)
    else:  # the done flag itself unreadable: the chunk counts as not done
        victim = out / "_sweep" / "done" / "c" / "1"
        os.truncate(victim, 1)

    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr()
    assert f"damaged: {victim}: " in text.out and "chunk 1" in text.out
    assert "1 problem(s) in 1 chunk(s)" in one_line_error(text.err)
    assert main(["sweep", str(spec_file), "-o", str(out), "--verify"]) == 1
    capsys.readouterr()

    assert main(["sweep", str(spec_file), "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr()
    assert "computed 1, already done 3" in text.out, text
    assert "1 chunk(s) marked done have missing or unreadable files" in text.err
    assert_same(out, reference)
    assert main(["verify", str(out)]) == 0
    assert "complete" in capsys.readouterr().out
    if damage != "flag":  # even with -q, lost data is reported
        victim.unlink()
        assert sweep(spec_file, out) == 0
        assert "jaxlmg: warning: " in capsys.readouterr().err
        assert_same(out, reference)


def test_2_all_nan_chunks_are_written(tmp_path):
    """A chunk whose values equal the fill value (NaN) still gets its file, so a missing file
    always means a lost one."""
    out = tmp_path / "nan.zarr"
    spec = parse_spec(SPEC.replace('outputs = ["Mz", "f", "n_minima", "status"]',
                                   'outputs = ["Mz", "status"]'))
    run_sweep(spec, out, max_chunks=1)
    store = SweepStore(zarr.open_group(str(out), mode="r+", use_consolidated=False), out)
    region = (slice(0, 3), slice(0, 5), slice(0, 2))
    store.write("Mz", region, np.full((3, 5, 2), np.nan))
    assert store.chunk_file("Mz", region).is_file()
    assert verify_store(out).ok


# ------------------------------------------------------------------ 3. two writers


def test_3_a_second_writer_is_refused_and_a_killed_holder_leaves_no_lock(spec_file, reference,
                                                                          tmp_path, capsys):
    out = tmp_path / "o.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom jaxlmg.sweeps.lock import StoreLock\n"
         "with StoreLock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)\n",
         str(out)], stdout=subprocess.PIPE, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert sweep(spec_file, out) == 1
        line = one_line_error(capsys.readouterr().err)
        assert "being written by another process" in line and f"pid {holder.pid}" in line
        assert not out.exists()
        holder.kill()  # SIGKILL: the OS drops the lock with the process
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
        holder.stdout.close()
    assert lock_path(out).parent == tmp_path
    assert sweep(spec_file, out) == 0
    assert_same(out, reference)


# ------------------------------------------------------------------ 4. messages, not tracebacks


def test_4_missing_axis_when_out_does_not_exist(tmp_path, capsys):
    bad = tmp_path / "m.toml"
    bad.write_text('ensemble = "canonical"\n[grid]\nh = 1.0\nK = 0.5\n')
    assert main(["sweep", str(bad), "-o", str(tmp_path / "new" / "o.zarr")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{bad}: grid: missing axis T" in err


def test_4_spec_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(SPEC.replace("tiny test sweep", "caf\xe9").encode("latin-1"))
    assert main(["sweep", str(bad), "-o", str(tmp_path / "o.zarr")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{bad}: not UTF-8 text (byte 0xe9 on line 2)" in err


@pytest.mark.parametrize("code,words", [(errno.EACCES, "Permission denied"),
                                        (errno.EROFS, "read-only"),
                                        (errno.ENOSPC, "disk is full")])
def test_4_read_only_and_full_disk_are_one_line_then_resume(spec_file, reference, tmp_path,
                                                            capsys, monkeypatch, code, words):
    """Simulated: the tests run as root, for whom a read-only directory is writable."""
    out = tmp_path / "o.zarr"
    real = SweepStore.write_chunk
    calls = []

    def failing(self, index, region, values):
        calls.append(index)
        if len(calls) == 2:  # the second chunk's write fails
            raise OSError(code, os.strerror(code), str(self.path / "Mz" / "c" / "1" / "0" / "0"))
        return real(self, index, region, values)

    monkeypatch.setattr(SweepStore, "write_chunk", failing)
    assert sweep(spec_file, out) == 1
    line = one_line_error(capsys.readouterr().err)
    assert os.strerror(code) in line and words in line and str(out) in line
    monkeypatch.setattr(SweepStore, "write_chunk", real)
    assert sweep(spec_file, out) == 0  # the same command resumes
    assert_same(out, reference)


def test_4_failure_while_creating_leaves_nothing(spec_file, reference, tmp_path, capsys,
                                                 monkeypatch):
    out = tmp_path / "o.zarr"
    real = os.rename

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "rename", full)
    assert sweep(spec_file, out) == 1
    assert "disk is full" in one_line_error(capsys.readouterr().err)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".o.zarr.lock")] == []
    monkeypatch.setattr(os, "rename", real)
    assert sweep(spec_file, out) == 0
    assert_same(out, reference)


# ------------------------------------------------------------------ 6. the smaller items


def test_6_changed_spec_refusal_names_the_axis(spec_file, reference, tmp_path, capsys):
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)
    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace("num = 11", "num = 12"))
    assert main(["sweep", str(other), "-o", str(out), "-q"]) == 1
    assert "differs in: grid.h.num (stored 11, now 12)" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("flag", [["--max-chunks", "-1"], ["--max-chunks", "x"],
                                  ["--devices", "0"]])
def test_6_bad_numbers_on_the_command_line(spec_file, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec_file), "-o", str(tmp_path / "o.zarr"), *flag])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert flag[0] in err and "Traceback" not in err
    with pytest.raises(ValueError, match="max_chunks must be >= 0"):
        run_sweep(parse_spec(SPEC), tmp_path / "o.zarr", max_chunks=-1)


@pytest.mark.parametrize("edit,key", [(("start = 0.0, stop = 3.0", 'start = "0", stop = 3.0'),
                                       "grid.h.start"),
                                      (("num = 11", 'num = "11"'), "grid.h.num"),
                                      (("chunk_size = 30", "chunk_size = 30.0"), "chunk_size"),
                                      (("T = [0.5, 1.5]", "T = [0.5, true]"), "grid.T.values[1]")])
def test_6_strings_are_refused_where_numbers_go(tmp_path, capsys, edit, key):
    bad = tmp_path / "s.toml"
    bad.write_text(SPEC.replace(*edit))
    assert main(["sweep", str(bad), "-o", str(tmp_path / "o.zarr"), "--dry-run"]) == 2
    assert f"{bad}: {key}: " in capsys.readouterr().err


def test_6_store_checked_before_compiling_and_report_counts_the_whole_store(
        spec_file, reference, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)

    def no_compile(*a, **k):
        raise AssertionError("compiled although the store is complete")

    monkeypatch.setattr(runner_module, "_runner", no_compile)
    assert main(["sweep", str(spec_file), "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "computed 0, already done 4" in text and "status: OK 110" in text
    monkeypatch.undo()
    monkeypatch.setenv("JAXLMG_NO_COMPILATION_CACHE", "1")
    part = tmp_path / "p.zarr"
    assert main(["sweep", str(spec_file), "-o", str(part), "--max-chunks", "1"]) == 0
    text = capsys.readouterr().out
    assert "status: OK 30, not computed 80" in text and "1 of 4 chunks done" in text


def test_6_no_partial_files_are_left(spec_file, reference, tmp_path):
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    g["_sweep/done"][2] = 0  # as if killed while writing chunk 2 ...
    (out / "Mz" / "c" / "2" / "0").mkdir(parents=True, exist_ok=True)
    (out / "Mz" / "c" / "2" / "0" / "0.3f2a.partial").write_bytes(b"\0" * 7)  # ... mid-file
    (out / "zarr.9b1c.partial").write_text("{")
    assert sweep(spec_file, out) == 0
    assert not partial_files(out)
    assert_same(out, reference)


def test_6_progress_bar_on_a_zero_width_terminal(spec_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((0, 0)))
    assert main(["sweep", str(spec_file), "-o", str(tmp_path / "o.zarr"), "--progress"]) == 0
    bar = capsys.readouterr().err.split("\r")[-1].strip().splitlines()[0]
    assert "100%" in bar and "110/110" in bar and "canonical sweep" in bar


def test_6_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {code}" in out
    assert "--verify" in out
