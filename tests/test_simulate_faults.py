"""Simulator: the real-sensor HR faults, the cadence signal and pauses, with exact truth.

Three small simulations from the same seed differ only in their fault and pause rates: the
simulator draws faults after every physiological array and pauses from their own streams,
so the twins share users, tracks and sensor noise, and comparing them checks the truth
(`hr_clean` is the fault-free HR; pauses only shift the clock and let HR recover).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hrpred.params import ParamError, load_config
from hrpred.simulate import SimConfig, simulate_dataset
from hrpred.simulate.physiology import SPORTS, cadence
from hrpred.simulate.plan import make_plan

NEW_FAULTS = (
    "slow_lock", "cadence_follow", "whole_run_lock", "stuck_low", "lagging_noisy",
    "low_dropout", "strap_drying",
)  # fmt: skip
LOCK_NOISE_SD = 1.5  # the lock faults' reading noise around the cadence (faults.py)


@dataclasses.dataclass
class Sim:
    cfg: SimConfig
    truth: pd.DataFrame
    workouts: list[dict]
    metrics: dict


def _simulate(cfg: SimConfig, where: Path) -> Sim:
    out, truth = where / "sim.json", where / "truth.parquet"
    metrics = simulate_dataset(cfg, out, truth, progress=False)
    # the simulator writes no quotes inside strings: JSON after swapping the quotes
    lines = out.read_bytes().split(b"\n")[:-1]
    workouts = [json.loads(line.replace(b"'", b'"')) for line in lines]
    return Sim(cfg, pq.read_table(truth).to_pandas(), workouts, metrics)


@pytest.fixture(scope="module")
def base(config) -> SimConfig:
    """params.yaml's simulator, 200 lines of 10 users, native speed everywhere (so the lock
    faults' cadence can be recomputed from the recorded speed), half the workouts paused."""
    cfg = config(SimConfig, "simulate")
    pauses = dataclasses.replace(cfg.pauses, rate=0.5)
    return dataclasses.replace(
        cfg, seed=11, n_users=10, n_workouts=200, chunk_size=50, workers=1,
        native_speed_rate=1.0, pauses=pauses,
    )  # fmt: skip


@pytest.fixture(scope="module")
def faulty(base: SimConfig, tmp_path_factory: pytest.TempPathFactory) -> Sim:
    faults = dict.fromkeys(NEW_FAULTS, 0.12)
    return _simulate(dataclasses.replace(base, faults=faults), tmp_path_factory.mktemp("f"))


@pytest.fixture(scope="module")
def fault_free(base: SimConfig, tmp_path_factory: pytest.TempPathFactory) -> Sim:
    return _simulate(dataclasses.replace(base, faults={}), tmp_path_factory.mktemp("c"))


@pytest.fixture(scope="module")
def unpaused(base: SimConfig, tmp_path_factory: pytest.TempPathFactory) -> Sim:
    pauses = dataclasses.replace(base.pauses, rate=0.0)
    cfg = dataclasses.replace(base, faults={}, pauses=pauses)
    return _simulate(cfg, tmp_path_factory.mktemp("u"))


def _recorded_cadence(sim: Sim, line: int) -> np.ndarray:
    """The runner's cadence at the recorded (native) speed, from the plan's latent users."""
    plan = make_plan(sim.cfg)
    u = plan.user[line - 1]
    us = plan.users
    w = sim.workouts[line - 1]
    run_speed = np.asarray(w["speed"], float) / SPORTS[w["sport"]].speed_factor
    return cadence(
        run_speed[None, :],
        us.threshold_speed_kmh[u : u + 1],
        us.cadence_spm[u : u + 1],
        us.cadence_spm_per_kmh[u : u + 1],
        sim.cfg.cadence_clip_spm,
    )[0]


def _elapsed(w: dict) -> np.ndarray:
    ts = np.asarray(w["timestamp"], float)
    return ts - ts[0]


def test_hr_clean_is_the_fault_free_hr(faulty: Sim, fault_free: Sim) -> None:
    """Same seed, no faults: identical truth HR, and the recorded HR is hr_clean rounded."""
    assert (fault_free.truth.fault == "none").all()
    a, b = faulty.truth, fault_free.truth
    for col in ("hr_clean", "hr_physio", "pause_step", "pause_s"):
        assert all(np.array_equal(x, y) for x, y in zip(a[col], b[col], strict=True)), col
    for w, clean in zip(fault_free.workouts, b.hr_clean, strict=True):
        assert np.abs(np.asarray(w["heart_rate"]) - np.rint(clean)).max() <= 1
    for wa, wb in zip(faulty.workouts, fault_free.workouts, strict=True):
        for key in ("timestamp", "latitude", "longitude", "altitude", "speed"):
            assert wa[key] == wb[key]


def test_each_new_fault_changes_only_its_span(faulty: Sim) -> None:
    t, n = faulty.truth, faulty.cfg.points
    assert set(t.fault) == {"none", *NEW_FAULTS}
    assert (t.offset_bpm == 0).all()
    for row in t.itertuples():
        hr = np.asarray(faulty.workouts[row.line - 1]["heart_rate"], float)
        clean = np.rint(np.asarray(row.hr_clean))
        s, e = row.fault_start, row.fault_end
        if row.fault == "none":
            assert s == e == -1 and np.abs(hr - clean).max() <= 1
            continue
        assert 0 <= s < e <= n
        inside = np.zeros(n, bool)
        inside[s:e] = True
        assert np.abs(hr[~inside] - clean[~inside]).max(initial=0) <= 1, row.fault
        # ... and really changes it: the span reads off the truth
        assert np.abs(hr[inside] - clean[inside]).mean() > 2, row.fault


def test_fault_shapes(faulty: Sim) -> None:
    t, n = faulty.truth, faulty.cfg.points
    lag_helps: list[bool] = []
    for row in t[t.fault != "none"].itertuples():
        w = faulty.workouts[row.line - 1]
        hr = np.asarray(w["heart_rate"], float)
        clean = np.asarray(row.hr_clean)
        s, e, kind = row.fault_start, row.fault_end, row.fault
        seg = hr[s:e]
        elapsed = _elapsed(w)
        if kind in ("slow_lock", "strap_drying", "whole_run_lock", "stuck_low"):
            assert s == 0
        if kind in ("whole_run_lock", "stuck_low"):
            assert e == n
        if kind == "slow_lock":
            # joined after 1-5 min (the first step at or past the drawn time)
            assert elapsed[e] >= 60 and elapsed[e - 1] < 300
            low = seg.max() <= 102
            locked = np.abs(seg - _recorded_cadence(faulty, row.line)[s:e]).mean() < 3
            assert low != locked  # one mode: low and drifting up, or the cadence
            if low:
                assert seg.min() >= 56 and seg[-3:].mean() > seg[:3].mean()
        if kind in ("cadence_follow", "whole_run_lock"):
            assert kind == "whole_run_lock" or 20 <= e - s <= 150
            resid = seg - _recorded_cadence(faulty, row.line)[s:e]
            assert abs(resid.mean()) < 1.0 and resid.std() < 2.5 * LOCK_NOISE_SD, kind
        if kind == "stuck_low":
            assert seg.min() >= 60 and seg.max() <= 100 and seg.std() < 6
        if kind == "low_dropout":
            assert 5 <= e - s <= 60 and seg.min() >= 25 and seg.max() <= 60
        if kind == "strap_drying":
            assert elapsed[e] >= 180 and elapsed[e - 1] < 900
            ratio = seg / clean[s:e]
            assert 0.58 <= ratio[0] <= 0.87 and ratio.max() <= 1.03
            assert np.mean(ratio[-5:]) > np.mean(ratio[:5])  # recovering
        if kind == "lagging_noisy":
            assert int(0.2 * n) <= e - s <= int(0.6 * n)
            ts = np.asarray(w["timestamp"], float)
            # the best lag in 20-90 s explains the segment up to noise of sd 4-10 BPM
            sds = {lag: np.std(seg - np.interp(ts[s:e] - lag, ts, clean)) for lag in range(0, 91)}
            best = min(range(20, 91), key=sds.__getitem__)
            assert 3.0 <= sds[best] <= 11.0
            lag_helps.append(sds[best] < sds[0])
    # a lag beats none unless the HR is too flat for it to show under the noise
    assert np.mean(lag_helps) >= 0.75


def test_cadence_stays_in_its_band_and_rises_with_speed(config) -> None:
    cfg = dataclasses.replace(config(SimConfig, "simulate"), n_users=200, n_workouts=200)
    us = make_plan(cfg).users
    lo, hi = cfg.cadence_clip_spm
    assert (lo, hi) == (150.0, 190.0)
    speeds = np.linspace(0.0, 30.0, 121)[None, :].repeat(us.user_id.size, axis=0)
    c = cadence(speeds, us.threshold_speed_kmh, us.cadence_spm, us.cadence_spm_per_kmh, (lo, hi))
    assert c.min() >= 150 and c.max() <= 190
    assert (np.diff(c, axis=1) >= 0).all()  # never falls when faster
    assert (c[:, -1] > c[:, 0]).all()
    # at running paces (0.7-1.1 x threshold) every runner is within ~150-185 and rises
    pace = us.threshold_speed_kmh[:, None] * np.array([0.7, 1.1])[None, :]
    c = cadence(pace, us.threshold_speed_kmh, us.cadence_spm, us.cadence_spm_per_kmh, (lo, hi))
    assert c.min() >= 150 and c.max() <= 185 and (c[:, 1] > c[:, 0]).all()


def test_pauses_are_where_the_truth_says(faulty: Sim, unpaused: Sim) -> None:
    """A pause shifts the clock by pause_s at pause_step; position, altitude and speed stay
    the twin's; HR is the twin's until the pause, lower after it, then rises again."""
    cfg = faulty.cfg.pauses
    t = faulty.truth
    assert all(len(s) == 0 for s in unpaused.truth.pause_step)
    paused = t[t.pause_step.map(len) > 0]
    assert 0.35 * len(t) <= len(paused) <= 0.65 * len(t)
    drops: list[float] = []
    rises: list[float] = []
    for row in paused.itertuples():
        w, twin = faulty.workouts[row.line - 1], unpaused.workouts[row.line - 1]
        steps, secs = np.asarray(row.pause_step), np.asarray(row.pause_s)
        assert cfg.count[0] <= steps.size <= cfg.count[1]
        assert (np.diff(steps) > 0).all() and steps.min() >= 1
        assert ((secs >= cfg.pause_min_s) & (secs <= cfg.pause_max_s)).all()
        assert (secs == np.rint(secs)).all()
        shift = np.zeros(faulty.cfg.points)
        for p, sec in zip(steps, secs, strict=True):
            shift[p:] += sec
        ts, ts_twin = np.asarray(w["timestamp"]), np.asarray(twin["timestamp"])
        np.testing.assert_array_equal(ts - ts_twin, shift)  # the gap is exactly pause_s
        for key in ("latitude", "longitude", "altitude", "speed"):
            assert w[key] == twin[key], key  # the runner does not move while paused
        physio = np.asarray(row.hr_physio)
        twin_physio = np.asarray(unpaused.truth.hr_physio[row.line - 1])
        first = steps[0]
        np.testing.assert_array_equal(physio[:first], twin_physio[:first])
        for p in steps:
            drops.append(physio[p - 1] - physio[p])
            assert physio[p] <= twin_physio[p] + 1e-9  # recovered while paused
            if p + 10 < physio.size:
                rises.append(physio[p + 10] - physio[p])
    # HR falls over a pause and rises again once running (a stop or a walk may not)
    drops_arr, rises_arr = np.asarray(drops), np.asarray(rises)
    assert (drops_arr > 0).mean() >= 0.9 and np.median(drops_arr) >= 15
    assert (rises_arr > 0).mean() >= 0.9 and np.median(rises_arr) >= 10


def test_metrics_count_new_faults_and_pauses(faulty: Sim) -> None:
    t, m = faulty.truth, faulty.metrics
    for kind in NEW_FAULTS:
        assert m["faults"][kind] == int((t.fault == kind).sum()) > 0
        assert m["faults_runs"][kind] == int(((t.fault == kind) & (t.sport == "run")).sum())
    count = t.pause_step.map(len)
    assert m["pauses"]["workouts"] == int((count > 0).sum())
    assert m["pauses"]["pauses"] == int(count.sum())
    assert m["pauses"]["runs"] == int(((count > 0) & (t.sport == "run")).sum())
    secs = np.concatenate([np.asarray(s) for s in t.pause_s])
    assert m["pauses"]["seconds"]["max"] == secs.max()


def test_zero_rates_give_no_new_faults_and_no_pauses(unpaused: Sim) -> None:
    t = unpaused.truth
    assert (t.fault == "none").all() and (t.pause_step.map(len) == 0).all()
    assert unpaused.metrics["pauses"]["pauses"] == 0
    for kind in NEW_FAULTS:
        assert unpaused.metrics["faults"][kind] == 0


def test_same_params_same_bytes_with_pauses(base: SimConfig, tmp_path: Path) -> None:
    cfg = dataclasses.replace(base, faults=dict.fromkeys(NEW_FAULTS, 0.1), n_workouts=60)
    files = []
    for name, workers in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        out, truth = tmp_path / name / "sim.json", tmp_path / name / "truth.parquet"
        simulate_dataset(dataclasses.replace(cfg, workers=workers), out, truth, progress=False)
        files.append((out.read_bytes(), truth.read_bytes()))
    assert files[0] == files[1]


def test_config_rejects_bad_pauses(params) -> None:
    good = dict(params["simulate"])
    for bad, message in (
        ({"rate": 1.5}, "pauses.rate"),
        ({"count": [2, 1]}, "pauses.count"),
        ({"count": [0, 2]}, "pauses.count"),
        ({"pause_min_s": 600.0, "pause_max_s": 60.0}, "pause_min_s <= pause_max_s"),
        ({"standing_hrr": 1.0}, "standing_hrr"),
    ):
        data = {"simulate": good | {"pauses": good["pauses"] | bad}}
        with pytest.raises(ParamError, match=message):
            load_config(SimConfig, "simulate", data=data)
    with pytest.raises(ParamError, match=r"cadence_clip_spm must be \[low, high\]"):
        load_config(
            SimConfig, "simulate", data={"simulate": good | {"cadence_clip_spm": [190, 150]}}
        )
