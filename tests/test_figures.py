"""``jaxlmg reproduce`` writes every figure listed in figures/README.md (slow: runs the sweeps)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jaxlmg.cli import main

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def listed_figures() -> list[str]:
    text = (REPO / "figures" / "README.md").read_text()
    return re.findall(r"^- `([^`]+\.(?:png|pdf|svg))`", text, flags=re.M)


def test_readme_lists_the_committed_figures():
    names = listed_figures()
    assert "fig1_ground_state.png" in names and "fig2_canonical_hk.png" in names
    for n in names:
        assert (REPO / "figures" / n).is_file(), f"{n} is listed but not committed"


def test_reproduce_writes_every_listed_figure(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["reproduce", "--out", str(out), "--specs", str(REPO / "sweeps"),
                 "--data", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr().out.split()
    for name in listed_figures():
        f = out / name
        assert f.is_file() and f.stat().st_size > 10_000, name
        assert str(f) in printed
    # The sweep stores are kept with --data (a rerun reuses them).
    assert (tmp_path / "data" / "fig1_ground_state.zarr" / "zarr.json").is_file()
