"""The clean stage: a two-pass streaming engine over the raw input, with bounded memory.

Pass 1 (parallel over chunks of lines, `passes.pass1_chunk`) keeps only small per-workout
level statistics in memory. Between passes: per-user leave-one-out level models from those
statistics. Pass 2 (parallel over the same chunks, `passes.pass2_chunk`) decides and
corrects; results return in chunk order and are written as Parquet batches, so outputs are
sorted by line and do not depend on the number of workers.

`clean_raw` is the engine (outputs + counts); `run_clean` is the stage: it adds detection
metrics when the simulator's truth matches the input, writes metrics/clean.json and checks
the accounting.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from hrpred.clean.config import CleanConfig
from hrpred.clean.detector import N_LEVEL_STATS
from hrpred.clean.outputs import (
    REJECTS_SCHEMA,
    REPORT_SCHEMA,
    USERS_NAME,
    WORKOUTS_SCHEMA,
    BatchWriter,
)
from hrpred.clean.parallel import OrderedPool, stop_on_signals
from hrpred.clean.passes import Pass1Result, init_worker, iter_tasks, pass1_chunk, pass2_chunk
from hrpred.clean.population import (
    baselines,
    later_deficits,
    level_models,
    local_levels,
    warmup_templates,
)
from hrpred.clean.summary import summarise
from hrpred.clean.truth_metrics import detection_metrics, truth_matches
from hrpred.errors import HrpredError
from hrpred.io.raw import require_raw_file
from hrpred.progress import Bar
from hrpred.store import Layout, write_json

_TMP_PREFIX = "hrpred-clean-"


class AccountingError(HrpredError):
    """The clean stage's counts do not add up (a bug: every line must be accounted for)."""


def run_clean(
    cfg: CleanConfig, raw_path: str | Path, layout: Layout, progress: bool = True
) -> dict[str, Any]:
    """The clean stage: clean `raw_path` into `layout`'s data/clean, write metrics/clean.json.

    Detection quality goes into the metrics when `cfg.truth` exists and matches the input.
    Raises RawNotFoundError / RawFormatError for unusable inputs and AccountingError (after
    writing the metrics) when the counts do not add up.
    """
    raw_path = Path(raw_path)
    began = time.perf_counter()
    metrics = clean_raw(cfg, raw_path, layout, progress=progress)
    seconds = time.perf_counter() - began
    truth = layout.resolve(cfg.truth) if cfg.truth else None
    if truth is not None and truth.is_file():
        ok, why = truth_matches(truth, layout.clean_report)
        if ok:
            metrics["detection"] = detection_metrics(
                truth, layout.clean_report, layout.clean_workouts, cfg.sports
            )
        else:
            print(
                f"clean: truth {truth} does not match the input ({why}); no detection metrics",
                file=sys.stderr,
            )
    else:
        print(f"clean: no truth file ({truth}); no detection metrics (real data)", file=sys.stderr)
    path = layout.metrics("clean")
    write_json(path, metrics)
    # Timing only on stderr: the metrics file must not change between identical runs.
    mb = raw_path.stat().st_size / 1e6
    print(
        f"clean: {metrics['workouts_kept']}/{metrics['workouts_read']} workouts kept, "
        f"{metrics['lines_unparseable']} unparseable lines; {mb:.1f} MB in {seconds:.1f} s "
        f"({mb / max(seconds, 1e-9):.1f} MB/s)",
        file=sys.stderr,
    )
    if not metrics["accounting"]["ok"]:
        raise AccountingError(f"accounting does not add up (see {path})")
    return metrics


def clean_raw(
    cfg: CleanConfig, raw_path: str | Path, layout: Layout, progress: bool = False
) -> dict[str, Any]:
    """Clean `raw_path` into `layout.clean_{workouts,rejects,report}`; return the counts
    for metrics/clean.json.

    Raises RawNotFoundError / RawFormatError (from the reader) for unusable input files.
    """
    raw_path = require_raw_file(raw_path)
    layout.clean_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmpdirs()
    with stop_on_signals():
        tmpdir = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-")
        try:
            with OrderedPool(cfg.workers, init_worker, (cfg,)) as pool:
                return _run(raw_path, layout, cfg, tmpdir, pool, progress)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def remove_stale_tmpdirs(root: str | Path | None = None) -> list[Path]:
    """Remove the temporary dirs of clean runs whose process is gone (killed by SIGKILL,
    which no handler sees); return them. Names carry the owner's pid: hrpred-clean-<pid>-*."""
    removed = []
    for path in sorted(Path(root or tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*-*")):
        pid = path.name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _run(
    raw_path: Path,
    layout: Layout,
    cfg: CleanConfig,
    tmpdir: str,
    pool: OrderedPool,
    progress: bool,
) -> dict[str, Any]:
    # Pass 1: examine every line; keep only per-workout level statistics in memory.
    p1: list[Pass1Result] = []
    with Bar("clean pass 1", "lines", enabled=progress) as bar:
        tasks = iter_tasks(raw_path, cfg.chunk_lines, tmpdir)
        for r in pool.map(pass1_chunk, tasks):
            p1.append(r)
            bar.update(r.n_lines)
    lines_read = sum(r.n_lines for r in p1)
    unparseable = sum(r.unparseable for r in p1)
    sports: Counter[str] = Counter()
    for r in p1:
        sports.update(r.sports)

    # Between passes: leave-one-out level models per user (at the level of the time), their
    # spread and usual warm-ups.
    users = np.concatenate([r.users for r in p1]) if p1 else np.zeros(0, np.int64)
    stats = np.concatenate([r.stats for r in p1]) if p1 else np.zeros((0, N_LEVEL_STATS))
    eligible = np.concatenate([r.eligible for r in p1]) if p1 else np.zeros(0, bool)
    coef, k, pop = level_models(users, stats, eligible, cfg.detector)
    starts = np.concatenate([r.starts for r in p1]) if p1 else np.zeros(0)
    use = baselines(stats, eligible, coef, k, cfg.detector)
    coef, spread = local_levels(users, starts, stats, use, coef, cfg.detector)
    later = later_deficits(users, starts, stats, eligible, coef, cfg.detector.full_persist_runs)
    n_bins = len(cfg.detector.warmup_bins_s) - 1
    profiles = np.concatenate([r.warmup for r in p1]) if p1 else np.zeros((0, n_bins))
    warm = warmup_templates(users, profiles, cfg.detector)
    bounds = np.cumsum([0] + [r.users.size for r in p1])
    p2_tasks = (
        (
            r.index,
            tmpdir,
            coef[bounds[i] : bounds[i + 1]],
            k[bounds[i] : bounds[i + 1]],
            warm[bounds[i] : bounds[i + 1]],
            spread[bounds[i] : bounds[i + 1]],
            later[bounds[i] : bounds[i + 1]],
        )
        for i, r in enumerate(p1)
    )

    # Pass 2: decide, correct, write in line order.
    kept = 0
    rejected: Counter[str] = Counter()
    corrected: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    speed_source: Counter[str] = Counter()
    pauses: Counter[str] = Counter()
    writers = {
        "workouts": BatchWriter(layout.clean_workouts, WORKOUTS_SCHEMA),
        "rejects": BatchWriter(layout.clean_rejects, REJECTS_SCHEMA),
        "report": BatchWriter(layout.clean_report, REPORT_SCHEMA),
    }
    try:
        with Bar("clean pass 2", "chunks", total=len(p1), enabled=progress) as bar:
            for res in pool.map(pass2_chunk, p2_tasks):
                writers["workouts"].add(res.workouts)
                writers["rejects"].add(res.rejects)
                writers["report"].add(res.report)
                kept += res.kept
                rejected.update(res.rejected)
                corrected.update(res.corrected)
                faults.update(res.faults)
                speed_source.update(res.speed_source)
                pauses.update(res.pauses)
                bar.update(1)
    finally:
        for wr in writers.values():
            wr.close()

    other_sports = rejected.pop("sport", 0)
    rejected.pop("unparseable", None)
    parsed = lines_read - unparseable
    workouts_read = parsed - other_sports  # workouts of the kept sports
    n_rejected = sum(rejected.values())
    summary = summarise(layout.clean_report, layout.clean_dir / USERS_NAME)
    accounting = {
        "workouts_read == workouts_kept + sum(rejected)": workouts_read == kept + n_rejected,
        "lines_read == workouts_read + workouts_other_sports + lines_unparseable": lines_read
        == workouts_read + other_sports + unparseable,
        "workouts_read == sum(sports[kept sports])": workouts_read
        == sum(v for sp, v in sports.items() if sp in cfg.sports),
    }
    return {
        "lines_read": lines_read,
        "lines_unparseable": unparseable,
        "workouts_other_sports": other_sports,
        "workouts_read": workouts_read,
        "workouts_kept": kept,
        "rejected": dict(sorted(rejected.items())),
        "corrected": dict(sorted((k2, v) for k2, v in corrected.items() if k2 != "none")),
        "faults": dict(sorted(faults.items())),
        "sports": dict(sorted(sports.items())),
        "speed_source": dict(sorted(speed_source.items())),
        "pauses": {
            "gap_action": cfg.rules.gap_action,
            "workouts_kept_with_pauses": pauses["workouts"],
            "pauses_kept": pauses["pauses"],
            "paused_minutes": round(pauses["seconds"] / 60.0, 1),
        },
        "population_level_model": [round(float(c), 4) for c in pop],
        **summary,
        "accounting": {"ok": all(accounting.values()), **accounting},
    }
