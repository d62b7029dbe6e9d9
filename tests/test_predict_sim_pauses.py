"""Issue 15, real-run behaviour: a run with pauses is kept and `hrpred predict` reports them.

The simulator (params.yaml's, with pauses on and faults off) writes a few runs with known
pauses (truth `pause_step` / `pause_s`: the watch auto-paused before sample `pause_step`, for
`pause_s` seconds). Each run is re-recorded as a 1 Hz watch would log it: positions, altitude
and HR interpolated to every second of MOVING time, and no sample while paused, so the clock
jumps by the pause length. Written as FIT and GPX, each file must be predicted (kept), and the
summary and the printed "N pause(s): ..." line must name exactly the simulated pauses; a run
without pauses names none.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hrpred.io.userfiles import read_activity
from hrpred.serve.cli import main
from hrpred.serve.predict import load_bundle, predict_activity
from hrpred.simulate import SimConfig, simulate_dataset
from hrpred.timeseries import haversine_km
from tests.predict_fixtures import Workout, make_bundle, write_fit, write_gpx

STEP = 8.0  # the bundle's grid step (s)
SEED = 2  # a simulation whose runs include the three kinds below (asserted)
POINTS = 90  # samples per simulated run (~13 min moving; fit_tool writes ~2 ms per record)
SHORT_S = (60.0, 150.0)  # a short pause: 1-2.5 min
LONG_S = 600.0  # a long pause: 10 min or more
PAUSES_LINE = re.compile(r"^  (\d+) pause\(s\): (.*)$", re.M)


@dataclasses.dataclass
class SimRun:
    name: str
    truth: list[tuple[float, float]]  # (start s from the first sample, seconds) per pause
    files: dict[str, Path]  # fit / gpx
    n_points: int  # samples in the 1 Hz recording


def one_hz(w: dict, steps: list[int], seconds: list[float]) -> Workout:
    """The simulated workout as a 1 Hz watch with auto-pause records it: every channel at each
    whole second of moving time (linear), the clock jumping by the pause after the last
    sample before it (the simulator's pause sits between samples step - 1 and step)."""
    ts = np.asarray(w["timestamp"], np.int64)
    paused = np.zeros(ts.size, np.int64)  # paused seconds before each sample
    for p, s in zip(steps, seconds, strict=True):
        paused[p:] += int(s)
    moving = ts - ts[0] - paused
    assert (np.diff(moving) >= 1).all()
    m = np.arange(moving[-1] + 1)
    jump = np.zeros(m.size, np.int64)
    for p, s in zip(steps, seconds, strict=True):
        jump[m > moving[p - 1]] += int(s)

    def at(key: str) -> np.ndarray:
        return np.interp(m, moving, np.asarray(w[key], np.float64))

    lat, lon = at("latitude"), at("longitude")
    step_m = np.r_[0.0, haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:]) * 1000.0]
    speed = np.r_[step_m[1:2], step_m[1:]] * 3.6  # per 1 s step, the first copies the second
    return Workout(
        timestamp=ts[0] + m + jump, speed_kmh=speed, altitude_m=np.round(at("altitude"), 1),
        latitude=lat, longitude=lon, heart_rate=np.rint(at("heart_rate")),
        distance_m=np.cumsum(step_m),
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs(config, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimRun]:
    """Three simulated runs (no pause / one short pause / a long pause among others) as 1 Hz
    FIT and GPX files, with their pauses' truth (start on the file's clock, length)."""
    base = config(SimConfig, "simulate")
    pauses = dataclasses.replace(base.pauses, rate=0.5)
    cfg = dataclasses.replace(
        base, seed=SEED, n_users=3, n_workouts=12, chunk_size=12, workers=1, points=POINTS,
        faults={}, pauses=pauses,
    )  # fmt: skip
    d = tmp_path_factory.mktemp("simpauses")
    simulate_dataset(cfg, d / "sim.json", d / "truth.parquet", progress=False)
    lines = (d / "sim.json").read_bytes().split(b"\n")[:-1]
    truth = pq.read_table(d / "truth.parquet").to_pandas()
    picked: dict[str, int] = {}
    for row in truth[(truth.sport == "run") & (truth.fault == "none")].itertuples():
        secs = list(row.pause_s)
        kind = (
            "none" if not secs
            else "short" if len(secs) == 1 and SHORT_S[0] <= secs[0] <= SHORT_S[1]
            else "long" if max(secs) >= LONG_S
            else None
        )  # fmt: skip
        if kind is not None:
            picked.setdefault(kind, row.line - 1)
    # the precondition: the seed gives a run of each kind (the long one with a second pause)
    assert set(picked) == {"none", "short", "long"}, picked
    assert len(truth.pause_s[picked["long"]]) == 2
    out: dict[str, SimRun] = {}
    for kind, i in picked.items():
        # the simulator writes no quotes inside strings: JSON after swapping the quotes
        w = json.loads(lines[i].replace(b"'", b'"'))
        steps = [int(p) for p in truth.pause_step[i]]
        secs = [float(s) for s in truth.pause_s[i]]
        ts = np.asarray(w["timestamp"], np.int64)
        starts = [float(ts[p - 1] - ts[0]) for p in steps]
        rec = one_hz(w, steps, secs)
        files = {
            "fit": write_fit(d / f"{kind}.fit", rec),
            "gpx": write_gpx(d / f"{kind}.gpx", rec),
        }
        out[kind] = SimRun(kind, list(zip(starts, secs, strict=True)), files, rec.timestamp.size)
    return out


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), step_s=STEP, seq_len=200)


def _check_pauses(reported: list[dict[str, float]], run: SimRun) -> None:
    """Exactly the simulated pauses: the same count, each starting within a grid step of the
    truth and lasting the truth's seconds (+ the 1 s sampling step the gap spans)."""
    assert len(reported) == len(run.truth), (run.name, reported, run.truth)
    for got, (start, secs) in zip(reported, run.truth, strict=True):
        assert abs(got["start_s"] - start) <= STEP, (run.name, got, start)
        assert abs(got["duration_s"] - secs) <= 2.0, (run.name, got, secs)


@pytest.mark.parametrize("fmt", ["fit", "gpx"])
def test_predict_keeps_the_run_and_reports_its_pauses(runs, bundle_dir, fmt: str) -> None:
    bundle = load_bundle(bundle_dir)
    for run in runs.values():
        activity = read_activity(run.files[fmt])
        # the whole 1 Hz recording is read: nothing dropped around the pauses
        assert activity.timestamp.size == run.n_points
        pred = predict_activity(bundle, activity)
        # kept: a prediction for every point of the file, over the whole clock time
        assert len(pred.frame) == run.n_points and np.isfinite(pred.frame["hr_pred"]).all()
        clock = activity.timestamp[-1] - activity.timestamp[0]
        assert clock - STEP < pred.summary["duration_s"] <= clock  # the grid's last step
        assert pred.summary["n_hr"] == run.n_points
        _check_pauses(pred.summary["pauses"], run)
        if run.truth:  # the grid marks the paused time: the runner stood (speed ~0 once the
            # trailing speed smoothing has passed the pause start)
            assert pred.grid.paused.sum() * STEP == pytest.approx(
                sum(s for _, s in run.truth), abs=len(run.truth) * STEP
            )
            assert np.median(pred.grid.speed_kmh[pred.grid.paused]) < 1.0


def test_cli_prints_the_simulated_pauses(runs, bundle_dir, tmp_path, capsys) -> None:
    names = ["none", "short", "long"]
    files = [str(runs[k].files[fmt]) for k in names for fmt in ("fit", "gpx")]
    out = tmp_path / "pred.csv"
    assert main(["predict", *files, "--bundle", str(bundle_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # one summary per file, in order; the pause line sits inside its own file's block
    blocks = re.split(r"^(?=\S+\.(?:fit|gpx): )", text, flags=re.M)[1:]
    assert [b.split(":", 1)[0] for b in blocks] == [Path(f).name for f in files]
    for block, name in zip(blocks, [k for k in names for _ in range(2)], strict=True):
        run = runs[name]
        found = PAUSES_LINE.findall(block)
        if not run.truth:
            assert found == [] and "pause" not in block, block
            continue
        assert len(found) == 1, block
        count, parts = found[0]
        assert int(count) == len(run.truth)
        printed = re.findall(r"at ([\d.]+) min for ([\d.]+) min", parts)
        assert len(printed) == len(run.truth)
        for (at_min, for_min), (start, secs) in zip(printed, run.truth, strict=True):
            assert abs(float(at_min) * 60 - start) <= STEP + 3.0  # printed to 0.1 min
            assert abs(float(for_min) * 60 - secs) <= 2.0 + 3.0
        assert re.fullmatch(r"at [\d.]+ min for [\d.]+ min(, at [\d.]+ min for [\d.]+ min)*", parts)
        # and predict's warning counts the same recording gaps
        assert f"warning: {len(run.truth)} recording gap(s) longer than 60 s" in block
    table = pd.read_csv(out)  # every point of every file predicted
    assert len(table) == sum(runs[k].n_points for k in names for _ in range(2))
    assert table["hr_pred"].notna().all()
