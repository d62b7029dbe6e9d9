"""Seeded mutation fuzzing of profiles (issue 25), beside tests/test_fuzz_userfiles.py.

Seed profiles: built by `build_profile` from simulated runs with a population bundle and with
a random history bundle whose band has a runner scale (so every stored field is read:
summaries, run records and plans), plus one from the real samples of
../shared/samples/real when present. Each mutant is one to three of: a field replaced by
another type, NaN, Infinity, 1e308, 1e400, a 400-digit integer, a long text, a deep or a long
list; a field deleted or added; runs duplicated, swapped or dropped; `n_runs` changed; or
byte-level damage of the text (tests/test_fuzz_userfiles.mutate). A few fixed mutants test
sizes: a profile padded past 64 MB, 20,001 runs, 100,000-deep nesting, and a valid profile of
20,000 runs that must be used within the time limit.

Each mutant goes through what `hrpred predict --profile` does: `load_profile`,
`check_compatible`, `predict_activity` with the profile. It must give a prediction whose
personalised columns and bands are finite, with no numpy RuntimeWarning, or a one-line
`ProfileError` naming the file, within TIME_LIMIT_S of CPU time (WALL_LIMIT_S of wall time:
nothing may block); the worker's peak RSS stays under
RSS_LIMIT_MB. Anything else is an unexpected error, and there must be none.

The mutants run in a subprocess (`python -m tests.test_fuzz_profiles DIR N OUT`) so that its
peak RSS is this run's alone. Default: DEFAULT_N mutants per seed; more with
HRPRED_FUZZ_PROFILE_N, e.g. `HRPRED_FUZZ_PROFILE_N=400 pytest tests/test_fuzz_profiles.py`.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from tests.procmem import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "samples" / "real"
DEFAULT_N = 60  # mutants per seed profile in the default suite (2 or 3 seeds)
N = int(os.environ.get("HRPRED_FUZZ_PROFILE_N", DEFAULT_N))
TIME_LIMIT_S = 10.0  # per mutant: load + check + predict, CPU time of the worker
WALL_LIMIT_S = 3 * TIME_LIMIT_S  # a stalled mutant (nothing should block) on a busy machine
RSS_LIMIT_MB = 1536
OUTCOMES = ("prediction", "clean error", "unexpected error", "timeout")
MARK = "@@MUTANT@@"

# raw JSON text put in place of a field (Python's json reads NaN, Infinity and huge ints)
LITERALS = (
    "NaN", "Infinity", "-Infinity", "1e308", "-1e308", "1e400", "1" + "0" * 400, str(10**30),
    "-1", "0", "1e-320", "-0.0", "3.5", "true", "false", "null", '""', '"abc"', "[]", "{}",
    "[1, 2, 3]", '{"a": 1}', '"' + "x" * 10_000 + '"', "[" * 1000 + "]" * 1000,
    "[" + ", ".join(["0"] * 10_000) + "]", '"NaN"', '"1e308"', "9" * 5000,
)  # fmt: skip


# --------------------------------------------------------------------------- mutations


def _paths(node: Any, at: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON value, the root excluded."""
    out = []
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return out
    for key, child in items:
        out.append((*at, key))
        out.extend(_paths(child, (*at, key)))
    return out


def _parent(content: Any, path: tuple) -> Any:
    for key in path[:-1]:
        content = content[key]
    return content


def _spec_at(path: tuple) -> Any:
    """The schema's spec of the field at `path` (None where the schema has none)."""
    from hrpred.io.jsonspec import ListOf, MapOf, Record
    from hrpred.serve.profile_io import PROFILE_SCHEMA

    spec: Any = PROFILE_SCHEMA
    for key in path:
        if isinstance(spec, Record):
            spec = spec.fields.get(key) or spec.optional.get(key)
        elif isinstance(spec, ListOf | MapOf):
            spec = spec.item if isinstance(spec, ListOf) else spec.value
        else:
            return None
    return spec


def _edge(c: dict, paths: list[tuple], rng: random.Random) -> None:
    """A number set to an edge of its plausible range, or anywhere inside it: still valid
    for its field alone (the rules between fields may refuse it)."""
    from hrpred.io.jsonspec import Integer, Number
    from hrpred.serve.profile_io import SUMMARY_RANGES

    nums = [(p, spec) for p in paths if isinstance(spec := _spec_at(p), Number | Integer)]
    if not nums:
        return
    path, spec = rng.choice(nums)
    if len(path) == 4 and path[2] == "summary" and path[3] in SUMMARY_RANGES:
        spec = Number(*SUMMARY_RANGES[path[3]])  # the rule's range of that feature
    if isinstance(spec, Integer):
        value: Any = rng.choice((spec.lo, spec.hi, rng.randint(spec.lo, spec.hi)))
    else:
        value = rng.choice((spec.lo, spec.hi, rng.uniform(spec.lo, spec.hi)))
    _parent(c, path)[path[-1]] = value


def mutate_profile(content: dict, rng: random.Random) -> str:
    """The text of a mutant of a profile's content: one time in three 1-5 numbers set within
    their plausible ranges (edges included: such a profile must be used, unless a rule
    between fields refuses it); else 1-3 hostile mutations, then (one time in five)
    byte-level damage."""
    from tests.test_fuzz_userfiles import mutate

    c = copy.deepcopy(content)
    if rng.random() < 1 / 3:
        for _ in range(rng.randint(1, 5)):
            _edge(c, _paths(c), rng)
        return json.dumps(c)
    literal = None
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = _paths(c)
        kind = rng.randrange(8)
        if kind <= 2 and literal is None:  # a field replaced by a hostile literal
            path = rng.choice(paths)
            _parent(c, path)[path[-1]] = MARK
            literal = rng.choice(LITERALS)
        elif kind == 3:  # a field deleted
            path = rng.choice(paths)
            parent = _parent(c, path)
            if isinstance(parent, dict):
                del parent[path[-1]]
            elif parent:
                parent.pop(path[-1])
        elif kind == 4:  # a field added
            dicts = [p for p in paths if isinstance(_parent(c, p + (0,)), dict)]
            if dicts:
                _parent(c, rng.choice(dicts) + ("x",))[rng.choice(("evil", "sum", "n"))] = 1
        elif kind == 5 and isinstance(c.get("runs"), list) and c["runs"]:  # runs reordered
            runs = c["runs"]
            i, j = rng.randrange(len(runs)), rng.randrange(len(runs))
            op = rng.randrange(3)
            if op == 0:
                runs.append(copy.deepcopy(runs[i]))
            elif op == 1:
                runs[i], runs[j] = runs[j], runs[i]
            else:
                del runs[i:]
        elif kind == 6:
            c["n_runs"] = rng.choice((0, -1, 1, 3, 10**6, 2**63))
        else:  # a number nudged (still a number: must be used or refused cleanly)
            nums = [p for p in paths if isinstance(_parent(c, p)[p[-1]], int | float)]
            if nums:
                path = rng.choice(nums)
                value = _parent(c, path)[path[-1]]
                if not isinstance(value, bool):
                    _parent(c, path)[path[-1]] = value * rng.choice((-1, 0, 2, 1e3, 1e9))
    text = json.dumps(c)
    if literal is not None:
        text = text.replace(json.dumps(MARK), literal, 1)
    if rng.random() < 0.2:
        text = mutate(text.encode(), rng).decode("utf-8", errors="replace")
    return text


def special_mutants(content: dict) -> dict[str, str | tuple[int, bytes]]:
    """Size and depth mutants, once each: name -> text, or (size, head) for a sparse file."""
    run = content["runs"][0]
    many = copy.deepcopy(content)
    many["runs"] = [dict(run, start_time=run["start_time"] - 3600.0 * (20_000 - i))
                    for i in range(20_000)]  # fmt: skip
    many["n_runs"] = 20_000
    valid = json.dumps(many)
    many["runs"].append(dict(run, start_time=run["start_time"] + 1.0))
    many["n_runs"] = 20_001
    return {
        "20,000 runs (valid)": valid,
        "20,001 runs": json.dumps(many),
        "100,000-deep": "[" * 100_000,
        "padded past 64 MB": (65 * 1024**2, json.dumps(content).encode()),
    }


# --------------------------------------------------------------------------- worker


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def _seeds(out: Path) -> dict[str, tuple[Any, dict]]:
    """Seed name -> (bundle, profile content): simulated (population, history) and real."""
    from hrpred.bundle.runtime import load_bundle
    from hrpred.serve.profile import build_profile
    from tests.predict_fixtures import make_bundle
    from tests.profile_helpers import random_history_bundle, write_runs
    from tests.test_predict import with_band
    from tests.test_serve_runner_scale import calibration

    runs = write_runs(out / "runs", 8)
    pop = load_bundle(make_bundle(out / "pop"))
    hist_dir = random_history_bundle(out / "hist0")
    hist = load_bundle(with_band(hist_dir, out / "hist", calibration(1.0)))
    seeds = {
        "simulated, population bundle": (pop, build_profile(pop, runs)[0].content),
        "simulated, history bundle + band": (hist, build_profile(hist, runs)[0].content),
    }
    real = sorted(p for p in REAL.glob("*") if p.name != "README.md") if REAL.is_dir() else []
    if real:
        profile = build_profile(hist, real)[0].content
        if profile["n_runs"]:
            seeds["real samples, history bundle + band"] = (hist, profile)
    return seeds


def _predict(bundle: Any, path: Path, activity: Any) -> str:
    """One mutant through what `hrpred predict --profile` does; the outcome or a problem."""
    import numpy as np

    from hrpred.errors import HrpredError
    from hrpred.serve.predict import predict_activity
    from hrpred.serve.profile import ProfileError, check_compatible, load_profile

    try:
        profile = load_profile(path)
    except HrpredError as exc:
        msg = str(exc)
        ok = isinstance(exc, ProfileError) and "\n" not in msg and msg.startswith(f"{path.name}: ")
        return "clean error" if ok else f"load_profile: not one line naming the file: {msg[:200]!r}"
    try:
        check_compatible(profile, bundle)
    except ProfileError as exc:
        return "clean error" if "\n" not in str(exc) else f"check_compatible: {exc!s:.200}"
    pred = predict_activity(bundle, activity, profile=profile)
    cols = [c for c in ("hr_offset", "hr_personal", "hr_p10", "hr_p90") if c in pred.frame]
    if not np.isfinite(pred.frame[cols].to_numpy()).all():
        return f"non-finite {cols} in the prediction"
    for name in ("offset", "personal"):
        band = (pred.summary.get(name) or {}).get("band") or {}
        for key in ("avg_hr", "max_hr"):
            if key in band and not np.isfinite(band[key]).all():
                return f"non-finite {name} band {key}: {band[key]}"
    return "prediction"


def run_mutants(out: Path, n: int) -> dict:
    """Every seed's `n` mutants and the special ones (the worker)."""
    import torch

    from hrpred.io.userfiles import read_activity
    from tests.predict_fixtures import START, runner_workout, write_gpx
    from tests.profile_helpers import sparse_file

    torch.set_num_threads(1)
    day = int((time.time() - START) / 86400) - 2  # after every seed's runs, not in the future
    later = read_activity(write_gpx(out / "later.gpx", runner_workout(98, 8.0, day, n=80)))
    seeds = _seeds(out)
    signal.signal(signal.SIGALRM, _alarm)
    table: dict[str, Counter] = {}
    problems: list[str] = []
    slowest = 0.0
    jobs: list[tuple[str, str, Any, Any]] = []  # (seed, label, bundle, text or sparse)
    for si, (name, (bundle, content)) in enumerate(seeds.items()):
        for k in range(n):
            jobs.append((name, f"#{k}", bundle, (si, k, content)))
    first_bundle, first = next(iter(seeds.values()))
    for label, mutant in special_mutants(first).items():
        jobs.append(("sizes and depth", label, first_bundle, mutant))
    target = out / "me.json"
    for seed, label, bundle, job in jobs:
        if isinstance(job, tuple) and len(job) == 3:
            si, k, content = job
            target.write_text(mutate_profile(content, random.Random(1000 * si + k)))
        elif isinstance(job, tuple):
            target.unlink(missing_ok=True)
            sparse_file(target, job[0], job[1])
        else:
            target.write_text(job)
        t0 = time.process_time()
        signal.setitimer(signal.ITIMER_REAL, WALL_LIMIT_S)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                outcome = _predict(bundle, target, later)
            runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
            if runtime and outcome in ("prediction", "clean error"):
                outcome = f"RuntimeWarning: {runtime[0].message!s:.200}"
        except _Timeout:
            outcome = "timeout"
        except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
            outcome = f"{type(exc).__name__}: {exc!s:.200}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.process_time() - t0
        slowest = max(slowest, elapsed)
        if elapsed > TIME_LIMIT_S:
            outcome = "timeout"
        if outcome not in OUTCOMES[:2]:
            problems.append(f"{seed} {label}: {outcome}")
            outcome = "timeout" if outcome == "timeout" else "unexpected error"
        table.setdefault(seed, Counter())[outcome] += 1
    return {
        "table": {k: dict(v) for k, v in table.items()},
        "problems": problems,
        "slowest_s": slowest,
        "peak_mb": peak_rss_mb(),
    }


def format_table(table: dict[str, dict[str, int]]) -> str:
    lines = ["| seed profile | " + " | ".join(OUTCOMES) + " |", "|---|" + "---:|" * len(OUTCOMES)]
    total: Counter = Counter()
    for name, counts in table.items():
        total.update(counts)
        lines.append(f"| {name} | " + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES) + " |")
    lines.append("| all | " + " | ".join(str(total.get(o, 0)) for o in OUTCOMES) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- tests


def test_profile_mutants_are_used_or_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_fuzz_profiles", str(tmp_path), str(N), str(out)],
        cwd=ROOT, capture_output=True, text=True,
        timeout=300 + WALL_LIMIT_S * 4 + 1.0 * N * 3,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    print(format_table(result["table"]))
    print(f"slowest {result['slowest_s']:.2f} s CPU; peak RSS {result['peak_mb']:.0f} MB")
    assert result["problems"] == []
    assert sum(sum(c.values()) for c in result["table"].values()) >= 2 * N + 4
    assert result["peak_mb"] < RSS_LIMIT_MB
    # the mutations reach both outcomes: not everything is refused
    for name, counts in result["table"].items():
        if name != "sizes and depth":
            assert counts.get("prediction", 0) > 0 and counts.get("clean error", 0) > 0, name
    assert result["table"]["sizes and depth"] == {"prediction": 1, "clean error": 3}


def test_mutants_are_seeded_and_varied() -> None:
    content = {"format": "x", "runs": [{"a": 1.5, "b": [1, 2]}, {"a": 2.5, "b": []}], "n_runs": 2}
    a = [mutate_profile(content, random.Random(k)) for k in range(60)]
    assert a == [mutate_profile(content, random.Random(k)) for k in range(60)]
    assert len(set(a)) > 40 and json.dumps(content) not in a
    assert any("NaN" in t or "Infinity" in t for t in a)


if __name__ == "__main__":
    workdir, n_arg, result_path = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    result_path.write_text(json.dumps(run_mutants(workdir, n_arg)))
