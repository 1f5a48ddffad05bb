"""The helpers ``jaxlmg reproduce`` uses to compile less and use both cores (fast, no sweeps)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from jaxlmg import _batch
from jaxlmg.figures._data import SMALL_BATCH, Background, in_small_batches


class Pair(NamedTuple):
    total: np.ndarray
    both: np.ndarray  # an own trailing axis of 2


def test_small_batch_is_the_smallest_compiled_bucket():
    assert SMALL_BATCH == _batch.BUCKETS[0]


def test_in_small_batches_equals_one_call_on_the_broadcast_grid():
    sizes = []

    def fn(x, y, z):
        sizes.append(x.shape)
        return Pair(x * y + z, np.stack([x, y], axis=-1))

    x, y = np.linspace(0.0, 1.0, 13)[:, None], np.linspace(-2.0, 2.0, 11)[None, :]
    out = in_small_batches(fn, x, y, 0.5, size=16)
    assert all(s[0] <= 16 and len(s) == 1 for s in sizes) and len(sizes) == -(-13 * 11 // 16)
    assert out.total.shape == (13, 11) and out.both.shape == (13, 11, 2)
    np.testing.assert_array_equal(out.total, x * y + 0.5)
    np.testing.assert_array_equal(out.both[..., 0], np.broadcast_to(x, (13, 11)))
    np.testing.assert_array_equal(out.both[..., 1], np.broadcast_to(y, (13, 11)))


def test_background_returns_the_value_or_raises_the_error():
    assert Background(lambda a, b=0: a + b, 2, b=3).result() == 5

    def boom():
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        Background(boom).result()
