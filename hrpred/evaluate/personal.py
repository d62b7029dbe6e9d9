"""Personalised scoring of val and test: the engine of `hrpred.personal.engine`, run in time.

Every workout of a runner who has a val or test workout is personalised in start order (under
the user split: the val and test workouts; under the chronological split also the runner's
train workouts, which are their history), exactly as `hrpred profile`/`predict` personalise a
runner's files:

1. the population prediction (the network without context) of every such workout;
2. the level-change detector over each workout's earlier runs (data/split/history.parquet)
   decides which of them still describe the runner (`hrpred.personal.engine.detect`);
3. the network with those runs as context (one batched pass);
4. in start order: `plan_run` from the records of the workout's earlier runs, the curves
   (population, offset, learned, headline), and the workout's own record for later runs;
5. the band's runner scale once the validation workouts' reference score is known.

Baselines (constant, ridge, physio) get the offset rule over their own residuals on the same
runs the model's plan used. The HR of a workout enters only its own record, made after its
curves: nothing that predicts a workout reads its HR or a later workout's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from hrpred.evaluate.inputs import EvalInputError, chunks, feature_index
from hrpred.evaluate.metrics import RowSums, row_sums
from hrpred.evaluate.results import LearnedPersonal, PersonalResult, Predictor, SplitResult
from hrpred.evaluate.scoring import Baselines
from hrpred.personal.change import Change
from hrpred.personal.config import PersonalConfig
from hrpred.personal.context import CONTEXT_FEATURES, build_context
from hrpred.personal.engine import (
    Curves,
    Plan,
    RunRecord,
    detect,
    personal_curves,
    plan_run,
    record_run,
    runner_factor,
)
from hrpred.personal.rules import shrunk_mean
from hrpred.personal.summaries import SUMMARY_FEATURES, compute_summaries
from hrpred.split.history import history_sizes
from hrpred.store import Dataset, read_rows

DAY_S = 86400.0
BASELINES = ("constant", "ridge", "physio")


def learned_personal(model_path: Path, features_dir: Path, ds: Dataset) -> LearnedPersonal | None:
    """models/model.pt's history-conditioned network: `network(rows, x, history)` reads each
    row's context from the given history lines (its workout's most recent `k_max` listed
    earlier workouts' summaries), `cold(x)` none; None for a model without history support."""
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

    def network(
        rows: np.ndarray, x: np.ndarray, history: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray]:
        ctx = build_context(ids[rows], history, summaries, k_max)
        return predict(model, ckpt, x, context=(ctx.values, ctx.mask), with_spread=True)

    def cold(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict(model, ckpt, x, with_spread=True)

    p = meta["personal_params"]
    return LearnedPersonal(f"{p['model']}/{p['design']} (k_max {k_max})", network, cold)


class _Runs:
    """The workouts being personalised: their rows, start times and history lines."""

    def __init__(self, ds: Dataset, history: pd.DataFrame, eval_rows: np.ndarray) -> None:
        index = ds.data.index
        ids = index["workout_id"].to_numpy(dtype=np.int64)
        users = index["user_id"].to_numpy(dtype=np.int64)
        eval_users = np.unique(users[eval_rows])
        keep = ds.split.assignment.set_index("row")["split"].reindex(np.arange(len(ids)))
        scored = np.isin(users, eval_users) & keep.isin(("train", "val", "test")).to_numpy()
        self.rows = np.flatnonzero(scored)
        self.ids = ids
        start = index["start_time"].to_numpy(dtype=np.float64)
        w = pd.DataFrame(
            {"id": ids[self.rows], "user": users[self.rows], "start": start[self.rows]}
        )
        first = w.groupby("id", sort=False).agg(user=("user", "first"), start=("start", "min"))
        self.order = first.sort_values(["user", "start"], kind="mergesort").index.to_numpy()
        self.start = first["start"]
        h = history[history["workout_id"].isin(first.index)]
        h = h[h["hist_workout_id"].isin(first.index)].sort_values(
            ["workout_id", "rank"], kind="mergesort"
        )
        self.history = h
        self.earlier = {
            int(k): g["hist_workout_id"].to_numpy() for k, g in h.groupby("workout_id", sort=False)
        }
        pos = pd.Series(np.arange(len(self.rows)), index=self.rows)
        by_id = pd.DataFrame({"id": ids[self.rows], "pos": np.arange(len(self.rows))})
        self.positions = {int(k): g["pos"].to_numpy() for k, g in by_id.groupby("id", sort=False)}
        self.pos = pos

    def history_of(self, wid: int) -> np.ndarray:
        """Earlier workout ids of `wid`, most recent first."""
        return self.earlier.get(int(wid), np.zeros(0, np.int64))


def _read(ds: Dataset, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    d = ds.data
    return (
        read_rows(d.features, rows),
        np.asarray(read_rows(d.target, rows), np.float64),
        np.asarray(read_rows(d.mask, rows), bool),
        read_rows(d.elapsed, rows),
    )


def _blocks(rows: np.ndarray, batch: int, desc: str) -> Iterator[tuple[slice, np.ndarray]]:
    for start, chunk in chunks(rows, batch, desc):
        yield slice(start, start + len(chunk)), chunk


def _recorded(ds: Dataset, runs: _Runs) -> tuple[np.ndarray, np.ndarray]:
    """The recorded HR (float32) and its valid mask [n, T] of every row, read once (the size
    of one curve and a bool array; the cold pass and the plans both read them)."""
    return read_rows(ds.data.target, runs.rows), read_rows(ds.data.mask, runs.rows).astype(bool)


def _cold_pass(
    ds: Dataset,
    runs: _Runs,
    predict: Predictor,
    known: dict[str, SplitResult],
    batch: int,
    target: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, dict[int, RunRecord]]:
    """Population predictions [n, T] of every row (those of the scored splits as `known`
    kept them, the others predicted) and each workout's cold-only record."""
    t = ds.data.seq_len
    cold = np.empty((len(runs.rows), t), np.float32)
    todo = np.ones(len(runs.rows), bool)
    for res in known.values():
        if res.model is not None:
            at = runs.pos.reindex(res.rows)
            hit = at.notna().to_numpy()
            cold[at[hit].to_numpy(dtype=np.int64)] = res.model[hit]
            todo[at[hit].to_numpy(dtype=np.int64)] = False
    for sl, chunk in _blocks(runs.rows[todo], batch, "evaluate population"):
        x = read_rows(ds.data.features, chunk)
        cold[np.flatnonzero(todo)[sl]] = np.asarray(predict(x))
    partial = {}
    for wid, pos in runs.positions.items():
        y, v = np.asarray(target[pos], np.float64), mask[pos]
        r = (y - cold[pos])[v]
        partial[wid] = RunRecord(float(runs.start[wid]), int(v.sum()), float(r.sum()), 0.0, 0.0,
                                 (0.0, 0.0, 0.0))  # fmt: skip
    return cold, partial


def _detected(
    cfg: PersonalConfig, runs: _Runs, partial: dict[int, RunRecord]
) -> dict[int, tuple[Change, list[int]]]:
    """Each workout's latest level change and the positions of the earlier runs its plan uses
    (`detect` reads only the cold residuals, which the cold-only records already have)."""
    return {
        wid: detect(cfg.change, [partial[int(x)] for x in h]) for wid, h in runs.earlier.items()
    }


def _used_history(runs: _Runs, detected: dict[int, tuple[Change, list[int]]]) -> pd.DataFrame:
    """The history lines each workout's plan uses: its earlier runs after the latest change."""
    used = [h[detected[wid][1]] for wid, h in runs.earlier.items()]
    if not used:
        return runs.history.iloc[:0]
    keep = pd.DataFrame(
        {
            "workout_id": np.repeat(np.fromiter(runs.earlier, np.int64), [len(u) for u in used]),
            "hist_workout_id": np.concatenate(used),
        }
    )
    return runs.history.merge(keep, on=["workout_id", "hist_workout_id"], how="inner")


def _network_pass(
    ds: Dataset, runs: _Runs, learned: LearnedPersonal, used: pd.DataFrame, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    t = ds.data.seq_len
    net = np.empty((len(runs.rows), t), np.float32)
    spread = np.empty_like(net)
    for sl, chunk in _blocks(runs.rows, batch, "evaluate learned"):
        x = read_rows(ds.data.features, chunk)
        net[sl], spread[sl] = learned.network(chunk, x, used)
    return net, spread


def personalise(
    ds: Dataset,
    history: pd.DataFrame,
    results: dict[str, SplitResult],
    predict: Predictor,
    baselines: Baselines,
    pcfg: PersonalConfig,
    batch_rows: int,
    learned: LearnedPersonal | None = None,
    runner_scale: bool = True,
) -> PersonalResult:
    """Personalise the val and test rows (see the module doc; `results`: the cold scoring of
    val and test, whose kept predictions are the population curve); `runner_scale`: compute
    the band's runner scale (a history model only)."""
    eval_rows = np.union1d(ds.rows["val"], ds.rows["test"])
    runs = _Runs(ds, history, eval_rows)
    target, mask = _recorded(ds, runs)
    cold, partial = _cold_pass(ds, runs, predict, results, batch_rows, target, mask)
    detected = _detected(pcfg, runs, partial)
    used = _used_history(runs, detected)
    net = spread = None
    if learned is not None:
        net, spread = _network_pass(ds, runs, learned, used, batch_rows)
    curves = {k: np.empty_like(cold) for k in ("offset", "learned", "headline")}
    records: dict[int, RunRecord] = {}
    plans: dict[int, Plan] = {}
    used_ids: dict[int, np.ndarray] = {}
    for wid in runs.order:
        pos = runs.positions[int(wid)]
        hist = runs.history_of(wid)
        earlier = [records[int(h)] for h in hist]
        start = float(runs.start[wid])
        plan = plan_run(pcfg, earlier, start, None, learned is not None, detected.get(int(wid)))
        used_ids[int(wid)] = hist[list(plan.positions)]
        c = personal_curves(plan, cold[pos], None if net is None else net[pos])
        for k in curves:
            curves[k][pos] = getattr(c, k)
        y, v = np.asarray(target[pos], np.float64), mask[pos]
        flat = Curves(*(np.ravel(a) for a in (c.population, c.offset, c.learned, c.headline)))
        records[int(wid)] = record_run(
            start, y.ravel(), v.ravel(), flat, None if net is None else net[pos].ravel(),
            None if spread is None else spread[pos].ravel(),
        )  # fmt: skip
        plans[int(wid)] = plan
    ref = None
    if learned is not None and runner_scale:
        val_ids = np.unique(runs.ids[ds.rows["val"]])
        scores = [records[int(w)].score for w in val_ids if int(w) in records]
        ref = float(np.nanmean(scores)) if np.isfinite(scores).any() else None
    if ref is not None:
        for wid in runs.order:
            earlier = [records[int(h)] for h in runs.history_of(wid)]
            plans[int(wid)] = runner_factor(
                pcfg, plans[int(wid)], earlier, float(runs.start[wid]), ref
            )
    sel = runs.pos.reindex(eval_rows).to_numpy()
    split = np.where(np.isin(eval_rows, ds.rows["test"]), "test", "val")
    eval_ids = runs.ids[eval_rows]
    out_curves = {"cold": cold[sel], **{k: v[sel] for k, v in curves.items()}}
    b_cold, b_pers = _baselines(ds, runs, baselines, eval_rows, used_ids, pcfg, batch_rows)
    return PersonalResult(
        rows=eval_rows,
        split=split,
        sizes=history_sizes(history, eval_ids),
        plans=[plans[int(w)] for w in eval_ids],
        curves=out_curves,
        spread=(spread if spread is not None else np.ones_like(cold))[sel],
        baseline_cold=b_cold,
        baseline_personal=b_pers,
        learned="none (population model + offset)" if learned is None else learned.name,
        has_learned=learned is not None,
        ref=ref,
    )


def _baselines(
    ds: Dataset,
    runs: _Runs,
    baselines: Baselines,
    eval_rows: np.ndarray,
    used_ids: dict[int, np.ndarray],
    pcfg: PersonalConfig,
    batch: int,
) -> tuple[dict[str, RowSums], dict[str, RowSums]]:
    """Cold and personalised error sums of each baseline on the eval rows: the offset rule
    over the baseline's own mean residuals on the runs the model's plan used."""
    speed_col, alt_col = feature_index(ds, "speed"), feature_index(ds, "altitude")
    means: dict[str, dict[int, float]] = {b: {} for b in BASELINES}
    sums: dict[str, list[RowSums]] = {b: [] for b in BASELINES}
    ids = runs.ids[runs.rows]
    for _, chunk in _blocks(runs.rows, batch, "evaluate baselines"):
        x, y, v, el = _read(ds, chunk)
        for name, pred in baselines.predict(x, el, speed_col, alt_col).items():
            sums[name].append(row_sums(y, pred, v, el))
    for name in BASELINES:
        s = RowSums.concat(sums[name])
        g = pd.DataFrame({"id": ids, "e": -s.err_sum, "n": s.n}).groupby("id")[["e", "n"]].sum()
        means[name] = (g["e"] / g["n"].where(g["n"] > 0)).to_dict()
    offsets = {b: np.zeros(len(eval_rows)) for b in BASELINES}
    eval_ids = runs.ids[eval_rows]
    for i, wid in enumerate(eval_ids):
        used = used_ids[int(wid)]
        days = np.array([(runs.start[wid] - runs.start[h]) / DAY_S for h in used])
        for b in BASELINES:
            vals = np.array([means[b].get(int(h), np.nan) for h in used])
            offsets[b][i] = shrunk_mean(pcfg.offset, vals, days)[0]
    cold: dict[str, list[RowSums]] = {b: [] for b in BASELINES}
    pers: dict[str, list[RowSums]] = {b: [] for b in BASELINES}
    for sl, chunk in _blocks(eval_rows, batch, "evaluate baselines personal"):
        x, y, v, el = _read(ds, chunk)
        for name, pred in baselines.predict(x, el, speed_col, alt_col).items():
            cold[name].append(row_sums(y, pred, v, el))
            pers[name].append(row_sums(y, pred + offsets[name][sl, None], v, el))
    return (
        {b: RowSums.concat(p) for b, p in cold.items()},
        {b: RowSums.concat(p) for b, p in pers.items()},
    )
