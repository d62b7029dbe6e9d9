"""Windows, padding, masks, and the streaming .npy row I/O featurize writes with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hrpred.features.rows import Window, pack_rows, windows
from hrpred.store import RowWriter, iter_row_blocks


def test_windows_truncate_and_short() -> None:
    assert windows(0, 5, "truncate") == [Window(0, 0, 0)]
    assert windows(3, 5, "windows") == [Window(0, 3, 0)]
    assert windows(12, 5, "truncate") == [Window(0, 5, 0)]
    assert windows(10, 5, "windows") == [Window(0, 5, 0), Window(5, 10, 5)]
    with pytest.raises(ValueError):
        windows(10, 5, "chunks")


@pytest.mark.parametrize("n", [1, 5, 6, 11, 17, 50])
def test_windows_score_every_step_exactly_once(n: int) -> None:
    seq_len = 5
    scored = np.zeros(n, dtype=int)
    for w in windows(n, seq_len, "windows"):
        assert w.length == min(n, seq_len)
        scored[w.score_from : w.end] += 1
    np.testing.assert_array_equal(scored, np.ones(n, dtype=int))


def test_pack_rows_pads_and_masks() -> None:
    n, f = 7, 2
    feats = np.arange(n * f, dtype=np.float64).reshape(n, f)
    target = np.arange(100.0, 100.0 + n)
    target[2] = np.nan
    valid = np.ones(n, dtype=bool)
    valid[4] = False
    feats[5, 1] = np.inf
    elapsed = np.arange(n) * 3.0
    wins, x, y, m, e = pack_rows(feats, target, valid, elapsed, 10, "truncate")
    assert len(wins) == 1 and x.shape == (1, 10, 2) and x.dtype == np.float32
    expected_mask = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    np.testing.assert_array_equal(m[0], expected_mask)
    assert y[0, 2] == 0.0 and x[0, 5, 1] == 0.0  # non-finite -> 0, masked
    np.testing.assert_array_equal(x[0, 7:], np.repeat(x[0, 6:7], 3, axis=0))  # edge padding
    np.testing.assert_array_equal(y[0, 7:], 0.0)
    np.testing.assert_array_equal(e[0, :7], elapsed.astype(np.float32))
    assert (e[0, 7:] == elapsed[-1]).all()


def test_pack_rows_windows_context_is_unscored() -> None:
    n = 13
    feats = np.arange(n, dtype=np.float64)[:, None]
    wins, x, _, m, e = pack_rows(feats, np.full(n, 150.0), np.ones(n, bool), np.arange(n) * 1.0,
                                 5, "windows")  # fmt: skip
    assert [w.start for w in wins] == [0, 5, 8]
    np.testing.assert_array_equal(x[2, :, 0], np.arange(8, 13))
    np.testing.assert_array_equal(m[2], [False, False, True, True, True])
    assert m.sum() == n
    np.testing.assert_array_equal(e[1], np.arange(5, 10))  # seconds since workout start


def test_pack_rows_truncates_long() -> None:
    feats = np.ones((30, 3))
    wins, x, y, m, _ = pack_rows(feats, np.ones(30), np.ones(30, bool), np.arange(30.0), 8,
                                 "truncate")  # fmt: skip
    assert len(wins) == 1 and x.shape == (1, 8, 3) and m.all()


def test_npy_row_writer_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(23, 4, 3)).astype(np.float32)
    path = tmp_path / "a.npy"
    with RowWriter(path, data.shape, np.float32) as w:
        for s in range(0, 23, 5):
            w.write(data[s : s + 5])
    np.testing.assert_array_equal(np.load(path), data)
    blocks = list(iter_row_blocks(path, 7))
    assert [s for s, _ in blocks] == [0, 7, 14, 21]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), data)
    mask = rng.random((9, 4)) > 0.5
    with RowWriter(tmp_path / "m.npy", mask.shape, np.bool_) as w:
        w.write(mask)
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), mask)


def test_npy_row_writer_rejects_wrong_counts(tmp_path: Path) -> None:
    w = RowWriter(tmp_path / "b.npy", (4, 2), np.float32)
    w.write(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="more rows"):
        w.write(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="wrote 3 of 4"):
        w.close()
