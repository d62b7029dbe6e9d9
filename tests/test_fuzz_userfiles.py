"""Seeded mutation fuzzing of `read_activity` + `predict_activity` (issue 16).

Seed files: a FIT as a watch writes it, a FIT as a phone app writes it, a GPX, a TCX and a
CSV, all written here from a simulated workout (tests/predict_fixtures.py), plus the real
samples of ../shared/samples/real when present (decompressed: the mutations hit the format,
not gzip). Each mutant (bit flips, byte changes, truncation, duplicated and deleted blocks,
or a few of them at once) must give a prediction or a one-line `HrpredError` naming the file
(`ActivityError` is one), within TIME_LIMIT_S per file, and the worker process's peak RSS
(resource.getrusage, so torch and the bundle included) stays under RSS_LIMIT_MB.

The mutants run in a subprocess (`python -m tests.test_fuzz_userfiles OUT N`) so that its
peak RSS is this run's alone. Default: DEFAULT_N mutants per seed file; more with
HRPRED_FUZZ_N (mutants per seed), e.g. `HRPRED_FUZZ_N=120 pytest tests/test_fuzz_userfiles.py`
(9 seeds with the real samples: over 1,000 mutants). The outcome table is printed.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.procmem import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "samples" / "real"
DEFAULT_N = 40  # mutants per seed file in the default suite (5 or 9 seeds)
N = int(os.environ.get("HRPRED_FUZZ_N", DEFAULT_N))
TIME_LIMIT_S = 10.0  # per mutant: read + predict (a real 70-min FIT takes well under 1 s)
RSS_LIMIT_MB = 1024
OUTCOMES = ("prediction", "clean error", "unexpected exception", "timeout")
REAL_SEEDS = {  # real sample -> seed name
    "coros-run.fit.gz": "FIT (watch, real)",
    "strava-app-run.fit.gz": "FIT (phone app, real)",
    "strava-run.gpx": "GPX (real)",
    "garmin-run-decoded.csv": "CSV (real)",
}


# --------------------------------------------------------------------------- mutations


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random mutations: bit flips, byte changes, truncation, a duplicated or a
    deleted block."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        if len(buf) < 4:
            break
        kind = rng.randrange(5)
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # byte changes (random or boundary values)
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif kind == 2:  # truncation
            buf = buf[: rng.randrange(1, len(buf))]
        elif kind == 3:  # a duplicated block, inserted anywhere
            a = rng.randrange(len(buf))
            block = buf[a : a + rng.randint(1, max(1, len(buf) // 8))]
            at = rng.randrange(len(buf))
            buf[at:at] = block
        else:  # a deleted block
            a = rng.randrange(len(buf))
            del buf[a : a + rng.randint(1, max(1, len(buf) // 8))]
    return bytes(buf)


def seed_files(out: Path) -> dict[str, Path]:
    """Seed name -> file: the five written from a simulated workout, and the real samples."""
    from tests.predict_fixtures import (
        simulated_workout,
        write_csv,
        write_fit,
        write_gpx,
        write_tcx,
    )

    out.mkdir(parents=True, exist_ok=True)
    w = simulated_workout(n=400, step_s=3.0, seed=3)
    seeds = {
        "FIT (watch)": write_fit(out / "watch.fit", w),
        "FIT (phone app)": write_fit(out / "phone.fit", w, phone=True),
        "GPX": write_gpx(out / "run.gpx", w),
        "TCX": write_tcx(out / "run.tcx", w),
        "CSV": write_csv(out / "run.csv", w, columns=("time", "speed_kmh", "altitude", "hr")),
    }
    for sample, name in REAL_SEEDS.items():
        path = REAL / sample
        if path.is_file():
            data = path.read_bytes()
            plain = out / sample.removesuffix(".gz")
            plain.write_bytes(gzip.decompress(data) if sample.endswith(".gz") else data)
            seeds[name] = plain
    return seeds


# --------------------------------------------------------------------------- worker


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def run_mutants(out: Path, n: int) -> dict:
    """Every seed's `n` mutants through read_activity + predict_activity (the worker)."""
    import torch

    from hrpred.errors import HrpredError
    from hrpred.io.userfiles import read_activity
    from hrpred.serve.predict import load_bundle, predict_activity
    from tests.app_helpers import make_tiny_bundle

    torch.set_num_threads(1)
    bundle = load_bundle(make_tiny_bundle(out / "bundle"))
    seeds = seed_files(out / "seeds")
    signal.signal(signal.SIGALRM, _alarm)
    table: dict[str, Counter] = {}
    problems: list[str] = []
    slowest = 0.0
    start_mb = peak_rss_mb()
    for si, (name, path) in enumerate(seeds.items()):
        data = path.read_bytes()
        counts = table.setdefault(name, Counter())
        for k in range(n):
            rng = random.Random(1000 * si + k)
            target = out / "mutants" / f"{si}-{k}{path.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(mutate(data, rng))
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
            try:
                predict_activity(bundle, read_activity(target))
                outcome = "prediction"
            except _Timeout:
                outcome = "timeout"
            except HrpredError as exc:
                msg = str(exc)
                outcome = "clean error"
                if "\n" in msg or not msg.startswith(target.name):
                    outcome = "unexpected exception"
                    problems.append(f"{name} #{k}: not one line naming the file: {msg[:200]!r}")
            except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
                outcome = "unexpected exception"
                problems.append(f"{name} #{k}: {type(exc).__name__}: {str(exc)[:200]}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - t0
            slowest = max(slowest, elapsed)
            if elapsed > TIME_LIMIT_S and outcome != "timeout":
                outcome = "timeout"
            if outcome == "timeout":
                problems.append(f"{name} #{k}: took {elapsed:.1f} s")
            counts[outcome] += 1
            target.unlink()
    return {
        "table": {k: dict(v) for k, v in table.items()},
        "problems": problems,
        "slowest_s": slowest,
        "start_mb": start_mb,
        "peak_mb": peak_rss_mb(),
    }


def format_table(table: dict[str, dict[str, int]]) -> str:
    lines = ["| seed file | " + " | ".join(OUTCOMES) + " |", "|---|" + "---:|" * len(OUTCOMES)]
    for name, counts in table.items():
        lines.append(f"| {name} | " + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES) + " |")
    total = Counter()
    for counts in table.values():
        total.update(counts)
    lines.append("| all | " + " | ".join(str(total.get(o, 0)) for o in OUTCOMES) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- tests


def test_mutants_give_a_prediction_or_a_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_fuzz_userfiles", str(tmp_path), str(N), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120 + 20 * TIME_LIMIT_S + 2.0 * N * 9,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    print(format_table(result["table"]))
    print(f"slowest {result['slowest_s']:.2f} s; peak RSS {result['peak_mb']:.0f} MB")
    assert sum(sum(c.values()) for c in result["table"].values()) >= 5 * N
    assert result["problems"] == []
    assert result["peak_mb"] < RSS_LIMIT_MB
    # binary and CSV mutants are not all rejected: a damaged FIT keeps its records before
    # the damage (XML is strict: nearly every GPX/TCX mutant is a clean error)
    assert all(c.get("prediction", 0) > 0 for k, c in result["table"].items() if "X" not in k)


def test_mutations_are_seeded_and_varied() -> None:
    data = bytes(range(256)) * 8
    a = [mutate(data, random.Random(k)) for k in range(50)]
    assert a == [mutate(data, random.Random(k)) for k in range(50)]
    assert len(set(a)) == 50 and data not in a
    assert len({len(x) for x in a}) > 10  # truncations, insertions and deletions


_times = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=1.6e9, max_value=1.6e9 + 7200),
        st.floats(min_value=-1e18, max_value=1e18),
    ),
    min_size=0,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(times=_times, relative=st.booleans())
def test_finish_bounds_any_timestamps(times: list[float], relative: bool) -> None:
    """Whatever the times, finish gives an activity within the limits or an ActivityError."""
    from hrpred.io.activity import ActivityError, Columns, finish
    from hrpred.io.limits import MAX_DURATION_S

    n = len(times)
    cols = {"timestamp": times, "speed": [10.0] * n, "altitude": [math.inf] * n}
    try:
        act = finish(Columns(cols, relative_time=relative), [], "x.csv")
    except ActivityError as exc:
        assert "\n" not in str(exc)
        return
    t = act.timestamp
    assert len(t) >= 2 and np.all(np.diff(t) > 0) and np.isfinite(t).all()
    assert t[-1] - t[0] <= MAX_DURATION_S
    assert act.altitude is None and len(act.speed) == len(t)


@pytest.mark.parametrize(
    ("seed", "k", "old_error"),
    [
        ("FIT (phone app)", 138, "TypeError: '>=' between a tuple and an int in field decoding"),
        ("FIT (phone app)", 14, "ValueError: size"),
        ("FIT (watch)", 95, "AssertionError in fitdecode"),
    ],
)
def test_decoder_crashes_found_by_fuzzing_are_caught(tmp_path, seed, k, old_error) -> None:
    """Mutants on which the reader of commit 8194316 raised `old_error`."""
    from hrpred.io.userfiles import ActivityError, read_activity

    seeds = seed_files(tmp_path)
    si = list(seeds).index(seed)
    path = tmp_path / f"mutant{seeds[seed].suffix}"
    path.write_bytes(mutate(seeds[seed].read_bytes(), random.Random(1000 * si + k)))
    try:
        act = read_activity(path)
    except ActivityError as exc:
        assert str(exc).startswith("mutant.fit: ") and "\n" not in str(exc)
        assert "at byte" in str(exc) or "FIT" in str(exc)
    else:
        assert len(act) >= 2


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/samples/real not present")
def test_real_seeds_are_used(tmp_path: Path) -> None:
    seeds = seed_files(tmp_path)
    assert {"FIT (watch, real)", "GPX (real)"} <= set(seeds)


if __name__ == "__main__":
    workdir, n_arg, result_path = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    result_path.write_text(json.dumps(run_mutants(workdir, n_arg)))
