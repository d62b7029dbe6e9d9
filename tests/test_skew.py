"""Train/serve skew: the model inputs `hrpred predict` computes from a user's file equal the
ones the clean -> featurize path computes from the same points.

The reference: the file's channels sampled at the predict grid's times (the recording a
device logging every step would have made) as a FitRec-format workout, through the clean
stage's per-workout processing (`hrpred.clean.passes.examine`: coercion, rules, speed) and
`compute_features`. Before the speed rules were unified, predict derived GPS speed without
clean's smoothing and with another cap and spike rule: up to ~1 km/h apart on a clean
simulated 1 Hz GPX and ~9 km/h on a real one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hrpred.clean.config import CleanConfig
from hrpred.clean.passes import Candidate, examine
from hrpred.features.registry import WorkoutInputs, compute_features
from hrpred.io.raw import RawItem
from hrpred.io.userfiles import Activity, read_activity
from hrpred.serve.inputs import Grid, grid_features, on_grid, resample_activity
from tests.predict_fixtures import simulated_workout, write_fit, write_gpx

REAL = Path(__file__).resolve().parents[2] / "shared" / "samples" / "real"
LONGEST_WINDOW = 60  # steps: the longest lag / rolling window of the default features


@pytest.fixture(scope="module")
def clean_cfg(config) -> CleanConfig:
    return config(CleanConfig, "clean")


@pytest.fixture(scope="module")
def features(params) -> list[str]:
    return list(params["featurize"]["features"])


def reference(act: Activity, grid: Grid, cfg: CleanConfig, names: list[str]) -> np.ndarray:
    """Features of the clean -> featurize path on the file sampled at the grid's times."""
    t, g = act.timestamp, grid.timestamp
    n = len(g)
    d = {
        "id": 1, "userId": 2, "sport": "run", "gender": "female",
        "timestamp": [int(round(x)) for x in g],
        "heart_rate": list(150.0 + 10.0 * np.sin(np.arange(n) / 17.0)),
        "altitude": list(on_grid(t, act.altitude, g)),
    }  # fmt: skip
    lat, lon, speed = (on_grid(t, x, g) for x in (act.latitude, act.longitude, act.speed))
    if lat is not None and lon is not None:
        d["latitude"], d["longitude"] = list(lat), list(lon)
    if speed is not None:
        d["speed"] = list(speed)
    cand = examine(RawItem(0, d, None), cfg)
    assert isinstance(cand, Candidate), cand
    assert cand.speed_source == grid.speed_source
    inputs = WorkoutInputs.from_arrays(cand.w.ts, cand.speed, cand.w.alt, "female")
    return compute_features(names, inputs)


def skew(path: Path, step_s: float, cfg: CleanConfig, names: list[str]) -> np.ndarray:
    """|predict - reference| per grid step and feature, steps near recording gaps left out
    (inside a gap the grid has points a training recording lacks: see hrpred.serve.predict)."""
    act = read_activity(path)
    grid = resample_activity(act, step_s, cfg.speed)
    assert np.allclose(grid.timestamp, np.round(grid.timestamp))  # integer times, as FitRec
    got = grid_features(names, grid, "female").astype(np.float64)
    want = reference(act, grid, cfg, names).astype(np.float64)
    assert got.shape == want.shape
    near_gap = np.convolve(grid.paused, np.ones(LONGEST_WINDOW + 1), "full")[: len(grid.paused)]
    return np.abs(got - want)[near_gap == 0]


@pytest.mark.parametrize("step_s", [1.0, 8.0])  # the file's own step; a training-like grid
@pytest.mark.parametrize("fmt", ["gpx", "fit"])  # GPS-derived speed; native speed
def test_simulated_1hz_files_have_no_skew(tmp_path, clean_cfg, features, fmt, step_s):
    w = simulated_workout(n=1800, step_s=1.0, seed=3)
    path = write_gpx(tmp_path / "w.gpx", w) if fmt == "gpx" else write_fit(tmp_path / "w.fit", w)
    diff = skew(path, step_s, clean_cfg, features)
    speed = diff[:, features.index("speed")]
    assert speed.max() <= 1e-5, f"speed skew {speed.max():.3g} km/h"
    assert diff.max() <= 1e-3, f"feature skew {diff.max(0)}"


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/samples/real not present")
@pytest.mark.parametrize("step_s", [1.0, 8.0])
@pytest.mark.parametrize(
    "name",
    ["coros-run.fit.gz", "strava-app-run.fit.gz", "strava-run.gpx", "garmin-run-decoded.csv"],
)
def test_real_files_have_no_skew(clean_cfg, features, name, step_s):
    diff = skew(REAL / name, step_s, clean_cfg, features)
    assert len(diff) > 50
    speed = diff[:, features.index("speed")]
    assert speed.max() <= 1e-5, f"speed skew {speed.max():.3g} km/h"
    assert diff.max() <= 1e-3, f"feature skew {diff.max(0)}"
