"""Sweep storage: one Zarr (format 3) store per sweep, readable with ``xarray.open_zarr``.

Layout of ``OUT.zarr``::

    zarr.json            root group; attributes: the spec (TOML and normalized JSON text), its
                         SHA-256, package/jax/zarr versions, devices, dates, state
    h/ K/ T/ (or eps/)   1-D coordinate arrays (dimension_names = the axis)
    <output>/            one N-d array per output, shape = the grid, dimension_names = the axes,
                         chunks = the sweep's chunks (one sweep chunk = one Zarr chunk)
    _sweep/done          uint8 (n_chunks,), one Zarr chunk per sweep chunk; done[i] is set to 1
                         only after every output of chunk i was written

Resume: a rerun reads ``done`` and computes the other chunks only.  A chunk whose ``done`` flag
is not set is recomputed from scratch and overwritten, so a chunk interrupted mid-write is never
taken for complete; a chunk whose flag is set but whose files are missing or unreadable is found
by :mod:`jaxlmg.sweeps.verify` and recomputed too.  A store is reused only when the spec's hash
matches.  On completion the metadata is consolidated (plain ``xarray.open_zarr(OUT)`` then opens
it without warnings).

Crash safety (every step can be killed and the same command rerun):

* **Creation** happens in a hidden sibling directory ``.OUT.creating-<id>`` that is renamed to
  ``OUT`` when complete, so ``OUT`` is either absent or a whole store.  Leftovers of a killed
  creation are deleted by the next run, and so is an ``OUT`` that holds nothing but Zarr's
  temporary ``*.partial`` files (a creation killed by an older jaxlmg), or that is still marked
  ``creating``.
* **--overwrite** renames the old store to ``.OUT.trash-<id>`` (atomic) before deleting it.
* Zarr writes every file through a temporary ``*.partial`` file and a rename; a kill can leave
  one behind, and the next run removes them.

Unwritten values read as the fill value: NaN for floats, -1 for integers (e.g. ``status``).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from . import kernels
from .spec import SweepSpec

__all__ = ["SweepError", "SweepStore", "check_identity", "clean_leftovers", "create_store",
           "is_store", "open_store", "open_sweep", "remove_store"]

FORMAT = 1
DONE = "_sweep/done"


class SweepError(RuntimeError):
    """A sweep cannot run or resume (e.g. the output store belongs to a different spec)."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _fill(dtype: np.dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return -1 if dtype.kind == "i" else 0
    if dtype.kind == "b":
        return False
    raise SweepError(f"cannot store outputs of dtype {dtype}")


class SweepStore:
    """An open sweep store (a ``zarr.Group`` plus the bookkeeping of done chunks)."""

    def __init__(self, group: zarr.Group, path: Path):
        self.group = group
        self.path = path
        self._arrays: dict[str, zarr.Array] = {}

    def _array(self, name: str) -> zarr.Array:
        if name not in self._arrays:
            # Write every chunk, even one equal to the fill value (e.g. all NaN): a chunk file
            # that is missing is then always a lost file, never an "empty" chunk.
            self._arrays[name] = self.group[name].with_config({"write_empty_chunks": True})
        return self._arrays[name]

    def chunk_file(self, name: str, region: tuple[slice, ...]) -> Path:
        """The file of the Zarr chunk of output ``name`` that holds ``region`` (one sweep chunk)."""
        arr = self._array(name)
        coords = tuple(r.start // c for r, c in zip(region, arr.chunks, strict=True))
        return self.path / name / arr.metadata.chunk_key_encoding.encode_chunk_key(coords)

    def read(self, name: str, region) -> np.ndarray:
        """Values of output (or coordinate) ``name`` over ``region``."""
        return np.asarray(self._array(name)[region])

    def write(self, name: str, region, values) -> None:
        """Write ``values`` (the shape of ``region``) into output or coordinate ``name``."""
        self._array(name)[region] = values

    def unmark(self, indices) -> None:
        """Clear the ``done`` flags of chunks ``indices`` (they will be recomputed)."""
        done = self._array(DONE)
        for i in indices:
            done[i] = 0
        if self.state == "complete":
            self.group.attrs.update(jaxlmg_store_state="running")

    def done_flags(self) -> tuple[np.ndarray, list[int]]:
        """``(done, unreadable)``: the flags, reading flag by flag when the whole array cannot
        be read; an unreadable flag counts as not done."""
        try:
            return self.done(), []
        except Exception:  # noqa: BLE001 - a damaged flag file: find which, below
            pass
        done = np.zeros(self.n_chunks, bool)
        bad = []
        arr = self._array(DONE)
        for i in range(self.n_chunks):
            try:
                done[i] = bool(arr[i])
            except Exception:  # noqa: BLE001 - any decoding error means: not done
                bad.append(i)
        return done, bad

    def remove_partial_files(self) -> int:
        """Delete Zarr's temporary ``*.partial`` files left by a killed write; their number."""
        n = 0
        for root, _, files in os.walk(self.path):
            for f in files:
                if f.endswith(".partial"):
                    Path(root, f).unlink(missing_ok=True)
                    n += 1
        return n

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def state(self) -> str:
        return self.group.attrs.get("jaxlmg_store_state", "")

    @property
    def n_chunks(self) -> int:
        return self.group[DONE].shape[0]

    def done(self) -> np.ndarray:
        """``(n_chunks,)`` bool: which chunks are completely written."""
        return np.asarray(self._array(DONE)[:]).astype(bool)

    def write_chunk(self, index: int, region: tuple[slice, ...], values: dict[str, np.ndarray]):
        """Write every output of chunk ``index`` into ``region``, then mark the chunk done."""
        for name, v in values.items():
            self.write(name, region, v)
        self._array(DONE)[index] = 1  # strictly after the data: a killed write stays not-done

    def is_consolidated(self) -> bool:
        meta = json.loads((self.path / "zarr.json").read_text())
        return meta.get("consolidated_metadata") is not None

    def set_attrs(self, **attrs):
        self.group.attrs.update(attrs)

    def finalize(self, **attrs):
        """Mark complete (only when every chunk is done) and consolidate the metadata."""
        if not self.done().all():
            raise SweepError(f"{self.path}: cannot finalize, {int((~self.done()).sum())} chunks "
                             "are not done")
        self.group.attrs.update(jaxlmg_store_state="complete", date_completed=_now(), **attrs)
        with warnings.catch_warnings():
            # zarr warns that consolidated metadata is not (yet) part of the Zarr v3 spec;
            # zarr-python and xarray read it, and the store stays valid without it.
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(self.path))


def _is_jaxlmg_store(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return "jaxlmg_store_format" in json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def is_store(path) -> bool:
    """Whether ``path`` holds a jaxlmg sweep store (its root metadata says so)."""
    return _is_jaxlmg_store(Path(path))


def _is_stranded(path: Path) -> bool:
    """A directory without root metadata holding only Zarr ``*.partial`` temporaries (or
    nothing): what a creation killed before its first metadata write leaves."""
    if not path.is_dir() or (path / "zarr.json").exists():
        return False
    for _, _, files in os.walk(path):
        if any(not f.endswith(".partial") for f in files):
            return False
    return True


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:12]}"


def clean_leftovers(path) -> None:
    """Delete what killed runs left beside ``path``: half-created stores and trash of
    ``--overwrite`` (hidden siblings ``.NAME.creating-*`` and ``.NAME.trash-*``).  Call it
    holding the store's lock."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for kind in ("creating", "trash"):
        for p in path.parent.glob(f".{path.name}.{kind}-*"):
            shutil.rmtree(p, ignore_errors=True)


def remove_store(path: Path) -> None:
    """Delete a jaxlmg sweep store (refuses anything else, e.g. a mistyped ``-o``).

    The store is first renamed to a hidden sibling (atomic), so that a kill part-way leaves either
    the old store or none, never a half-deleted one at ``path``."""
    path = Path(path)
    if not path.exists():
        return
    if not (_is_jaxlmg_store(path) or _is_stranded(path)):
        raise SweepError(f"{path} exists and is not a jaxlmg sweep store; refusing to delete it "
                         "(remove it yourself or choose another output path)")
    trash = _sibling(path, "trash")
    os.rename(path, trash)
    shutil.rmtree(trash)


def open_store(path, spec: SweepSpec) -> SweepStore | None:
    """Open an existing store for resuming, or ``None`` if there is none to resume.

    Returns ``None`` when ``path`` does not exist or holds a store that was killed while being
    created (it is then deleted).

    Raises:
        SweepError: ``path`` exists but is not a jaxlmg store, or was written by a different
            spec (the message names the keys that differ).
    """
    path = Path(path)
    if not path.exists():
        return None
    if not _is_jaxlmg_store(path):
        if _is_stranded(path):
            shutil.rmtree(path)
            return None
        raise SweepError(f"{path} exists and is not a jaxlmg sweep store; choose another output "
                         "path")
    try:
        group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    except PermissionError:
        group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    attrs = dict(group.attrs)
    if attrs.get("jaxlmg_store_state") == "creating":
        remove_store(path)
        return None
    check_identity(path, attrs, spec)
    return SweepStore(group, path)


def check_identity(path: Path, attrs: dict, spec: SweepSpec) -> None:
    """Raise :class:`SweepError` unless the store (root attributes ``attrs``) is of the
    supported format and was written by ``spec`` (the message names the keys that differ)."""
    if attrs.get("jaxlmg_store_format") != FORMAT:
        raise SweepError(f"{path}: store format {attrs.get('jaxlmg_store_format')} is not "
                         f"supported by this jaxlmg (format {FORMAT}); use --overwrite")
    stored = attrs.get("jaxlmg_spec_hash")
    if stored != spec.spec_hash():
        try:
            old = json.loads(attrs.get("jaxlmg_spec_json", "{}"))
        except ValueError:
            old = {}
        diff = _diff(old, spec.identity())
        raise SweepError(
            f"{path} holds a sweep of a different spec (differs in: {'; '.join(diff) or '?'}; "
            f"stored hash {str(stored)[:12]}, this spec {spec.spec_hash()[:12]}); refusing to "
            "resume.  Use another output path, or --overwrite to discard the stored results.")


def _diff(old, new, prefix: str = "") -> list[str]:
    """Key paths where two spec identities differ, with both values at the leaves:
    ``grid.h.num (stored 11, now 12)``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                out += _diff(old.get(k), new.get(k), f"{prefix}{k}" if not prefix
                             else f"{prefix}.{k}")
        return out
    return [f"{prefix or '(spec)'} (stored {_short(old)}, now {_short(new)})"]


def _short(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def create_store(path, spec: SweepSpec, *, spec_text: str | None, chunks: tuple[int, ...],
                 n_chunks: int, dtypes: dict[str, np.dtype], run_info: dict[str, Any]
                 ) -> SweepStore:
    """Create a new store for ``spec`` (``path`` must not exist).

    Args:
        path: the store directory (``*.zarr`` by convention).
        spec: the validated spec.
        spec_text: the spec file's text (stored verbatim; ``spec.to_toml()`` if ``None``).
        chunks: Zarr chunk shape of the outputs (= one sweep chunk).
        n_chunks: number of sweep chunks.
        dtypes: output name -> dtype.
        run_info: extra root attributes (versions, devices, ...).
    """
    path = Path(path)
    if path.exists():
        raise SweepError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "creating")
    try:
        _populate(tmp, spec, spec_text=spec_text, chunks=chunks, n_chunks=n_chunks,
                  dtypes=dtypes, run_info=run_info)
        os.rename(tmp, path)  # atomic: `path` is absent or a whole store
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    return SweepStore(group, path)


def _populate(path: Path, spec: SweepSpec, *, spec_text, chunks, n_chunks, dtypes, run_info):
    """Write a new store's metadata and coordinates at ``path`` (a fresh directory)."""
    axes = spec.axes
    attrs = {
        "title": f"jaxlmg {spec.ensemble} sweep",
        "description": spec.description,
        "ensemble": spec.ensemble,
        "model": spec.model,
        **spec.model_options,
        **spec.constants,
        "precision": spec.precision,
        "jaxlmg_spec_toml": spec_text if spec_text is not None else spec.to_toml(),
        "jaxlmg_spec_json": json.dumps(spec.identity(), sort_keys=True),
        "jaxlmg_spec_hash": spec.spec_hash(),
        "jaxlmg_store_format": FORMAT,
        "jaxlmg_store_state": "creating",
        "date_created": _now(),
        "zarr_version": zarr.__version__,
        **run_info,
    }
    group = zarr.open_group(str(path), mode="w-", zarr_format=3, attributes=attrs)
    for a, values in spec.coords().items():
        arr = group.create_array(a, shape=values.shape, dtype=np.float64, chunks=values.shape,
                                 dimension_names=(a,),
                                 attributes=_var_attrs(a, kernels.AXES[a]._asdict()))
        arr[:] = values
    for name, dtype in dtypes.items():
        field = name.rpartition(".")[2]
        info = kernels.FIELD_INFO.get(field)
        extra = {"long_name": info[0], "units": info[1]} if info else {}
        if field == "status":
            import jaxlmg

            extra["flag_values"] = [int(s) for s in jaxlmg.Status]
            extra["flag_meanings"] = " ".join(s.name for s in jaxlmg.Status)
        group.create_array(name, shape=spec.shape, dtype=dtype, chunks=chunks,
                           fill_value=_fill(dtype), dimension_names=axes, attributes=extra)
    sweep = group.create_group("_sweep")
    sweep.create_array("done", shape=(n_chunks,), dtype=np.uint8, chunks=(1,), fill_value=0)
    group.attrs.update(jaxlmg_store_state="running")


def _var_attrs(name: str, info: dict) -> dict:
    return {"long_name": info["long_name"], "units": info["units"]}


def open_sweep(path):
    """Open a sweep store as an ``xarray.Dataset`` (complete or not).

    Points of chunks not computed yet hold NaN (floats) and -1 (integers).  The spec is in
    ``ds.attrs["jaxlmg_spec_toml"]``; ``ds.attrs["jaxlmg_store_state"] == "complete"`` once done.
    """
    import xarray as xr

    path = Path(path)
    if not _is_jaxlmg_store(path):
        raise SweepError(f"{path} is not a jaxlmg sweep store")
    meta = json.loads((path / "zarr.json").read_text())
    consolidated = "consolidated_metadata" in meta and meta["consolidated_metadata"] is not None
    return xr.open_zarr(str(path), consolidated=consolidated)
