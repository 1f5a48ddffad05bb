"""Bad input to the finite-N API: size guards that answer before any large allocation (issue 13,
item 5), and NaN/inf refused by name (issue 12, item 6)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import jaxlmg as jl

fs = jl.finite_size

BIG = 10**7
GUARDED = {
    "free_energy": lambda: fs.free_energy(BIG, 1.0, 0.5, 0.5),
    "free_energy_T0": lambda: fs.free_energy(BIG, 1.0, 0.5, 0.0),
    "spectrum_full": lambda: fs.spectrum(BIG, 1.0, 0.5),
    "spectrum_window": lambda: fs.spectrum(BIG, 1.0, 0.5, e_max=-1.5),
    "entropy": lambda: fs.entropy(BIG, 1.0, 0.5, [-1.5, -1.0]),
    "free_energy_state": lambda: fs.free_energy_state(jl.LMG4(), jl.LMGCouplings(1.0, 0.5), BIG,
                                                      1.0, 0.5),
    "spectrum_state_pspin": lambda: fs.spectrum_state(jl.PSpin(3), jl.PSpinCouplings(1.0), BIG,
                                                      1.0),
    "entropy_state_small_limit": lambda: fs.entropy_state(
        jl.PSpin(3), jl.PSpinCouplings(1.0), 10**5, 1.0, [-1.0, 0.0], max_bytes=2**20),
    "mean_field_comparison": lambda: fs.mean_field_comparison([100, BIG], 1.0, 0.5, 0.5),
    "sectors": lambda: fs.sectors(10**12),
    "degeneracy": lambda: fs.degeneracy(10**12, 0, max_bytes=2**20),
}


@pytest.mark.parametrize("name", list(GUARDED))
def test_size_guards_answer_at_once(name):
    """The documented ValueError with the memory estimate, in well under a second of work
    (bound: 5 s on a loaded 2-core machine; before the fix free_energy(10**7, ...) ran 21 s and
    died of a 38 GiB MemoryError)."""
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^N = \d+: .* needs about [0-9.]+ GiB \(> max_bytes"):
        GUARDED[name]()
    assert time.perf_counter() - t0 < 5.0


def test_a_raised_limit_passes_the_guard():
    sec = fs.sectors(10**6, max_bytes=None)
    assert sec.two_S.size == 500_001
    assert fs.degeneracy(40, 0, max_bytes=None) == fs.degeneracy(40, 0.0)


BAD = [
    ("e_max", lambda: fs.spectrum(8, 1.0, 0.2, e_max=np.nan)),
    ("e_max", lambda: fs.spectrum(8, 1.0, 0.2, e_max=-np.inf)),
    ("e_max", lambda: fs.spectrum(8, 1.0, 0.2, e_max=[-1.0, np.nan])),
    ("e_max", lambda: fs.spectrum_state(jl.PSpin(3), jl.PSpinCouplings(1.0), 8, 1.0,
                                        e_max=np.nan)),
    ("h", lambda: fs.spectrum(8, np.nan, 0.2)),
    ("h", lambda: fs.free_energy_state(jl.PSpin(3), jl.PSpinCouplings(1.0), 8, np.inf, 0.5)),
    ("K", lambda: fs.free_energy(8, 1.0, np.inf, 0.5)),
    ("J", lambda: fs.entropy(8, 1.0, 0.2, [-1.0, 0.0], np.nan)),
    ("T", lambda: fs.free_energy(8, 1.0, 0.2, np.nan)),
    ("T", lambda: fs.free_energy(8, 1.0, 0.2, np.inf)),
    ("T", lambda: fs.free_energy_state(jl.PSpin(3), jl.PSpinCouplings(1.0), 8, 1.0, [0.5, np.nan])),
    ("J", lambda: fs.spectrum_state(jl.PSpin(3), jl.PSpinCouplings(np.nan), 8, 1.0)),
    ("b", lambda: fs.free_energy_state(jl.LongitudinalLMG4(),
                                       jl.LongitudinalCouplings(1.0, 0.3, np.inf), 8, 1.0, 0.5)),
    ("eps_edges", lambda: fs.entropy(8, 1.0, 0.2, [-1.0, np.nan, 0.0])),
    ("eps_edges", lambda: fs.entropy_state(jl.PSpin(3), jl.PSpinCouplings(1.0), 8, 1.0,
                                           [-np.inf, 0.0])),
    ("max_bytes", lambda: fs.spectrum(8, 1.0, 0.2, max_bytes=np.nan)),
    ("max_bytes", lambda: fs.free_energy(8, 1.0, 0.2, 0.5, max_bytes=-1)),
    ("max_bytes", lambda: fs.sectors(8, max_bytes=np.inf)),
    ("Ns", lambda: fs.extrapolate([10.0, np.nan, 40.0], [1.0, 2.0, 3.0])),
    ("values", lambda: fs.extrapolate([10, 20, 40], [1.0, np.inf, 3.0])),
    ("two_S", lambda: fs.degeneracy(8, np.nan)),
    ("n_points", lambda: fs.estimate_bytes(8, np.nan)),
    ("N", lambda: fs.mean_field_comparison([100, np.nan], 1.0, 0.2, 0.5)),
    ("T", lambda: fs.mean_field_comparison([100, 200], 1.0, 0.2, np.nan)),
    ("form", lambda: fs.mean_field_comparison([10**7], 1.0, 0.2, 0.5, form="exp")),
]


@pytest.mark.parametrize("name,call", BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_nan_and_inf_are_refused_by_name(name, call):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        call()


def test_e_max_inf_is_the_full_spectrum():
    full = fs.spectrum(9, 1.3, 0.4)
    inf = fs.spectrum(9, 1.3, 0.4, e_max=np.inf)
    np.testing.assert_array_equal(np.asarray(full.energy), np.asarray(inf.energy))
    assert bool(np.all(np.asarray(inf.mask)))


def test_not_a_model_is_a_type_error():
    with pytest.raises(TypeError, match="model must be a jaxlmg.models.CollectiveSpinModel"):
        fs.spectrum_state("lmg", jl.LMGCouplings(1.0, 0.2), 8, 1.0)
