"""Sweep spec validation: every problem reported at once, each with the file and the key path."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from jaxlmg.sweeps import SpecError, load_spec, parse_spec
from jaxlmg.sweeps import spec as _spec

REPO = Path(__file__).resolve().parents[1]

GOOD = """
description = "test"
ensemble = "canonical"
J = 1.0
outputs = ["Mz", "n_minima", "status"]
chunk_size = 16

[grid]
h = { start = 0.0, stop = 3.0, num = 7 }
K = { start = 0.01, stop = 1.0, num = 3, spacing = "log" }
T = [0.5, 1.5]
"""


def problems(text: str, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="bad.toml", **kw)
    e = info.value
    assert isinstance(e, ValueError)
    assert all(p in str(e) for p in e.problems)  # the message lists every problem
    return e.problems


def has(probs: list[str], key: str, *words: str) -> bool:
    """Some problem names the file, the key path ``key`` and contains all ``words``."""
    return any(p.startswith(f"bad.toml: {key}: ") and all(w in p for w in words) for p in probs)


def test_good_spec_parses_and_round_trips():
    spec = parse_spec(GOOD)
    assert spec.axes == ("h", "K", "T")
    assert spec.shape == (7, 3, 2) and spec.n_points == 42
    c = spec.coords()
    np.testing.assert_array_equal(c["h"], np.linspace(0, 3, 7))
    np.testing.assert_allclose(c["K"], [0.01, 0.1, 1.0], rtol=1e-15)
    np.testing.assert_array_equal(c["T"], [0.5, 1.5])
    again = parse_spec(spec.to_toml())
    assert again == spec and again.spec_hash() == spec.spec_hash()
    # Shorthands are the same spec; the description is not part of its identity.
    alt = GOOD.replace("T = [0.5, 1.5]", "T = { values = [0.5, 1.5] }")
    alt = alt.replace('description = "test"', 'description = "other"')
    assert parse_spec(alt).spec_hash() == spec.spec_hash()
    assert parse_spec(GOOD.replace("num = 7", "num = 8")).spec_hash() != spec.spec_hash()


def test_default_outputs_are_every_field():
    spec = parse_spec(GOOD.replace('outputs = ["Mz", "n_minima", "status"]\n', ""))
    assert "Mz" in spec.output_names and "status" in spec.output_names and "f" in spec.output_names


def test_every_problem_is_reported_at_once():
    bad = """
ensemble = "canonical"
outputs = ["Mz", "Mzz", "s", "s"]
chunk_size = 0
J = -1
colour = "red"
precision = "float16"

[grid]
h = { start = -1.0, stop = 3.0, num = 0 }
K = { start = 0.0, stop = 0.5, num = 5, spacing = "log" }
T = { start = 1.0, stop = 0.5, num = 3 }
eps = [1.0]
Temp = 3
"""
    p = problems(bad)
    assert has(p, "J", "greater than 0", "-1")
    assert has(p, "chunk_size", "greater than or equal to 1")
    assert has(p, "precision", "float64", "float16")
    assert has(p, "colour", "unknown key 'colour'", "allowed here", "ensemble")
    assert has(p, "outputs", "unknown output 'Mzz'", "available", "Mz")
    assert has(p, "outputs", "duplicate outputs: s")
    assert has(p, "grid.h.num", "greater than or equal to 1")
    assert has(p, "grid.h.start", ">= 0", "-1")
    assert has(p, "grid.K.start", "log", "start > 0")
    assert has(p, "grid.T.stop", "empty range")
    assert has(p, "grid.Temp", "unknown key 'Temp'", "h, K, T, eps")
    assert has(p, "grid.eps", "not an axis of the canonical ensemble")
    assert len(p) == 11, p  # the two outputs problems share one line


def test_axis_problems():
    bad = """
ensemble = "canonical"
[grid]
h = { start = 0, stop = 1 }
K = { values = [] }
T = { values = [1.0, 0.5] }
"""
    p = problems(bad)
    assert has(p, "grid.h", "missing: num")
    assert has(p, "grid.K.values", "must not be empty")
    assert has(p, "grid.T.values", "strictly increasing")
    p = problems(GOOD.replace("T = [0.5, 1.5]", "T = { values = [1.0], start = 0.0 }"))
    assert has(p, "grid.T", "either values", "not both")
    p = problems(GOOD.replace("T = [0.5, 1.5]", "T = [-0.5, 1.5]"))
    assert has(p, "grid.T.values", ">= 0", "-0.5")
    p = problems(GOOD.replace("num = 7", 'num = 3.5').replace("stop = 3.0", 'stop = "x"'))
    assert has(p, "grid.h.num", "integer") and has(p, "grid.h.stop", "number", "'x'")
    p = problems(GOOD.replace("stop = 3.0", "stop = inf"))
    assert has(p, "grid.h.stop", "finite")


def test_ensemble_and_axes_problems():
    p = problems(GOOD.replace('"canonical"', '"canonicall"'))
    assert has(p, "ensemble", "unknown ensemble 'canonicall'", "available: 'canonical'")
    p = problems(GOOD.replace("T = [0.5, 1.5]", ""))
    assert has(p, "grid", "missing axis T")
    p = problems("grid = 3")
    assert has(p, "ensemble", "missing required key") and has(p, "grid", "expected a table")
    p = problems("ensemble = [")
    assert p[0].startswith("bad.toml: invalid TOML")


def test_disk_space(monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    p = problems(GOOD, out=tmp_path / "x.zarr")
    assert has(p, "grid", "needs up to", "free at")
    # ... and it is reported together with the other problems.
    p = problems(GOOD.replace("J = 1.0", "J = 0.0"), out=tmp_path / "x.zarr")
    assert has(p, "grid", "needs up to") and has(p, "J", "greater than 0")
    monkeypatch.undo()
    parse_spec(GOOD, out=tmp_path / "x.zarr")  # plenty of space: fine
    huge = GOOD.replace("num = 7", "num = 100000000").replace("num = 3", "num = 100000000")
    p = problems(huge, out=tmp_path / "x.zarr")
    assert has(p, "grid", "needs up to")


def test_load_spec_names_the_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(GOOD.replace("J = 1.0", "J = -2.0"))
    with pytest.raises(SpecError, match=r"s\.toml: J: "):
        load_spec(f)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_repository_specs_are_valid(path):
    spec, text = load_spec(path)
    assert spec.n_points <= 200_000  # kept small enough for `jaxlmg reproduce` on a CPU


def test_estimate_is_an_upper_bound_of_the_raw_data():
    spec = parse_spec(GOOD)
    assert _spec.estimate_bytes(spec) >= spec.n_points * 8 * len(spec.output_names)


def test_a_dict_spec_may_hold_numpy_numbers_but_not_strings():
    d = {"ensemble": "canonical", "chunk_size": np.int64(16),
         "grid": {"h": {"start": np.float64(0.0), "stop": 3.0, "num": np.int64(7)},
                  "K": np.array([0.01, 0.1, 1.0]), "T": (0.5, 1.5)}}
    spec = parse_spec(d)
    assert spec.shape == (7, 3, 2) and spec.chunk_size == 16
    d["grid"]["h"]["start"] = "0"
    with pytest.raises(SpecError, match=r"<spec>: grid.h.start: Input should be a valid number"):
        parse_spec(d)
