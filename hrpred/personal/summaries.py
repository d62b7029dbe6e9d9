"""Per-workout summary vectors: what a history-conditioned model reads about an earlier workout.

A summary is computed from one workout's unscaled features, its recorded (cleaned) HR and its
valid-step mask. It reads HR, so it may only describe workouts in the *history* of the workout
being predicted (never that workout itself, never a later one): `hrpred.personal.context`
enforces that by looking summaries up through the history table only.

Summaries come from additive per-row statistics, so a workout cut into several windows (rows)
is summarised over all of them, and all workouts are summarised in one bounded-memory pass
over data/features (`store.iter_row_blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hrpred import store
from hrpred.errors import HrpredError

# The summary vector, in this order (stored in the checkpoint: `ckpt["history"]`).
SUMMARY_FEATURES = (
    "hr_mean",  # BPM over valid steps
    "hr_std",  # BPM
    "speed_mean",  # km/h over valid steps
    "speed_std",  # km/h
    "hr_speed_slope",  # BPM per km/h (least squares over valid steps, clipped)
    "hr_at_10kmh",  # BPM: the fitted line at 10 km/h (a pace-independent level)
    "climb_per_step",  # m of ascent per step
    "log_steps",  # log(1 + steps recorded)
    "frac_valid",  # valid HR steps / recorded steps
)
REQUIRED_COLUMNS = ("speed", "altitude")  # feature columns the summaries read
# per-row additive statistics: n, sum hr, sum hr^2, sum s, sum s^2, sum hr*s, climb, steps
N_STATS = 8
MIN_VALID_STEPS = 10  # fewer valid HR steps: the workout is not usable as history
SLOPE_CLIP = 20.0  # BPM per km/h
BLOCK_ROWS = 256


class SummaryError(HrpredError, ValueError):
    """The features cannot be summarised (message says what to change)."""


@dataclass(frozen=True)
class Summaries:
    """Summary vectors of a set of workouts, sorted by workout id."""

    workout_ids: np.ndarray  # [W] int64, ascending, unique
    values: np.ndarray  # [W, D] float32 (SUMMARY_FEATURES)
    valid: np.ndarray  # [W] bool: enough valid HR steps to describe the workout

    def positions(self, workout_ids: np.ndarray) -> np.ndarray:
        """Index of each id in `workout_ids` (-1 when not summarised)."""
        ids = np.asarray(workout_ids, dtype=np.int64)
        pos = np.searchsorted(self.workout_ids, ids)
        pos = np.clip(pos, 0, max(len(self.workout_ids) - 1, 0))
        found = len(self.workout_ids) > 0
        hit = found & (self.workout_ids[pos] == ids) if found else np.zeros(len(ids), bool)
        return np.where(hit, pos, -1)


def _columns(names: list[str]) -> tuple[int, int]:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise SummaryError(
            f"history summaries need the feature columns {list(REQUIRED_COLUMNS)}; "
            f"missing {missing}: add them to featurize.features"
        )
    return names.index("speed"), names.index("altitude")


def row_stats(
    features: np.ndarray, target: np.ndarray, mask: np.ndarray, names: list[str]
) -> np.ndarray:
    """Additive statistics [n, N_STATS] float64 of rows (features [n,T,F], target/mask [n,T])."""
    si, ai = _columns(names)
    speed = np.asarray(features[..., si], dtype=np.float64)
    alt = np.asarray(features[..., ai], dtype=np.float64)
    hr = np.asarray(target, dtype=np.float64)
    ok = np.asarray(mask, dtype=bool) & np.isfinite(hr) & np.isfinite(speed)
    h = np.where(ok, hr, 0.0)
    s = np.where(ok, speed, 0.0)
    rise = np.diff(alt, axis=1)
    climb = np.where(np.isfinite(rise) & (rise > 0), rise, 0.0).sum(axis=1)
    steps = np.isfinite(speed).sum(axis=1)
    return np.stack(
        [
            ok.sum(axis=1),
            h.sum(axis=1),
            np.square(h).sum(axis=1),
            s.sum(axis=1),
            np.square(s).sum(axis=1),
            (h * s).sum(axis=1),
            climb,
            steps,
        ],
        axis=1,
    )


def summaries_from_stats(workout_ids: np.ndarray, stats: np.ndarray) -> Summaries:
    """Sum per-row statistics by workout and turn them into summary vectors."""
    frame = pd.DataFrame(stats, columns=[f"s{i}" for i in range(N_STATS)])
    frame["workout_id"] = np.asarray(workout_ids, dtype=np.int64)
    agg = frame.groupby("workout_id", sort=True).sum()
    n, sh, shh, ss, sss, shs, climb, steps = (agg[f"s{i}"].to_numpy() for i in range(N_STATS))
    with np.errstate(divide="ignore", invalid="ignore"):
        nn = np.maximum(n, 1.0)
        hm, sm = sh / nn, ss / nn
        hv = np.maximum(shh / nn - hm * hm, 0.0)
        sv = np.maximum(sss / nn - sm * sm, 0.0)
        cov = shs / nn - hm * sm
        slope = np.where(sv > 1e-6, cov / np.maximum(sv, 1e-6), 0.0)
    slope = np.clip(slope, -SLOPE_CLIP, SLOPE_CLIP)
    values = np.stack(
        [
            hm,
            np.sqrt(hv),
            sm,
            np.sqrt(sv),
            slope,
            hm + slope * (10.0 - sm),
            climb / np.maximum(steps, 1.0),
            np.log1p(steps),
            n / np.maximum(steps, 1.0),
        ],
        axis=1,
    )
    valid = (n >= MIN_VALID_STEPS) & np.isfinite(values).all(axis=1)
    values = np.where(np.isfinite(values), values, 0.0).astype(np.float32)
    return Summaries(agg.index.to_numpy(dtype=np.int64), values, valid)


def compute_summaries(features_dir: str | Path, block_rows: int = BLOCK_ROWS) -> Summaries:
    """Summaries of every workout in data/features, one bounded-memory pass (block by block)."""
    folder = Path(features_dir)
    data = store.open_features(folder)
    ids = data.index["workout_id"].to_numpy(dtype=np.int64)
    stats = np.empty((data.n_rows, N_STATS), dtype=np.float64)
    blocks = zip(
        store.iter_row_blocks(folder / "features.npy", block_rows),
        store.iter_row_blocks(folder / "target.npy", block_rows),
        store.iter_row_blocks(folder / "mask.npy", block_rows),
        strict=True,
    )
    for (start, x), (_, y), (_, m) in blocks:
        stats[start : start + len(x)] = row_stats(x, y, m, data.names)
    return summaries_from_stats(ids, stats)
