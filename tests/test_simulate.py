"""Simulator: determinism, FitRec format, truth contract, faults and realism.

Statistics are recomputed here from the raw file with numpy (own parser, own haversine),
never from the simulator's internal variables.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hrpred.params import ParamError, load_config
from hrpred.simulate import HR_FAULTS, REALISM_BANDS, SimConfig, simulate_dataset

ROOT = Path(__file__).resolve().parents[1]

# docs/architecture.md, "Simulator truth": exact columns and types.
TRUTH_CONTRACT = {
    "line": pa.int64(),
    "workout_id": pa.int64(),
    "user_id": pa.int64(),
    "sport": pa.string(),
    "archetype": pa.string(),
    "terrain": pa.string(),
    "fault": pa.string(),
    "fault_start": pa.int64(),
    "fault_end": pa.int64(),
    "offset_bpm": pa.float64(),
    "fault_bad_points": pa.int64(),
    "fault_visible": pa.bool_(),
    "confounder": pa.string(),
    "age": pa.float64(),
    "rest_hr": pa.float64(),
    "max_hr": pa.float64(),
    "threshold_speed_kmh": pa.float64(),
    "tau_up_s": pa.float64(),
    "tau_down_s": pa.float64(),
    "drift_bpm_per_h": pa.float64(),
    "gender": pa.string(),
    "n_user_workouts": pa.int64(),
    "level_bpm": pa.float64(),
    "day": pa.float64(),
    "change_day": pa.float64(),
    "change_bpm": pa.float64(),
    "hr_physio": pa.list_(pa.float64()),
    "hr_clean": pa.list_(pa.float64()),
    "pause_step": pa.list_(pa.int64()),
    "pause_s": pa.list_(pa.float64()),
}
FAULT_NAMES = {
    "none", "offset_full", "offset_partial", "dropout", "flatline", "spike", "cadence_lock",
    "gps_spike", "timestamp_gap", "timestamp_nonmonotonic", "length_mismatch",
    "altitude_unrealistic", "malformed_line", "slow_lock", "cadence_follow", "whole_run_lock",
    "stuck_low", "lagging_noisy", "low_dropout", "strap_drying",
}  # fmt: skip


def _run(cfg: SimConfig, where: Path) -> tuple[Path, Path, dict]:
    out, truth = where / "sim.json", where / "truth.parquet"
    metrics = simulate_dataset(cfg, out, truth, progress=False)
    return out, truth, metrics


@pytest.fixture(scope="module")
def small_cfg(config) -> SimConfig:
    """params.yaml's simulator, 240 lines of 12 users in 6 chunks."""
    cfg = config(SimConfig, "simulate")
    return dataclasses.replace(cfg, seed=7, n_users=12, n_workouts=240, chunk_size=40, workers=1)


@pytest.fixture(scope="module")
def small(
    small_cfg: SimConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict]:
    # More faults than params.yaml so that every type shows up in 240 lines.
    faults = {k: 0.045 for k in small_cfg.faults} | {"malformed_line": 0.03}
    cfg = dataclasses.replace(small_cfg, faults=faults)
    return _run(cfg, tmp_path_factory.mktemp("small"))


def _parse(line: bytes) -> dict:
    return ast.literal_eval(line.decode())


def _haversine_kmh(lat: np.ndarray, lon: np.ndarray, ts: np.ndarray) -> np.ndarray:
    # Independent reference (same formula as the reference project's GPS speed).
    lat, lon = np.radians(lat), np.radians(lon)
    a = (
        np.sin(np.diff(lat) / 2) ** 2
        + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(np.diff(lon) / 2) ** 2
    )
    km = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    v = km / np.maximum(np.diff(ts), 0.1) * 3600
    return np.concatenate([v[:1], v])


def test_same_params_same_bytes_any_worker_count(tmp_path: Path, small_cfg: SimConfig) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    a = _run(small_cfg, tmp_path / "a")
    b = _run(dataclasses.replace(small_cfg, workers=2), tmp_path / "b")
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[1].read_bytes() == b[1].read_bytes()
    assert a[2] == b[2]
    c = _run(dataclasses.replace(small_cfg, seed=8), tmp_path / "c")
    assert c[0].read_bytes() != a[0].read_bytes()
    assert c[1].read_bytes() != a[1].read_bytes()


def test_every_line_is_a_python_literal_except_recorded_malformed(small, small_cfg) -> None:
    out, truth, _ = small
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    table = pq.read_table(truth).to_pandas()
    assert len(lines) == len(table) == small_cfg.n_workouts
    malformed = set(table.loc[table.fault == "malformed_line", "line"])
    assert malformed  # the fixture's rates make some
    for number, line in enumerate(lines, start=1):
        if number in malformed:
            with pytest.raises((SyntaxError, ValueError, UnicodeDecodeError)):
                _parse(line)
            continue
        w = _parse(line)
        row = table.iloc[number - 1]
        assert w["id"] == row.workout_id and w["userId"] == row.user_id
        assert w["sport"] == row.sport and w["gender"] == row.gender
        assert line.startswith(b"{'longitude': [") and b'"' not in line


def test_truth_follows_the_contract(small, small_cfg) -> None:
    _, truth, metrics = small
    schema = pq.read_schema(truth)
    assert {f.name: f.type for f in schema} == TRUTH_CONTRACT
    assert schema.names == list(TRUTH_CONTRACT)
    t = pq.read_table(truth).to_pandas()
    n = small_cfg.points
    assert t.line.tolist() == list(range(1, len(t) + 1))
    assert t.workout_id.is_unique
    assert set(t.fault) <= FAULT_NAMES
    assert set(t.archetype) <= {"easy", "steady", "progressive", "intervals", "hilly"}
    assert set(t.terrain) <= {"flat", "rolling", "hilly"}
    assert (t.terrain[t.archetype == "hilly"] == "hilly").all()
    none = t.fault.isin(["none", "malformed_line"])
    assert (t.fault_start[none] == -1).all() and (t.fault_end[none] == -1).all()
    assert ((t.fault_start[~none] >= 0) & (t.fault_end[~none] > t.fault_start[~none])).all()
    assert (t.fault_end[~none] <= n).all()
    offset = t.fault.isin(["offset_full", "offset_partial"])
    assert t.offset_bpm[offset].between(20, 60).all() and (t.offset_bpm[~offset] == 0).all()
    assert (t.max_hr - (208 - 0.7 * t.age)).abs().max() < 30
    assert t.rest_hr.between(50, 70).all() and (t.tau_down_s > t.tau_up_s).all()
    assert t.tau_up_s.between(30, 90).all() and t.tau_down_s.between(30, 90).all()
    assert all(len(h) == n for h in t.hr_clean) and all(len(h) == n for h in t.hr_physio)
    assert (t.pause_step.map(len) == t.pause_s.map(len)).all()
    assert (
        t.pause_step.map(len)
        .isin([0, *range(small_cfg.pauses.count[0], small_cfg.pauses.count[1] + 1)])
        .all()
    )
    # n_user_workouts is the number of lines of that user; long-tailed.
    counts = t.groupby("user_id").size()
    assert (t.n_user_workouts == t.user_id.map(counts)).all()
    assert metrics["faults"] == {k: int((t.fault == k).sum()) for k in metrics["faults"]}


def test_faults_are_where_the_truth_says(small, small_cfg) -> None:
    out, truth, _ = small
    t = pq.read_table(truth).to_pandas()
    lines = out.read_bytes().split(b"\n")
    seen = set()
    for row in t.itertuples():
        if row.fault == "malformed_line":
            continue
        w = _parse(lines[row.line - 1])
        hr = np.asarray(w["heart_rate"], dtype=float)
        clean = np.rint(np.asarray(row.hr_clean))
        s, e = row.fault_start, row.fault_end
        inside = np.zeros(clean.size, bool)
        inside[max(s, 0) : max(e, 0)] = True
        ts = np.asarray(w["timestamp"])
        kind = row.fault
        seen.add(kind)
        # bad points: recorded HR >= 10 BPM from the heart's (unrounded), over the common length
        heart = np.asarray(row.hr_clean)[: hr.size]
        assert row.fault_bad_points == int((np.abs(hr - heart[: hr.size]) >= 10).sum()), kind
        if kind in ("spike", "dropout", "offset_full", "offset_partial"):
            assert row.fault_bad_points >= 1 and row.fault_visible, kind
        # visible: not an HR fault, or >= min(25, half the span) bad points
        need = max(min(25, -(-(e - s) // 2)), 1)
        assert row.fault_visible == (kind not in HR_FAULTS or row.fault_bad_points >= need), kind
        if kind in HR_FAULTS:  # an HR fault changes HR inside its span only
            assert np.abs(hr[~inside] - clean[~inside]).max(initial=0) <= 1.0, kind
        if kind in ("none", "gps_spike", "timestamp_gap", "timestamp_nonmonotonic",
                    "altitude_unrealistic"):  # fmt: skip
            # HR untouched: the recorded value is the rounded noisy physiology.
            assert np.abs(hr - clean).max() <= 1.0
        if kind in ("offset_full", "offset_partial"):
            np.testing.assert_allclose(hr[inside], clean[inside] - row.offset_bpm, atol=1.01)
            assert np.abs(hr[~inside] - clean[~inside]).max(initial=0) <= 1.0
        if kind == "dropout":
            assert (hr[inside] == 0).all() and (hr[~inside] > 0).all()
        if kind == "flatline":
            assert np.unique(hr[inside]).size == 1 and e - s >= 30
        if kind == "spike":  # +60-110 BPM, capped at 250 (an HR channel's ceiling)
            assert ((hr[inside] - clean[inside] >= 59) | (hr[inside] == 250)).all()
            assert (hr[inside] > clean[inside] + 20).all()
        if kind == "cadence_lock":
            assert ((hr[inside] >= 160) & (hr[inside] <= 200)).all()
        if kind == "gps_spike":
            if "speed" in w:
                assert (np.asarray(w["speed"])[inside] >= 60).all()
            v = _haversine_kmh(np.asarray(w["latitude"]), np.asarray(w["longitude"]), ts)
            assert v[s] > 60
        if kind == "timestamp_gap":
            assert np.diff(ts)[s - 1] >= 300
        if kind == "timestamp_nonmonotonic":
            assert (np.diff(ts) < 0).any()
        else:
            assert (np.diff(ts) > 0).all()
        if kind == "length_mismatch":
            lengths = {k: len(w[k]) for k in ("heart_rate", "altitude", "timestamp", "latitude")}
            assert min(lengths.values()) == s and max(lengths.values()) == e == small_cfg.points
        else:
            assert len(w["heart_rate"]) == len(w["altitude"]) == ts.size == small_cfg.points
        alt = np.asarray(w["altitude"])
        if kind == "altitude_unrealistic":
            assert (np.abs(alt[inside]) >= 500).all()
        elif kind != "length_mismatch":
            assert alt.min() > -100 and alt.max() < 3000
    assert seen == FAULT_NAMES - {"malformed_line"}


# issue 15's real-world sensor faults and pauses, on in the default
REAL_WORLD_FAULTS = ("slow_lock", "cadence_follow", "whole_run_lock", "stuck_low",
                     "lagging_noisy", "low_dropout", "strap_drying")  # fmt: skip


def test_realism_bands_on_default_params(tmp_path: Path, config) -> None:
    """params.yaml's size (with the real-world faults and pauses on); statistics recomputed
    from the raw file with numpy."""
    cfg = config(SimConfig, "simulate")
    assert all(cfg.faults[f] > 0 for f in REAL_WORLD_FAULTS) and cfg.pauses.rate > 0
    out, truth, metrics = _run(cfg, tmp_path)
    clean_runs = pq.read_table(truth, columns=["line", "sport", "fault"]).to_pandas()
    keep = set(clean_runs.line[(clean_runs.sport == "run") & (clean_runs.fault == "none")])
    hrs, speeds, durations, corrs, native = [], [], [], [], 0
    with out.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if number not in keep:
                continue
            # stdlib json on quote-swapped text (the simulator writes no quotes in strings);
            # a sample is checked against ast.literal_eval below.
            w = json.loads(line.replace(b"'", b'"'))
            if number % 97 == 0:
                assert ast.literal_eval(line.decode()) == w
            hr = np.asarray(w["heart_rate"], float)
            ts = np.asarray(w["timestamp"], float)
            if "speed" in w:
                v = np.asarray(w["speed"], float)
                native += 1
            else:
                v = _haversine_kmh(np.asarray(w["latitude"]), np.asarray(w["longitude"]), ts)
            hrs.append(hr)
            speeds.append(v)
            durations.append((ts[-1] - ts[0]) / 60)
            corrs.append(np.corrcoef(v, hr)[0, 1])
    hr, v = np.concatenate(hrs), np.concatenate(speeds)
    stats = {
        "hr_mean": hr.mean(),
        "hr_std": hr.std(),
        "speed_mean": v.mean(),
        "speed_std": v.std(),
        "duration_min_mean": np.mean(durations),
        "corr_speed_hr_median": np.nanmedian(corrs),
    }
    for key, (lo, hi) in REALISM_BANDS.items():
        assert lo <= stats[key] <= hi, (key, stats[key])
        # metrics/simulate.json reports the same numbers.
        assert metrics["realism"][key] == pytest.approx(stats[key], abs=1e-3), key
    assert 0.15 <= native / len(hrs) <= 0.25  # native speed on ~20% of runs
    assert len(hrs) == metrics["realism"]["workouts"]
    # Fault supports among runs on the default data, for the clean stage's metrics.
    assert metrics["min_hr_fault_support_runs"] >= 20
    assert min(metrics["faults_runs"][f] for f in HR_FAULTS) >= 20
    # ~15% of runs pause (auto-paused stops, 1-30 min), as params.yaml says.
    assert 0.1 <= metrics["pauses"]["runs"] / metrics["runs"] <= 0.2
    assert 60 <= metrics["pauses"]["seconds"]["min"] <= metrics["pauses"]["seconds"]["max"] <= 1800
    # 500 points at ~8.4 s; workouts per user long-tailed.
    assert metrics["workouts_per_user"]["min"] == 1 and metrics["workouts_per_user"]["max"] >= 60


def test_sampling_and_sports(small, small_cfg) -> None:
    out, truth, metrics = small
    t = pq.read_table(truth, columns=["line", "fault"]).to_pandas()
    ok = set(t.line[t.fault == "none"])
    steps, sports = [], set()
    for number, line in enumerate(out.read_bytes().split(b"\n")[:-1], start=1):
        if number in ok:
            w = _parse(line)
            steps.append(np.diff(w["timestamp"]))
            sports.add(w["sport"])
    dt = np.concatenate(steps)
    assert 7.0 <= dt.mean() <= 10.0 and dt.std() > 1.0  # irregular, ~8.4 s
    assert "run" in sports and len(sports) >= 3
    assert metrics["sports"]["run"] > 0.5 * small_cfg.n_workouts


def test_config_rejects_bad_params(params) -> None:
    good = dict(params["simulate"])
    cfg = load_config(SimConfig, "simulate", data={"simulate": good})
    assert cfg.n_users == good["n_users"] and cfg.faults == good["faults"]
    assert cfg.rest_hr == tuple(good["rest_hr"])
    no_faults = load_config(SimConfig, "simulate", data={"simulate": good | {"faults": {}}})
    assert no_faults.faults == {}  # fault-free data is allowed
    for bad, message in (
        ({"faults": {"wobble": 0.1}}, "unknown types"),
        ({"n_users": 20, "n_workouts": 10}, "n_users <= n_workouts"),
        ({"rest_hr": [70, 50]}, r"rest_hr must be \[low, high\]"),
        ({"rest_hr": [50, 60, 70]}, "must have 2 items"),
        ({"sports": {"run": "many"}}, "sports.run must be a number"),
        ({"sports": {"run": 0.0}}, "sports weights must sum to > 0"),
        ({"terrains": {"flat": -0.1, "hilly": 1.0}}, "terrains weights must be >= 0"),
        ({"archetypes": {"sprint": 1.0}}, "unknown names"),
        ({"faults": {"dropout": 0.9, "spike": 0.2}}, "sum to < 1"),
        ({"points": 10}, "points must be >= 50"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"stop_rate_typo": 0.4}, "unknown key 'simulate.stop_rate_typo'"),
    ):
        with pytest.raises(ParamError, match=message):
            load_config(SimConfig, "simulate", data={"simulate": good | bad})
    with pytest.raises(ParamError, match="missing key 'simulate.seed'"):
        load_config(SimConfig, "simulate", data={"simulate": {"n_users": 3}})


def test_stage_writes_declared_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # the `stages` package lives at the repository root
    stage = importlib.import_module("stages.simulate")
    monkeypatch.chdir(tmp_path)
    small = {"seed": 3, "n_users": 5, "n_workouts": 30, "chunk_size": 10}
    paths = {"out": "data/raw/s.json", "truth": "data/raw/t.parquet"}
    params = {"simulate": params["simulate"] | small | paths}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    stage.main()
    text = Path("metrics/simulate.json").read_text()
    metrics = json.loads(text)
    assert text == json.dumps(metrics, indent=2) + "\n"
    assert metrics["lines"] == 30
    assert len(Path("data/raw/s.json").read_bytes().split(b"\n")) == 31
    assert pq.read_metadata("data/raw/t.parquet").num_rows == 30
    assert not list(Path("data/raw").glob("*.tmp"))
    params["simulate"]["n_users"] = 100
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="n_users"):
        stage.main()


def without_level_drift(cfg: SimConfig, breaks: bool = False) -> SimConfig:
    """`cfg` with every runner's level held constant (long breaks kept when `breaks`: they
    move the runner's later days, so a plan with them has other start times)."""
    level = dataclasses.replace(
        cfg.level, trend_bpm_per_year=(0.0, 0.0), wander_bpm=0.0, block_rate=0.0,
        device_change_rate=0.0, detrain_bpm=(0.0, 0.0) if breaks else cfg.level.detrain_bpm,
        detrain_rate=cfg.level.detrain_rate if breaks else 0.0,
    )  # fmt: skip
    return dataclasses.replace(cfg, level=level)


def test_level_drift_is_slow_seeded_and_leaves_other_choices(config) -> None:
    """Each runner's level moves over months (trend, wander, breaks, device), is reproducible
    from the seed and leaves the other plan choices alone."""
    import dataclasses

    import numpy as np

    from hrpred.simulate.plan import make_plan

    cfg = dataclasses.replace(config(SimConfig, "simulate"), n_workouts=600, n_users=20)
    a, b = make_plan(cfg), make_plan(cfg)
    np.testing.assert_array_equal(a.level_bpm, b.level_bpm)
    np.testing.assert_array_equal(a.change_day, b.change_day)
    flat = without_level_drift(cfg)
    c = make_plan(flat)
    assert (c.level_bpm == 0).all() and (c.noise_scale == 1).all()
    assert np.isnan(c.change_day).all()
    for name in ("user", "sport", "archetype", "fault", "native_speed"):
        np.testing.assert_array_equal(getattr(a, name), getattr(c, name))
    # a long break moves the runner's later runs by whole days; nothing else moves them
    shift = a.start_time - c.start_time
    assert (shift >= 0).all() and (shift % 86400 == 0).all() and (shift > 0).any()
    np.testing.assert_array_equal(make_plan(without_level_drift(cfg, breaks=True)).start_time,
                                  a.start_time)  # fmt: skip
    # the sudden changes the truth records: a day at or before the workout's, with a size
    has = np.isfinite(a.change_day)
    assert has.any() and (a.change_day[has] <= a.day[has]).all()
    # slow: within a user, consecutive workouts (days apart) differ far less than the spread
    order = np.lexsort((a.start_time, a.user))
    u, lv = a.user[order], a.level_bpm[order]
    same = u[1:] == u[:-1]
    steps = np.abs(np.diff(lv))[same]
    assert np.median(steps) < 0.5 * np.std(lv)


def test_recent_history_beats_all_of_it_on_the_default_simulation(config) -> None:
    """The realism check the personalisation relies on: on the default simulation, recent
    workouts predict a runner's level better than all their workouts (as on real data); and
    without the level drift they do not."""
    import numpy as np

    from hrpred.simulate.dataset import realism
    from hrpred.simulate.generate import n_chunks, simulate_chunk
    from hrpred.simulate.plan import make_plan

    def recency(cfg: SimConfig) -> dict:
        plan = make_plan(cfg)
        stats = np.concatenate([simulate_chunk(cfg, plan, i).stats for i in range(n_chunks(cfg))])
        return realism(stats)

    cfg = config(SimConfig, "simulate")
    r = recency(cfg)
    assert r["recency"]["workouts"] > 500
    assert r["recency"]["mae_last_10"] < r["recency"]["mae_all"]
    assert all(r["within_bands"].values()), r["within_bands"]
    flat = without_level_drift(cfg)
    assert not recency(flat)["within_bands"]["recent_history_beats_all"]
