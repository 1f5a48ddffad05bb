"""The ``jaxlmg`` command line (in process): help, info, sweep, errors and exit codes."""

from __future__ import annotations

import pytest
import xarray as xr
from _specs import TINY_SPEC as SPEC  # noqa: E402

from jaxlmg.cli import main


@pytest.fixture(autouse=True)
def _no_user_cache(monkeypatch):
    # In process, `jaxlmg sweep` would enable JAX's persistent compilation cache under the
    # user's cache directory for the rest of the test session.
    monkeypatch.setenv("JAXLMG_NO_COMPILATION_CACHE", "1")


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["reproduce", "--help"],
                                  ["info", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jaxlmg")
    if argv == ["sweep", "--help"]:
        for flag in ("--out", "--overwrite", "--devices", "--max-chunks", "--dry-run",
                     "--coordinator", "--num-processes", "--process-id", "--distributed"):
            assert flag in out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("jaxlmg", "jax ", "backend", "devices", "float64", "canonical (h, K, T)"):
        assert key in out
    assert "enabled" in out.split("float64", 1)[1].splitlines()[0]


def test_sweep_dry_run_and_run(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "o.zarr"
    assert main(["sweep", str(spec), "-o", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "110 points" in text and "4 of shape (3, 5, 2)" in text and not out.exists()
    assert main(["sweep", str(spec), "-o", str(out), "--max-chunks", "1"]) == 0
    text = capsys.readouterr().out
    assert "computed 1" in text and "incomplete" in text
    assert main(["sweep", str(spec), "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "computed 3, already done 1" in text and "status: OK" in text
    assert xr.open_zarr(out).Mz.shape == (11, 5, 2)


def test_sweep_errors_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.replace("num = 5", "num = 0").replace('"Mz"', '"Mzz"'))
    assert main(["sweep", str(bad), "-o", str(tmp_path / "x.zarr")]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "bad.toml: grid.K.num" in err and "bad.toml: outputs" in err
    good = tmp_path / "good.toml"
    good.write_text(SPEC)
    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace("num = 11", "num = 12"))
    out = str(tmp_path / "o.zarr")
    assert main(["sweep", str(good), "-o", out, "-q", "--max-chunks", "0"]) == 0
    assert main(["sweep", str(other), "-o", out, "-q"]) == 1
    assert "different spec" in capsys.readouterr().err
    assert main(["sweep", str(good), "-o", out, "--devices", "99"]) == 2
    with pytest.raises(SystemExit):
        main(["sweep", str(good), "-o", out, "--coordinator", "127.0.0.1:1"])


def test_reproduce_without_specs_is_a_clear_error(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--specs", str(tmp_path / "nope")]) == 2
    assert "spec directory" in capsys.readouterr().err
