"""The clean stage end to end: accounting, determinism, input formats, robustness."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrpred.clean.config import CleanConfig
from hrpred.clean.outputs import REJECTS_SCHEMA, REPORT_SCHEMA, WORKOUTS_SCHEMA
from hrpred.clean.pipeline import AccountingError, clean_raw, run_clean
from hrpred.clean.signal import exp_smooth
from hrpred.clean.truth_metrics import truth_matches
from hrpred.io.raw import write_fitrec, write_fitrec_line, write_parquet
from hrpred.params import ParamError, load_config
from hrpred.store import Layout

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg(config) -> CleanConfig:
    """params.yaml's clean settings, in-process, in small chunks, without truth."""
    return replace(config(CleanConfig, "clean"), workers=1, chunk_lines=4, truth=None)


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


def run_on(
    tmp_path: Path, lines: list[bytes], cfg: CleanConfig, name: str = "raw.json"
) -> tuple[dict, Layout]:
    raw = tmp_path / name
    write_lines(raw, lines)
    layout = Layout(tmp_path / f"out-{name}")
    return clean_raw(cfg, raw, layout), layout


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


def test_accounting_with_garbage_lines(tmp_path, cfg):
    lines, garbage = mixed_lines()
    m, paths = run_on(tmp_path, lines, cfg)
    assert m["lines_read"] == len(lines)
    assert m["lines_unparseable"] == len(garbage)
    assert m["workouts_other_sports"] == 1 and m["sports"] == {"bike": 1, "run": 16}
    assert m["workouts_read"] == 16
    assert m["workouts_read"] == m["workouts_kept"] + sum(m["rejected"].values())
    assert m["rejected"] == {"length_mismatch": 1, "too_few_points": 1}
    assert m["workouts_kept"] == 14 and m["accounting"]["ok"]
    rejects = pq.read_table(paths.clean_rejects)
    assert rejects.schema.equals(REJECTS_SCHEMA)
    by_reason = {}
    for line, reason in zip(
        rejects["line"].to_pylist(), rejects["reason"].to_pylist(), strict=True
    ):
        by_reason.setdefault(reason, set()).add(line)
    assert by_reason["unparseable"] == garbage
    assert len(rejects) == m["lines_read"] - m["workouts_kept"]
    report = pq.read_table(paths.clean_report)
    assert report.schema.equals(REPORT_SCHEMA)
    assert report["line"].to_pylist() == list(range(1, len(lines) + 1))
    workouts = pq.read_table(paths.clean_workouts)
    assert workouts.schema.equals(WORKOUTS_SCHEMA)
    kept_lines = workouts["line"].to_pylist()
    assert kept_lines == sorted(kept_lines) and len(kept_lines) == 14
    assert set(kept_lines).isdisjoint(rejects["line"].to_pylist())
    assert set(workouts["speed_source"].to_pylist()) == {"native"}
    # Original and corrected HR sit side by side; clean runs are unchanged.
    row = workouts.slice(0, 1).to_pylist()[0]
    assert row["heart_rate"] == row["heart_rate_raw"] and all(row["hr_valid"])


def test_workers_and_chunks_do_not_change_outputs(tmp_path, cfg):
    lines, _ = mixed_lines(1)
    _, one = run_on(tmp_path, lines, cfg, "a.json")
    _, two = run_on(tmp_path, lines, replace(cfg, workers=2, chunk_lines=3), "b.json")
    assert pq.read_table(one.clean_workouts).equals(pq.read_table(two.clean_workouts))
    for a, b in (
        (one.clean_rejects, two.clean_rejects),
        (one.clean_report, two.clean_report),
    ):  # NaN-aware
        assert pq.read_table(a).to_pandas().equals(pq.read_table(b).to_pandas())
    # Same settings twice: byte-identical files.
    _, again = run_on(tmp_path, lines, cfg, "a2.json")
    assert one.clean_workouts.read_bytes() == again.clean_workouts.read_bytes()


def test_gzip_and_parquet_inputs_give_the_same_workouts(tmp_path, cfg):
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
        layout = Layout(tmp_path / f"out-{name}")
        m = clean_raw(cfg, raw, layout)
        assert m["workouts_kept"] == 6
        outs.append(pq.read_table(layout.clean_workouts))
    assert outs[0].equals(outs[1]) and outs[0].equals(outs[2])


def test_hr_filters_off_by_default(tmp_path, cfg):
    assert not cfg.hr_filters.enabled
    assert cfg.smooth.window == 0 and not cfg.smooth.target
    rng = np.random.default_rng(3)
    # Mean HR ~ 110: the reference's `mean < 120` filter would drop these.
    lines = [
        write_fitrec_line(make_workout(rng, 400 + i, user=i, hr_shift=30)).encode()
        for i in range(3)
    ]
    m, paths = run_on(tmp_path, lines, cfg, "low.json")
    hr = np.concatenate(
        pq.read_table(paths.clean_workouts)["heart_rate"].to_numpy(zero_copy_only=False)
    )
    assert m["workouts_kept"] == 3 and hr.mean() < 120
    on = replace(cfg, hr_filters=replace(cfg.hr_filters, enabled=True))
    m, _ = run_on(tmp_path, lines, on, "low2.json")
    assert m["workouts_kept"] == 0 and m["rejected"] == {"hr_filter:mean_low": 3}


def test_input_smoothing_is_causal(tmp_path, cfg):
    rng = np.random.default_rng(4)
    w = make_workout(rng, 500)
    assert cfg.smooth.causal and set(cfg.smooth.fields) == {"speed", "altitude"}
    smooth = replace(cfg, smooth=replace(cfg.smooth, window=4))
    _, paths = run_on(tmp_path, [write_fitrec_line(w).encode()], smooth, "s.json")
    row = pq.read_table(paths.clean_workouts).to_pylist()[0]
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
def test_random_input_never_crashes_and_is_accounted(tmp_path_factory, lines, cfg):
    tmp = tmp_path_factory.mktemp("prop")
    # Even a first line starting with gzip's or Parquet's magic bytes is just a bad line.
    m, paths = run_on(tmp, lines, cfg)
    assert m["lines_read"] == len(lines)
    assert m["accounting"]["ok"]
    kept = pq.read_table(paths.clean_workouts).num_rows
    rejects = pq.read_table(paths.clean_rejects)
    assert kept == m["workouts_kept"] and kept + rejects.num_rows == m["lines_read"]
    assert "error" not in rejects["reason"].to_pylist()  # no workout needed the safety net
    report_lines = pq.read_table(paths.clean_report)["line"].to_pylist()
    assert report_lines == list(range(1, m["lines_read"] + 1))


def test_truth_must_match_the_input(tmp_path, cfg):
    import pyarrow as pa

    lines, _ = mixed_lines(5)
    _, paths = run_on(tmp_path, lines, cfg)
    report = pq.read_table(paths.clean_report, columns=["line", "workout_id"]).to_pandas()
    ids = report["workout_id"].fillna(0).astype("int64")
    truth = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"line": report["line"], "workout_id": ids}), truth)
    assert truth_matches(truth, paths.clean_report)[0]
    pq.write_table(pa.table({"line": report["line"], "workout_id": ids + 1}), truth)
    ok, why = truth_matches(truth, paths.clean_report)
    assert not ok and "differ" in why


def test_stage_exits_with_a_message_when_raw_is_missing(tmp_path):
    params = (
        (ROOT / "params.yaml")
        .read_text()
        .replace("raw: data/raw/simulated.json", "raw: data/raw/nothing-here.json")
    )
    (tmp_path / "params.yaml").write_text(params)
    shutil.copytree(ROOT / "params", tmp_path / "params")  # the thresholds (params/clean.yaml)
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
def test_stage_on_a_small_simulation(tmp_path, cfg, config):
    from hrpred.simulate import SimConfig, simulate_dataset

    raw, truth = tmp_path / "sim.json", tmp_path / "truth.parquet"
    sim = replace(config(SimConfig, "simulate"), n_users=20, n_workouts=300, workers=1)
    simulate_dataset(sim, raw, truth, progress=False)
    layout = Layout(tmp_path / "out")
    m = run_clean(replace(cfg, truth=str(truth)), raw, layout, progress=False)
    assert m["accounting"]["ok"] and m["lines_read"] == 300
    assert truth_matches(truth, layout.clean_report)[0]
    d = m["detection"]
    assert d["per_fault"]["none"]["recall"] > 0.95
    # metrics/clean.json is the returned dict, as indented JSON.
    assert layout.metrics("clean").read_text() == json.dumps(m, indent=2) + "\n"
    # A truth of another input gives no detection metrics.
    other = replace(cfg, truth=str(tmp_path / "missing.parquet"))
    assert "detection" not in run_clean(other, raw, layout, progress=False)


def test_stage_reports_broken_accounting(tmp_path, cfg, monkeypatch):
    import hrpred.clean.pipeline as pipeline

    lines, _ = mixed_lines(6)
    raw = tmp_path / "raw.json"
    write_lines(raw, lines)
    good = clean_raw(cfg, raw, Layout(tmp_path / "ref"))
    broken = {**good, "accounting": {**good["accounting"], "ok": False}}
    monkeypatch.setattr(pipeline, "clean_raw", lambda *a, **k: dict(broken))
    layout = Layout(tmp_path / "out")
    with pytest.raises(AccountingError, match="accounting does not add up"):
        run_clean(cfg, raw, layout, progress=False)
    assert json.loads(layout.metrics("clean").read_text()) == broken  # written first


def _clean_section(params, **changes) -> dict:
    """params.yaml's data with `clean.<sub>.<key>` (dotted keys) changed."""
    data = json.loads(json.dumps(params))
    for key, value in changes.items():
        *path, last = key.split("__")
        node = data["clean"]
        for part in path:
            node = node[part]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rules__gap_action": "drop"}, "clean.rules.gap_action must be one of"),
        ({"correct__short_faults": "zero"}, "clean.correct.short_faults must be one of"),
        ({"smooth__fields": ["speed", "hr"]}, r"clean.smooth.fields\[1\] must be one of"),
        ({"hr_filters__drop_types": ["steady"]}, r"drop_types\[0\] must be one of"),
        ({"workers": 0}, "clean.workers and clean.chunk_lines must be >= 1"),
        ({"rules__hr_low_bpm": 230.0}, "hr_low_bpm <= hr_high_bpm"),
        ({"correct__max_masked_fraction": 1.5}, "max_masked_fraction must be in"),
        ({"detector__spike_bpm": KeyError}, "missing key 'clean.detector.spike_bpm'"),
        ({"detector__spike_bmp": 40.0}, "unknown key 'clean.detector.spike_bmp'"),
        ({"correct__actions__stuck_low": "correct"}, "only offsets can be corrected"),
        ({"correct__actions__stuck_low": "drop"}, "must be one of"),
        ({"correct__actions__stuck_low": KeyError}, r"missing: \['stuck_low'\]"),
        ({"correct__actions__gps_corruption": "mask"}, r"unknown: \['gps_corruption'\]"),
        ({"detector__noisy_max_fraction": 0.1}, "noisy_min_fraction < noisy_max_fraction"),
        ({"detector__drying_max_s": 2000.0}, "drying_max_s <= drying_fit_from_s"),
        ({"truth": None}, None),
    ],
)
def test_config_checks_params(params, changes, message):
    data = _clean_section(params, **changes)
    if message is None:
        assert load_config(CleanConfig, "clean", data=data).truth is None
        return
    with pytest.raises(ParamError, match=message):
        load_config(CleanConfig, "clean", data=data)


# ------------------------------------------------------------- interruption and determinism

RUN_SCRIPT = """
import sys
from dataclasses import replace
from pathlib import Path

import hrpred.clean.pipeline as pipeline
from hrpred.clean.config import CleanConfig
from hrpred.errors import stage_main
from hrpred.params import load_config
from hrpred.store import Layout

if __name__ == "__main__":  # spawned workers import this file too
    raw, out, workers, slow = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "slow"
    cfg = load_config(CleanConfig, "clean", Path(sys.argv[5]))
    cfg = replace(cfg, workers=workers, chunk_lines=2, truth=None)
    if slow:  # every pass-1 chunk sleeps in the worker: the run is still going when stopped
        import slowclean

        pipeline.pass1_chunk = slowclean.slow_pass1
    stage_main("clean", lambda: pipeline.clean_raw(cfg, Path(raw), Layout(Path(out))))
"""

SLOW_MODULE = """
import time

from hrpred.clean.passes import pass1_chunk


def slow_pass1(task):
    time.sleep(0.4)
    return pass1_chunk(task)
"""


def start_clean(tmp_path: Path, lines: list[bytes], out: str, workers: int, slow: bool):
    """`clean_raw` in a subprocess (TMPDIR inside tmp_path); returns the Popen."""
    raw = tmp_path / "raw.json"
    if not raw.exists():
        write_lines(raw, lines)
    (tmp_path / "run_clean.py").write_text(RUN_SCRIPT)
    (tmp_path / "slowclean.py").write_text(SLOW_MODULE)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "TMPDIR": str(tmp_path / "tmp"),
    }
    args = [str(raw), str(tmp_path / out), str(workers), "slow" if slow else "fast"]
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "run_clean.py"), *args, str(ROOT / "params.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def running_clean(tmp_path: Path, cfg) -> tuple[subprocess.Popen, set[int]]:
    """A slow 2-worker clean in a subprocess, caught mid pass 1 (workers and temp dir up)."""
    rng = np.random.default_rng(9)
    lines = [write_fitrec_line(make_workout(rng, 500 + i, user=i % 4)).encode() for i in range(60)]
    proc = start_clean(tmp_path, lines, "out", workers=2, slow=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "tmp").glob("hrpred-clean-*/chunk-*.pkl")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "pass 1 never started"
        time.sleep(0.1)
    workers = children(proc.pid)
    assert len(workers) >= 2  # two workers (and multiprocessing's resource tracker)
    return proc, workers


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_workers_and_removes_the_temp_dir(tmp_path, cfg, sig):
    proc, workers = running_clean(tmp_path, cfg)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == f"clean: interrupted by {sig.name}"
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)]
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_do_not_outlive_a_killed_driver(tmp_path, cfg):
    from hrpred.clean.pipeline import remove_stale_tmpdirs

    proc, workers = running_clean(tmp_path, cfg)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)]
    # Its temp dir is left behind, and the next run removes it (its owner is gone).
    left = list((tmp_path / "tmp").iterdir())
    assert len(left) == 1 and left[0].name.startswith(f"hrpred-clean-{proc.pid}-")
    assert remove_stale_tmpdirs(tmp_path / "tmp") == left and not left[0].exists()


def test_only_temp_dirs_of_dead_runs_are_removed(tmp_path):
    from hrpred.clean.pipeline import remove_stale_tmpdirs

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f"hrpred-clean-{int(gone.stdout)}-abc"
    mine = tmp_path / f"hrpred-clean-{os.getpid()}-def"
    other = tmp_path / "hrpred-clean-xyz"  # not ours to judge
    for d in (dead, mine, other):
        d.mkdir()
    assert remove_stale_tmpdirs(tmp_path) == [dead]
    assert mine.exists() and other.exists() and not dead.exists()


def test_two_identical_runs_write_identical_bytes(tmp_path, cfg):
    # Odd lines whose error messages used to carry a memory address (`<ast.Name at 0x..>`).
    lines, _ = mixed_lines(7)
    lines += [b"{'id': 1, 'userId': 2, 'sport': run}", b"{'id': foo}", b"[len]"]
    runs = []
    for out, workers in (("a", 1), ("b", 2)):
        proc = start_clean(tmp_path, lines, out, workers=workers, slow=False)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        runs.append(Layout(tmp_path / out))
    a, b = runs
    for pa_, pb in ((a.clean_workouts, b.clean_workouts), (a.clean_rejects, b.clean_rejects),
                    (a.clean_report, b.clean_report)):  # fmt: skip
        assert pa_.read_bytes() == pb.read_bytes(), pa_.name
    details = pq.read_table(a.clean_rejects)["detail"].to_pylist()
    assert sum("malformed node or string on line 1: <ast.Name object>" in d for d in details) == 3
    assert not [d for d in details if "0x" in d]
