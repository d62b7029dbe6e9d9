"""The change-point search (`best_segments`) against its earlier, plainer implementation.

The search was made cheaper (grid lengths cached, rows gathered with take, one column scored
without matmul/einsum, sides picked by one comparison); the detector's outputs stay
byte-identical only if every (a, b, delta, drop) is bit for bit the same, ties included.
"""

from __future__ import annotations

import numpy as np
import pytest

from hrpred.clean.signal import Segment, _pairs, best_segments


def plain_best_segments(y: np.ndarray, X: np.ndarray, min_len: int, step: int) -> list[Segment]:
    """The search as it was written before (fancy indexing, einsum, np.tile, sign * delta)."""
    none: Segment = (0, 0, 0.0, 0.0)
    n = y.size
    if n < 2 * min_len + 2:
        return [none, none]
    xtx = X.T @ X
    try:
        inv = np.linalg.inv(xtx)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(xtx)
    e = y - X @ (inv @ (X.T @ y))
    ce = np.concatenate(([0.0], np.cumsum(e)))
    cx = np.vstack((np.zeros((1, X.shape[1])), np.cumsum(X, axis=0)))

    def pairs(ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.repeat(ra, rb.size)
        b = np.tile(rb, ra.size)
        ok = ((b - a) >= min_len) & ((n - (b - a)) >= min_len)
        return a[ok], b[ok]

    def score(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        length = (b - a).astype(np.float64)
        s = ce[b] - ce[a]
        c = cx[b] - cx[a]
        q = np.maximum(length - np.einsum("ij,ij->i", c @ inv, c), 1e-9)
        return s * s / q, s / q

    grid = np.unique(np.append(np.arange(0, n, max(step, 1)), n))
    ga, gb = pairs(grid, grid)
    if ga.size == 0:
        return [none, none]
    gdrop, gdelta = score(ga, gb)
    out: list[Segment] = []
    for sign in (-1.0, 1.0):
        side = np.where(sign * gdelta > 0, gdrop, -1.0)
        k = int(np.argmax(side))
        if side[k] <= 0:
            out.append(none)
            continue
        a0, b0 = int(ga[k]), int(gb[k])
        ra = np.array([0]) if a0 == 0 else np.arange(max(a0 - step, 0), min(a0 + step, n) + 1)
        rb = np.array([n]) if b0 == n else np.arange(max(b0 - step, 0), min(b0 + step, n) + 1)
        a, b = pairs(ra, rb)
        drop, delta = score(a, b)
        drop = np.where(sign * delta > 0, drop, -1.0)
        j = int(np.argmax(drop))
        out.append((int(a[j]), int(b[j]), float(delta[j]), float(drop[j])))
    return out


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    """A detector-like series: log(dHR^2 + 4) of whole-BPM steps (many exact ties) or
    continuous noise, with a shifted stretch."""
    if rng.random() < 0.5:
        d = rng.integers(-6, 7, n).astype(np.float64)
        d[rng.integers(0, n // 2) : rng.integers(n // 2, n)] *= rng.integers(1, 4)
        return np.log(d * d + 4.0)
    y = rng.normal(0.0, 1.0, n)
    a = int(rng.integers(0, n - 1))
    y[a : int(rng.integers(a + 1, n))] += rng.uniform(-3.0, 3.0)
    return y


def _design(rng: np.random.Generator, n: int) -> np.ndarray:
    """One column (noisy/quiet search), intercept + slope or curve (the level search), or a
    duplicated column (singular: the pinv path)."""
    kind = int(rng.integers(0, 4))
    x = rng.normal(0.0, 1.0, n)
    if kind == 0:
        return np.ones((n, 1))
    if kind == 1:
        return np.column_stack((np.ones(n), x))
    if kind == 2:
        return np.column_stack((np.ones(n), x, np.cumsum(rng.normal(0.0, 0.1, n))))
    return np.column_stack((np.ones(n), x, x))


def test_best_segments_equal_to_the_plain_search_bit_for_bit():
    rng = np.random.default_rng(27)
    one_column = 0
    for _ in range(1500):
        n = int(rng.integers(5, 400))
        min_len = int(rng.integers(1, 40))
        step = int(rng.choice([1, 2, 3, 8, 16]))
        y = _series(rng, n)
        X = _design(rng, n)
        one_column += X.shape[1] == 1
        got = best_segments(y, X, min_len, step)
        want = plain_best_segments(y, X, min_len, step)
        assert got == want, (n, min_len, step, X.shape)
        for g, w in zip(got, want, strict=True):  # -0.0 vs 0.0 and NaN payloads too
            assert np.array(g[2:]).tobytes() == np.array(w[2:]).tobytes()
    assert one_column > 200


@pytest.mark.parametrize("na,nb", [(0, 5), (1, 1), (7, 3), (17, 17)])
def test_pairs_equal_to_repeat_and_tile(na: int, nb: int):
    rng = np.random.default_rng(na * 100 + nb)
    ra = np.sort(rng.integers(0, 60, na))
    rb = np.sort(rng.integers(0, 60, nb))
    a, b = _pairs(ra, rb, 60, 5)
    wa, wb = np.repeat(ra, rb.size), np.tile(rb, ra.size)
    ok = ((wb - wa) >= 5) & ((60 - (wb - wa)) >= 5)
    np.testing.assert_array_equal(a, wa[ok])
    np.testing.assert_array_equal(b, wb[ok])
    assert a.dtype == wa.dtype and b.dtype == wb.dtype


def test_one_side_is_that_side_of_both():
    """`side` searches one sign only: the same segment as the two-sided search, the other
    side returned empty (noisy_segment and quiet_lock each use one side)."""
    rng = np.random.default_rng(4)
    none = (0, 0, 0.0, 0.0)
    for _ in range(300):
        n = int(rng.integers(5, 400))
        min_len, step = int(rng.integers(1, 40)), int(rng.choice([1, 8, 16]))
        y, X = _series(rng, n), _design(rng, n)
        low, high = best_segments(y, X, min_len, step)
        assert best_segments(y, X, min_len, step, side=-1) == [low, none]
        assert best_segments(y, X, min_len, step, side=1) == [none, high]
