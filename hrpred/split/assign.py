"""Train/val/test assignment of feature rows, and the train-only feature scaler.

Methods (every result depends only on the set of rows and the params, never on file order):
- `user`: user-disjoint. Each user gets u = blake2b(f"{seed}:{user_id}") / 2**64 in [0, 1).
  Unstratified: cumulative `fractions` cut u (a user's split never changes when other users
  come or go). Stratified: users are sorted by (workouts-per-user bucket = floor(log2 n), u)
  and dealt in that order, each to the split furthest below its share so far, so every split
  gets a similar spread of light and heavy users and the user counts match the fractions
  (adding or removing users can move others).
- `chronological` (FitRec protocol): each user's workouts sorted by (start_time, workout_id);
  the first share goes to train, then val, then test; users with fewer than `min_workouts`
  workouts are `dropped` (kept in the assignment with that label and counted).
All rows of one workout (windows mode) share its split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from hrpred.split.config import SplitConfig, SplitError, check_fractions

SPLITS = ("train", "val", "test")
DROPPED = "dropped"
MIN_STD = 1e-8  # a scaled feature with a smaller std (constant) gets std 1.0


def user_hash(user_id: int, seed: int) -> float:
    """Seeded, platform-independent uniform number in [0, 1) for a user id."""
    digest = hashlib.blake2b(f"{seed}:{int(user_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _deal(n: int, fractions: Sequence[float]) -> list[str]:
    """Split labels for n items in order: each goes to the split furthest below its share."""
    counts = [0, 0, 0]
    out = []
    for k in range(n):
        deficit = [f * (k + 1) - c for f, c in zip(fractions, counts, strict=True)]
        s = int(np.argmax(deficit))  # ties -> first (train, then val)
        counts[s] += 1
        out.append(SPLITS[s])
    return out


def assign_users(
    workouts_per_user: dict[int, int], fractions: Sequence[float], seed: int, stratify: bool
) -> dict[int, str]:
    """User id -> split for the `user` method."""
    fr = check_fractions(fractions)
    users = sorted(workouts_per_user)
    u = {uid: user_hash(uid, seed) for uid in users}
    if not stratify:
        edges = np.cumsum(fr)
        return {uid: SPLITS[min(int(np.searchsorted(edges, u[uid], side="right")), 2)]
                for uid in users}  # fmt: skip
    bucket = {uid: int(np.floor(np.log2(max(workouts_per_user[uid], 1)))) for uid in users}
    order = sorted(users, key=lambda uid: (bucket[uid], u[uid], uid))
    return dict(zip(order, _deal(len(order), fr), strict=True))


def chrono_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """(train, val, test) counts for a user's n workouts; val/test get >= 1 when their share > 0."""
    fr = check_fractions(fractions)
    n_val = max(1, int(np.floor(n * fr[1] + 0.5))) if fr[1] > 0 else 0
    n_test = max(1, int(np.floor(n * fr[2] + 0.5))) if fr[2] > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise SplitError(f"{n} workouts cannot be split {fractions} with a non-empty train part")
    return n_train, n_val, n_test


def _workouts(index: pd.DataFrame) -> pd.DataFrame:
    """One line per workout: workout_id, user_id, start_time (first row of each workout)."""
    cols = ["workout_id", "user_id", "start_time"]
    return index[cols].drop_duplicates("workout_id").reset_index(drop=True)


def assign(index: pd.DataFrame, cfg: SplitConfig) -> pd.DataFrame:
    """Assignment table (row, workout_id, user_id, split), sorted by row.

    `index` needs row, workout_id, user_id and (chronological) start_time.
    `cfg.chrono_drop_first` (chronological only) drops each user's first workout as FitRec did:
    its models used the previous workout as context, which the first one lacks.
    """
    work = _workouts(index)
    if cfg.method == "user":
        per_user = work.groupby("user_id").size()
        users = assign_users(
            {int(k): int(v) for k, v in per_user.items()}, cfg.fractions, cfg.seed, cfg.stratify
        )
        by_workout = dict(zip(work["workout_id"], work["user_id"].map(users), strict=True))
    else:
        by_workout = {}
        ordered = work.sort_values(["user_id", "start_time", "workout_id"], kind="mergesort")
        for _, grp in ordered.groupby("user_id", sort=True):
            ids = grp["workout_id"].tolist()
            if len(ids) < cfg.min_workouts:
                by_workout.update(dict.fromkeys(ids, DROPPED))
                continue
            if cfg.chrono_drop_first:
                by_workout[ids[0]] = DROPPED
                ids = ids[1:]
                if not ids:
                    continue
            n_train, n_val, _ = chrono_counts(len(ids), cfg.chrono_fractions)
            for k, wid in enumerate(ids):
                by_workout[wid] = (
                    "train" if k < n_train else "val" if k < n_train + n_val else "test"
                )
    out = index[["row", "workout_id", "user_id"]].copy()
    out["split"] = out["workout_id"].map(by_workout).astype(str)
    return out.sort_values("row", kind="mergesort").reset_index(drop=True)


def split_counts(assignment: pd.DataFrame, index: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Workouts, users, rows and valid steps per split (plus dropped), for metrics/split.json."""
    labels = [*SPLITS, DROPPED]
    merged = assignment.merge(index[["row", "n_valid"]], on="row") if "n_valid" in index else None
    out: dict[str, dict[str, int]] = {"workouts": {}, "users": {}, "rows": {}, "valid_steps": {}}
    for s in labels:
        sel = assignment[assignment["split"] == s]
        out["workouts"][s] = int(sel["workout_id"].nunique())
        out["users"][s] = int(sel["user_id"].nunique())
        out["rows"][s] = len(sel)
        if merged is not None:
            out["valid_steps"][s] = int(merged.loc[merged["split"] == s, "n_valid"].sum())
    out["workouts"]["total"] = int(assignment["workout_id"].nunique())
    out["users"]["total"] = int(assignment["user_id"].nunique())
    out["rows"]["total"] = len(assignment)
    if merged is None:
        del out["valid_steps"]
    else:
        out["valid_steps"]["total"] = int(merged["n_valid"].sum())
    return out


class RunningMoments:
    """Per-column count/mean/M2 in float64, merged chunk by chunk (Chan et al.)."""

    def __init__(self, n_cols: int) -> None:
        self.count = 0
        self.mean = np.zeros(n_cols, dtype=np.float64)
        self.m2 = np.zeros(n_cols, dtype=np.float64)

    def update(self, values: np.ndarray) -> None:
        """Add rows of a [k, n_cols] chunk."""
        k = len(values)
        if k == 0:
            return
        x = values.astype(np.float64, copy=False)
        c_mean = x.mean(axis=0)
        c_m2 = ((x - c_mean) ** 2).sum(axis=0)
        total = self.count + k
        delta = c_mean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + c_m2 + delta**2 * (self.count * k / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        """Population std (ddof=0), like sklearn's StandardScaler."""
        return np.sqrt(self.m2 / self.count) if self.count else np.zeros_like(self.mean)


def fit_scaler(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    is_train: np.ndarray,
    names: Sequence[str],
    binary: Iterable[str],
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Mean/std of every non-binary feature over train rows, valid steps only.

    `blocks` yields consecutive (features [b, T, F], mask [b, T]) row blocks in row order;
    `is_train` [N] bool picks train rows. Returns ({name: {mean, std}}, degenerate names):
    a constant (or absent) feature gets std 1.0 so scaling never divides by zero.
    """
    binary = set(binary)
    cols = [j for j, n in enumerate(names) if n not in binary]
    acc = RunningMoments(len(cols))
    start = 0
    for feats, mask in blocks:
        sel = is_train[start : start + len(feats)]
        start += len(feats)
        if not sel.any():
            continue
        steps = feats[sel][mask[sel]]  # [k, F] valid steps of train rows
        acc.update(steps[:, cols])
    if start != len(is_train):
        raise ValueError(f"blocks cover {start} rows, the assignment has {len(is_train)}")
    std = acc.std
    scaler: dict[str, dict[str, float]] = {}
    degenerate = []
    for k, j in enumerate(cols):
        s = float(std[k])
        if acc.count == 0 or not np.isfinite(s) or s < MIN_STD:
            degenerate.append(names[j])
            s = 1.0
        scaler[names[j]] = {"mean": float(acc.mean[k]), "std": s}
    return scaler, degenerate
