"""Sweep specifications: ``sweeps/*.toml`` files, validated (pydantic v2) before any work.

A spec fixes everything that determines the stored numbers: the ensemble (the kernel that fixes
the grid axes), the model and its couplings, the grid, the precision, the outputs and the chunk
size.  Validation
collects *every* problem (unknown keys, empty ranges, values outside the model's domain, unknown
outputs, a store that would not fit on the disk, ...) and raises one :class:`SpecError` whose
message lists them all, each as ``FILE: key.path: what is wrong``.

Example (``sweeps/fig2_canonical_hk.toml``)::

    description = "canonical (h, K) phase diagram at T = 0.25 J and T = 2 J"
    ensemble = "canonical"          # grid axes h, K, T
    J = 1.0
    precision = "float64"
    outputs = ["Mz", "n_minima", "status"]
    chunk_size = 16384              # points per chunk (the unit of work, of storage and of resume)

    [grid]
    h = { start = 0.0, stop = 3.0, num = 121 }
    K = { start = 0.0, stop = 1.2, num = 121, spacing = "linear" }
    T = { values = [0.25, 2.0] }    # or T = [0.25, 2.0], or T = 0.25

Another model (see :mod:`jaxlmg.sweeps.spec_models`): ``model = "pspin"`` with ``p = 3``; each
coupling (``J``, ``K``, ``b``) is a top-level constant or a grid axis, e.g.::

    ensemble = "canonical"
    model = "pspin"
    p = 3
    [grid]
    h = { start = 0.0, stop = 1.5, num = 61 }
    J = [0.5, 1.0]                  # the p-spin coupling as an axis: axes h, J, T
    T = [0.1, 0.3]

Numbers must be TOML numbers (``start = "0"`` is refused), integers where integers go.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from . import kernels
from .spec_messages import key_path, message
from .spec_models import COUPLING_DEFAULTS, DEFAULT_MODEL, SPEC_MODELS, make_model

__all__ = ["Axis", "Grid", "SpecError", "SweepSpec", "load_spec", "parse_spec"]

#: Largest chunk accepted (points); a chunk's inputs and outputs live in host memory at once.
MAX_CHUNK = 1 << 24
DEFAULT_CHUNK = 1 << 16


class SpecError(ValueError):
    """A sweep spec is invalid.  ``problems`` lists every problem found, one string each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"invalid sweep spec ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n  ".join([head, *self.problems]))


def _err(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{message}", {"message": message})


# --------------------------------------------------------------------------- models

_FORBID = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class Axis(BaseModel):
    """One grid axis: ``values = [...]`` or ``start, stop, num`` (+ ``spacing``).

    A bare number or list in the TOML (``T = 0.25``, ``T = [0.25, 2.0]``) means ``values``.
    ``spacing = "log"`` is geometric (needs ``start > 0``).  Values are strictly increasing.
    """

    model_config = _FORBID

    spacing: Literal["linear", "log"] = "linear"
    num: int | None = Field(default=None, ge=1)
    start: float | None = None
    stop: float | None = None
    values: list[float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, int | float):
            return {"values": [data]}
        if isinstance(data, list):
            return {"values": data}
        return data

    @field_validator("start")
    @classmethod
    def _start(cls, v, info):
        if v is not None and info.data.get("spacing") == "log" and v <= 0:
            raise _err("log_start", f"spacing = 'log' needs start > 0, got start = {v}")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v, info):
        start, num = info.data.get("start"), info.data.get("num")
        if v is None or start is None:
            return v
        if num is not None and num > 1 and not v > start:
            raise _err("empty_range", f"empty range: stop ({v}) must be > start ({start}) when "
                       "num > 1")
        if v < start:
            raise _err("empty_range", f"empty range: stop ({v}) < start ({start})")
        return v

    @field_validator("values")
    @classmethod
    def _values(cls, v):
        if v is None:
            return v
        if len(v) == 0:
            raise _err("empty_values", "values must not be empty")
        a = np.asarray(v, float)
        if a.size > 1 and not np.all(np.diff(a) > 0):
            raise _err("not_increasing", f"values must be strictly increasing, got {v}")
        return v

    @model_validator(mode="after")
    def _complete(self):
        rng = {"start": self.start, "stop": self.stop, "num": self.num}
        given = [k for k, x in rng.items() if x is not None]
        if self.values is not None and given:
            raise _err("both_forms", "give either values = [...] or start/stop/num, not both "
                       f"(got values and {', '.join(given)})")
        if self.values is None and len(given) < 3:
            missing = [k for k in rng if rng[k] is None]
            raise _err("incomplete", "needs values = [...] or all of start, stop, num "
                       f"(missing: {', '.join(missing)})")
        return self

    @property
    def size(self) -> int:
        return len(self.values) if self.values is not None else int(self.num)

    def coords(self) -> np.ndarray:
        """The axis values, float64, shape ``(size,)``."""
        if self.values is not None:
            return np.asarray(self.values, np.float64)
        if self.spacing == "log":
            return np.geomspace(self.start, self.stop, self.num, dtype=np.float64)
        return np.linspace(self.start, self.stop, self.num, dtype=np.float64)

    @property
    def lowest(self) -> float:
        return float(self.values[0]) if self.values is not None else float(self.start)


class NonNegativeAxis(Axis):
    """An axis of a parameter whose domain is ``[0, inf)`` (``h``, ``K``, ``T``)."""

    @field_validator("start")
    @classmethod
    def _start_domain(cls, v):
        if v is not None and v < 0:
            raise _err("domain", f"must be >= 0 (allowed range [0, inf)), got start = {v}")
        return v

    @field_validator("values")
    @classmethod
    def _values_domain(cls, v):
        if v is not None and min(v, default=0.0) < 0:
            raise _err("domain", f"must be >= 0 (allowed range [0, inf)), got {min(v)}")
        return v


class PositiveAxis(Axis):
    """An axis of a parameter whose domain is ``(0, inf)`` (``J``)."""

    @field_validator("start")
    @classmethod
    def _start_domain(cls, v):
        if v is not None and v <= 0:
            raise _err("domain", f"must be > 0 (allowed range (0, inf)), got start = {v}")
        return v

    @field_validator("values")
    @classmethod
    def _values_domain(cls, v):
        if v is not None and min(v, default=1.0) <= 0:
            raise _err("domain", f"must be > 0 (allowed range (0, inf)), got {min(v)}")
        return v


class Grid(BaseModel):
    """The grid axes (only those of the spec's ensemble and model may appear)."""

    model_config = _FORBID

    h: NonNegativeAxis | None = None
    K: NonNegativeAxis | None = None
    T: NonNegativeAxis | None = None
    eps: Axis | None = None
    J: PositiveAxis | None = None
    b: Axis | None = None


class SweepSpec(BaseModel):
    """A validated sweep specification (see the module docstring for the TOML form).

    Attributes:
        ensemble: a registered kernel name (``"canonical"``, ``"microcanonical"``, ...); it fixes
            the grid axes besides the couplings.
        model: a built-in model of :mod:`jaxlmg.sweeps.spec_models` (default ``"lmg4"``).
        p: the ``p`` of ``model = "pspin"`` (an integer ``>= 2``).
        J, K, b: the model's couplings given as constants (each may instead be a grid axis;
            ``J`` defaults to 1, the energy unit).
        grid: one :class:`Axis` per grid axis.
        precision: ``"float64"`` or ``"float32"``.
        outputs: fields to store (default: every field of the ensemble's result).
        chunk_size: maximum number of grid points per chunk.
        description: free text, stored with the data.
        source: the file the spec was read from, and its text (not part of the spec's identity).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)

    description: str = ""
    ensemble: str
    model: str = DEFAULT_MODEL
    p: int | None = None
    J: float | None = Field(default=None, gt=0)
    K: float | None = Field(default=None, ge=0)
    b: float | None = None
    precision: Literal["float64", "float32"] = "float64"
    outputs: list[str] | None = None
    chunk_size: int = Field(default=DEFAULT_CHUNK, ge=1, le=MAX_CHUNK)
    grid: Grid

    @field_validator("ensemble")
    @classmethod
    def _ensemble(cls, v):
        if v not in kernels.KERNELS:
            avail = ", ".join(f"'{k}' (axes {', '.join(x.axes)})"
                              for k, x in kernels.KERNELS.items())
            extra = (" (this version of jaxlmg has no jaxlmg.microcanonical)"
                     if v == "microcanonical" else "")
            raise _err("ensemble", f"unknown ensemble {v!r}{extra}; available: {avail}")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        if v not in SPEC_MODELS:
            avail = "; ".join(f"'{k}': {m.summary}" for k, m in SPEC_MODELS.items())
            raise _err("model", f"unknown model {v!r}; available: {avail}")
        return v

    @field_validator("p")
    @classmethod
    def _p(cls, v):
        if v is not None and v < 2:
            raise _err("p", f"must be an integer >= 2 (the p of model 'pspin'), got {v}")
        return v

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v, info):
        ens = info.data.get("ensemble")
        model = info.data.get("model", DEFAULT_MODEL)
        if v is None or ens is None:
            return v
        if len(v) == 0:
            raise _err("outputs", "must not be empty (omit the key to store every field)")
        unknown, problems = [], []
        for name in v:
            try:
                kernels.resolve_output(ens, name, model)
            except KeyError as e:
                msg = e.args[0] if e.args else name
                (problems if msg != name else unknown).append(str(msg))
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            problems.append(f"duplicate outputs: {', '.join(dup)}")
        if unknown:
            problems.append(f"unknown output{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))} for ensemble {ens!r}; available: "
                            f"{', '.join(kernels.available_outputs(ens, model))}")
        if problems:
            raise _err("outputs", "; ".join(problems))
        return v

    # ----------------------------------------------------------------- derived quantities

    @property
    def axes(self) -> tuple[str, ...]:
        """Grid axis names, in storage order: the ensemble kernel's order; for a model-generic
        kernel its first own axis (``h``), then the couplings that are axes (model order), then
        the rest (``T``).  The default spec's order is ``h, K, T``."""
        k = kernels.KERNELS[self.ensemble]
        if not k.generic:
            return k.axes
        own = k.own_axes
        coupled = tuple(c for c in SPEC_MODELS[self.model].coupling_names
                        if getattr(self.grid, c) is not None)
        return own[:1] + coupled + own[1:]

    @property
    def model_options(self) -> dict[str, int]:
        """The model's options (``{"p": 3}`` for ``pspin``, else empty)."""
        return {o: getattr(self, o) for o in SPEC_MODELS[self.model].options}

    def build_model(self):
        """The :mod:`jaxlmg.models` instance (hashable) this spec sweeps."""
        return make_model(self.model, self.model_options)

    @property
    def constants(self) -> dict[str, float]:
        """The couplings that are not grid axes, ``{name: value}`` in model order (defaults
        filled in: ``J = 1``)."""
        out = {}
        for c in SPEC_MODELS[self.model].coupling_names:
            if getattr(self.grid, c) is None:
                v = getattr(self, c)
                out[c] = float(COUPLING_DEFAULTS[c] if v is None else v)
        return out

    @property
    def output_names(self) -> tuple[str, ...]:
        """The outputs to store (the spec's list, or every field of the ensemble's kernel)."""
        if self.outputs is not None:
            return tuple(self.outputs)
        return kernels.kernel_fields(self.ensemble)

    def axis(self, name: str) -> Axis:
        return getattr(self.grid, name)

    def coords(self) -> dict[str, np.ndarray]:
        """``{axis: values}``, float64 1-D arrays, in storage order."""
        return {a: self.axis(a).coords() for a in self.axes}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.axis(a).size for a in self.axes)

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    def identity(self) -> dict[str, Any]:
        """Everything that determines the stored numbers, as plain JSON data (normalized).

        The default model (``lmg4``, ``J`` a constant) adds no keys: specs written before the
        ``model`` key existed keep their hash (and their stores stay resumable)."""
        d = self.model_dump(mode="json", exclude={"description", "model", "p", "J", "K", "b"})
        const = self.constants
        if self.model != DEFAULT_MODEL:
            d["model"] = self.model
            d.update(self.model_options)
        d.update(const)
        if "J" not in const:
            d["J"] = None  # an axis
        d["outputs"] = list(self.output_names)
        d["grid"] = {a: _axis_identity(self.axis(a)) for a in self.axes}
        return d

    def spec_hash(self) -> str:
        """SHA-256 of :meth:`identity` (a resumed sweep must have the same hash)."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_toml(self) -> str:
        """The spec as TOML text (normalized; ``parse_spec(spec.to_toml()) == spec``)."""
        lines = []
        if self.description:
            lines.append(f"description = {json.dumps(self.description)}")
        d = self.identity()
        lines.append(f'ensemble = "{self.ensemble}"')
        if self.model != DEFAULT_MODEL:
            lines.append(f'model = "{self.model}"')
            lines += [f"{k} = {v!r}" for k, v in self.model_options.items()]
        lines += [f"{k} = {v!r}" for k, v in self.constants.items()]
        lines += [f'precision = "{self.precision}"',
                  "outputs = [" + ", ".join(json.dumps(x) for x in d["outputs"]) + "]",
                  f"chunk_size = {self.chunk_size}", "", "[grid]"]
        for a, ax in d["grid"].items():
            items = ", ".join(f"{k} = {json.dumps(v)}" for k, v in ax.items())
            lines.append(f"{a} = {{ {items} }}")
        return "\n".join(lines) + "\n"


def _axis_identity(ax: Axis) -> dict[str, Any]:
    if ax.values is not None:
        return {"values": list(ax.values)}
    return {"start": ax.start, "stop": ax.stop, "num": ax.num, "spacing": ax.spacing}


# --------------------------------------------------------------------------- loading


def load_spec(path, *, out=None) -> tuple[SweepSpec, str]:
    """Read and validate a spec file.

    Args:
        path: a ``.toml`` file.
        out: the output store the sweep will write (enables the free-disk-space check).
    Returns:
        ``(spec, text)``: the validated :class:`SweepSpec` and the file's text.
    Raises:
        SpecError: listing every problem, each prefixed with the file and the key path.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError([f"{path}: cannot read the spec file: {e.strerror or e}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SpecError([f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
                         "TOML files must be UTF-8"]) from None
    return parse_spec(text, source=str(path), out=out), text


def parse_spec(spec, *, source: str = "<spec>", out=None) -> SweepSpec:
    """Validate a spec given as TOML text or as a dict (same keys as the TOML file).

    Args:
        spec: TOML text, or the parsed mapping.
        source: name used in error messages (the file).
        out: output store path for the free-disk-space check (``None``: no check).
    Raises:
        SpecError: listing every problem found, each as ``source: key.path: message``.
    """
    if isinstance(spec, str):
        try:
            raw = tomllib.loads(spec)
        except tomllib.TOMLDecodeError as e:
            raise SpecError([f"{source}: invalid TOML: {e}"]) from None
    else:
        raw = _plain(dict(spec))
    problems: list[tuple[str, str]] = []
    model = None
    try:
        model = SweepSpec.model_validate(raw)
    except ValidationError as e:
        problems += [(key_path(err["loc"]), message(err, SweepSpec)) for err in e.errors()]
    problems += _cross_checks(raw, problems)
    if out is not None:
        # A spec that failed a cross check (e.g. a missing axis) has no shape: estimate from
        # the parts that parsed.
        problems += _disk_check(raw, None if problems else model, Path(out))
    if problems:
        raise SpecError([f"{source}: {loc or '(top level)'}: {msg}" for loc, msg in problems])
    return model


def _plain(x):
    """NumPy scalars and arrays in a spec given as a dict as Python numbers and lists (a TOML
    file has no others; strict validation would otherwise refuse ``np.int64(5)``)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic | np.ndarray):
        return x.tolist()
    return x


def _cross_checks(raw: dict, found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Checks across sections, run whatever else failed: the grid axes must be the ensemble's
    and the model's, every coupling given once (a constant or an axis), the model's options."""
    out: list[tuple[str, str]] = []
    ens, grid = raw.get("ensemble"), raw.get("grid")
    name = raw.get("model", DEFAULT_MODEL)
    model = SPEC_MODELS.get(name) if isinstance(name, str) else None
    grid = grid if isinstance(grid, dict) else None
    if model is not None:
        out += _model_checks(raw, name, model, grid or {})
    if grid is None or not isinstance(ens, str) or ens not in kernels.KERNELS:
        return [p for p in out if p not in found]
    k = kernels.KERNELS[ens]
    if k.generic:
        required = k.own_axes
        allowed = required + (model.coupling_names if model is not None else ())
    else:
        required = allowed = k.axes
        if model is not None and name != DEFAULT_MODEL:
            out.append(("model", f"the {ens} ensemble supports model '{DEFAULT_MODEL}' only, "
                                 f"got {name!r}"))
        if "J" in grid:
            out.append(("grid.J", f"the {ens} ensemble takes J as a constant only (J = value)"))
    missing = [a for a in required if a not in grid]
    if missing:
        out.append(("grid", f"missing axis {', '.join(missing)} (a {ens} sweep needs "
                            f"{', '.join(required)})"))
    couplings = {"J", "K", "b"}
    for a in grid:
        if a in kernels.AXES and a not in allowed and not (a in couplings and model is not None):
            out.append((f"grid.{a}", f"axis {a!r} is not an axis of the {ens} ensemble "
                                     f"(axes: {', '.join(allowed)})"))
    return [p for p in out if p not in found]


def _model_checks(raw: dict, name: str, model, grid: dict) -> list[tuple[str, str]]:
    """The model's options are given (and no other), each coupling exactly once."""
    out = []
    for opt in ("p",):
        if opt in model.options and opt not in raw:
            out.append((opt, f"missing: model {name!r} needs {opt}, an integer >= 2"))
        elif opt not in model.options and opt in raw:
            out.append((opt, f"not an option of model {name!r} ({model.summary})"))
    for c in ("J", "K", "b"):
        const, axis = c in raw, c in grid
        if c not in model.coupling_names:
            for key, there in ((c, const), (f"grid.{c}", axis)):
                if there:
                    out.append((key, f"{c!r} is not a coupling of model {name!r} "
                                     f"({model.summary})"))
        elif const and axis:
            out.append((c, f"given both as a constant and as the grid axis grid.{c}; give one"))
        elif not const and not axis and c not in COUPLING_DEFAULTS:
            out.append((c, f"missing coupling {c} of model {name!r}: give {c} = value, or a "
                           f"grid axis grid.{c}"))
    return out


def _disk_check(raw: dict, spec: SweepSpec | None, out: Path) -> list[tuple[str, str]]:
    """Does the store fit on the disk?  Done on the parts that parsed when others did not."""
    if spec is not None:
        n_points, n_out, chunk = spec.n_points, len(spec.output_names), spec.chunk_size
    else:
        try:
            ens = raw["ensemble"]
            fields = kernels.kernel_fields(ens)
            grid = Grid.model_validate(raw["grid"])
            sizes = [getattr(grid, a).size for a in Grid.model_fields
                     if getattr(grid, a) is not None]
        except Exception:  # noqa: BLE001 - the grid itself is invalid: reported elsewhere
            return []
        n_points = math.prod(sizes)
        outs = raw.get("outputs")
        n_out = len(outs) if isinstance(outs, list) and outs else len(fields)
        chunk = raw.get("chunk_size")
        chunk = chunk if isinstance(chunk, int) and not isinstance(chunk, bool) else DEFAULT_CHUNK
    need = _estimate(n_points, n_out, max(chunk, 1))
    where = out
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return []
    if need > free:
        return [("grid", f"the store needs up to {format_bytes(need)} uncompressed "
                         f"({n_points:,} points x {n_out} outputs) but only "
                         f"{format_bytes(free)} are free at {where}; shrink the grid or the "
                         "outputs")]
    return []


def estimate_bytes(spec: SweepSpec) -> int:
    """Upper estimate of the store's size in bytes (uncompressed; 8 B per value and output)."""
    return _estimate(spec.n_points, len(spec.output_names), spec.chunk_size) + 8 * sum(spec.shape)


def _estimate(n_points: int, n_outputs: int, chunk_size: int) -> int:
    n_chunks = 1 + n_points // chunk_size
    return 8 * n_points * n_outputs + 4096 * n_chunks + 65536


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable string (``"1.5 MiB"``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"
