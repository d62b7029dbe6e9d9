"""Reading a profile's runs, on several cores (`hrpred profile --workers`).

Each file or export member becomes a `ReadRun` (`read_run`: resampled to the bundle's grid, speed
by the bundle's rules, features by the registry, a summary) or a one-line reason to skip it.
`read_runs` does this for many in a pool of worker processes and yields the results in the
order given, so that what is built from them does not depend on the number of workers:
- an export's member is read (its bytes, gunzipped) by this process, which holds the open
  archive (a zip's file offset must not be shared with forked children), and parsed by a
  worker; a plain file path is opened by the worker itself;
- the workers get only what reading needs (`ReadConfig`: grid step, speed rules, feature
  names, gender), never the bundle (its weights);
- at most WINDOW_PER_WORKER runs per worker are in flight (their bytes or results waiting),
  so memory stays bounded whatever the number of files.
On Linux the workers are forked (they start at once, and a script that calls this needs no
`if __name__ == "__main__"` guard); they run only the readers (Python and numpy), never the
model's threads the bundle may have started. Elsewhere they are spawned.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hrpred.errors import HrpredError
from hrpred.io.activity import HR_MAX_BPM, HR_MIN_BPM, Activity
from hrpred.io.exports import RunSource
from hrpred.io.jsonspec import MAX_TEXT_CHARS
from hrpred.io.limits import MIN_TIMESTAMP_S
from hrpred.io.sport import require_running
from hrpred.io.userfiles import read_activity
from hrpred.personal.summaries import SUMMARY_FEATURES, row_stats, summaries_from_stats
from hrpred.serve.inputs import grid_features, on_grid, resample_activity
from hrpred.serve.profile_io import ProfileError
from hrpred.timeseries import SpeedConfig

WINDOW_PER_WORKER = 2  # runs in flight per worker (read, being parsed, or parsed and waiting)


@dataclass(frozen=True)
class ReadConfig:
    """What reading a run needs of the bundle (sent to each worker once)."""

    step_s: float
    speed: SpeedConfig
    features: tuple[str, ...]
    gender: str | None


@dataclass
class ReadRun:
    """A run read for the profile: its entry and the grid arrays its residuals need."""

    entry: dict[str, Any]
    features: np.ndarray  # [n_grid, F] unscaled
    hr: np.ndarray  # [n_grid] recorded HR on the grid
    ok: np.ndarray  # [n_grid] valid steps
    t: np.ndarray  # [n_grid] grid times (Unix s)
    speed: np.ndarray  # [n_grid] km/h
    path: str = ""  # the file as given (ties in start time are broken by it)


def date_text(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clip(text: str) -> str:
    """A name or reason as the profile's text fields hold it (the end of a long one)."""
    return text if len(text) <= MAX_TEXT_CHARS else "..." + text[3 - MAX_TEXT_CHARS :]


def read_run(cfg: ReadConfig, activity: Activity) -> ReadRun:
    """One run's entry (without residuals) and grid arrays (ProfileError/ActivityError when it
    cannot be summarised)."""
    require_running(activity)  # a ride or a swim is skipped as such, whatever else it lacks
    if activity.heart_rate is None or np.isfinite(activity.heart_rate).sum() < 2:
        raise ProfileError("no heart rate recorded: a profile needs runs with HR")
    start = float(activity.timestamp[0])
    if start < MIN_TIMESTAMP_S:
        raise ProfileError("no date (relative times): cannot order it among the runs")
    grid = resample_activity(activity, cfg.step_s, cfg.speed)
    feats = grid_features(list(cfg.features), grid, cfg.gender)
    hr = on_grid(activity.timestamp, activity.heart_rate, grid.timestamp)
    assert hr is not None  # >= 2 finite samples checked above
    ok = np.isfinite(hr) & (hr >= HR_MIN_BPM) & (hr <= HR_MAX_BPM) & ~grid.paused
    stats = row_stats(feats[None], hr[None], ok[None], list(cfg.features))
    s = summaries_from_stats(np.array([0]), stats)
    if not s.valid[0]:
        raise ProfileError("too few valid heart-rate samples to summarise the run")
    entry = {
        "file": clip(Path(activity.source).name),
        "start_time": start,
        "date": date_text(start),
        "duration_s": float(grid.timestamp[-1] - grid.timestamp[0]),
        "distance_km": float(np.sum(grid.speed_kmh[1:] / 3.6 * grid.step_s) / 1000.0),
        "valid": True,
        "summary": {f: float(v) for f, v in zip(SUMMARY_FEATURES, s.values[0], strict=True)},
    }
    return ReadRun(entry, feats, hr, ok, grid.timestamp, grid.speed_kmh)


def item_name(item: str | Path | RunSource) -> str:
    return item.name if isinstance(item, RunSource) else str(item)


# a read: the run, or the reason it was skipped (one line, as the exception said it)
Outcome = tuple[ReadRun | None, str]


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _fetched(warns: list[str]) -> bytes:  # a RunSource sent to a worker: its bytes came along
    raise AssertionError("a member sent to a worker is parsed from its fetched bytes")


@dataclass(frozen=True)
class _Job:
    """One file for a worker: a path it opens, or a member's fetched bytes to parse."""

    name: str
    source: RunSource | None = None
    data: bytes = b""
    warns: tuple[str, ...] = ()


def _job(item: str | Path | RunSource) -> _Job | Outcome:
    """What a worker needs to read `item`; a member is fetched here (its archive is open in
    this process), and a member that cannot be fetched is its outcome already."""
    if not isinstance(item, RunSource):
        return _Job(str(item))
    try:
        data, warns = item.fetch()
    except (HrpredError, ValueError, OSError) as exc:
        return None, _reason(exc)
    return _Job(item.name, replace(item, read_bytes=_fetched), data, tuple(warns))


def _read(cfg: ReadConfig, job: _Job) -> Outcome:
    try:
        if job.source is None:
            return read_run(cfg, read_activity(job.name)), ""
        run = read_run(cfg, job.source.parse(job.data, list(job.warns)))
        run.entry["source"] = clip(job.name)
        return run, ""
    except (HrpredError, ValueError, OSError) as exc:
        return None, _reason(exc)


_WORKER_CONFIG: list[ReadConfig] = []  # a worker's ReadConfig (set by _init)


def _init(cfg: ReadConfig) -> None:
    _WORKER_CONFIG[:] = [cfg]


def _work(job: _Job) -> Outcome:
    return _read(_WORKER_CONFIG[0], job)


def read_runs(
    cfg: ReadConfig, items: Iterable[str | Path | RunSource], workers: int
) -> Iterator[Outcome]:
    """Each item's outcome, in the order given, read by `workers` processes (1: this one)."""
    jobs = (_job(item) for item in items)
    if workers <= 1:
        for job in jobs:
            yield _read(cfg, job) if isinstance(job, _Job) else job
        return
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(cfg,)) as pool:
        pending: deque[Any] = deque()
        for job in jobs:
            pending.append(pool.apply_async(_work, (job,)) if isinstance(job, _Job) else job)
            while len(pending) >= workers * WINDOW_PER_WORKER:
                yield _outcome(pending.popleft())
        while pending:
            yield _outcome(pending.popleft())


def _outcome(pending: Any) -> Outcome:
    return pending if isinstance(pending, tuple) else pending.get()
