"""Evaluation of a predictor on the val/test splits, with baselines, categories and noise floor.

The predictor is any function `features_unscaled[n, T, F] -> hr[n, T]` (the stage passes the
trained LSTM), so the whole report can be built and tested without a checkpoint. Val and test
are processed `batch_rows` workouts at a time: metrics come from per-workout error sums, plot
data from running counts and the predictions table is written chunk by chunk, so memory stays
bounded at full scale (only the test split's model predictions are kept, for example traces).
"""

from __future__ import annotations

import json
import mmap
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from hrpred.evaluate.baselines import (
    ConstantBaseline,
    PhysioBaseline,
    RidgeBaseline,
    fit_constant,
    fit_physio,
    fit_ridge,
    scale_features,
)
from hrpred.evaluate.categories import CategoryRules, assign_all, describe_rows, report_only_hr_band
from hrpred.evaluate.metrics import RowSums, row_sums, summarize_sums
from hrpred.evaluate.plots import Example, PlotSums, Trace

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


def read_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`arr[rows]` for sorted `rows`; a memmap from np.load is read with plain file reads.

    Touching a memmap maps its file pages into the process (they count as resident memory
    until the process ends), so full-scale splits are read without the map instead.
    """
    rows = np.asarray(rows, dtype=np.int64)
    base = getattr(arr, "base", None)
    if not (
        isinstance(arr, np.memmap)
        and isinstance(base, mmap.mmap)
        and arr.filename
        and arr.flags.c_contiguous
    ):
        return np.asarray(arr[rows])
    out = np.empty((len(rows), *arr.shape[1:]), dtype=arr.dtype)
    if len(rows) == 0:
        return out
    row_bytes = out[0].nbytes
    view = out.reshape(len(rows), -1).view(np.uint8)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # contiguous runs: one read each
    with open(arr.filename, "rb") as f:
        for s, e in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            f.seek(int(arr.offset) + int(rows[s]) * row_bytes)
            if f.readinto(memoryview(view[s:e]).cast("B")) != (e - s) * row_bytes:
                raise EvalInputError(f"{arr.filename} is truncated: rerun featurize")
    return out


def _chunks(rows: np.ndarray, batch_rows: int, desc: str) -> Iterator[tuple[int, np.ndarray]]:
    """(first position, rows) chunks of `rows`, with a progress bar."""
    for start in tqdm(
        range(0, len(rows), batch_rows), desc=desc, unit="chunk", file=sys.stderr, leave=False
    ):
        yield start, rows[start : start + batch_rows]


def _feature_index(data: EvalData, name: str) -> int:
    if name not in data.names:
        raise EvalInputError(
            f"the physio baseline and the categories need the feature '{name}': "
            "add it to featurize.features"
        )
    return data.names.index(name)


def _col(data: EvalData, name: str, rows: np.ndarray, batch_rows: int = 1024) -> np.ndarray:
    """One feature column [len(rows), T] (float32, as stored), read chunk by chunk."""
    j = _feature_index(data, name)
    out = np.empty((len(rows), data.target.shape[1]), dtype=data.features.dtype)
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start : start + batch_rows]
        out[start : start + len(chunk)] = read_rows(data.features, chunk)[:, :, j]
    return out


def fit_subsample(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` of `rows` (seeded, kept in order): the baselines have a handful of
    parameters, and fitting them on whole full-scale train arrays in float64 costs GBs."""
    if limit <= 0 or len(rows) <= limit:
        return rows
    pick = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
    return rows[np.sort(pick)]


@dataclass
class Baselines:
    """The fitted reference predictors and their reported parameters."""

    constant: ConstantBaseline
    ridge: RidgeBaseline
    physio: PhysioBaseline
    scale: Callable[[np.ndarray], np.ndarray]

    def params(self) -> dict[str, dict[str, float]]:
        p = self.physio
        return {
            "constant": {"hr_bpm": self.constant.value},
            "ridge": {"alpha": self.ridge.alpha, "intercept": self.ridge.intercept},
            "physio": {
                "tau_s": p.tau_s,
                "h0": p.h0,
                "a": p.a,
                "b_per_kmh": p.b,
                "c_per_m_per_min": p.c,
            },
        }

    def predict(
        self, features: np.ndarray, elapsed: np.ndarray, speed_col: int, altitude_col: int
    ) -> dict[str, np.ndarray]:
        """Predictions [n, T] (float64) of every baseline for one chunk of rows."""
        el = np.asarray(elapsed, dtype=np.float64)
        return {
            "constant": self.constant.predict(el.shape),
            "ridge": self.ridge.predict(self.scale(features)),
            "physio": self.physio.predict(
                np.asarray(features[:, :, speed_col], dtype=np.float64),
                np.asarray(features[:, :, altitude_col], dtype=np.float64),
                el,
            ),
        }


def fit_baselines(data: EvalData, cfg: EvalConfig) -> Baselines:
    """Fit the baselines on (a seeded subsample of) the train rows."""
    train = data.rows["train"]
    if len(train) == 0:
        raise EvalInputError("no train rows in assignment.parquet: rerun split")
    train = fit_subsample(train, cfg.baseline_fit_rows, cfg.seed)
    # float32 as stored: the fits convert to float64 themselves (same values, half the memory)
    y_tr = read_rows(data.target, train)
    m_tr = np.asarray(read_rows(data.mask, train), dtype=bool)
    if not m_tr.any():
        raise EvalInputError("no valid train steps: check featurize/clean outputs")
    el_tr = read_rows(data.elapsed, train)

    def scaled(x: np.ndarray) -> np.ndarray:
        return scale_features(x, data.names, data.scaler)

    const = fit_constant(y_tr, m_tr)
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
    return Baselines(const, ridge, physio, scaled)


class _ScaledView:
    """Row-chunk view of the features that scales on access (fit_ridge slices it by rows)."""

    def __init__(self, features: np.ndarray, rows: np.ndarray, fn: Callable) -> None:
        self._f, self._rows, self._fn = features, rows, fn
        self.shape = (len(rows), *features.shape[1:])

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self._fn(read_rows(self._f, self._rows[sl]))


class NoiseFloorSums:
    """Sums for `noise_floor`, accumulated chunk by chunk from the simulator truth.

    Only rows whose workout id is in the truth with the same number of steps are used (clean
    keeps steps 1:1 for those).
    """

    NEED = frozenset({"workout_id", "hr_clean", "hr_physio"})
    KEYS = ("clean_physio", "target_clean", "target_physio", "model_physio", "model_target")

    def __init__(self, truth: pd.DataFrame) -> None:
        self.by_id = truth.drop_duplicates("workout_id").set_index("workout_id")
        self.matched = 0
        self.unmatched = 0
        self.n_steps = 0
        self.abs = dict.fromkeys(self.KEYS, 0.0)
        self.sq_target_physio = 0.0

    def add(
        self,
        index: pd.DataFrame,
        lengths: np.ndarray,
        target: np.ndarray,
        model: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """One chunk: `index` = its rows of index.parquet, arrays [n, T]."""
        n, t = valid.shape
        clean = np.full((n, t), np.nan)
        physio = np.full((n, t), np.nan)
        matched = np.zeros(n, dtype=bool)
        for i, (wid, length, offset, steps) in enumerate(
            zip(
                index["workout_id"].to_numpy(),
                lengths,
                index["offset"].to_numpy() if "offset" in index else np.zeros(n, dtype=int),
                index["workout_steps"].to_numpy() if "workout_steps" in index else np.full(n, -1),
                strict=True,
            )
        ):
            if wid not in self.by_id.index:
                continue
            hc = np.asarray(self.by_id.at[wid, "hr_clean"], dtype=np.float64)
            hp = np.asarray(self.by_id.at[wid, "hr_physio"], dtype=np.float64)
            if len(hc) != len(hp) or (steps >= 0 and len(hc) != steps) or offset + length > len(hc):
                continue
            clean[i, :length] = hc[offset : offset + length]
            physio[i, :length] = hp[offset : offset + length]
            matched[i] = True
        self.matched += int(matched.sum())
        self.unmatched += int((~matched).sum())
        v = valid & matched[:, None] & np.isfinite(clean) & np.isfinite(physio)
        y = np.asarray(target, dtype=np.float64)[v]
        c, p = clean[v], physio[v]
        m = np.asarray(model, dtype=np.float64)[v]
        self.n_steps += int(v.sum())
        for key, (a, b) in zip(self.KEYS, ((p, c), (c, y), (p, y), (m, p), (m, y)), strict=True):
            self.abs[key] += float(np.abs(a - b).sum())
        self.sq_target_physio += float(((p - y) ** 2).sum())

    def result(self) -> dict[str, float | int] | None:
        """The noise-floor entry of the report; None when no row matched (e.g. real data)."""
        if not self.matched:
            return None
        n = self.n_steps

        def mean(x: float) -> float:
            return x / n if n else float("nan")

        return {
            "n_workouts": self.matched,
            "n_unmatched": self.unmatched,
            "n_steps": n,
            "clean_vs_physio_mae": mean(self.abs["clean_physio"]),
            "target_vs_clean_mae": mean(self.abs["target_clean"]),
            "target_vs_physio_mae": mean(self.abs["target_physio"]),
            "target_vs_physio_rmse": float(np.sqrt(self.sq_target_physio / n))
            if n
            else float("nan"),
            "model_vs_physio_mae": mean(self.abs["model_physio"]),
            "model_mae_same_steps": mean(self.abs["model_target"]),
        }


@dataclass
class SplitResult:
    """What the report and plots need of one evaluated split (no [N, T] arrays but `model`).

    `sums`: per-row error sums of "model" and each baseline; `model`: the model's predictions
    [len(rows), T] in the predictor's dtype (float32 for the LSTM), kept for the test split only
    (example traces); `bands`: report-only HR band of each row.
    """

    rows: np.ndarray
    sums: dict[str, RowSums]
    bands: list[str]
    resid_abs_sum: float  # offset diagnostics: sum |err - workout mean error| ...
    resid_n: int  # ... over this many valid steps
    plot: PlotSums | None = None
    noise: NoiseFloorSums | None = None
    model: np.ndarray | None = None


def count_valid(data: EvalData, rows: np.ndarray, batch_rows: int) -> int:
    """Valid steps of `rows` (read chunk by chunk)."""
    return sum(
        int(np.asarray(read_rows(data.mask, rows[s : s + batch_rows]), dtype=bool).sum())
        for s in range(0, len(rows), batch_rows)
    )


def evaluate_split(
    data: EvalData,
    predict: Predictor,
    baselines: Baselines,
    split: str,
    cfg: EvalConfig,
    writer: PredictionsWriter | None = None,
    plot: PlotSums | None = None,
    noise: NoiseFloorSums | None = None,
    keep_model: bool = False,
) -> SplitResult:
    """Predict one split chunk by chunk (`cfg.batch_rows` rows) and accumulate its metrics.

    Memory is bounded by one chunk (plus `keep_model`'s [n, T] predictions when asked).
    """
    rows = data.rows[split]
    t = data.target.shape[1]
    speed_col = _feature_index(data, "speed")
    alt_col = _feature_index(data, "altitude")
    lengths = data.lengths(rows)
    ids = data.index["workout_id"].to_numpy()
    parts: dict[str, list[RowSums]] = {"model": [], "constant": [], "ridge": [], "physio": []}
    bands: list[str] = []
    resid_abs, resid_n = 0.0, 0
    kept: np.ndarray | None = None
    for start, chunk in _chunks(rows, cfg.batch_rows, f"evaluate {split}"):
        x = read_rows(data.features, chunk)
        y = read_rows(data.target, chunk)
        v = np.asarray(read_rows(data.mask, chunk), dtype=bool)
        el = read_rows(data.elapsed, chunk)
        raw = np.asarray(predict(x))
        if keep_model:
            if kept is None:
                kept = np.empty((len(rows), t), dtype=raw.dtype)
            kept[start : start + len(chunk)] = raw
        model = np.asarray(raw, dtype=np.float64)
        preds = {"model": model, **baselines.predict(x, el, speed_col, alt_col)}
        for name, pred in preds.items():
            parts[name].append(row_sums(y, pred, v, el))
        bands += report_only_hr_band(y, v, cfg.hr_band_edges)
        # offset diagnostics: error left after removing each workout's mean error
        s = parts["model"][-1]
        has = s.n > 0
        if has.any():
            err = np.where(v, model - np.asarray(y, dtype=np.float64), 0.0)[has]
            bias_w = s.err_sum[has] / s.n[has]
            resid = np.abs(err - bias_w[:, None])[v[has]]
            resid_abs += float(resid.sum())
            resid_n += int(resid.size)
        if plot is not None:
            plot.add(y, model, v, el)
        if noise is not None:
            idx = data.index.iloc[chunk]
            noise.add(idx, lengths[start : start + len(chunk)], y, model, v)
        if writer is not None:
            writer.write(
                split, chunk, ids[chunk], lengths[start : start + len(chunk)], el, y, raw, v
            )
    return SplitResult(
        rows=rows,
        sums={k: RowSums.concat(p) for k, p in parts.items()},
        bands=bands,
        resid_abs_sum=resid_abs,
        resid_n=resid_n,
        plot=plot,
        noise=noise,
        model=kept,
    )


PREDICTION_COLUMNS = {
    "row": np.int64,
    "workout_id": np.int64,
    "split": object,
    "step": np.int32,
    "t": np.float32,
    "hr_true": np.float32,
    "hr_pred": np.float32,
    "valid": bool,
}


class PredictionsWriter:
    """data/eval/predictions.parquet written chunk by chunk: every real (non-padding) step."""

    def __init__(self, path: Path) -> None:
        # schema (with pandas metadata) of a one-row frame: an empty object column has no type
        one = pd.DataFrame({k: np.zeros(1, dtype=d) for k, d in PREDICTION_COLUMNS.items()})
        one["split"] = "test"
        self.schema = pa.Schema.from_pandas(one, preserve_index=False)
        self._writer = pq.ParquetWriter(path, self.schema)

    def write(
        self,
        split: str,
        rows: np.ndarray,
        workout_ids: np.ndarray,
        lengths: np.ndarray,
        elapsed: np.ndarray,
        target: np.ndarray,
        model: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """One chunk of rows of a split (arrays [n, T])."""
        t = target.shape[1]
        inside = np.arange(t)[None, :] < lengths[:, None]
        ri, step = np.nonzero(inside)
        if len(ri) == 0:
            return
        frame = pd.DataFrame(
            {
                "row": rows[ri].astype(np.int64),
                "workout_id": workout_ids[ri].astype(np.int64),
                "split": split,
                "step": step.astype(np.int32),
                "t": elapsed[ri, step].astype(np.float32),
                "hr_true": target[ri, step].astype(np.float32),
                "hr_pred": model[ri, step].astype(np.float32),
                "valid": valid[ri, step],
            }
        )
        self._writer.write_table(
            pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        )

    def close(self) -> None:
        self._writer.close()


TRUTH_COLUMNS = ("workout_id", "archetype", "hr_clean", "hr_physio")


def read_truth(path: Path, workout_ids: np.ndarray) -> pd.DataFrame | None:
    """Simulator truth (`TRUTH_COLUMNS` present) of `workout_ids`; None without workout_id.

    Read one row group at a time and filtered on the way: the HR lists of every simulated
    workout do not fit in memory at full scale (a filtered dataset scan buffers GBs too).
    """
    f = pq.ParquetFile(path)
    cols = [c for c in TRUTH_COLUMNS if c in f.schema_arrow.names]
    if "workout_id" not in cols:
        return None
    wanted = pa.array(np.unique(np.asarray(workout_ids, dtype=np.int64)))
    parts = []
    for i in range(f.num_row_groups):
        part = f.read_row_group(i, columns=cols)
        keep = pc.is_in(part.column("workout_id").cast(pa.int64()), value_set=wanted)
        parts.append(part.filter(keep))
    schema = f.schema_arrow
    table = pa.concat_tables(parts) if parts else schema.empty_table().select(cols)
    frame = table.to_pandas()  # the HR lists are views of the table's buffers
    del table, parts
    pa.default_memory_pool().release_unused()  # the unfiltered row groups' memory
    return frame


def evaluate_all(
    data: EvalData,
    predict: Predictor,
    baselines: Baselines,
    cfg: EvalConfig,
    predictions: Path | None = None,
    truth: pd.DataFrame | None = None,
    n_scatter: int = 2000,
) -> dict[str, SplitResult]:
    """Val and test, chunk by chunk; writes `predictions` (parquet) when given.

    The test split also gets the plot sums (seeded by `cfg.seed`), the noise floor (when
    `truth` has the simulator's HR) and its model predictions (example traces).
    """
    test = data.rows["test"]
    plot = PlotSums(count_valid(data, test, cfg.batch_rows), cfg.seed, n_scatter)
    noise = None
    if truth is not None and NoiseFloorSums.NEED <= set(truth.columns):
        noise = NoiseFloorSums(truth)
    writer = PredictionsWriter(predictions) if predictions is not None else None
    try:
        results = {"val": evaluate_split(data, predict, baselines, "val", cfg, writer)}
        results["test"] = evaluate_split(
            data, predict, baselines, "test", cfg, writer, plot, noise, keep_model=True
        )
    finally:
        if writer is not None:
            writer.close()
    return results


def input_categories(
    data: EvalData, rows: np.ndarray, rules: CategoryRules, batch_rows: int = 1024
) -> list[str]:
    """Input-only category of each row (speed, altitude, elapsed; never HR).

    The easy rule's per-user reference speed uses every row of the same users (any split):
    only their inputs are read, `batch_rows` rows at a time.
    """
    users = data.index["user_id"].to_numpy() if "user_id" in data.index else None
    if users is None or rules.easy_reference != "user":
        ref_rows, ref_users = rows, None
    else:
        ref_rows = np.flatnonzero(np.isin(users, users[rows]))
        ref_users = users[ref_rows]
    speed_col = _feature_index(data, "speed")
    alt_col = _feature_index(data, "altitude")
    lengths = data.lengths(ref_rows)
    desc: list[dict[str, float]] = []
    for start, chunk in _chunks(ref_rows, batch_rows, "categories"):
        x = read_rows(data.features, chunk)
        desc += describe_rows(
            np.asarray(x[:, :, speed_col], dtype=np.float64),
            np.asarray(x[:, :, alt_col], dtype=np.float64),
            np.asarray(read_rows(data.elapsed, chunk), dtype=np.float64),
            lengths[start : start + len(chunk)],
            rules,
        )
    cats = assign_all(desc, rules, ref_users)
    by_row = dict(zip(ref_rows.tolist(), cats, strict=True))
    return [by_row[int(r)] for r in rows]


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
        s = summarize_sums(res.sums["model"].take(sel))
        entry: dict[str, float | int] = {
            "n_workouts": s["n_workouts"],
            "n_steps": s["n_steps"],
            "mae": s["mae"],
            "rmse": s["rmse"],
            "workout_mae_median": s["workout_mae_median"],
            "bias": s["bias"],
        }
        for name, sums in res.sums.items():
            if name != "model":
                entry[f"{name}_mae"] = summarize_sums(sums.take(sel))["mae"]
        out[lab] = entry
    return out


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
    s = res.sums["model"]
    has = s.n > 0
    if not has.any():
        return {"mae_workout_offset_removed": float("nan"), "workout_bias_std": float("nan")}
    bias_w = s.err_sum[has] / s.n[has]
    return {
        "mae_workout_offset_removed": res.resid_abs_sum / res.resid_n,
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
        report[split] = summarize_sums(results[split].sums["model"])
    report["baselines"] = {}
    for name, params in fitted.items():
        entry = {split: summarize_sums(results[split].sums[name]) for split in ("test", "val")}
        entry.update(params)
        report["baselines"][name] = entry
    lstm = report["test"]["mae"]
    report["comparison"] = {
        f"test_mae_ratio_to_{name}": lstm / b["test"]["mae"] if b["test"]["mae"] else float("nan")
        for name, b in report["baselines"].items()
    }
    test = results["test"]
    cats = {"input_only": _group_metrics(categories, test)}
    cats["report_only_hr_band"] = _group_metrics(test.bands, test)
    if truth is not None:
        agree = archetype_agreement(data, test.rows, categories, truth)
        if agree is not None:
            cats["archetype_agreement"] = agree
    report["categories"] = cats
    floor = test.noise.result() if test.noise is not None else None
    report["noise_floor"] = floor if floor is not None else {"available": 0}
    if floor is not None:
        report["noise_floor"]["available"] = 1
    report["diagnostics"] = {f"test_{k}": v for k, v in offset_diagnostics(test).items()}
    report["counts"] = {f"{s}_workouts": int(len(data.rows[s])) for s in SPLITS}
    return report


def workout_maes(res: SplitResult) -> np.ndarray:
    """Per-row MAE of the model (NaN where a row has no valid step)."""
    return res.sums["model"].workout_mae()


def split_traces(data: EvalData, res: SplitResult, examples: Sequence[Example]) -> dict[int, Trace]:
    """{position: Trace} of the example rows of the test split (Example.row = position)."""
    if res.model is None:
        raise ValueError("the split was evaluated without keep_model")
    out = {}
    for ex in examples:
        r = res.rows[ex.row : ex.row + 1]
        out[ex.row] = Trace(
            np.asarray(read_rows(data.target, r)[0], dtype=np.float64),
            np.asarray(res.model[ex.row], dtype=np.float64),
            np.asarray(read_rows(data.mask, r)[0], dtype=bool),
            np.asarray(read_rows(data.elapsed, r)[0], dtype=np.float64),
        )
    return out
