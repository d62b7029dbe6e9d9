"""Which history buckets should share the band's conformal multiplier? Decided on VALIDATION
runners only: split them at random in halves, calibrate on one half, score per-step coverage on
the other, repeat (a group needs half of `evaluate.band.min_workouts` workouts, as half the
runners calibrate); report mean |coverage - level| and the share of splits within +-0.03, per
history bucket and overall, its mean signed error (a bias a grouping builds in), the
pinball loss of the band's ends and the sd of the scored runners' own coverage on workouts with
history (how unequal the band is between runners), for three groupings: one
multiplier per bucket, the cold bucket apart and the buckets with history pooled
(`evaluate.band.pool_history`), everything pooled; each without and with the runner scale of
`evaluate.band.runner` (its reference score taken from the calibrating half).

Reads the pipeline's outputs in the current repo (models/model.pt, data/features, data/split)
and params.yaml (`evaluate`, `personal.residual`, `evaluate.band`); writes nothing.

    python benchmarks/band_grouping.py [--splits 300] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

MIN_RUNNER_STEPS = 300  # a runner's coverage counts in the per-runner sd from this many steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from hrpred.evaluate.config import EvalConfig
    from hrpred.evaluate.personal import learned_personal, learned_with_residual
    from hrpred.params import load_config
    from hrpred.personal.config import OffsetConfig
    from hrpred.split.history import BUCKETS, history_buckets, history_sizes
    from hrpred.store import Layout, open_dataset, open_history, read_rows
    from hrpred.uncertainty import (
        band,
        calibrate,
        pinball,
        quantile_levels,
        runner_entry,
        runner_factors,
    )

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
    center, spread, shift, scores = learned_with_residual(
        ds, rows, needed, ids, learned, cfg, residual
    )
    center = center + shift[:, None]
    y = read_rows(ds.data.target, rows).astype(np.float64)
    v = np.asarray(read_rows(ds.data.mask, rows), dtype=bool)
    sizes = history_sizes(history, ids)
    labels = history_buckets(sizes)
    taus = quantile_levels(cfg.band.level)
    # half the runners calibrate: half the smallest-group size, as with the whole split
    half_min = max(1, cfg.band.min_workouts // 2)
    per_bucket = replace(cfg.band, pool_history=False, min_workouts=half_min)
    pooled = replace(cfg.band, pool_history=True, min_workouts=half_min)
    rule = cfg.band.runner
    rng = np.random.default_rng(args.seed)
    names = [*BUCKETS, "all"]
    on = f"runner scale k {rule.k}, shrink {rule.shrink:g}"
    errors: dict[tuple[str, bool], list[list[float]]] = {
        (g, r): [] for r in (False, True) for g in ("per bucket", "history pooled", "all pooled")
    }
    runners, runner_idx = np.unique(users, return_inverse=True)
    for _ in range(args.splits):
        half = np.isin(users, rng.permutation(runners)[: len(runners) // 2])
        # the runner scale's reference: the calibrating half's mean score
        ref = runner_entry(rule, scores, ids[half])["ref"]
        factor = runner_factors(rule, ref, needed, scores, ids) if rule.k > 0 else 1.0
        for g, with_runner in errors:
            s = spread * (np.asarray(factor)[:, None] if with_runner else 1.0)
            if g == "all pooled":
                cal_sizes = np.zeros_like(sizes)  # one bucket: every row calibrates together
                b = replace(per_bucket, min_workouts=1)
            else:
                cal_sizes, b = sizes, per_bucket if g == "per bucket" else pooled
            cal = calibrate(y[half], center[half], s[half], v[half], cal_sizes[half], b)
            q = cal.multipliers(np.zeros_like(sizes) if g == "all pooled" else sizes)
            lo, hi = band(center, s, q)
            inside = (y >= lo) & (y <= hi) & v
            row = []
            for name in names:
                sel = ~half & ((labels == name) if name != "all" else True)
                n = v[sel].sum()
                row.append(inside[sel].sum() / n - cfg.band.level if n else np.nan)
            row.append(0.5 * (pinball(y[~half], lo[~half], taus[0], v[~half])
                              + pinball(y[~half], hi[~half], taus[1], v[~half])))  # fmt: skip
            # conditional coverage: the sd over the scored half's runners of their own coverage
            # on workouts with history (runners with >= MIN_RUNNER_STEPS such steps)
            hist = ~half & (labels != BUCKETS[0])
            per_in = np.bincount(runner_idx[hist], inside[hist].sum(1), len(runners))
            per_n = np.bincount(runner_idx[hist], v[hist].sum(1), len(runners))
            big = per_n >= MIN_RUNNER_STEPS
            row.append(float(np.std(per_in[big] / per_n[big], ddof=1)))
            errors[(g, with_runner)].append(row)
    print(f"{len(runners)} validation runners, {args.splits} half-splits; per {names}:")
    for (g, with_runner), e in errors.items():
        a = np.array(e)
        err, pin, sd = np.abs(a[:, :-2]), a[:, -2], a[:, -1]
        label = f"{g}, {on if with_runner else 'no runner scale'}"
        print(f"  {label:45s} mean |coverage - {cfg.band.level:g}| {np.round(np.nanmean(err, 0), 3)}"
              f"  mean signed {np.round(np.nanmean(a[:, :-2], 0), 3)}"
              f"  share within 0.03 {np.round(np.nanmean(err <= 0.03, 0), 2)}"
              f"  pinball {np.nanmean(pin):.3f}  per-runner coverage sd {np.nanmean(sd):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
