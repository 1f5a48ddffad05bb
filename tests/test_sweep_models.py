"""The spec's ``model`` key: built-in models, couplings as constants or axes, validation."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr
from _specs import TINY_SPEC

import jaxlmg as jl
from jaxlmg.sweeps import SpecError, open_sweep, parse_spec, run_sweep

# p = 3 with the p-spin coupling J as an axis: axes (h, J, T), 9 x 2 x 2 = 36 points, 4 chunks.
PSPIN = """
ensemble = "canonical"
model = "pspin"
p = 3
outputs = ["Mz", "f", "n_minima", "status"]
chunk_size = 10

[grid]
h = { start = 0.0, stop = 2.0, num = 9 }
J = [0.5, 1.0]
T = [0.0, 0.4]
"""


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint64) if a.dtype == np.float64 else a


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="m.toml")
    return info.value.problems


def has(probs, key, *words):
    return any(p.startswith(f"m.toml: {key}: ") and all(w in p for w in words) for p in probs)


def test_default_model_keeps_the_spec_hash():
    """Specs written before the ``model`` key keep their identity (their stores resume).  The
    hash was recorded with the code before the key existed."""
    spec = parse_spec(TINY_SPEC)
    assert spec.model == "lmg4" and spec.axes == ("h", "K", "T")
    assert spec.spec_hash() == "a97b7e17f0bc1ed0472f4e7fbb0e15ab991c31aeefac1d14c2fc3b63ccf3bd12"
    explicit = TINY_SPEC.replace('ensemble = "canonical"', 'ensemble = "canonical"\nmodel = "lmg4"'
                                 '\nJ = 1.0')
    assert parse_spec(explicit).spec_hash() == spec.spec_hash()
    assert parse_spec(PSPIN).spec_hash() != parse_spec(PSPIN.replace("p = 3", "p = 4")).spec_hash()


def test_pspin_sweep_runs_resumes_and_round_trips(tmp_path):
    spec = parse_spec(PSPIN)
    assert spec.axes == ("h", "J", "T") and spec.shape == (9, 2, 2)
    assert spec.constants == {} and spec.model_options == {"p": 3}
    assert parse_spec(spec.to_toml()) == spec
    ref = tmp_path / "ref.zarr"
    assert run_sweep(spec, ref).complete
    part = tmp_path / "part.zarr"
    rep = run_sweep(spec, part, max_chunks=1)
    assert rep.computed == 1 and not rep.complete
    rep = run_sweep(spec, part)  # resume
    assert (rep.computed, rep.skipped, rep.complete) == (rep.n_chunks - 1, 1, True)
    a, b = zarr.open_group(str(ref), mode="r"), zarr.open_group(str(part), mode="r")
    for n in ("Mz", "f", "n_minima", "status"):
        np.testing.assert_array_equal(bits(a[n][:]), bits(b[n][:]), err_msg=n)

    ds = xr.open_zarr(part)
    assert ds.Mz.dims == ("h", "J", "T") and ds.attrs["model"] == "pspin" and ds.attrs["p"] == 3
    assert parse_spec(ds.attrs["jaxlmg_spec_toml"]).spec_hash() == spec.spec_hash()
    h, J, T = ds.h.values[:, None, None], ds.J.values[None, :, None], ds.T.values[None, None, :]
    c = jl.canonical_state(jl.PSpin(3), jl.PSpinCouplings(J + 0 * h * T), h + 0 * J * T,
                           T + 0 * h * J)
    np.testing.assert_array_equal(ds.status.values, np.asarray(c.status))
    np.testing.assert_allclose(ds.Mz.values, np.asarray(c.Mz), rtol=0, atol=1e-12)
    # Exact: at T = 0 the p = 3 transition is first order at h = 3 sqrt(3)/4 J, where Mz jumps
    # from sqrt(3)/2 to 0 (checked on each side of the grid point nearest to it).
    for j, Jv in enumerate(ds.J.values):
        hc = 3 * np.sqrt(3) / 4 * Jv
        m = ds.Mz.values[:, j, 0]
        assert (m[ds.h.values > hc + 1e-9] < 1e-8).all()
        below = ds.h.values < hc - 1e-9
        assert (m[below] >= np.sqrt(3) / 2 - 1e-12).all()


def test_longitudinal_model_with_a_field_axis(tmp_path):
    text = """
ensemble = "canonical"
model = "longitudinal_lmg4"
K = 0.25
outputs = ["Mz", "status"]

[grid]
h = [0.5, 1.5]
b = [-0.1, 0.0, 0.1]
T = [0.3]
"""
    spec = parse_spec(text)
    assert spec.axes == ("h", "b", "T") and spec.constants == {"J": 1.0, "K": 0.25}
    run_sweep(spec, tmp_path / "l.zarr")
    ds = open_sweep(tmp_path / "l.zarr")
    h, b = ds.h.values[:, None, None], ds.b.values[None, :, None]
    T = ds.T.values[None, None, :]
    c = jl.canonical_state(jl.LongitudinalLMG4(), jl.LongitudinalCouplings(1.0, 0.25, b), h, T)
    np.testing.assert_allclose(ds.Mz.values, np.asarray(c.Mz), rtol=0, atol=1e-12)
    # A longitudinal field orders the spins along itself: sign(Mz) = sign(b).
    assert (ds.Mz.values[:, 0] < 0).all() and (ds.Mz.values[:, 2] > 0).all()


@pytest.mark.parametrize("edit,key,words", [
    (("model = \"pspin\"", "model = \"pspn\""), "model", ("unknown model 'pspn'", "pspin")),
    (("p = 3\n", ""), "p", ("missing", "integer >= 2")),
    (("p = 3", "p = 1"), "p", ("integer >= 2", "1")),
    (("p = 3", "p = 2.5"), "p", ("integer", "2.5")),
    (("p = 3", 'p = "3"'), "p", ("integer",)),
    (("p = 3", "p = 3\nK = 0.5"), "K", ("not a coupling of model 'pspin'",)),
    (("J = [0.5, 1.0]", "J = [0.5, 1.0]\nb = [0.1]"), "grid.b",
     ("not a coupling of model 'pspin'",)),
    (("p = 3", "p = 3\nJ = 2.0"), "J", ("both", "grid.J")),
    (("J = [0.5, 1.0]", "J = [0.0, 1.0]"), "grid.J.values", ("> 0",)),
    (("J = [0.5, 1.0]", 'J = ["0.5", 1.0]'), "grid.J.values[0]", ("number",)),
])
def test_model_problems_name_the_key(edit, key, words):
    p = problems(PSPIN.replace(*edit))
    assert has(p, key, *words), p


def test_missing_couplings_and_options_of_other_models():
    p = problems(PSPIN.replace('model = "pspin"', 'model = "longitudinal_lmg4"'))
    assert has(p, "p", "not an option of model 'longitudinal_lmg4'")
    assert has(p, "K", "missing coupling K") and has(p, "b", "missing coupling b")
    p = problems(TINY_SPEC.replace("K = { start = 0.0, stop = 1.2, num = 5 }\n", ""))
    assert has(p, "K", "missing coupling K", "grid.K")
    # K as a constant instead of an axis: axes (h, T).
    spec = parse_spec(TINY_SPEC.replace("K = { start = 0.0, stop = 1.2, num = 5 }\n", "")
                      .replace('ensemble = "canonical"', 'ensemble = "canonical"\nK = 0.5'))
    assert spec.axes == ("h", "T") and spec.constants == {"J": 1.0, "K": 0.5}
