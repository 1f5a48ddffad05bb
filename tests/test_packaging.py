"""The figure specs ship inside the wheel, and ``jaxlmg reproduce`` finds them from any directory
(``jaxlmg.figures.spec_directory``): ``./sweeps`` when it is a jaxlmg spec directory, else the
packaged copy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jaxlmg.figures import packaged_spec_directory, spec_directory

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(p.name for p in (REPO / "sweeps").glob("*.toml"))


def test_packaged_specs_in_a_checkout_are_the_repository_sweeps():
    # In a source checkout / editable install the wheel's copy does not exist: the repository's
    # sweeps/ is the packaged copy.
    d = packaged_spec_directory()
    assert sorted(p.name for p in d.glob("*.toml")) == SPECS
    for name in SPECS:
        assert (d / name).read_text() == (REPO / "sweeps" / name).read_text()


def test_spec_lookup_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert spec_directory() == packaged_spec_directory()  # no ./sweeps here
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "mine.toml").write_text("# someone else's spec\n")
    assert spec_directory() == packaged_spec_directory()  # not a jaxlmg spec directory
    for name in SPECS:  # a copy of jaxlmg's specs, e.g. edited by the user: used
        (tmp_path / "sweeps" / name).write_text((REPO / "sweeps" / name).read_text())
    assert spec_directory().resolve() == (tmp_path / "sweeps").resolve()
    assert spec_directory(tmp_path) == tmp_path  # explicit --specs wins
    with pytest.raises(FileNotFoundError, match="nope"):
        spec_directory(tmp_path / "nope")


@pytest.mark.slow
def test_wheel_contains_the_specs_and_finds_them_outside_the_repository(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q",
                        "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("jaxlmg-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        for spec in SPECS:
            assert f"jaxlmg/_specs/{spec}" in names, spec
            assert z.read(f"jaxlmg/_specs/{spec}").decode() == (REPO / "sweeps" / spec).read_text()
        z.extractall(tmp_path / "site-packages")
    # Import the unpacked wheel (nothing installed) from a directory without sweeps/.
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=str(tmp_path / "site-packages"), JAX_PLATFORMS="cpu")
    code = ("import jaxlmg, jaxlmg.figures as f; d = f.spec_directory(); "
            "print(jaxlmg.__file__); print(d); print(sorted(p.name for p in d.glob('*.toml')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    mod_file, spec_dir, listed = r.stdout.splitlines()
    assert Path(mod_file).is_relative_to(tmp_path / "site-packages")
    assert Path(spec_dir) == tmp_path / "site-packages" / "jaxlmg" / "_specs"
    assert listed == repr(SPECS)
