"""Train/serve skew of personalisation: what `hrpred predict --history` gives a runner equals
what the evaluate stage saved for the same workout (issue 23).

A tiny pipeline runs on a simulation sampled on a regular 8 s grid (no step jitter, no pauses,
no sensor faults), so a workout written as a GPX file is exactly the recording `predict`
resamples it to. A test runner's workouts are written as GPX files (native speed where the
raw line had it); the last one is predicted with the earlier ones as history, and its headline
personal prediction and 80% band, point by point, must match data/eval/predictions.parquet's
`hr_personal`, `hr_p10`, `hr_p90` within 0.1 BPM: the same engine, plan, context and band.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.pipeline_repo import deep_update, dvc, make_repo, run
from tests.predict_fixtures import Workout, write_gpx

pytestmark = pytest.mark.slow

REGULAR_WORLD = {  # params/simulate.yaml: a regular grid, nothing for clean to mask
    "step_s_mean": 8.0,
    "step_s_spread": 0.0,
    "step_s_jitter": 0.0,
    "stop_rate": 0.0,
    "pauses": {"rate": 0.0},
    "sports": {"run": 1.0, "bike": 0.0, "walk": 0.0, "mountain bike": 0.0,
               "bike (transport)": 0.0},
}  # fmt: skip
OVERRIDE = {
    "simulate": {"n_users": 12, "n_workouts": 96, "points": 150},
    "featurize": {"seq_len": 200},
    "split": {"fractions": [0.5, 0.25, 0.25], "stratify": False},
}


def _regular_world(repo: Path) -> None:
    path = repo / "params" / "simulate.yaml"
    world = yaml.safe_load(path.read_text())
    world = deep_update(world, REGULAR_WORLD)
    world["faults"] = {k: 0.0 for k in world["faults"]}
    path.write_text(yaml.safe_dump(world, sort_keys=False))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("skew") / "repo", OVERRIDE)
    _regular_world(repo)
    dvc("repro", cwd=repo)
    return repo


def _raw_workouts(repo: Path, ids: set[int]) -> dict[int, dict]:
    from hrpred.io.raw import iter_raw

    out = {}
    for item in iter_raw(repo / "data" / "raw" / "simulated.json"):
        w = item.workout
        if w is not None and int(w["id"]) in ids:
            out[int(w["id"])] = w
    return out


def _gpx(path: Path, w: dict) -> Path:
    t = np.asarray(w["timestamp"], dtype=np.int64)
    native = "speed" in w
    speed = np.asarray(w["speed"], float) if native else np.zeros(len(t))
    workout = Workout(
        t, speed, np.asarray(w["altitude"], float), np.asarray(w["latitude"], float),
        np.asarray(w["longitude"], float), np.asarray(w["heart_rate"], float), np.zeros(len(t)),
    )  # fmt: skip
    return write_gpx(path, workout, speed=native)


def test_predict_with_history_equals_what_evaluate_saved(pipeline, tmp_path) -> None:
    repo = pipeline
    workouts = pd.read_parquet(repo / "data" / "eval" / "workouts.parquet")
    test = workouts[workouts["split"] == "test"]
    runner = test.groupby("user_id").size().idxmax()
    mine = test[test["user_id"] == runner].sort_values("n_history")
    assert len(mine) >= 3, "the tiny pipeline's busiest test runner has fewer than 3 runs"
    target = int(mine["workout_id"].iloc[-1])
    earlier = [int(w) for w in mine["workout_id"].iloc[:-1]]
    raw = _raw_workouts(repo, {target, *earlier})
    history = tmp_path / "history"
    history.mkdir()
    for wid in earlier:
        _gpx(history / f"{wid}.gpx", raw[wid])
    run_file = _gpx(tmp_path / f"{target}.gpx", raw[target])
    out = tmp_path / "out.csv"
    gender = raw[target]["gender"]
    run(
        ["hrpred", "predict", str(run_file), "--bundle", str(repo / "models" / "bundle"),
         "--history", str(history), "--gender", gender, "--out", str(out), "--quiet"],
        cwd=repo,
    )  # fmt: skip
    got = pd.read_csv(out)
    saved = pd.read_parquet(repo / "data" / "eval" / "predictions.parquet")
    saved = saved[saved["workout_id"] == target].sort_values("step")
    assert len(got) == len(saved)
    for served, evaluated in (("hr_personal", "hr_personal"), ("hr_p10", "hr_p10"),
                              ("hr_p90", "hr_p90"), ("hr_pred", "hr_cold")):  # fmt: skip
        diff = np.abs(got[served].to_numpy() - saved[evaluated].to_numpy(np.float64))
        assert diff.max() < 0.1, (served, float(diff.max()))
    row = mine.iloc[-1]
    assert row["n_history"] == len(earlier)  # the same earlier runs on both sides
    shutil.rmtree(history)
