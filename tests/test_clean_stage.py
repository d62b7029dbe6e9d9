"""The clean stage end to end: accounting, determinism, input formats, robustness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrpred.clean.config import CleanConfig, HrFilterConfig, clean_config
from hrpred.clean.detection import truth_matches
from hrpred.clean.pipeline import (
    REJECTS_SCHEMA,
    REPORT_SCHEMA,
    WORKOUTS_SCHEMA,
    CleanPaths,
    run_clean,
)
from hrpred.clean.signal import exp_smooth
from hrpred.io.raw import RawFormatError, write_fitrec, write_fitrec_line, write_parquet
from hrpred.params import load_params

ROOT = Path(__file__).resolve().parents[1]
CFG = CleanConfig(workers=1, chunk_lines=4)


def make_workout(rng, wid: int, user: int = 1, sport: str = "run", n: int = 200, hr_shift=0.0):
    """A plausible run with native speed and a GPS track (FitRec dict)."""
    dt = rng.integers(6, 12, n).astype(float)
    dt[0] = 0.0
    t = np.cumsum(dt)
    speed = np.maximum(rng.uniform(9, 12) + rng.normal(0, 0.3, n), 0.0)
    step = speed * dt / 3600.0 / 6371.0
    lat = 45.0 + np.degrees(np.cumsum(step))
    hr = 70.0 + 7.0 * exp_smooth(speed, t, 40.0, y0=2.0) + rng.normal(0, 2.5, n) - hr_shift
    return {
        "id": wid,
        "userId": user,
        "sport": sport,
        "gender": "male",
        "timestamp": (1_400_000_000 + wid * 10_000 + t).astype(int).tolist(),
        "heart_rate": np.round(hr).astype(int).tolist(),
        "altitude": np.round(100 + 2 * np.sin(t / 300), 1).tolist(),
        "speed": np.round(speed, 3).tolist(),
        "latitude": lat.tolist(),
        "longitude": np.full(n, 7.0).tolist(),
    }


GARBAGE = [
    b"\x00\xff\xfe binary garbage",
    b"{'id': 1, 'userId': 2, 'sport': 'run', 'heart_rate': [1, 2",  # truncated
    b"[1, 2, 3]",
    b"",
    b"{'id': 5}",  # missing keys
]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def run_on(tmp_path: Path, lines: list[bytes], cfg: CleanConfig = CFG, name: str = "raw.json"):
    raw = tmp_path / name
    write_lines(raw, lines)
    out = tmp_path / f"out-{name}"
    paths = CleanPaths(out / "workouts.parquet", out / "rejects.parquet", out / "report.parquet")
    return run_clean(raw, paths, cfg), paths


def mixed_lines(seed: int = 0) -> tuple[list[bytes], set[int]]:
    """Runs of 3 users, a bike ride, a too-short and a length-mismatched run, garbage."""
    rng = np.random.default_rng(seed)
    lines, garbage_lines = [], set()
    for i in range(14):
        lines.append(write_fitrec_line(make_workout(rng, 100 + i, user=i % 3)).encode())
        if i % 4 == 1:
            lines.append(GARBAGE[(i // 4) % len(GARBAGE)])
            garbage_lines.add(len(lines))
    lines.append(write_fitrec_line(make_workout(rng, 200, sport="bike")).encode())
    short = make_workout(rng, 201, n=30)
    lines.append(write_fitrec_line(short).encode())
    bad = make_workout(rng, 202)
    bad["altitude"] = bad["altitude"][:-5]
    lines.append(write_fitrec_line(bad).encode())
    lines.append(GARBAGE[3])
    garbage_lines.add(len(lines))
    return lines, garbage_lines


def test_accounting_with_garbage_lines(tmp_path):
    lines, garbage = mixed_lines()
    m, paths = run_on(tmp_path, lines)
    assert m["lines_read"] == len(lines)
    assert m["lines_unparseable"] == len(garbage)
    assert m["workouts_other_sports"] == 1 and m["sports"] == {"bike": 1, "run": 16}
    assert m["workouts_read"] == 16
    assert m["workouts_read"] == m["workouts_kept"] + sum(m["rejected"].values())
    assert m["rejected"] == {"length_mismatch": 1, "too_few_points": 1}
    assert m["workouts_kept"] == 14 and m["accounting"]["ok"]
    rejects = pq.read_table(paths.rejects)
    assert rejects.schema.equals(REJECTS_SCHEMA)
    by_reason = {}
    for line, reason in zip(
        rejects["line"].to_pylist(), rejects["reason"].to_pylist(), strict=True
    ):
        by_reason.setdefault(reason, set()).add(line)
    assert by_reason["unparseable"] == garbage
    assert len(rejects) == m["lines_read"] - m["workouts_kept"]
    report = pq.read_table(paths.report)
    assert report.schema.equals(REPORT_SCHEMA)
    assert report["line"].to_pylist() == list(range(1, len(lines) + 1))
    workouts = pq.read_table(paths.workouts)
    assert workouts.schema.equals(WORKOUTS_SCHEMA)
    kept_lines = workouts["line"].to_pylist()
    assert kept_lines == sorted(kept_lines) and len(kept_lines) == 14
    assert set(kept_lines).isdisjoint(rejects["line"].to_pylist())
    assert set(workouts["speed_source"].to_pylist()) == {"native"}
    # Original and corrected HR sit side by side; clean runs are unchanged.
    row = workouts.slice(0, 1).to_pylist()[0]
    assert row["heart_rate"] == row["heart_rate_raw"] and all(row["hr_valid"])


def test_workers_and_chunks_do_not_change_outputs(tmp_path):
    lines, _ = mixed_lines(1)
    _, one = run_on(tmp_path, lines, CFG, "a.json")
    _, two = run_on(tmp_path, lines, replace(CFG, workers=2, chunk_lines=3), "b.json")
    assert pq.read_table(one.workouts).equals(pq.read_table(two.workouts))
    for a, b in ((one.rejects, two.rejects), (one.report, two.report)):  # NaN-aware
        assert pq.read_table(a).to_pandas().equals(pq.read_table(b).to_pandas())
    # Same settings twice: byte-identical files.
    _, again = run_on(tmp_path, lines, CFG, "a2.json")
    assert one.workouts.read_bytes() == again.workouts.read_bytes()


def test_gzip_and_parquet_inputs_give_the_same_workouts(tmp_path):
    rng = np.random.default_rng(2)
    workouts = [make_workout(rng, 300 + i, user=i % 2) for i in range(6)]
    outs = []
    for name, writer in (
        ("w.json", write_fitrec),
        ("w.json.gz", write_fitrec),
        ("w.parquet", write_parquet),
    ):
        raw = tmp_path / name
        writer(workouts, raw)
        out = tmp_path / f"out-{name}"
        paths = CleanPaths(out / "w.parquet", out / "r.parquet", out / "p.parquet")
        m = run_clean(raw, paths, CFG)
        assert m["workouts_kept"] == 6
        outs.append(pq.read_table(paths.workouts))
    assert outs[0].equals(outs[1]) and outs[0].equals(outs[2])


def test_hr_filters_off_by_default(tmp_path):
    cfg = clean_config(load_params("clean", ROOT / "params.yaml"))
    assert not cfg.hr_filters.enabled
    assert cfg.smooth.window == 0 and not cfg.smooth.target
    rng = np.random.default_rng(3)
    # Mean HR ~ 110: the reference's `mean < 120` filter would drop these.
    lines = [
        write_fitrec_line(make_workout(rng, 400 + i, user=i, hr_shift=30)).encode()
        for i in range(3)
    ]
    m, paths = run_on(tmp_path, lines, CFG, "low.json")
    hr = np.concatenate(pq.read_table(paths.workouts)["heart_rate"].to_numpy(zero_copy_only=False))
    assert m["workouts_kept"] == 3 and hr.mean() < 120
    on = replace(CFG, hr_filters=HrFilterConfig(enabled=True))
    m, _ = run_on(tmp_path, lines, on, "low2.json")
    assert m["workouts_kept"] == 0 and m["rejected"] == {"hr_filter:mean_low": 3}


def test_input_smoothing_is_causal(tmp_path):
    from hrpred.clean.config import SmoothConfig

    rng = np.random.default_rng(4)
    w = make_workout(rng, 500)
    cfg = replace(CFG, smooth=SmoothConfig(window=4))
    _, paths = run_on(tmp_path, [write_fitrec_line(w).encode()], cfg, "s.json")
    row = pq.read_table(paths.workouts).to_pylist()[0]
    speed = np.array(w["speed"])
    want = np.array([speed[max(0, i - 3) : i + 1].mean() for i in range(speed.size)])
    np.testing.assert_allclose(row["speed"], want)
    assert row["heart_rate"] == [float(h) for h in w["heart_rate"]]  # target untouched


# Random workouts with random damage, and random bytes.
_LIST_KEYS = ["timestamp", "heart_rate", "altitude", "speed", "latitude", "longitude"]
_value = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.integers(0, 300), max_size=5),
)


@st.composite
def damaged_line(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "workout"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)).replace(b"\n", b" ").replace(b"\r", b" ")
    seed = draw(st.integers(0, 2**16))
    n = draw(st.sampled_from([0, 3, 49, 60, 120]))
    w = make_workout(
        np.random.default_rng(seed), seed, sport=draw(st.sampled_from(["run", "bike"])), n=max(n, 1)
    )
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*_LIST_KEYS, "id", "userId", "sport", "gender"]))
        action = draw(st.sampled_from(["drop", "value", "truncate", "scale", "nan"]))
        if action == "drop":
            w.pop(key, None)
        elif action == "value":
            w[key] = draw(_value)
        elif isinstance(w.get(key), list) and w[key]:
            arr = list(w[key])
            if action == "truncate":
                w[key] = arr[: draw(st.integers(0, len(arr)))]
            elif action == "scale":
                w[key] = [x * draw(st.sampled_from([-1, 0, 1000])) for x in arr]
            else:
                arr[draw(st.integers(0, len(arr) - 1))] = float("nan")
                w[key] = arr
    return repr(w).encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(damaged_line(), min_size=1, max_size=8))
def test_random_input_never_crashes_and_is_accounted(tmp_path_factory, lines):
    tmp = tmp_path_factory.mktemp("prop")
    if lines[0].startswith(b"PAR1"):  # sniffed as Parquet: a one-line format error
        with pytest.raises(RawFormatError, match="not a readable Parquet file"):
            run_on(tmp, lines)
        return
    m, paths = run_on(tmp, lines)
    assert m["accounting"]["ok"]
    kept = pq.read_table(paths.workouts).num_rows
    rejects = pq.read_table(paths.rejects)
    assert kept == m["workouts_kept"] and kept + rejects.num_rows == m["lines_read"]
    assert "error" not in rejects["reason"].to_pylist()  # no workout needed the safety net
    report_lines = pq.read_table(paths.report)["line"].to_pylist()
    assert report_lines == list(range(1, m["lines_read"] + 1))
    if not lines[0].startswith(b"\x1f\x8b"):  # plain lines (not sniffed as gzip)
        assert m["lines_read"] == len(lines)


def test_truth_must_match_the_input(tmp_path):
    import pyarrow as pa

    lines, _ = mixed_lines(5)
    _, paths = run_on(tmp_path, lines)
    report = pq.read_table(paths.report, columns=["line", "workout_id"]).to_pandas()
    ids = report["workout_id"].fillna(0).astype("int64")
    truth = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"line": report["line"], "workout_id": ids}), truth)
    assert truth_matches(truth, paths.report)[0]
    pq.write_table(pa.table({"line": report["line"], "workout_id": ids + 1}), truth)
    ok, why = truth_matches(truth, paths.report)
    assert not ok and "differ" in why


def test_stage_exits_with_a_message_when_raw_is_missing(tmp_path):
    params = (
        (ROOT / "params.yaml")
        .read_text()
        .replace("raw: data/raw/simulated.json", "raw: data/raw/nothing-here.json")
    )
    (tmp_path / "params.yaml").write_text(params)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "stages.clean"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "nothing-here.json" in last and "not found" in last


@pytest.mark.slow
def test_stage_on_a_small_simulation(tmp_path):
    from hrpred.simulate import SimConfig, simulate_dataset

    raw, truth = tmp_path / "sim.json", tmp_path / "truth.parquet"
    simulate_dataset(SimConfig(n_users=20, n_workouts=300, workers=1), raw, truth, progress=False)
    out = tmp_path / "clean"
    paths = CleanPaths(out / "w.parquet", out / "r.parquet", out / "p.parquet")
    m = run_clean(raw, paths, CFG)
    assert m["accounting"]["ok"] and m["lines_read"] == 300
    assert truth_matches(truth, paths.report)[0]
    from hrpred.clean.detection import detection_metrics

    d = detection_metrics(truth, paths.report, paths.workouts, CFG.sports)
    json.dumps(d)  # serialisable
    assert d["per_fault"]["none"]["recall"] > 0.95


def test_params_cover_every_knob_and_match_the_defaults():
    from dataclasses import fields

    p = load_params("clean", ROOT / "params.yaml")
    cfg = clean_config(p)
    assert cfg == CleanConfig()  # params.yaml and the dataclass defaults agree
    for section in ("speed", "rules", "detector", "correct", "smooth", "hr_filters"):
        declared = set(p.section(section).as_dict())
        knobs = {f.name for f in fields(type(getattr(cfg, section)))}
        assert declared == knobs, section
