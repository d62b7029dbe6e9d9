"""Replay the headline forecaster offline on the simulation's test runners, and score other
ways to weigh (or build) the personal predictors against the simulator's truth (issue 24).

Reads what `dvc repro` left in this repo: data/eval/predictions.parquet (per step: recorded HR,
the population, offset and learned curves as evaluate served them), data/eval/workouts.parquet
(per workout: runner, earlier runs, the truth's runs after a level change), data/clean (start
times), the simulator's truth (`day`, `change_day`) and metrics/evaluate.json (the
plain constant's HR). Writes nothing. Each variant prints: MAE over the test workouts, the
headline / plain constant on workouts with >= 3 earlier runs, headline / cold from the 3rd to
the 5th run after a true change, and the share of runners made > 10% worse.

    python benchmarks/headline_replay.py [--variant engine loo zgate prior:4 ...]

Forecasters (weights over the served population, offset and learned curves):
  engine        `hrpred.personal.engine.headline_weights` with params.yaml's eta and decay, on
                records rebuilt from the served curves: reproduces metrics/evaluate.json
  eta:E:D       the same rule with eta E and decay D
  loo           the offset's loss on each earlier run from an offset of the OTHER earlier runs
                (leave-one-out; its MAE from a normal model of that run's residual)
  zgate         weights exp(-|z|) of each predictor's mean loss gap to the leader over its
                standard error (a predictor is dropped only when it is consistently worse)
  prior:C       a prior loss of C BPM for offset and learned that decays like an earlier run
  js:C          the engine's weights over a different offset curve: the offset rule times
                max(0, 1 - C s^2 / (n_eff mean^2)) (positive-part James-Stein; s^2 the runner's
                run-to-run variance with personal.change.noise_bpm worth 5 runs); js:0 is the
                rule without change detection, its baseline
Offsets alone (population + offset; the offset rule's shrink and k from params.yaml):
  offset        all earlier runs (no change detection); offset_cut: only the earlier runs
                after the predicted run's latest true level change (the simulator's truth);
  offset_filter:Q:P:J  a local-level filter over the earlier runs' mean residuals (drift Q
                BPM^2/day, a jump of sd J BPM with probability P per run, run noise
                personal.change.noise_bpm)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrpred.params import load_config  # noqa: E402
from hrpred.personal.config import PersonalConfig  # noqa: E402
from hrpred.personal.engine import RunRecord, headline_weights  # noqa: E402
from hrpred.personal.rules import shrunk_mean  # noqa: E402

DAY_S = 86400.0


class Runs:
    """The test workouts in each runner's time order, with their served curves."""

    def __init__(self, root: Path) -> None:
        w = pd.read_parquet(root / "data/eval/workouts.parquet")
        w = w[w["split"] == "test"].sort_values(["user_id", "n_history"], kind="mergesort")
        cols = ["workout_id", "split", "hr_true", "valid", "hr_cold", "hr_offset", "hr_learned"]
        p = pq.read_table(root / "data/eval/predictions.parquet", columns=cols).to_pandas()
        p = p[(p["split"] == "test") & p["valid"]]
        ts = pq.read_table(
            root / "data/clean/workouts.parquet", columns=["workout_id", "timestamp"]
        )
        start = {i: t[0] for i, t in zip(*ts.to_pydict().values(), strict=True)}
        truth = pd.read_parquet(
            root / "data/raw/simulated_truth.parquet",
            columns=["workout_id", "day", "change_day"],
        ).set_index("workout_id")
        groups = dict(tuple(p.groupby("workout_id", sort=False)))
        self.users = w["user_id"].to_numpy()
        self.history = w["n_history"].to_numpy()
        self.after = w["runs_after_change"].to_numpy()
        ids = w["workout_id"].to_numpy()
        self.start = np.array([float(start[i]) for i in ids])
        self.day = truth["day"].reindex(ids).to_numpy(np.float64)
        self.change_day = truth["change_day"].reindex(ids).to_numpy(np.float64)
        self.y, self.curves = [], []
        for i in ids:
            g = groups.get(i)
            cols3 = ["hr_cold", "hr_offset", "hr_learned"]
            self.y.append(np.zeros(0) if g is None else g["hr_true"].to_numpy(np.float64))
            self.curves.append(np.zeros((3, 0)) if g is None else g[cols3].to_numpy(np.float64).T)
        self.n = np.array([len(y) for y in self.y])
        self.maes = np.array(
            [np.abs(c - y).mean(axis=1) if len(y) else [np.nan] * 3 for c, y in self.runs()]
        )
        self.res = np.array([(y - c[0]).mean() if len(y) else np.nan for c, y in self.runs()])
        self.order = [np.flatnonzero(self.users == u) for u in pd.unique(self.users)]

    def runs(self):
        return zip(self.curves, self.y, strict=True)


def half_normal_sd(m: float, mae: float) -> float:
    """s with E|N(m, s^2)| = mae (bisection; ~0 when mae <= |m|)."""
    lo, hi = 1e-6, max(3.0 * mae, 1.0)
    for _ in range(60):
        s = (lo + hi) / 2
        lo, hi = (s, hi) if abs_normal(m, s) < mae else (lo, s)
    return (lo + hi) / 2


def abs_normal(m: float, s: float) -> float:
    """E|X| for X ~ N(m, s^2)."""
    m = abs(m)
    return s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * math.erf(
        m / (s * math.sqrt(2))
    )


def shrunk(cfg, values: np.ndarray, days: np.ndarray) -> float:
    """The offset rule (`hrpred.personal.rules.shrunk_mean`) over values with their |days|
    from the predicted run, nearest first."""
    o = np.argsort(days, kind="stable")
    return shrunk_mean(cfg, values[o], days[o])[0]


def forecaster(runs: Runs, pcfg: PersonalConfig, name: str) -> np.ndarray:
    """Per test workout: the MAE of the weighted served curves under one weighting rule."""
    kind, *args = name.split(":")
    eta, decay = pcfg.headline.eta, pcfg.headline.decay
    if kind == "eta":
        eta, decay = float(args[0]), float(args[1])
    sd = np.array([half_normal_sd(m, a) if np.isfinite(m) else np.nan
                   for m, a in zip(runs.res, runs.maes[:, 0], strict=True)])  # fmt: skip
    out = np.full(len(runs.n), np.nan)
    for idx in runs.order:
        for k, i in enumerate(idx):
            earlier = [j for j in idx[:k] if runs.n[j] > 0]
            m = runs.maes[earlier]
            if kind in ("engine", "eta"):
                recs = [RunRecord(runs.start[j], int(runs.n[j]), 0.0, 0.0, 0.0,
                                  tuple(runs.maes[j] * runs.n[j])) for j in earlier]  # fmt: skip
                cfg = type(pcfg.headline)(eta=eta, decay=decay)
                w = np.array(headline_weights(cfg, recs, True))
            else:
                w = _weights(runs, pcfg, kind, args, earlier, m, sd, eta, decay)
            c, y = runs.curves[i], runs.y[i]
            if len(y):
                out[i] = np.abs(w @ c - y).mean()
    return out


def _weights(runs, pcfg, kind, args, earlier, m, sd, eta, decay) -> np.ndarray:
    if len(earlier) == 0:
        return np.full(3, 1 / 3)
    disc = decay ** np.arange(len(earlier) - 1, -1, -1, dtype=np.float64)
    m = m.copy()
    if kind == "loo" and len(earlier) >= 2:
        st = runs.start[earlier] / DAY_S
        for a, j in enumerate(earlier):
            others = np.arange(len(earlier)) != a
            off = shrunk(pcfg.offset, runs.res[earlier][others], np.abs(st[others] - st[a]))
            m[a, 1] = abs_normal(runs.res[j] - off, sd[j])
    loss = (disc[:, None] * m).sum(axis=0)
    if kind == "prior":
        loss = loss + np.array([0.0, 1.0, 1.0]) * float(args[0]) * decay ** len(earlier)
    if kind == "zgate":
        gap = m - m[:, [int(np.argmin(loss))]]
        sw = disc.sum()
        mean = (disc[:, None] * gap).sum(axis=0) / sw
        var = (disc[:, None] * (gap - mean) ** 2).sum(axis=0) / sw
        n_eff = sw * sw / (disc * disc).sum()
        se = np.sqrt((var * n_eff + 2 * 2.0**2) / (n_eff + 2) / n_eff)  # prior: 2 runs of sd 2
        w = np.exp(-np.maximum(mean, 0) / se)
    else:
        w = np.exp(-eta * (loss - loss.min()))
    return w / w.sum()


def local_level(r: np.ndarray, t: np.ndarray, sig: float, tau: float, q: float, p: float,
                jump: float) -> float:  # fmt: skip
    """The level after residuals `r` at days `t` (oldest first): a Kalman filter whose step
    is a drift of variance q per day, plus a jump of sd `jump` with probability p, the two
    branches merged by their likelihoods (moment matching)."""
    mean, var, last = 0.0, tau * tau, None
    for rj, tj in zip(r, t, strict=True):
        dt = 0.0 if last is None else max(tj - last, 0.0)
        last = tj
        parts = []
        for prob, add in ((1 - p, q * dt), (p, q * dt + jump * jump)):
            v = var + add
            s = v + sig * sig
            gain = v / s
            lik = math.exp(-0.5 * (rj - mean) ** 2 / s) / math.sqrt(s)
            parts.append((prob * lik, mean + gain * (rj - mean), (1 - gain) * v))
        tot = sum(x[0] for x in parts) or 1.0
        new = sum(x[0] * x[1] for x in parts) / tot
        var = sum(x[0] * (x[2] + (x[1] - new) ** 2) for x in parts) / tot
        mean = new
    return mean


def js_offset(cfg, values: np.ndarray, days: np.ndarray, c: float, noise: float) -> float:
    """The offset rule times max(0, 1 - c s^2 / (n_eff mean^2)): a positive-part (James-Stein)
    shrink, s^2 the run-to-run variance pooled with `noise`^2 worth 5 runs."""
    o = np.argsort(days, kind="stable")[: cfg.k]
    if len(o) == 0:
        return 0.0
    v, w = values[o], np.exp(-math.log(2) * days[o] / cfg.half_life_days)
    mean = float((w * v).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w * w).sum())
    s2 = (5.0 * noise**2 + float(((v - mean) ** 2).sum())) / (5.0 + len(v) - 1)
    keep = max(0.0, 1.0 - c * s2 / (n_eff * max(mean * mean, 1e-9)))
    return shrunk(cfg, values, days) * keep


def js_headline(runs: Runs, pcfg: PersonalConfig, name: str) -> np.ndarray:
    """Per test workout: the headline with the offset curve replaced by `js_offset` (c from
    `js:C`; c 0 is the plain rule without change detection) and the engine's weights
    recomputed from that offset's errors on the earlier runs."""
    c = float(name.split(":")[1])
    maes = runs.maes.copy()
    out = np.full(len(runs.n), np.nan)
    for idx in runs.order:
        for k, i in enumerate(idx):
            earlier = np.array([j for j in idx[:k] if runs.n[j] > 0], dtype=np.int64)
            days = (runs.start[i] - runs.start[earlier]) / DAY_S
            off = js_offset(pcfg.offset, runs.res[earlier], days, c, pcfg.change.noise_bpm)
            curves, y = runs.curves[i].copy(), runs.y[i]
            if not len(y):
                continue
            curves[1] = curves[0] + off
            maes[i, 1] = np.abs(curves[1] - y).mean()
            recs = [RunRecord(runs.start[j], int(runs.n[j]), 0.0, 0.0, 0.0,
                              tuple(maes[j] * runs.n[j])) for j in earlier]  # fmt: skip
            w = np.array(headline_weights(pcfg.headline, recs, True))
            out[i] = np.abs(w @ curves - y).mean()
    return out


def offset_alone(runs: Runs, pcfg: PersonalConfig, name: str) -> np.ndarray:
    """Per test workout: the MAE of population + an offset built one way (see the doc)."""
    kind, *args = name.split(":")
    cfg = pcfg.offset
    out = np.full(len(runs.n), np.nan)
    for idx in runs.order:
        for k, i in enumerate(idx):
            e = np.array([j for j in idx[:k] if runs.n[j] > 0], dtype=np.int64)
            if kind == "offset_cut" and np.isfinite(runs.change_day[i]):
                e = e[runs.day[e] >= runs.change_day[i]]
            days = (runs.start[i] - runs.start[e]) / DAY_S
            if kind == "offset_filter":
                q, p, jump = map(float, args)
                sig = pcfg.change.noise_bpm
                tau = sig / math.sqrt(cfg.shrink)  # the rule's prior as a level spread
                off = local_level(runs.res[e], runs.start[e] / DAY_S, sig, tau, q, p, jump)
            else:
                off = shrunk(cfg, runs.res[e], days)
            c, y = runs.curves[i], runs.y[i]
            if len(y):
                out[i] = np.abs(y - c[0] - off).mean()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ["engine", "loo", "zgate", "prior:4", "prior:-4", "offset", "offset_cut",
               "offset_filter:0.1:0.02:15"]  # fmt: skip
    ap.add_argument("--variant", nargs="+", default=default)
    args = ap.parse_args()
    pcfg = load_config(PersonalConfig, "personal", ROOT / "params.yaml")
    runs = Runs(ROOT)
    const = json.loads((ROOT / "metrics/evaluate.json").read_text())["baselines"]["constant"]
    plain = np.array([np.abs(y - const["hr_bpm"]).sum() for y in runs.y])
    cold = np.array([np.abs(c[0] - y).sum() for c, y in runs.runs()])
    many = runs.history >= 3
    late = (runs.after >= 3) & (runs.after <= 5)
    print(f"{len(runs.n)} test workouts of {len(runs.order)} runners; >= 3 earlier runs: "
          f"{int(many.sum())}; 3rd-5th run after a change: {int(late.sum())}")  # fmt: skip
    for name in args.variant:
        how = offset_alone if name.startswith("offset") else forecaster
        how = js_headline if name.startswith("js:") else how
        err = how(runs, pcfg, name) * runs.n
        frame = pd.DataFrame({"u": runs.users, "e": err, "c": cold, "n": runs.n})
        per = frame.groupby("u")[["e", "c", "n"]].sum()
        per = per[per["n"] > 0]
        print(
            f"{name:26s} MAE {np.nansum(err) / runs.n.sum():.4f}  >=3 / constant "
            f"{np.nansum(err[many]) / plain[many].sum():.4f}  late / cold "
            f"{np.nansum(err[late]) / cold[late].sum():.4f}  made worse "
            f"{(per['e'] > 1.1 * per['c']).mean():.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
