"""Which history buckets should share the band's conformal multiplier? Decided on VALIDATION
runners only: split them at random in halves, calibrate on one half, score per-step coverage on
the other, repeat (a group needs half of `evaluate.band.min_workouts` workouts, as half the
runners calibrate); report mean |coverage - level| and the share of splits within +-0.03, per
history bucket and overall, for three groupings: one multiplier per bucket, the cold bucket
apart and the buckets with history pooled (`evaluate.band.pool_history`), everything pooled.

Reads the pipeline's outputs in the current repo (models/model.pt, data/features, data/split)
and params.yaml (`evaluate`, `personal.residual`, `evaluate.band`); writes nothing.

    python benchmarks/band_grouping.py [--splits 300] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from hrpred.evaluate.evaluation import EvalConfig
    from hrpred.evaluate.personal import learned_personal, learned_with_residual
    from hrpred.params import load_config
    from hrpred.personal.config import OffsetConfig
    from hrpred.split.history import BUCKETS, history_buckets, history_sizes
    from hrpred.store import Layout, open_dataset, open_history, read_rows
    from hrpred.uncertainty import band, calibrate

    cfg = load_config(EvalConfig, "evaluate")
    residual = load_config(OffsetConfig, "personal.residual")
    layout = Layout()
    ds = open_dataset(layout.features_dir, layout.split_dir)
    history = open_history(layout.split_dir)
    learned = learned_personal(layout.model, layout.features_dir, ds, history)
    if learned is None:
        raise SystemExit("models/model.pt has no spread head to calibrate (a population model)")
    rows = np.sort(ds.rows["val"])
    ids = ds.data.index["workout_id"].to_numpy()[rows]
    users = ds.data.index["user_id"].to_numpy()[rows]
    needed = history[history["workout_id"].isin(np.unique(ids))]
    center, spread, shift = learned_with_residual(ds, rows, needed, ids, learned, cfg, residual)
    center = center + shift[:, None]
    y = read_rows(ds.data.target, rows).astype(np.float64)
    v = np.asarray(read_rows(ds.data.mask, rows), dtype=bool)
    sizes = history_sizes(history, ids)
    labels = history_buckets(sizes)
    # half the runners calibrate: half the smallest-group size, as with the whole split
    half_min = max(1, cfg.band.min_workouts // 2)
    per_bucket = replace(cfg.band, pool_history=False, min_workouts=half_min)
    pooled = replace(cfg.band, pool_history=True, min_workouts=half_min)
    rng = np.random.default_rng(args.seed)
    names = [*BUCKETS, "all"]
    errors: dict[str, list[list[float]]] = {
        "per bucket": [],
        "history pooled": [],
        "all pooled": [],
    }
    runners = np.unique(users)
    for _ in range(args.splits):
        half = np.isin(users, rng.permutation(runners)[: len(runners) // 2])
        for g in errors:
            if g == "all pooled":
                cal_sizes = np.zeros_like(sizes)  # one bucket: every row calibrates together
                b = replace(per_bucket, min_workouts=1)
            else:
                cal_sizes, b = sizes, per_bucket if g == "per bucket" else pooled
            cal = calibrate(y[half], center[half], spread[half], v[half], cal_sizes[half], b)
            q = cal.multipliers(np.zeros_like(sizes) if g == "all pooled" else sizes)
            lo, hi = band(center, spread, q)
            inside = (y >= lo) & (y <= hi) & v
            row = []
            for name in names:
                sel = ~half & ((labels == name) if name != "all" else True)
                n = v[sel].sum()
                row.append(inside[sel].sum() / n - cfg.band.level if n else np.nan)
            errors[g].append(row)
    print(f"{len(runners)} validation runners, {args.splits} half-splits; per {names}:")
    for g, e in errors.items():
        e = np.abs(np.array(e))
        print(f"  {g:15s} mean |coverage - {cfg.band.level:g}| {np.round(np.nanmean(e, 0), 3)}"
              f"  share within 0.03 {np.round(np.nanmean(e <= 0.03, 0), 2)}")  # fmt: skip


if __name__ == "__main__":
    main()
