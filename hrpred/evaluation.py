"""Evaluation of a predictor on the val/test splits, with baselines, categories and noise floor.

The predictor is any function `features_unscaled[n, T, F] -> hr[n, T]` (the stage passes the
trained LSTM), so the whole report can be built and tested without a checkpoint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hrpred.baselines import (
    fit_constant,
    fit_physio,
    fit_ridge,
    scale_features,
)
from hrpred.categories import CategoryRules, categorize_all, report_only_hr_band
from hrpred.metrics import mae, per_workout_mae, rmse, summarize

Predictor = Callable[[np.ndarray], np.ndarray]
SPLITS = ("train", "val", "test")


class EvalInputError(ValueError):
    """The evaluation inputs are missing or inconsistent (message says what to rerun)."""


@dataclass
class EvalData:
    """Arrays of data/features (memory-mapped) with the split assignment."""

    features: np.ndarray  # [N, T, F] float32, unscaled
    target: np.ndarray  # [N, T] recorded HR (BPM)
    mask: np.ndarray  # [N, T] valid steps
    elapsed: np.ndarray  # [N, T] seconds since start
    names: list[str]
    index: pd.DataFrame  # one row per array row, sorted by `row`
    scaler: dict[str, dict[str, float]]
    rows: dict[str, np.ndarray]  # split -> array rows (sorted)

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """Real (non-padding) steps of each row, from the index (never from the HR mask)."""
        t = self.target.shape[1]
        return np.clip(self.index["length"].to_numpy()[rows], 0, t).astype(np.int64)


@dataclass(frozen=True)
class EvalConfig:
    """Knobs of the evaluate stage (params.yaml `evaluate:`)."""

    seed: int = 42
    batch_rows: int = 256
    ridge_alpha: float = 1.0
    physio_taus_s: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0)
    physio_climb_clip: float = 30.0
    baseline_fit_rows: int = 20000
    rules: CategoryRules = field(default_factory=CategoryRules)
    hr_band_edges: tuple[float, ...] = (130.0, 150.0, 170.0)


def load_eval_data(features_dir: Path, split_dir: Path) -> EvalData:
    """Read data/features and data/split; raise EvalInputError with a one-line fix."""
    need = [features_dir / f for f in ("features.npy", "target.npy", "mask.npy", "elapsed.npy")]
    need += [features_dir / "index.parquet", features_dir / "feature_names.json"]
    need += [split_dir / "assignment.parquet", split_dir / "scaler.json"]
    for p in need:
        if not p.exists():
            raise EvalInputError(f"{p} not found: run `dvc repro split` first")
    try:
        arrays = {
            k: np.load(features_dir / f"{k}.npy", mmap_mode="r")
            for k in ("features", "target", "mask", "elapsed")
        }
        names = json.loads((features_dir / "feature_names.json").read_text())
        index = pd.read_parquet(features_dir / "index.parquet")
        assignment = pd.read_parquet(split_dir / "assignment.parquet")
        scaler = json.loads((split_dir / "scaler.json").read_text())
    except (OSError, ValueError) as e:
        raise EvalInputError(f"cannot read the features/split files ({e}); rerun featurize") from e
    n, t, f = arrays["features"].shape
    if any(arrays[k].shape != (n, t) for k in ("target", "mask", "elapsed")) or len(names) != f:
        raise EvalInputError("data/features arrays disagree in shape: rerun featurize")
    for col in ("row", "workout_id", "split"):
        if col not in assignment.columns:
            raise EvalInputError(f"assignment.parquet lacks '{col}': rerun split")
    for col in ("workout_id", "length"):
        if col not in index.columns:
            raise EvalInputError(f"index.parquet lacks '{col}': rerun featurize")
    index = index.sort_values("row").reset_index(drop=True) if "row" in index else index
    if len(index) != n:
        raise EvalInputError(f"index.parquet has {len(index)} rows for {n} arrays: rerun featurize")
    rows = {}
    for s in SPLITS:
        r = np.sort(assignment.loc[assignment["split"] == s, "row"].to_numpy(dtype=np.int64))
        if len(r) and (r.min() < 0 or r.max() >= n):
            raise EvalInputError("assignment.parquet rows out of range: rerun split")
        rows[s] = r
    a = assignment.set_index("row")["workout_id"]
    known = index["workout_id"].to_numpy()[a.index.to_numpy()]
    if not np.array_equal(known, a.to_numpy()):
        raise EvalInputError("assignment.parquet does not match index.parquet: rerun split")
    return EvalData(
        arrays["features"],
        arrays["target"],
        arrays["mask"],
        arrays["elapsed"],
        list(names),
        index,
        scaler,
        rows,
    )


def predict_rows(
    predict: Predictor, data: EvalData, rows: np.ndarray, batch_rows: int, desc: str
) -> np.ndarray:
    """Predictions [len(rows), T] computed chunk by chunk (bounded memory)."""
    out = np.zeros((len(rows), data.target.shape[1]), dtype=np.float64)
    for start in tqdm(
        range(0, len(rows), batch_rows), desc=desc, unit="chunk", file=sys.stderr, leave=False
    ):
        chunk = rows[start : start + batch_rows]
        out[start : start + len(chunk)] = np.asarray(
            predict(np.asarray(data.features[chunk])), dtype=np.float64
        )
    return out


def _col(data: EvalData, name: str, rows: np.ndarray) -> np.ndarray:
    if name not in data.names:
        raise EvalInputError(
            f"the physio baseline and the categories need the feature '{name}': "
            "add it to featurize.features"
        )
    return np.asarray(data.features[rows, :, data.names.index(name)], dtype=np.float64)


@dataclass
class SplitResult:
    """Arrays of one evaluated split (rows, truth, predictions of the model and baselines)."""

    rows: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    elapsed: np.ndarray
    model: np.ndarray
    baselines: dict[str, np.ndarray]


def fit_subsample(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` of `rows` (seeded, kept in order): the baselines have a handful of
    parameters, and fitting them on whole full-scale train arrays in float64 costs GBs."""
    if limit <= 0 or len(rows) <= limit:
        return rows
    pick = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
    return rows[np.sort(pick)]


def fit_and_predict(
    data: EvalData, predict: Predictor, cfg: EvalConfig
) -> tuple[dict[str, SplitResult], dict[str, dict[str, float]]]:
    """Fit the baselines on train, predict val and test with everything."""
    train = data.rows["train"]
    if len(train) == 0:
        raise EvalInputError("no train rows in assignment.parquet: rerun split")
    train = fit_subsample(train, cfg.baseline_fit_rows, cfg.seed)
    y_tr = np.asarray(data.target[train], dtype=np.float64)
    m_tr = np.asarray(data.mask[train], dtype=bool)
    if not m_tr.any():
        raise EvalInputError("no valid train steps: check featurize/clean outputs")
    el_tr = np.asarray(data.elapsed[train], dtype=np.float64)

    const = fit_constant(y_tr, m_tr)

    def scaled(x: np.ndarray) -> np.ndarray:
        return scale_features(x, data.names, data.scaler)

    ridge = fit_ridge(_ScaledView(data.features, train, scaled), y_tr, m_tr, cfg.ridge_alpha)
    physio = fit_physio(
        _col(data, "speed", train),
        _col(data, "altitude", train),
        el_tr,
        y_tr,
        m_tr,
        cfg.physio_taus_s,
        cfg.physio_climb_clip,
    )
    fitted = {
        "constant": {"hr_bpm": const.value},
        "ridge": {"alpha": ridge.alpha, "intercept": ridge.intercept},
        "physio": {
            "tau_s": physio.tau_s,
            "h0": physio.h0,
            "a": physio.a,
            "b_per_kmh": physio.b,
            "c_per_m_per_min": physio.c,
        },
    }
    results = {}
    for split in ("val", "test"):
        rows = data.rows[split]
        el = np.asarray(data.elapsed[rows], dtype=np.float64)
        ridge_pred = predict_rows(
            lambda x: ridge.predict(scaled(x)), data, rows, cfg.batch_rows, f"ridge {split}"
        )
        results[split] = SplitResult(
            rows=rows,
            target=np.asarray(data.target[rows], dtype=np.float64),
            valid=np.asarray(data.mask[rows], dtype=bool),
            elapsed=el,
            model=predict_rows(predict, data, rows, cfg.batch_rows, f"model {split}"),
            baselines={
                "constant": const.predict((len(rows), data.target.shape[1])),
                "ridge": ridge_pred,
                "physio": physio.predict(
                    _col(data, "speed", rows), _col(data, "altitude", rows), el
                ),
            },
        )
    return results, fitted


class _ScaledView:
    """Row-chunk view of the features that scales on access (fit_ridge slices it by rows)."""

    def __init__(self, features: np.ndarray, rows: np.ndarray, fn: Callable) -> None:
        self._f, self._rows, self._fn = features, rows, fn
        self.shape = (len(rows), *features.shape[1:])

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self._fn(np.asarray(self._f[self._rows[sl]]))


def _group_metrics(
    labels: Sequence[str], res: SplitResult, min_workouts: int = 1
) -> dict[str, dict[str, float | int]]:
    """Model (and baseline MAE) per label, over the workouts of each label."""
    labels = np.asarray(labels)
    out: dict[str, dict[str, float | int]] = {}
    for lab in sorted(set(labels.tolist())):
        sel = labels == lab
        if sel.sum() < min_workouts:
            continue
        s = summarize(res.target[sel], res.model[sel], res.valid[sel], res.elapsed[sel])
        entry: dict[str, float | int] = {
            "n_workouts": s["n_workouts"],
            "n_steps": s["n_steps"],
            "mae": s["mae"],
            "rmse": s["rmse"],
            "workout_mae_median": s["workout_mae_median"],
            "bias": s["bias"],
        }
        for name, pred in res.baselines.items():
            entry[f"{name}_mae"] = mae(res.target[sel], pred[sel], res.valid[sel])
        out[lab] = entry
    return out


def input_categories(data: EvalData, rows: np.ndarray, rules: CategoryRules) -> list[str]:
    """Input-only category of each row (speed, altitude, elapsed; never HR).

    The easy rule's per-user reference speed uses every row of the same users (any split):
    only their inputs are read.
    """
    users = data.index["user_id"].to_numpy() if "user_id" in data.index else None
    if users is None or rules.easy_reference != "user":
        ref_rows, ref_users = rows, None
    else:
        ref_rows = np.flatnonzero(np.isin(users, users[rows]))
        ref_users = users[ref_rows]
    cats = categorize_all(
        _col(data, "speed", ref_rows),
        _col(data, "altitude", ref_rows),
        np.asarray(data.elapsed[ref_rows], dtype=np.float64),
        data.lengths(ref_rows),
        rules,
        ref_users,
    )
    by_row = dict(zip(ref_rows.tolist(), cats, strict=True))
    return [by_row[int(r)] for r in rows]


def noise_floor(
    data: EvalData, res: SplitResult, truth: pd.DataFrame
) -> dict[str, float | int] | None:
    """How close a perfect physiology predictor could get, from the simulator's truth.

    Only rows whose workout id is in the truth with the same number of steps are used (clean
    keeps steps 1:1 for those); returns None when none match (e.g. real data).
    """
    need = {"workout_id", "hr_clean", "hr_physio"}
    if not need <= set(truth.columns):
        return None
    by_id = truth.drop_duplicates("workout_id").set_index("workout_id")
    idx = data.index.iloc[res.rows]
    t = data.target.shape[1]
    clean = np.full((len(res.rows), t), np.nan)
    physio = np.full((len(res.rows), t), np.nan)
    matched = np.zeros(len(res.rows), dtype=bool)
    for i, (wid, length, offset, steps) in enumerate(
        zip(
            idx["workout_id"].to_numpy(),
            data.lengths(res.rows),
            idx["offset"].to_numpy() if "offset" in idx else np.zeros(len(idx), dtype=int),
            idx["workout_steps"].to_numpy() if "workout_steps" in idx else np.full(len(idx), -1),
            strict=True,
        )
    ):
        if wid not in by_id.index:
            continue
        hc = np.asarray(by_id.at[wid, "hr_clean"], dtype=np.float64)
        hp = np.asarray(by_id.at[wid, "hr_physio"], dtype=np.float64)
        if len(hc) != len(hp) or (steps >= 0 and len(hc) != steps) or offset + length > len(hc):
            continue
        clean[i, :length] = hc[offset : offset + length]
        physio[i, :length] = hp[offset : offset + length]
        matched[i] = True
    if not matched.any():
        return None
    v = res.valid & matched[:, None] & np.isfinite(clean) & np.isfinite(physio)
    y = res.target
    return {
        "n_workouts": int(matched.sum()),
        "n_unmatched": int((~matched).sum()),
        "n_steps": int(v.sum()),
        "clean_vs_physio_mae": mae(clean, physio, v),
        "target_vs_clean_mae": mae(y, clean, v),
        "target_vs_physio_mae": mae(y, physio, v),
        "target_vs_physio_rmse": rmse(y, physio, v),
        "model_vs_physio_mae": mae(physio, res.model, v),
        "model_mae_same_steps": mae(y, res.model, v),
    }


def archetype_agreement(
    data: EvalData, rows: np.ndarray, categories: Sequence[str], truth: pd.DataFrame
) -> float | None:
    """Fraction of rows whose input-only category equals the simulator archetype (measurement)."""
    if not {"workout_id", "archetype"} <= set(truth.columns):
        return None
    arche = truth.drop_duplicates("workout_id").set_index("workout_id")["archetype"]
    ids = data.index["workout_id"].to_numpy()[rows]
    known = np.isin(ids, arche.index.to_numpy())
    if not known.any():
        return None
    same = [c == arche.at[w] for c, w, k in zip(categories, ids, known, strict=True) if k]
    return float(np.mean(same))


def offset_diagnostics(res: SplitResult) -> dict[str, float]:
    """How much of the error is a constant offset per workout (e.g. the user's unknown HR level).

    `mae_workout_offset_removed`: MAE after subtracting each workout's mean error;
    `workout_bias_std`: spread of those per-workout mean errors (BPM).
    """
    err = np.where(res.valid, res.model - res.target, 0.0)
    n = res.valid.sum(axis=1)
    has = n > 0
    if not has.any():
        return {"mae_workout_offset_removed": float("nan"), "workout_bias_std": float("nan")}
    bias_w = err[has].sum(axis=1) / n[has]
    resid = np.abs(err[has] - bias_w[:, None])[res.valid[has]]
    return {
        "mae_workout_offset_removed": float(resid.mean()),
        "workout_bias_std": float(bias_w.std()),
    }


def build_report(
    data: EvalData,
    results: dict[str, SplitResult],
    fitted: dict[str, dict[str, float]],
    categories: Sequence[str],
    cfg: EvalConfig,
    truth: pd.DataFrame | None,
) -> dict:
    """metrics/evaluate.json as a nested dict.

    Keys: test, val, baselines, comparison, categories, noise_floor, diagnostics, counts.
    """
    report: dict = {}
    for split in ("test", "val"):
        r = results[split]
        report[split] = summarize(r.target, r.model, r.valid, r.elapsed)
    report["baselines"] = {}
    for name, params in fitted.items():
        entry = {
            split: summarize(
                results[split].target,
                results[split].baselines[name],
                results[split].valid,
                results[split].elapsed,
            )
            for split in ("test", "val")
        }
        entry.update(params)
        report["baselines"][name] = entry
    lstm = report["test"]["mae"]
    report["comparison"] = {
        f"test_mae_ratio_to_{name}": lstm / b["test"]["mae"] if b["test"]["mae"] else float("nan")
        for name, b in report["baselines"].items()
    }
    test = results["test"]
    cats = {"input_only": _group_metrics(categories, test)}
    bands = report_only_hr_band(test.target, test.valid, cfg.hr_band_edges)
    cats["report_only_hr_band"] = _group_metrics(bands, test)
    if truth is not None:
        agree = archetype_agreement(data, test.rows, categories, truth)
        if agree is not None:
            cats["archetype_agreement"] = agree
    report["categories"] = cats
    floor = noise_floor(data, test, truth) if truth is not None else None
    report["noise_floor"] = floor if floor is not None else {"available": 0}
    if floor is not None:
        report["noise_floor"]["available"] = 1
    report["diagnostics"] = {f"test_{k}": v for k, v in offset_diagnostics(test).items()}
    report["counts"] = {f"{s}_workouts": int(len(data.rows[s])) for s in SPLITS}
    return report


def predictions_frame(data: EvalData, results: dict[str, SplitResult]) -> pd.DataFrame:
    """Long table of every real (non-padding) step of val and test rows."""
    parts = []
    for split in ("val", "test"):
        r = results[split]
        lengths = data.lengths(r.rows)
        t = r.target.shape[1]
        inside = np.arange(t)[None, :] < lengths[:, None]
        ri, step = np.nonzero(inside)
        parts.append(
            pd.DataFrame(
                {
                    "row": r.rows[ri].astype(np.int64),
                    "workout_id": data.index["workout_id"].to_numpy()[r.rows][ri].astype(np.int64),
                    "split": split,
                    "step": step.astype(np.int32),
                    "t": r.elapsed[ri, step].astype(np.float32),
                    "hr_true": r.target[ri, step].astype(np.float32),
                    "hr_pred": r.model[ri, step].astype(np.float32),
                    "valid": r.valid[ri, step],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def workout_maes(res: SplitResult) -> np.ndarray:
    """Per-row MAE of the model (NaN where a row has no valid step)."""
    return per_workout_mae(res.target, res.model, res.valid)
