"""Integrity of a sweep store: every chunk marked done has all its files, and they decode.

A chunk's ``done`` flag is set only after its data were written, but files can still be lost
later (deleted, truncated, a disk error).  Zarr reads a missing chunk file as the fill value
(NaN, -1) without complaint, so :func:`check_store` looks at every file of every chunk marked
done: it must exist and decode.  A resume runs it and recomputes the chunks it finds damaged;
``jaxlmg verify OUT`` runs it alone.  Reading every chunk costs one pass over the store's data
(about as long as copying it), small next to computing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .store import DONE, SweepStore

__all__ = ["StoreCheck", "Verification", "check_store", "verify_store"]


class StoreCheck(NamedTuple):
    """What :func:`check_store` found.

    Attributes:
        done: ``(n_chunks,)`` bool, the chunks marked done whose files are all intact.
        damaged: chunks marked done with a missing or unreadable file, or an unreadable flag.
        problems: one line per damaged file or coordinate (path and what is wrong).
        bad_axes: coordinate arrays that are missing or wrong.
    """

    done: np.ndarray
    damaged: tuple[int, ...]
    problems: tuple[str, ...]
    bad_axes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(store: SweepStore, plan, outputs,
                coords: dict[str, np.ndarray] | None = None) -> StoreCheck:
    """Check every file of every chunk marked done (and the coordinates).

    Args:
        store: an open store.
        plan: its :class:`~jaxlmg.sweeps.runner.ChunkPlan` (chunk ``i`` -> region).
        outputs: the names of the stored outputs.
        coords: ``{axis: values}`` the coordinate arrays must hold (skipped when ``None``).
    Returns:
        :class:`StoreCheck`.
    """
    done, bad_flags = store.done_flags()
    problems = [f"{store.chunk_file(DONE, (slice(i, i + 1),))}: unreadable (the done flag of "
                f"chunk {i})" for i in bad_flags]
    damaged = set(bad_flags)
    for i in np.flatnonzero(done):
        region = plan.region(int(i))
        for name in outputs:
            f = store.chunk_file(name, region)
            why = None
            if not f.is_file():
                why = "missing"
            else:
                try:
                    store.read(name, region)
                except Exception as e:  # noqa: BLE001 - any decoding error: the file is damaged
                    why = f"unreadable ({type(e).__name__}: {str(e)[:80]})"
            if why:
                problems.append(f"{_rel(f, store.path)}: {why} (chunk {int(i)}, marked done)")
                damaged.add(int(i))
    bad_axes = []
    for axis, values in (coords or {}).items():
        try:
            stored = store.read(axis, slice(None))
            ok = (store.chunk_file(axis, (slice(0, len(values)),)).is_file()
                  and stored.shape == values.shape and np.array_equal(stored, values))
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            problems.append(f"{store.path / axis}: coordinates missing or wrong")
            bad_axes.append(axis)
    done = done.copy()
    done[list(damaged)] = False
    return StoreCheck(done, tuple(sorted(damaged)), tuple(problems), tuple(bad_axes))


def _rel(f: Path, root: Path) -> str:
    return f"{root}/{f.relative_to(root)}"


class Verification(NamedTuple):
    """What :func:`verify_store` found (see :class:`StoreCheck` for ``damaged``/``problems``).

    Attributes:
        path: the store.
        n_chunks: chunks of the sweep.
        done_chunks: chunks marked done whose files are all intact.
        complete: every chunk done and intact, and the store finalized.
        damaged: chunks marked done with a missing or unreadable file.
        problems: one line per damaged file.
    """

    path: Path
    n_chunks: int
    done_chunks: int
    complete: bool
    damaged: tuple[int, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(path, spec=None) -> Verification:
    """Check a whole store without changing it: every file of every chunk marked done exists
    and decodes, and the coordinates are the spec's.

    Args:
        path: the store.
        spec: a :class:`~jaxlmg.sweeps.SweepSpec` the store must belong to (default: the spec
            stored in it).
    Returns:
        :class:`Verification`.
    Raises:
        SweepError: ``path`` is not a jaxlmg store, or belongs to another spec.
        SpecError: the spec stored in it is invalid.
    """
    import zarr

    from .plan import plan_chunks
    from .spec import parse_spec
    from .store import SweepError, check_identity, is_store

    path = Path(path)
    if not path.exists():
        raise SweepError(f"{path} does not exist: not a jaxlmg sweep store")
    if not is_store(path):
        raise SweepError(f"{path} is not a jaxlmg sweep store")
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    attrs = dict(group.attrs)
    if spec is None:
        spec = parse_spec(attrs.get("jaxlmg_spec_toml", ""), source=f"{path} (stored spec)")
    check_identity(path, attrs, spec)
    plan = plan_chunks(spec.shape, spec.chunk_size)
    check = check_store(SweepStore(group, path), plan, spec.output_names, spec.coords())
    n_done = int(check.done.sum())
    complete = (n_done == plan.n_chunks and not check.problems
                and attrs.get("jaxlmg_store_state") == "complete")
    return Verification(path, plan.n_chunks, n_done, complete, check.damaged, check.problems)
