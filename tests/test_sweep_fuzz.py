"""Bad-spec fuzzing (hypothesis) through the CLI entry point, in process.

Every generated spec is invalid by construction (a valid base spec with at least one breaking
edit); ``jaxlmg sweep SPEC -o OUT --dry-run`` must exit 2 and print one error message whose
every problem line names the file and a key (or, for a file that is not TOML or not UTF-8, the
file), never a traceback.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxlmg.cli import main

BASE = {
    "description": "fuzz",
    "ensemble": "canonical",
    "J": 1.0,
    "precision": "float64",
    "outputs": ["Mz", "status"],
    "chunk_size": 16,
    "grid": {
        "h": {"start": 0.0, "stop": 3.0, "num": 4},
        "K": {"start": 0.0, "stop": 1.0, "num": 3},
        "T": {"values": [0.5, 1.5]},
    },
}
PSPIN = {"ensemble": "canonical", "model": "pspin", "p": 3,
         "grid": {"h": {"values": [0.5, 1.0]}, "J": {"values": [1.0]}, "T": [0.1]}}

# Values of the wrong kind for a key, by the kind the key wants (text: any Unicode scalar value,
# as a UTF-8 TOML file can hold).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=5)
NOT_A_NUMBER = st.one_of(TEXT, st.booleans(), st.lists(st.integers(), max_size=2),
                         st.just({"x": 1}))
NOT_AN_INT = st.one_of(NOT_A_NUMBER, st.floats(allow_nan=False, allow_infinity=False)
                       .filter(lambda x: x != int(x)))
NOT_A_STRING = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                         st.lists(TEXT, max_size=2))
NAME = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)


def toml_string(text: str) -> str:
    """A TOML basic string (control characters escaped; other characters literal)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def to_toml(d: dict) -> str:
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in d.items() if k != "grid"]
    if "grid" in d:
        g = d["grid"]
        if isinstance(g, dict):
            lines.append("[grid]")
            lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in g.items()]
        else:
            lines.insert(0, f"grid = {toml_value(g)}")
    return "\n".join(lines) + "\n"


@st.composite
def breaking_edit(draw, spec: dict):
    """Apply one edit that makes ``spec`` invalid (in place)."""
    grid = spec["grid"]
    kind = draw(st.sampled_from([
        "unknown_key", "unknown_grid_key", "unknown_axis_key", "drop_required", "wrong_top",
        "wrong_axis", "bad_range", "bad_values", "bad_model", "bad_output", "out_of_domain",
        "drop_axis"]))
    if kind == "unknown_key":
        k = draw(NAME.filter(lambda k: k not in {"description", "ensemble", "model", "p", "J",
                                                 "K", "b", "precision", "outputs", "chunk_size",
                                                 "grid"}))
        spec[k] = draw(st.integers())
    elif kind == "unknown_grid_key":
        grid[draw(NAME.filter(lambda k: k not in {"h", "K", "T", "eps", "J", "b"}))] = [1.0]
    elif kind == "unknown_axis_key":
        grid["h"] = {**_axis(grid.get("h", [1.0])), draw(NAME.filter(
            lambda k: k not in {"start", "stop", "num", "values", "spacing"})): 1}
    elif kind == "drop_required":
        spec.pop("ensemble", None)
    elif kind == "wrong_top":
        key = draw(st.sampled_from(["ensemble", "precision", "J", "chunk_size", "outputs",
                                    "description"]))
        spec[key] = draw({"ensemble": NOT_A_STRING, "precision": NOT_A_STRING,
                          "description": NOT_A_STRING, "J": NOT_A_NUMBER,
                          "chunk_size": NOT_AN_INT,
                          "outputs": st.one_of(st.integers(), st.just([]),
                                               st.lists(st.integers(), min_size=1,
                                                        max_size=2))}[key])
    elif kind == "wrong_axis":
        axis = draw(st.sampled_from(sorted(grid)))
        field = draw(st.sampled_from(["start", "stop", "num", "spacing"]))
        a = {"start": 1.0, "stop": 2.0, "num": 3}
        a[field] = draw({"start": NOT_A_NUMBER, "stop": NOT_A_NUMBER, "num": NOT_AN_INT,
                         "spacing": TEXT}[field])
        grid[axis] = a
    elif kind == "bad_range":
        axis = draw(st.sampled_from(sorted(grid)))
        lo = draw(st.floats(0.1, 10))
        grid[axis] = draw(st.sampled_from([
            {"start": lo, "stop": lo / 2, "num": 3},
            {"start": lo, "stop": lo * 2, "num": 0},
            {"start": lo, "stop": lo * 2},
            {"start": 0.0, "stop": lo, "num": 3, "spacing": "log"},
            {"values": [lo], "start": lo}]))
    elif kind == "bad_values":
        axis = draw(st.sampled_from(sorted(grid)))
        grid[axis] = draw(st.sampled_from([[], [2.0, 1.0], [1.0, 1.0], [1.0, "x"], {"values": 3}]))
    elif kind == "bad_model":
        edit = draw(st.sampled_from(["unknown", "p_without_pspin", "pspin_bad_p",
                                     "pspin_no_p"]))
        if edit == "unknown":
            spec["model"] = draw(NAME.filter(lambda m: m not in {"lmg4", "pspin",
                                                                  "longitudinal_lmg4"}))
        elif edit == "p_without_pspin":
            spec.pop("model", None)  # LMG4, which has no option p
            spec["p"] = 3
        else:
            spec.clear()
            spec.update(json.loads(json.dumps(PSPIN)))
            if edit == "pspin_no_p":
                spec.pop("p")
            else:
                spec["p"] = draw(st.one_of(st.integers(max_value=1), NOT_AN_INT))
    elif kind == "bad_output":
        spec["outputs"] = ["Mz", draw(NAME.filter(lambda n: n not in {
            "s", "mz", "f", "energy", "entropy", "n_minima", "status"}))]
    elif kind == "out_of_domain":
        key = draw(st.sampled_from(["J", "h", "T", "K"]))
        neg = -draw(st.floats(0.001, 100))
        if key == "J":
            spec["J"] = draw(st.sampled_from([0.0, neg, math.inf, math.nan]))
        else:
            grid[key] = {"values": [neg, 1.0]}
    else:  # drop_axis
        grid.pop(draw(st.sampled_from(["h", "T"])), None)
    return kind


def _axis(a):
    return a if isinstance(a, dict) else {"values": a if isinstance(a, list) else [a]}


@st.composite
def bad_specs(draw):
    """``(kind, bytes)``: a TOML file (or not) that is not a valid spec."""
    if draw(st.integers(0, 19)) == 0:  # 1 in 20: not a TOML file at all
        text = to_toml(BASE).encode()
        return "bytes", draw(st.sampled_from([
            text[: draw(st.integers(1, len(text) - 20))] + b" = = [",
            text.replace(b"fuzz", b"caf\xe9"),
            b"\xff\xfe" + text]))
    spec = json.loads(json.dumps(BASE))
    kinds = [draw(breaking_edit(spec)) for _ in range(draw(st.integers(1, 3)))]
    return "+".join(kinds), to_toml(spec).encode()


PROBLEM = re.compile(r"^  (?P<file>.+?\.toml): (?P<key>[A-Za-z_][\w.\[\]]*|\(top level\)): \S")


@settings(max_examples=220, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=bad_specs())
def test_bad_specs_exit_2_with_one_message_naming_file_and_key(case, tmp_path, capsys):
    kind, data = case
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data)
    rc = main(["sweep", str(path), "-o", str(tmp_path / "out.zarr"), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2, (kind, data.decode("utf-8", "replace"), err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len([x for x in lines if x.startswith("jaxlmg: error:")]) == 1, err
    if kind == "bytes" and "invalid sweep spec (1 problem)" in lines[0] and (
            "invalid TOML" in err or "not UTF-8" in err):
        assert f"{path}: " in err
        return
    assert lines[0] == f"jaxlmg: error: invalid sweep spec ({len(lines) - 1} problem" \
                       f"{'s' if len(lines) > 2 else ''}):", err
    for line in lines[1:]:
        m = PROBLEM.match(line)
        assert m and m["file"] == str(path), (line, data.decode())


@pytest.mark.parametrize("text", [to_toml(BASE), to_toml(PSPIN)])
def test_the_fuzz_bases_are_valid(text, tmp_path, capsys):
    """The generator's starting points are valid, so each failure above is due to its edit."""
    (tmp_path / "ok.toml").write_text(text)
    assert main(["sweep", str(tmp_path / "ok.toml"), "-o", str(tmp_path / "o.zarr"),
                 "--dry-run"]) == 0
