"""Sweep execution and storage, in process: chunking, round trips, resume, refusal, registry."""

from __future__ import annotations

import json
import math
import shutil
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
import zarr

# 11 x 5 x 2 = 110 points in chunks of (3, 5, 2) = 30 points: 4 chunks, the last one partial.
from _specs import TINY_SPEC as SPEC  # noqa: E402

import jaxlmg as jl
from jaxlmg.sweeps import (
    SweepError,
    open_sweep,
    parse_spec,
    plan_chunks,
    register_kernel,
    run_sweep,
)
from jaxlmg.sweeps import kernels as _kernels
from jaxlmg.sweeps import runner as _sweep


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits (so that equality is bit-identity, NaN payloads included)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint64) if a.dtype == np.float64 else a


def assert_same_store(a, b):
    da, db = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    for name in ("Mz", "f", "n_minima", "status"):
        np.testing.assert_array_equal(bits(da[name][:]), bits(db[name][:]), err_msg=name)


@pytest.fixture(scope="module")
def spec():
    return parse_spec(SPEC)


@pytest.fixture(scope="module")
def reference(spec, tmp_path_factory):
    """An uninterrupted run of SPEC."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    rep = run_sweep(spec, out, spec_text=SPEC)
    assert rep.complete and rep.computed == rep.n_chunks == 4 and rep.skipped == 0
    return out


@pytest.mark.parametrize("shape,chunk", [((11, 5, 2), 30), ((7,), 3), ((4, 3), 100),
                                         ((3, 4, 50), 20), ((2, 2, 2, 2), 5), ((5, 1, 3), 1)])
def test_chunks_tile_the_grid(shape, chunk):
    plan = plan_chunks(shape, chunk)
    cover = np.zeros(shape, int)
    for i in range(plan.n_chunks):
        cover[plan.region(i)] += 1
        assert 1 <= plan.points(i) <= max(chunk, 1)
    assert (cover == 1).all()  # every point in exactly one chunk
    assert plan.block_points <= chunk
    # A chunk is a block of whole trailing axes: (1, ..., 1, b, n_{k+1}, ...).
    k = next(i for i, b in enumerate(plan.block) if b != 1 or i == len(shape) - 1)
    assert plan.block[k + 1:] == shape[k + 1:] or plan.block[k] == 1


def test_padding_is_a_device_multiple():
    for n in (1, 7, 30, 1000, 65536, 100001):
        for d in (1, 2, 4, 8):
            p = _sweep.padded_size(n, d)
            assert p >= n and p % d == 0 and p <= math.ceil(n / d) * d * 9 / 8 + d


def test_sweep_equals_direct_call_and_round_trips_through_xarray(spec, reference):
    ds = xr.open_zarr(reference)  # consolidated once complete: no warning, no extra argument
    assert dict(ds.sizes) == {"h": 11, "K": 5, "T": 2}
    assert set(ds.data_vars) == {"Mz", "f", "n_minima", "status"}
    for a, v in spec.coords().items():
        np.testing.assert_array_equal(ds[a].values, v)
        assert ds[a].attrs["units"] == "J"
    assert ds.Mz.dims == ("h", "K", "T") and ds.n_minima.dtype == np.int32
    assert ds.status.attrs["flag_meanings"].startswith("OK ")
    at = ds.attrs
    assert at["jaxlmg_spec_toml"] == SPEC
    assert json.loads(at["jaxlmg_spec_json"]) == spec.identity()
    assert at["jaxlmg_spec_hash"] == spec.spec_hash()
    assert at["jaxlmg_version"] == jl.__version__
    import jax

    assert at["jax_version"] == jax.__version__ and "cpu" in at["devices"]
    assert at["date_created"] and at["date_completed"] and at["jaxlmg_store_state"] == "complete"
    assert at["ensemble"] == "canonical" and at["J"] == 1.0 and at["precision"] == "float64"
    # The zarr chunks are the sweep chunks.
    assert zarr.open_array(str(reference / "Mz"), mode="r").chunks == (3, 5, 2)

    c = jl.canonical(ds.h.values[:, None, None], ds.K.values[None, :, None],
                     ds.T.values[None, None, :])
    np.testing.assert_array_equal(ds.status.values, np.asarray(c.status))
    np.testing.assert_array_equal(ds.n_minima.values, np.asarray(c.n_minima))
    # Same kernel; XLA may batch differently from a direct call, so allow the last bits.
    np.testing.assert_allclose(ds.Mz.values, np.asarray(c.Mz), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.f.values, np.asarray(c.f), rtol=0, atol=1e-12)
    assert (ds.status.values == 0).mean() > 0.95


def test_interrupted_sweep_resumes_bit_identically(spec, reference, tmp_path):
    out = tmp_path / "part.zarr"
    rep = run_sweep(spec, out, spec_text=SPEC, max_chunks=2)
    assert rep.computed == 2 and not rep.complete
    part = open_sweep(out)  # an incomplete store opens too: not-done chunks hold fill values
    assert part.attrs["jaxlmg_store_state"] == "running"
    assert np.isnan(part.Mz.values[6:]).all() and (part.status.values[6:] == -1).all()
    assert np.isfinite(part.Mz.values[:6]).any()
    rep = run_sweep(spec, out, spec_text=SPEC)
    assert (rep.computed, rep.skipped, rep.complete) == (2, 2, True)
    assert_same_store(out, reference)
    rep = run_sweep(spec, out)  # complete: nothing to do
    assert (rep.computed, rep.skipped, rep.complete) == (0, 4, True)


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_threads_do_not_change_results(spec, reference, tmp_path, monkeypatch, workers):
    """Chunks computed by one worker thread, or by more threads than chunks are in flight at
    once, write the same bits as the default (one per core on a CPU device)."""
    monkeypatch.setattr(_sweep, "_workers", lambda devices: workers)
    out = tmp_path / f"w{workers}.zarr"
    rep = run_sweep(spec, out, spec_text=SPEC)
    assert rep.complete and rep.computed == 4
    assert_same_store(out, reference)


def test_chunk_without_done_flag_is_recomputed(spec, reference, tmp_path):
    out = tmp_path / "torn.zarr"
    shutil.copytree(reference, out)
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    # Simulate a process killed after writing part of chunk 1 and before its flag.
    g["Mz"][3:6] = 123.0
    g["_sweep/done"][1] = 0
    g.attrs["jaxlmg_store_state"] = "running"
    rep = run_sweep(spec, out)
    assert (rep.computed, rep.skipped, rep.complete) == (1, 3, True)
    assert_same_store(out, reference)


def test_refuses_a_store_of_another_spec(spec, reference, tmp_path):
    out = tmp_path / "other.zarr"
    shutil.copytree(reference, out)
    other = parse_spec(SPEC.replace("num = 11", "num = 12"))
    with pytest.raises(SweepError, match=r"different spec \(differs in: grid"):
        run_sweep(other, out)
    rep = run_sweep(other, out, overwrite=True)
    assert rep.complete and xr.open_zarr(out).sizes["h"] == 12
    junk = tmp_path / "not_a_store"
    junk.mkdir()
    (junk / "precious.txt").write_text("keep me")
    with pytest.raises(SweepError, match="not a jaxlmg sweep store"):
        run_sweep(spec, junk, overwrite=True)
    assert (junk / "precious.txt").exists()


def test_store_killed_while_being_created_is_recreated(spec, reference, tmp_path):
    out = tmp_path / "creating.zarr"
    shutil.copytree(reference, out)
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    g.attrs["jaxlmg_store_state"] = "creating"
    shutil.rmtree(out / "f")  # half-created
    rep = run_sweep(spec, out, spec_text=SPEC)
    assert rep.complete and rep.computed == 4
    assert_same_store(out, reference)


class _Toy(NamedTuple):
    x: object
    status: object


def test_a_new_quantity_is_one_registry_line(spec, tmp_path):
    register_kernel("toy", lambda h, K, T, J, *, precision: _Toy(h + 10 * K + 100 * T + J,
                                                                 jnp.zeros_like(h, jnp.int32)),
                    ("h", "K", "T"))
    try:
        s = parse_spec(SPEC.replace('outputs = ["Mz", "f", "n_minima", "status"]',
                                    'outputs = ["x", "toy.status"]'))
        run_sweep(s, tmp_path / "toy.zarr")
        ds = open_sweep(tmp_path / "toy.zarr")
        expect = (ds.h + 10 * ds.K + 100 * ds.T + 1.0).transpose("h", "K", "T")
        np.testing.assert_allclose(ds.x.values, expect.values, rtol=1e-15)
        # A field name two kernels share must be qualified.
        s2 = parse_spec(SPEC.replace('outputs = ["Mz", "f", "n_minima", "status"]',
                                     'outputs = ["toy.status", "status"]'))
        assert s2.output_names == ("toy.status", "status")
    finally:
        del _kernels.KERNELS["toy"]
        _kernels.kernel_fields.cache_clear()


def test_no_recompilation_between_chunks_or_reruns(spec, reference, tmp_path):
    before = _sweep._runner.cache_info()
    run_sweep(spec, tmp_path / "again.zarr")  # same spec, same devices: cached executable
    after = _sweep._runner.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


def test_killed_during_finalize_is_finalized_on_rerun(spec, reference, tmp_path):
    out = tmp_path / "fin.zarr"
    shutil.copytree(reference, out)
    meta = json.loads((out / "zarr.json").read_text())
    meta["consolidated_metadata"] = None  # state already "complete", not consolidated yet
    (out / "zarr.json").write_text(json.dumps(meta))
    rep = run_sweep(spec, out)
    assert rep.complete and rep.computed == 0
    xr.open_zarr(out)  # consolidated again: no RuntimeWarning (warnings are errors here)
