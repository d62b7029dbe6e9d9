"""Fixed-length sequences from variable-length workouts.

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

from dataclasses import dataclass

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
