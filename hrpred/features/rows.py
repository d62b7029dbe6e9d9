"""Fixed-length sequences from variable-length workouts, and streaming .npy row I/O.

A workout of n steps becomes one or more rows of `seq_len` steps:
- `truncate`: one row, the first `seq_len` steps.
- `windows`: consecutive non-overlapping windows; when n > seq_len and a tail is left over,
  the last window is the final `seq_len` steps (it overlaps the previous one) and only its new
  steps are scored (the overlap is context, mask false). Every step is scored exactly once
  and no row is mostly padding.
Features are computed on the whole workout before slicing, so lags and cumulative features at a
window start carry the real history. Rows shorter than `seq_len` are padded by repeating the
last real step (features, elapsed) with target 0 and mask false.

mask = not padding, not context, clean's `hr_valid`, target finite and all features finite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LONG_MODES = ("truncate", "windows")


@dataclass(frozen=True)
class Window:
    """Steps [start, end) of a workout; steps before `score_from` are context only."""

    start: int
    end: int
    score_from: int

    @property
    def length(self) -> int:
        return self.end - self.start


def windows(n: int, seq_len: int, mode: str) -> list[Window]:
    """The rows a workout of n steps becomes (at least one, even for n == 0)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if mode not in LONG_MODES:
        raise ValueError(f"long_workouts must be one of {LONG_MODES}, got {mode!r}")
    if n <= seq_len or mode == "truncate":
        return [Window(0, min(n, seq_len), 0)]
    out = [Window(s, s + seq_len, s) for s in range(0, n - seq_len + 1, seq_len)]
    covered = out[-1].end
    if covered < n:
        out.append(Window(n - seq_len, n, covered))
    return out


def step_mask(valid: np.ndarray, target: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Per-step validity before windowing: hr_valid and everything finite."""
    return np.asarray(valid, dtype=bool) & np.isfinite(target) & np.isfinite(features).all(axis=1)


def pack_rows(
    features: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray,
    elapsed: np.ndarray,
    seq_len: int,
    mode: str,
) -> tuple[list[Window], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut one workout into rows.

    Inputs are per-step: features [n, F], target [n] (BPM), valid [n] bool (clean's hr_valid),
    elapsed [n] (s since start). Returns (windows, features [R,T,F] float32, target [R,T]
    float32, mask [R,T] bool, elapsed [R,T] float32). Non-finite values are written as 0 and
    masked.
    """
    n, n_feat = features.shape
    ok = step_mask(valid, target, features)
    wins = windows(n, seq_len, mode)
    r = len(wins)
    f_out = np.zeros((r, seq_len, n_feat), dtype=np.float32)
    y_out = np.zeros((r, seq_len), dtype=np.float32)
    m_out = np.zeros((r, seq_len), dtype=bool)
    e_out = np.zeros((r, seq_len), dtype=np.float32)
    clean_f = np.nan_to_num(features.astype(np.float32, copy=False), nan=0.0, posinf=0.0,
                            neginf=0.0)  # fmt: skip
    clean_y = np.where(np.isfinite(target), target, 0.0)
    clean_e = np.nan_to_num(np.asarray(elapsed, dtype=np.float64))
    for i, w in enumerate(wins):
        k = w.length
        if k == 0:
            continue
        f_out[i, :k] = clean_f[w.start : w.end]
        f_out[i, k:] = clean_f[w.end - 1]
        y_out[i, :k] = clean_y[w.start : w.end]
        m_out[i, :k] = ok[w.start : w.end]
        m_out[i, : w.score_from - w.start] = False
        e_out[i, :k] = clean_e[w.start : w.end]
        e_out[i, k:] = clean_e[w.end - 1]
    return wins, f_out, y_out, m_out, e_out


class NpyRowWriter:
    """Write a [N, ...] .npy file row block by row block, without mapping it into memory.

    The file (header + full size) is created by `np.lib.format.open_memmap`, then blocks are
    written with plain file writes, so resident memory stays at one block, not the array.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.shape = shape
        self.dtype = np.dtype(dtype)
        mm = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=shape)
        self._offset = int(mm.offset)
        del mm
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._file = self.path.open("r+b")
        self.rows_written = 0

    def write(self, block: np.ndarray) -> None:
        """Append rows [rows_written, rows_written + len(block))."""
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"block shape {block.shape} does not fit {self.shape}")
        if self.rows_written + len(block) > self.shape[0]:
            raise ValueError(f"{self.path}: more rows than the declared {self.shape[0]}")
        self._file.seek(self._offset + self.rows_written * self._row_bytes)
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows_written += len(block)

    def close(self) -> None:
        if self.rows_written != self.shape[0]:
            self._file.close()
            raise ValueError(f"{self.path}: wrote {self.rows_written} of {self.shape[0]} rows")
        self._file.close()

    def __enter__(self) -> NpyRowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._file.close()


def npy_shape(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file, read from its header only."""
    mm = np.load(path, mmap_mode="r")
    shape, dtype = mm.shape, mm.dtype
    del mm
    return shape, dtype


def iter_row_blocks(path: str | Path, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_row, rows) blocks of a .npy file with plain reads (bounded memory)."""
    mm = np.load(path, mmap_mode="r")
    shape, dtype, offset = mm.shape, mm.dtype, int(mm.offset)
    del mm
    row_items = int(np.prod(shape[1:], dtype=np.int64))
    with Path(path).open("rb") as f:
        for start in range(0, shape[0], block_rows):
            stop = min(start + block_rows, shape[0])
            f.seek(offset + start * row_items * dtype.itemsize)
            data = np.fromfile(f, dtype=dtype, count=(stop - start) * row_items)
            yield start, data.reshape((stop - start, *shape[1:]))
