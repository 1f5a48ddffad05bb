"""One writer per sweep store: an OS file lock beside the store (``filelock``).

The lock is ``.OUT.lock`` in the store's parent directory (the store itself may not exist yet,
or be replaced by ``--overwrite``); the holder's pid, host and start time are in
``.OUT.owner.json`` for the refusal message.  The lock is an advisory ``flock``/``fcntl`` lock
held by an open file descriptor: the operating system releases it when the process ends, however
it ends (``kill -9`` included), so it is never left stuck.  Only process 0 of a
``jax.distributed`` run takes it (the other processes write their own chunks under its lock).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
from pathlib import Path

import filelock

__all__ = ["StoreLock", "StoreLocked", "lock_path"]


class StoreLocked(RuntimeError):
    """Another process holds the lock of the store (the message names it)."""


def lock_path(store: Path) -> Path:
    """The lock file of ``store`` (``.NAME.lock`` beside it)."""
    store = Path(store)
    return store.parent / f".{store.name}.lock"


def _owner_path(store: Path) -> Path:
    return store.parent / f".{store.name}.owner.json"


class StoreLock:
    """Exclusive, non-blocking lock of a store path; a context manager.

    Args:
        store: the store directory (need not exist; its parent is created).
    Raises (on entering):
        StoreLocked: another process holds it (the message names its pid and host).
        OSError: the parent directory cannot be created or written.
    """

    def __init__(self, store):
        self.store = Path(store)
        self._lock = filelock.FileLock(str(lock_path(self.store)), timeout=0)

    def __enter__(self) -> StoreLock:
        self.store.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise StoreLocked(f"{self.store} is being written by another process "
                              f"({self._owner()}); wait for it to finish or stop it, then rerun "
                              "(one writer per store)") from None
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
            _owner_path(self.store).write_text(json.dumps(info))
        except OSError:
            pass  # the lock holds without the note; only the refusal message is poorer
        return self

    def __exit__(self, *exc) -> None:
        try:
            _owner_path(self.store).unlink(missing_ok=True)
        except OSError:
            pass
        self._lock.release()

    def _owner(self) -> str:
        for _ in range(10):  # the holder writes its note just after taking the lock
            try:
                info = json.loads(_owner_path(self.store).read_text())
                return f"pid {info['pid']} on {info['host']}, since {info['since']}"
            except (OSError, ValueError, KeyError, TypeError):
                time.sleep(0.02)
        return "owner unknown"
