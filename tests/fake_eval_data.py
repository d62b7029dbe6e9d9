"""Small synthetic data/features + data/split trees (the `make_tree` fixture of conftest.py,
and the evaluate tests' `write_tree`), written through hrpred.store like the real stages.

HR follows a first-order response to speed and climb (so every baseline has signal), with
sensor noise, padding, a few invalid steps and user-disjoint splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hrpred import store
from hrpred.split.history import build_history

NAMES = ["speed", "altitude", "gender", "rolling_speed_10"]


def make_arrays(n: int = 48, t: int = 120, seed: int = 0) -> dict:
    """Arrays in the data/features layout plus the noise-free HR (for a fake truth)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(t // 2, t + 1, size=n)
    dt = rng.uniform(5.0, 11.0, size=(n, t))
    dt[:, 0] = 0.0
    elapsed = np.cumsum(dt, axis=1)
    base = rng.uniform(8.0, 14.0, size=(n, 1))
    k = np.arange(t)[None, :]
    speed = base + 2.0 * np.sin(k / rng.uniform(5, 30, size=(n, 1))) + rng.normal(0, 0.3, (n, t))
    altitude = 100 + np.cumsum(rng.normal(0, 1.0, (n, t)), axis=1)
    gender = rng.integers(0, 2, size=(n, 1)) * np.ones((1, t))
    roll = np.array([pd.Series(r).rolling(10, min_periods=1).mean().to_numpy() for r in speed])
    physio = np.empty((n, t))
    state = np.full(n, 90.0)
    for j in range(t):
        e = np.exp(-dt[:, j] / 40.0)
        state = e * state + (1 - e) * (60 + 7 * speed[:, j])
        physio[:, j] = state
    clean = physio + rng.normal(0, 2.0, (n, t))
    inside = k < lengths[:, None]
    mask = inside & (rng.random((n, t)) > 0.03)
    target = np.where(inside, clean, np.nan).astype(np.float32)
    features = np.stack([speed, altitude, gender, roll], axis=-1).astype(np.float32)
    features[~inside] = np.nan  # padding
    elapsed = np.where(inside, elapsed, 0.0)
    users = np.arange(n) // 4
    return {
        "features": features,
        "target": target,
        "mask": mask,
        "elapsed": elapsed.astype(np.float32),
        "lengths": lengths,
        "users": users,
        "physio": physio,
        "clean": clean,
    }


def write_data(root: Path, n: int = 48, t: int = 120, seed: int = 0) -> dict:
    """Write data/features and data/split under root through hrpred.store (the stages' own
    writers); returns `make_arrays`' dict plus `ids`, `split` and the `scaler` written."""
    a = make_arrays(n, t, seed)
    ids = 1000 + np.arange(n)
    index = pd.DataFrame(
        {
            "workout_id": ids,
            "user_id": a["users"],
            "start_time": np.arange(n) * 86400,
            "length": a["lengths"],
            "offset": np.zeros(n, dtype=np.int64),
            "workout_steps": a["lengths"],
        }
    )
    writer = store.FeaturesWriter(root / "data" / "features", n, t, NAMES)
    writer.write({k: a[k] for k in store.ARRAYS}, index)
    writer.close({"workouts": n, "rows": n, "seq_len": t})
    split = np.array(["train", "train", "val", "test"])[a["users"] % 4]
    assignment = pd.DataFrame(
        {"row": np.arange(n), "workout_id": ids, "user_id": a["users"], "split": split}
    )
    tr = split == "train"
    scaler = {}
    for j, name in enumerate(NAMES):
        if name == "gender":
            continue  # binary: not scaled
        v = a["features"][tr][..., j][a["mask"][tr]]
        scaler[name] = {"mean": float(v.mean()), "std": float(v.std())}
    store.write_split(root / "data" / "split", assignment, scaler)
    rows = index.assign(row=np.arange(n))
    store.write_history(root / "data" / "split", build_history(assignment, rows, 50))
    a.update(ids=ids, split=split, scaler=scaler)
    return a


def write_tree(root: Path, n: int = 48, t: int = 120, seed: int = 0) -> dict:
    """`write_data` plus a simulator-style truth file (data/raw/simulated_truth.parquet)."""
    a = write_data(root, n, t, seed)
    truth = pd.DataFrame(
        {
            "workout_id": a["ids"],
            "archetype": ["steady"] * n,
            "hr_clean": [a["clean"][i, : a["lengths"][i]].tolist() for i in range(n)],
            "hr_physio": [a["physio"][i, : a["lengths"][i]].tolist() for i in range(n)],
        }
    )
    (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
    truth.to_parquet(root / "data" / "raw" / "simulated_truth.parquet", index=False)
    return a


def stand_in_predictor(path: Path, names: list[str]):
    """A tiny deterministic 'model': a smoothed linear function of speed."""

    def predict(x: np.ndarray) -> np.ndarray:
        speed = np.nan_to_num(x[..., names.index("rolling_speed_10")], nan=10.0)
        return (60.0 + 7.0 * speed).astype(np.float32)

    return predict
