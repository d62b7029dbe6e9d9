"""Cold vs personalised scoring of the test split (issue 13).

Cold: every predictor as scored by `scoring.evaluate_all` (history ignored). Personal: the same
predictor plus the offset personaliser (`hrpred.personal.offset`) computed from the residuals
of each test workout's history (data/split/history.parquet) - or, for the model, the learned
history-conditioned network when models/model.pt is one (`learned_personal`: the same network,
cold = empty context, personal = the summaries of the runner's most recent earlier workouts);
baseline "offset" is always the model's cold prediction + the offset, so the two personalisers
are compared on the same network. The learned model's personal prediction also gets the residual
correction (`personal.residual`): the same offset rule applied to the network's own personalised
residuals on the history workouts (each predicted with *its* earlier workouts), a safety net for
runners whose level the encoder under-corrects (a prior worth `shrink` workouts keeps it small). The residuals of history workouts come from
the val/test predictions already made; under the chronological split a test workout's history
also holds train workouts, which are predicted here (only those rows, chunk by chunk).

Honest by construction: a workout's offset and context read only its history (strictly earlier
workouts), so neither its own recorded HR nor any later workout's can change its personalised
prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.inputs import EvalInputError, chunks, feature_index
from hrpred.evaluate.metrics import RowSums, row_sums, summarize_sums
from hrpred.evaluate.results import LearnedPersonal, PersonalResult, Predictor, SplitResult
from hrpred.evaluate.scoring import Baselines
from hrpred.personal.config import OffsetConfig
from hrpred.personal.context import CONTEXT_FEATURES, build_context
from hrpred.personal.offset import workout_offsets
from hrpred.personal.summaries import SUMMARY_FEATURES, compute_summaries
from hrpred.split.history import BUCKETS, history_buckets, history_sizes
from hrpred.store import Dataset, read_rows
from hrpred.uncertainty import score_sums, workout_scores

MAX_PLOT_HISTORY = 10  # plots/mae_by_history.json: sizes 0..9 and "10 or more" (10)
OFFSET_ONLY = "none (model + offset)"  # test.learned_personal_model without a learned model


def learned_personal(
    model_path: Path, features_dir: Path, ds: Dataset, history: pd.DataFrame
) -> LearnedPersonal | None:
    """models/model.pt's history-conditioned network as `(rows, x) -> hr`, reading each row's
    context (its workout's `k_max` most recent earlier workouts' summaries); None for a model
    without history support. Summaries: one bounded pass over data/features; contexts are
    built per chunk of rows."""
    from hrpred.model import load_checkpoint, predict, supports_history  # torch when needed

    try:
        model, ckpt = load_checkpoint(model_path)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same message
        raise EvalInputError(f"cannot load {model_path} ({e}); rerun `dvc repro train`") from None
    if not supports_history(ckpt):
        return None
    meta = ckpt["history"]
    if (list(meta["summary_features"]), list(meta["context_features"])) != (
        list(SUMMARY_FEATURES),
        list(CONTEXT_FEATURES),
    ):
        raise EvalInputError(
            f"{model_path} reads history summaries {meta['context_features']} but this code "
            f"builds {list(CONTEXT_FEATURES)}; rerun `dvc repro train`"
        )
    summaries = compute_summaries(features_dir)
    ids = ds.data.index["workout_id"].to_numpy()
    k_max = int(meta["k_max"])

    def run(rows: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ctx = build_context(ids[rows], history, summaries, k_max)
        hr, spread = predict(model, ckpt, x, context=(ctx.values, ctx.mask), with_spread=True)
        return hr, spread

    p = meta["personal_params"]

    def cold(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hr, spread = predict(model, ckpt, x, with_spread=True)
        return hr, spread

    return LearnedPersonal(f"{p['model']}/{p['design']} (k_max {k_max})", run, cold)


def _by_workout(ids: np.ndarray, sums: RowSums) -> tuple[pd.Series, pd.Series]:
    """Sum of recorded - predicted and valid steps per workout id (windows added up)."""
    f = pd.DataFrame({"id": ids, "s": -sums.err_sum, "n": sums.n})
    g = f.groupby("id", sort=True)[["s", "n"]].sum()
    return g["s"], g["n"]


def _extra_history_sums(
    ds: Dataset,
    predict: Predictor,
    baselines: Baselines,
    cfg: EvalConfig,
    rows: np.ndarray,
) -> dict[str, RowSums]:
    """Error sums of rows outside val/test that are history (chronological: train rows)."""
    data = ds.data
    speed_col, alt_col = feature_index(ds, "speed"), feature_index(ds, "altitude")
    parts: dict[str, list[RowSums]] = {}
    for _, chunk in chunks(rows, cfg.batch_rows, "evaluate history"):
        x = read_rows(data.features, chunk)
        y = read_rows(data.target, chunk)
        v = np.asarray(read_rows(data.mask, chunk), dtype=bool)
        el = read_rows(data.elapsed, chunk)
        preds = {"model": np.asarray(predict(x)), **baselines.predict(x, el, speed_col, alt_col)}
        for name, pred in preds.items():
            parts.setdefault(name, []).append(row_sums(y, pred, v, el))
    return {k: RowSums.concat(p) for k, p in parts.items()}


def personalise(
    ds: Dataset,
    results: dict[str, SplitResult],
    history: pd.DataFrame,
    predict: Predictor,
    baselines: Baselines,
    cfg: EvalConfig,
    ocfg: OffsetConfig,
    learned: LearnedPersonal | None = None,
    residual: OffsetConfig | None = None,
) -> PersonalResult:
    """Score the test split personalised (see the module doc); bounded by one chunk plus the
    [n_test, T] personalised model predictions. `residual`: the learned model's residual
    correction (None: none)."""
    data = ds.data
    ids_all = data.index["workout_id"].to_numpy()
    test = results["test"]
    if test.model is None:
        raise ValueError("the test split was evaluated without keep_model")
    test_ids = ids_all[test.rows]
    needed = history[history["workout_id"].isin(np.unique(test_ids))]
    scored_rows = np.concatenate([results[s].rows for s in ("val", "test")])
    scored = {
        name: RowSums.concat([results[s].sums[name] for s in ("val", "test")]) for name in test.sums
    }
    hist_ids = np.unique(needed["hist_workout_id"].to_numpy())
    extra = np.flatnonzero(np.isin(ids_all, hist_ids) & ~np.isin(ids_all, ids_all[scored_rows]))
    if len(extra):
        more = _extra_history_sums(ds, predict, baselines, cfg, extra)
        scored = {k: RowSums.concat([scored[k], more[k]]) for k in scored}
        scored_rows = np.concatenate([scored_rows, extra])
    offsets = {}
    for name, sums in scored.items():
        s, n = _by_workout(ids_all[scored_rows], sums)
        offsets[name] = workout_offsets(ocfg, needed, s, n, test_ids)
    speed_col, alt_col = feature_index(ds, "speed"), feature_index(ds, "altitude")
    parts: dict[str, list[RowSums]] = {name: [] for name in (*test.sums, "offset")}
    kept = np.empty_like(test.model)
    resid = spread = scores = None
    if learned is not None:
        kept, spread, resid, scores = learned_with_residual(
            ds, test.rows, needed, test_ids, learned, cfg, residual
        )
    for start, chunk in chunks(test.rows, cfg.batch_rows, "evaluate personal"):
        sl = slice(start, start + len(chunk))
        x = read_rows(data.features, chunk)
        y = read_rows(data.target, chunk)
        v = np.asarray(read_rows(data.mask, chunk), dtype=bool)
        el = read_rows(data.elapsed, chunk)
        cold = {"model": test.model[sl], **baselines.predict(x, el, speed_col, alt_col)}
        pers = {k: np.asarray(p, np.float64) + offsets[k][sl, None] for k, p in cold.items()}
        pers["offset"] = pers["model"]
        if resid is not None:
            pers["model"] = np.asarray(kept[sl], dtype=np.float64) + resid[sl, None]
        kept[sl] = pers["model"]
        for name, pred in pers.items():
            parts[name].append(row_sums(y, pred, v, el))
    cold_sums = dict(test.sums)
    cold_sums["offset"] = test.sums["model"]
    offsets["offset"] = offsets["model"]
    return PersonalResult(
        sizes=history_sizes(history, test_ids),
        offsets=offsets,
        cold=cold_sums,
        personal={k: RowSums.concat(p) for k, p in parts.items()},
        model=kept,
        learned=OFFSET_ONLY if learned is None else learned.name,
        residual=resid,
        spread=spread,
        scores=scores,
        history=needed,
    )


def learned_with_residual(
    ds: Dataset,
    rows_wanted: np.ndarray,
    needed: pd.DataFrame,
    wanted_ids: np.ndarray,
    learned: LearnedPersonal,
    cfg: EvalConfig,
    residual: OffsetConfig | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    """The learned model's personalised predictions [n, T] and spreads [n, T] of
    `rows_wanted` (sorted rows), each one's residual correction [n] (zeros when `residual`
    is None): the offset rule over the network's personalised residuals on the history
    workouts (`needed`: their history lines), and the band's per-workout scores
    (`hrpred.uncertainty.workout_scores`, by workout id, of every row predicted). Every row
    wanted or in the history of one is predicted once, with its own context (chunk by
    chunk)."""
    data = ds.data
    ids_all = data.index["workout_id"].to_numpy()
    hist_ids = np.unique(needed["hist_workout_id"].to_numpy())
    rows = np.union1d(rows_wanted, np.flatnonzero(np.isin(ids_all, hist_ids)))
    wanted = np.zeros(len(rows), bool)
    wanted[np.searchsorted(rows, rows_wanted)] = True
    out_pos = np.cumsum(wanted) - 1
    kept = np.empty((len(rows_wanted), data.seq_len), dtype=np.float32)
    spread = np.empty_like(kept)
    sums, sq, nz = [], [], []
    for start, chunk in chunks(rows, cfg.batch_rows, "evaluate learned personal"):
        sl = slice(start, start + len(chunk))
        x = read_rows(data.features, chunk)
        pred, b = (np.asarray(a, dtype=np.float32) for a in learned.predict(chunk, x))
        mine = wanted[sl]
        kept[out_pos[sl][mine]] = pred[mine]
        spread[out_pos[sl][mine]] = b[mine]
        y = read_rows(data.target, chunk)
        v = np.asarray(read_rows(data.mask, chunk), dtype=bool)
        sums.append(row_sums(y, pred, v, read_rows(data.elapsed, chunk)))
        a, b_n = score_sums(y, pred, b, v)
        sq.append(a)
        nz.append(b_n)
    scores = workout_scores(ids_all[rows], np.concatenate(sq), np.concatenate(nz))
    if residual is None:
        return kept, spread, np.zeros(len(rows_wanted)), scores
    s, n = _by_workout(ids_all[rows], RowSums.concat(sums))
    return kept, spread, workout_offsets(residual, needed, s, n, wanted_ids), scores


def _short(s: RowSums) -> dict[str, float | int]:
    m = summarize_sums(s)
    return {"n_workouts": m["n_workouts"], "mae": m["mae"], "rmse": m["rmse"]}


def personal_entry(res: PersonalResult, name: str) -> dict[str, Any]:
    """`test` of one predictor: headline = personal, plus `cold`, `personal`, `by_history`."""
    cold, pers = res.cold[name], res.personal[name]
    labels = history_buckets(res.sizes)
    buckets = {}
    for b in BUCKETS:
        sel = labels == b
        buckets[b] = {
            "n_workouts": int(sel.sum()),
            "cold": _short(cold.take(sel)),
            "personal": _short(pers.take(sel)),
        }
    return {
        **summarize_sums(pers),
        "cold": summarize_sums(cold),
        "personal": summarize_sums(pers),
        "by_history": buckets,
    }


def mae_by_history(res: PersonalResult) -> list[dict[str, float | int]]:
    """plots/mae_by_history.json: MAE cold vs personal per history size (10 = 10 or more);
    `offset_personal` = the model's cold prediction + the offset."""
    capped = np.minimum(res.sizes, MAX_PLOT_HISTORY)
    out = []
    for h in range(MAX_PLOT_HISTORY + 1):
        sel = capped == h
        if not sel.any():
            continue
        rec: dict[str, float | int] = {"history": h, "n_workouts": int(sel.sum())}
        for name in res.cold:
            if name != "offset":  # its cold score is the model's
                rec[f"{name}_cold"] = summarize_sums(res.cold[name].take(sel))["mae"]
            rec[f"{name}_personal"] = summarize_sums(res.personal[name].take(sel))["mae"]
        out.append(rec)
    return out


def personal_traces(
    ds: Dataset,
    test: SplitResult,
    res: PersonalResult,
    quantiles: tuple[float, ...],
    min_steps: int,
    gap_min: float = 5.0,
) -> list[dict[str, float | int]]:
    """plots/personal_traces.json: test workouts with >= 3 history at the `quantiles` of the
    personalised MAE, back to back on one minute axis: recorded, cold and personal HR (and the
    personal prediction's calibrated band, hr_p10/hr_p90, when the model has one)."""
    if test.model is None:
        raise ValueError("the test split was evaluated without keep_model")
    wmae = res.personal["model"].workout_mae()
    ok = np.flatnonzero((res.sizes >= 3) & (res.personal["model"].n >= min_steps))
    if not len(ok):
        return []
    order = ok[np.argsort(wmae[ok], kind="stable")]
    picks = sorted({int(order[min(int(q * len(order)), len(order) - 1)]) for q in quantiles})
    out: list[dict[str, float | int]] = []
    offset = 0.0
    ids = ds.data.index["workout_id"].to_numpy()
    for p in picks:
        r = test.rows[p : p + 1]
        y = read_rows(ds.data.target, r)[0]
        v = np.asarray(read_rows(ds.data.mask, r)[0], dtype=bool)
        mins = read_rows(ds.data.elapsed, r)[0][v] / 60.0
        for i, (m, t, c, q) in enumerate(
            zip(mins, y[v], test.model[p][v], res.model[p][v], strict=True)
        ):
            out.append({"minute": round(float(m) + offset, 3), "workout_id": int(ids[r[0]]),
                        "hr_true": round(float(t), 2), "hr_cold": round(float(c), 2),
                        "hr_personal": round(float(q), 2)})  # fmt: skip
            if res.band is not None:  # the calibrated 80% band of the personal prediction
                out[-1]["hr_p10"] = round(float(res.band[0][p][v][i]), 2)
                out[-1]["hr_p90"] = round(float(res.band[1][p][v][i]), 2)
        offset += (float(mins.max()) if len(mins) else 0.0) + gap_min
    return out
