"""Pauses: gaps judged pause or clock jump, kept and marked, counted; `since_pause` reads the
same pauses; and runs that slow to a walk or pause go through the stage uncorrected."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from synthetic_clean import fitrec_dict, physio_run

from hrpred.clean.config import CleanConfig
from hrpred.clean.pauses import gap_steps, judge_gaps, since_pause_s
from hrpred.clean.pipeline import clean_raw
from hrpred.features.registry import WorkoutInputs, compute_features
from hrpred.io.raw import write_fitrec_line
from hrpred.store import Layout


@pytest.fixture(scope="module")
def cfg(config) -> CleanConfig:
    return replace(config(CleanConfig, "clean"), workers=1, chunk_lines=4, truth=None)


def test_gap_steps_and_since_pause():
    ts = np.array([0, 10, 20, 90, 100, 400, 410], dtype=float)
    np.testing.assert_array_equal(gap_steps(ts, 60.0), [3, 5])
    np.testing.assert_array_equal(since_pause_s(ts), [0, 10, 20, 0, 10, 0, 10])
    marks = np.array([0, 0, 1, 0, 0, 0, 0], dtype=bool)  # explicit marks win
    np.testing.assert_array_equal(since_pause_s(ts, marks), [0, 10, 0, 70, 80, 380, 390])
    assert since_pause_s(np.zeros(0)).size == 0


def _judge(ts, hr, lat=None, steps=None, cfg=None):
    steps = gap_steps(ts, 60.0) if steps is None else steps
    lon = None if lat is None else np.full(lat.size, 7.0)
    r = cfg.rules
    return judge_gaps(ts, hr, lat, lon, steps, 30.0, r.pause_hr_drop_bpm, r.jump_max_move_steps)


def test_pause_or_clock_jump(cfg):
    n = 40
    ts = np.arange(n) * 10.0
    ts[20:] += 900.0
    lat = 45.0 + np.arange(n) * 3e-4  # ~33 m per step, also across the gap
    hr = np.full(n, 160.0)
    (jump,) = _judge(ts, hr, lat, cfg=cfg)  # HR carries on, the position moves one step
    assert jump.kind == "clock_jump" and jump.step == 20 and jump.seconds == 910.0
    assert jump.moved_steps == pytest.approx(1.0, abs=0.01)
    hr[20:] = np.linspace(110, 150, n - 20)  # HR recovered while standing
    assert _judge(ts, hr, lat, cfg=cfg)[0].kind == "pause"
    far = lat.copy()
    far[20:] += 0.01  # ran on for a kilometre: a recording gap, not a jump
    assert _judge(ts, np.full(n, 160.0), far, cfg=cfg)[0].kind == "pause"
    assert _judge(ts, np.full(n, 160.0), None, cfg=cfg)[0].kind == "clock_jump"  # no GPS
    unusable = np.full(n, 160.0)
    unusable[14:20] = np.nan  # HR cannot tell: benefit of the doubt
    assert _judge(ts, unusable, lat, cfg=cfg)[0].kind == "pause"
    twice = np.array([0, 10, 20, 30, 900, 1800, 1810, 1820, 1830], dtype=float)
    second = _judge(twice, np.full(9, 90.0), None, cfg=cfg)
    assert [g.kind for g in second] == ["clock_jump", "pause"]  # no time to climb between


def _lines(runs: list[dict]) -> list[bytes]:
    return [write_fitrec_line(fitrec_dict(r, 100 + i)).encode() for i, r in enumerate(runs)]


def _clean(tmp_path: Path, cfg: CleanConfig, lines: list[bytes], name: str):
    raw = tmp_path / f"{name}.json"
    raw.write_bytes(b"".join(line + b"\n" for line in lines))
    layout = Layout(tmp_path / name)
    metrics = clean_raw(cfg, raw, layout)
    return metrics, layout


def test_pauses_are_kept_marked_and_counted(tmp_path, cfg):
    rng = np.random.default_rng(0)
    paused = physio_run(rng, pauses=((150, 300.0), (320, 1200.0)))
    jumped = physio_run(rng)
    jumped["ts"][250:] += 1800  # a clock jump: HR carries on
    plain = physio_run(rng)
    m, layout = _clean(tmp_path, cfg, _lines([paused, jumped, plain]), "pause")
    assert m["accounting"]["ok"] and m["workouts_kept"] == 2
    assert m["rejected"] == {"timestamp_gap": 1}
    steps = np.diff(paused["ts"])[[149, 319]]  # the gap steps: pause + one ordinary step
    assert m["pauses"] == {
        "gap_action": "pause",
        "workouts_kept_with_pauses": 1,
        "pauses_kept": 2,
        "paused_minutes": round(float(steps.sum()) / 60.0, 1),
    }
    rows = pq.read_table(layout.clean_workouts).to_pylist()
    assert rows[0]["pause_step"] == [150, 320] and rows[1]["pause_step"] == []
    assert rows[0]["pause_s"] == steps.astype(float).tolist()
    assert rows[0]["correction"] == "none" and all(rows[0]["hr_valid"])
    report = pq.read_table(layout.clean_report).to_pylist()
    assert [r["n_pauses"] for r in report] == [2, 0, 0]
    assert "clock jump" in report[1]["detail"]
    # The model's since_pause restarts exactly at the pauses the stage kept.
    ts = np.asarray(rows[0]["timestamp"], dtype=float)
    inputs = WorkoutInputs.from_arrays(ts, rows[0]["speed"], rows[0]["altitude"], "male")
    since = compute_features(["since_pause"], inputs)[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(since == 0)[1:], rows[0]["pause_step"])
    # The same input under gap_action reject: both gapped runs rejected.
    strict = replace(cfg, rules=replace(cfg.rules, gap_action="reject"))
    m, _ = _clean(tmp_path, strict, _lines([paused, jumped, plain]), "reject")
    assert m["rejected"] == {"timestamp_gap": 2} and m["pauses"]["pauses_kept"] == 0


def test_walks_go_through_the_stage_uncorrected(tmp_path, cfg):
    """Runs that slow to a walk and recover, or pause, with HR following: every one kept,
    no fault, no correction, nothing masked (the user's other runs as the level)."""
    rng = np.random.default_rng(1)
    runs = [physio_run(rng, walks=((150, 175), (300, 330))) for _ in range(4)]
    runs += [physio_run(rng, walks=((100, 200),)) for _ in range(2)]
    runs += [physio_run(rng, pauses=((220, 400.0),)) for _ in range(2)]
    m, layout = _clean(tmp_path, cfg, _lines(runs), "walks")
    assert m["workouts_kept"] == len(runs) and m["corrected"] == {}
    report = pq.read_table(layout.clean_report).to_pylist()
    assert {r["fault"] for r in report} <= {"none", "benign"}, [r["detail"] for r in report]
    assert all(r["correction"] == "none" and r["n_invalid"] == 0 for r in report)
