"""The alignment arithmetic (median filter, DTW) against plain definitions."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamer.engine.alignment import dtw, median_filter

finite = st.floats(-100, 100, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 40)),
        elements=finite,
    )
)
def test_median_filter_is_the_reflect_padded_sliding_median(x):
    width = 7
    expected = x
    if x.shape[-1] >= width:
        padded = np.pad(x, [(0, 0), (0, 0), (3, 3)], mode="reflect")
        expected = np.stack(
            [np.median(padded[..., j : j + width], axis=-1) for j in range(x.shape[-1])], axis=-1
        )
    np.testing.assert_array_equal(median_filter(x, width), expected)


def _path_cost(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    return float(cost[rows, cols].sum())


def _best_cost(cost: np.ndarray) -> float:
    """Brute force over all monotonic paths from (0, 0) to the last cell."""
    n_rows, n_cols = cost.shape
    best = np.inf
    moves = [(1, 1), (1, 0), (0, 1)]
    for n_moves in range(max(n_rows, n_cols) - 1, n_rows + n_cols - 1):
        for path in itertools.product(moves, repeat=n_moves):
            i = j = 0
            total = cost[0, 0]
            for di, dj in path:
                i, j = i + di, j + dj
                if i >= n_rows or j >= n_cols:
                    break
                total += cost[i, j]
            else:
                if (i, j) == (n_rows - 1, n_cols - 1):
                    best = min(best, total)
    return float(best)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)), elements=st.floats(0, 10))
)
def test_dtw_finds_a_cheapest_monotonic_path(cost):
    rows, cols = dtw(cost)
    assert (rows[0], cols[0]) == (0, 0)
    assert (rows[-1], cols[-1]) == (cost.shape[0] - 1, cost.shape[1] - 1)
    steps = np.stack([np.diff(rows), np.diff(cols)], axis=1)
    assert all(tuple(step) in {(1, 1), (1, 0), (0, 1)} for step in steps)
    assert np.isclose(_path_cost(cost, rows, cols), _best_cost(cost))
