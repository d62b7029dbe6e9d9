"""Drive the simulator: plan, simulate chunks (optionally in parallel), stream the files.

Memory stays at a few chunks whatever the file size: each chunk's lines and truth rows
are written as soon as they arrive, in chunk order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrpred.progress import Bar
from hrpred.simulate.calibration import CalibrationTargets, calibration_stats, compare
from hrpred.simulate.config import FAULTS, HR_FAULTS, SimConfig
from hrpred.simulate.generate import STAT_COLUMNS, ChunkResult, n_chunks, simulate_chunk
from hrpred.simulate.plan import Plan, make_plan
from hrpred.simulate.writer import TruthWriter
from hrpred.store import Layout, write_json

# Bands of the real data's statistics (reference spec §2.8) for fault-free runs.
REALISM_BANDS: dict[str, tuple[float, float]] = {
    "hr_mean": (140.0, 156.0),
    "hr_std": (14.0, 23.0),
    "speed_mean": (9.5, 12.5),
    "speed_std": (1.8, 3.2),
    "duration_min_mean": (55.0, 85.0),
    "corr_speed_hr_median": (0.15, 0.45),
}

_WORKER: tuple[SimConfig, Plan] | None = None


def run_simulate(cfg: SimConfig, layout: Layout) -> dict[str, Any]:
    """The simulate stage: write `cfg.out`, `cfg.truth` (under `layout.root`) and
    metrics/simulate.json; timing and realism warnings go to stderr only."""
    out, truth = layout.resolve(cfg.out), layout.resolve(cfg.truth)
    began = time.perf_counter()
    metrics = simulate_dataset(cfg, out, truth)
    seconds = time.perf_counter() - began
    write_json(layout.metrics("simulate"), metrics)
    # Timing goes to stderr only: the metrics file must be identical across runs.
    mb = metrics["bytes"] / 1e6
    print(
        f"simulate: {metrics['lines']} lines, {mb:.1f} MB in {seconds:.1f} s "
        f"({mb / max(seconds, 1e-9):.1f} MB/s) -> {out}, {truth}",
        file=sys.stderr,
    )
    bad = [k for k, ok in metrics["realism"].get("within_bands", {}).items() if not ok]
    if bad:
        print(f"simulate: warning: outside realism bands: {bad}", file=sys.stderr)
    return metrics


def _init_worker(cfg: SimConfig, plan: Plan) -> None:
    global _WORKER
    _WORKER = (cfg, plan)


def _run_chunk(index: int) -> ChunkResult:
    assert _WORKER is not None
    return simulate_chunk(_WORKER[0], _WORKER[1], index)


def _ordered(pool: Any, total: int, window: int) -> Iterator[ChunkResult]:
    """Chunk results in order, with at most `window` in flight (bounded memory:
    Pool.imap would let workers run arbitrarily far ahead of the writer)."""
    pending: deque[Any] = deque()
    submitted = 0
    while submitted < total or pending:
        while submitted < total and len(pending) < window:
            pending.append(pool.apply_async(_run_chunk, (submitted,)))
            submitted += 1
        yield pending.popleft().get()


def realism(stats: np.ndarray, targets: CalibrationTargets | None = None) -> dict[str, Any]:
    """Pooled statistics of fault-free runs from per-workout sums (STAT_COLUMNS), and the
    calibration figures beside the real dev set's `targets`."""
    col = {name: stats[:, i] for i, name in enumerate(STAT_COLUMNS)}
    n = col["n"].sum()
    if n == 0:
        return {"workouts": 0}
    hr_mean = col["hr_sum"].sum() / n
    v_mean = col["speed_sum"].sum() / n
    values = {
        "hr_mean": hr_mean,
        "hr_std": np.sqrt(col["hr_sumsq"].sum() / n - hr_mean**2),
        "speed_mean": v_mean,
        "speed_std": np.sqrt(col["speed_sumsq"].sum() / n - v_mean**2),
        "duration_min_mean": col["duration_min"].mean(),
        "corr_speed_hr_median": float(np.nanmedian(col["corr"])),
    }
    out: dict[str, Any] = {"workouts": int(stats.shape[0])}
    out.update({k: round(float(v), 4) for k, v in values.items()})
    out["within_bands"] = {k: bool(lo <= values[k] <= hi) for k, (lo, hi) in REALISM_BANDS.items()}
    out["bands"] = {k: list(v) for k, v in REALISM_BANDS.items()}
    recency = recency_check(col)
    out["recency"] = recency
    cal = calibration_stats(col["user"], col["start"], col["hr_settled"], col["speed_settled"])
    out["calibration"] = cal if targets is None else compare(cal, targets)
    out["within_bands"]["recent_history_beats_all"] = bool(
        recency["workouts"] > 0 and recency["mae_last_10"] < recency["mae_all"]
    )
    return out


def recency_check(col: dict[str, np.ndarray], k: int = 10) -> dict[str, Any]:
    """Does a runner's recent history predict their level better than all of it (as on real
    data)? Each fault-free run's level = mean HR minus a pooled linear fit on mean speed;
    it is predicted by the mean level of the user's k most recent earlier runs, or of all of
    them, on runs with at least k earlier runs."""
    n = np.maximum(col["n"], 1)
    hr, v = col["hr_sum"] / n, col["speed_sum"] / n
    if hr.size < 3:
        return {"workouts": 0, "mae_last_10": None, "mae_all": None}
    coef = np.polyfit(v, hr, 1)
    level = hr - np.polyval(coef, v)
    order = np.lexsort((col["start"], col["user"]))
    user, level = col["user"][order], level[order]
    err_k: list[float] = []
    err_all: list[float] = []
    for u in np.unique(user):
        lv = level[user == u]
        for i in range(k, lv.size):
            err_k.append(abs(lv[i] - lv[i - k : i].mean()))
            err_all.append(abs(lv[i] - lv[:i].mean()))
    if not err_k:
        return {"workouts": 0, "mae_last_10": None, "mae_all": None}
    return {
        "workouts": len(err_k),
        "mae_last_10": round(float(np.mean(err_k)), 4),
        "mae_all": round(float(np.mean(err_all)), 4),
    }


def _counts(values: np.ndarray) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(Counter(values.tolist()).items())}


def plan_counts(plan: Plan) -> dict[str, Any]:
    """Counts per sport / fault / archetype, and fault supports among runs."""
    runs = plan.sport == "run"
    return {
        "lines": int(plan.user.size),
        "users": int(plan.n_user_workouts.size),
        "workouts_per_user": {
            "min": int(plan.n_user_workouts.min()),
            "median": float(np.median(plan.n_user_workouts)),
            "max": int(plan.n_user_workouts.max()),
        },
        "sports": _counts(plan.sport),
        "archetypes": _counts(plan.archetype),
        "terrains": _counts(plan.terrain),
        "faults": {f: int(np.sum(plan.fault == f)) for f in ("none", *FAULTS)},
        "faults_runs": {f: int(np.sum(runs & (plan.fault == f))) for f in ("none", *FAULTS)},
        "min_hr_fault_support_runs": int(min(np.sum(runs & (plan.fault == f)) for f in HR_FAULTS)),
        "native_speed_runs": int(np.sum(runs & plan.native_speed)),
        "pauses": {
            "workouts": int(np.sum(plan.n_pauses > 0)),
            "runs": int(np.sum(runs & (plan.n_pauses > 0))),
            "pauses": int(plan.n_pauses.sum()),
            "pauses_runs": int(plan.n_pauses[runs].sum()),
            "runs_with_hr_fault": int(
                np.sum(runs & (plan.n_pauses > 0) & np.isin(plan.fault, HR_FAULTS))
            ),
        },
        "runs": int(runs.sum()),
    }


def simulate_dataset(
    cfg: SimConfig, out: str | Path, truth: str | Path, progress: bool = True
) -> dict[str, Any]:
    """Write the FitRec-format file and its truth table; return the metrics dict.

    Files are written under temporary names and renamed at the end, so an interrupted
    run never leaves a half file behind under the real name.
    """
    out, truth = Path(out), Path(truth)
    out.parent.mkdir(parents=True, exist_ok=True)
    truth.parent.mkdir(parents=True, exist_ok=True)
    plan = make_plan(cfg)
    total = n_chunks(cfg)
    workers = max(1, min(cfg.workers if cfg.workers > 0 else os.cpu_count() or 1, total))
    tmp_out, tmp_truth = out.with_name(out.name + ".tmp"), truth.with_name(truth.name + ".tmp")
    stats: list[np.ndarray] = []
    pause_s: list[float] = []
    written = 0
    # Fork the workers first, before the bar/pyarrow start threads in this process.
    if workers == 1:
        _init_worker(cfg, plan)
        pool = None
        results: Iterator[ChunkResult] = map(_run_chunk, range(total))
    else:
        pool = mp.get_context("fork").Pool(workers, _init_worker, (cfg, plan))
        results = _ordered(pool, total, window=2 * workers)
    bar = Bar("simulate", "workouts", total=cfg.n_workouts, enabled=progress)
    try:
        truth_writer = TruthWriter(tmp_truth)
        try:
            with open(tmp_out, "wb", buffering=1 << 22) as f:
                for res in results:
                    f.write(res.lines)
                    written += len(res.lines)
                    truth_writer.write(res.truth)
                    stats.append(res.stats)
                    pause_s.extend(s for w in res.truth["pause_s"] for s in w)
                    bar.update(len(res.truth["line"]))
        finally:
            truth_writer.close()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    os.replace(tmp_out, out)
    os.replace(tmp_truth, truth)
    metrics = plan_counts(plan)
    metrics["pauses"]["seconds"] = {
        "min": float(min(pause_s, default=0.0)),
        "median": float(np.median(pause_s)) if pause_s else 0.0,
        "max": float(max(pause_s, default=0.0)),
    }
    metrics["bytes"] = written
    metrics["realism"] = realism(
        np.concatenate(stats) if stats else np.zeros((0, len(STAT_COLUMNS))), cfg.calibration
    )
    return metrics
