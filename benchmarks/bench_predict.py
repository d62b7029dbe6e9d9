"""Benchmark `hrpred predict`: wall time on a 1-hour 1 Hz GPX (Python start-up included), the
same with `--profile` (a profile of 10 earlier runs, personalised and population predictions)
and the model's forward pass on one 500-step workout (CPU).

Uses models/bundle when it exists, else a bundle with a randomly initialised history model
(`HistoryHRModel`) of the training architecture (params.yaml train/featurize/personal.learned)
in benchmarks/scratch/ (timing does not depend on the weights). Rewrites the "## Predict" section of BENCHMARKS.md (created if absent).

    python benchmarks/bench_predict.py [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.predict_fixtures import (  # noqa: E402
    make_bundle,
    runner_workout,
    simulated_workout,
    write_gpx,
)

WORK = ROOT / "benchmarks" / "scratch" / "predict"
BENCH_MD = ROOT / "BENCHMARKS.md"


def bench_bundle() -> tuple[Path, str]:
    real = ROOT / "models" / "bundle"
    if (real / "config.json").exists():
        return real, "models/bundle (trained)"
    from hrpred.features.config import FeaturizeConfig
    from hrpred.params import load_config
    from hrpred.personal.config import LearnedConfig
    from hrpred.personal.context import CONTEXT_FEATURES
    from hrpred.personal.summaries import SUMMARY_FEATURES
    from hrpred.train.config import TrainConfig

    feats = list(load_config(FeaturizeConfig, "featurize", ROOT / "params.yaml").features)
    train = load_config(TrainConfig, "train", ROOT / "params.yaml")
    out = WORK / "bundle"
    make_bundle(out, features=feats, step_s=8.0, onnx=False)
    # rebuild at the real size: the tiny fixture model would flatter the forward pass
    import torch

    from hrpred.export.bundle import CONFIG, WEIGHTS, load_bundle, save_weights
    from hrpred.model import HistoryHRModel, cpu_state_dict

    b = load_bundle(out)
    arch = {
        "input_size": len(feats),
        "hidden": train.hidden,
        "layers": train.layers,
        "dropout": train.dropout,
        "bidirectional": train.bidirectional,
    }
    learned = load_config(LearnedConfig, "personal.learned", ROOT / "params.yaml")
    c = len(CONTEXT_FEATURES)
    history = {
        "design": learned.design,
        "k_max": learned.k_max,
        "context_size": c,
        "enc_hidden": learned.enc_hidden,
        "embed": learned.embed,
        "context_features": list(CONTEXT_FEATURES),
        "summary_features": list(SUMMARY_FEATURES),
        "scaler": {"mean": [0.0] * c, "std": [1.0] * c},
    }
    b.config["model"].update(config=arch, **{"class": "HistoryHRModel"})
    b.config["history"] = history
    torch.manual_seed(0)
    model = HistoryHRModel(arch, history, 145.0, 14.0)
    save_weights(cpu_state_dict(model), out / WEIGHTS)
    import json

    (out / CONFIG).write_text(json.dumps(b.config, indent=2, sort_keys=True) + "\n")
    return out, f"random {arch['layers']}x{arch['hidden']} history LSTM (no trained bundle yet)"


def make_profile(bundle: Path, n_runs: int = 10) -> Path:
    """`hrpred profile` of `n_runs` 40-minute runs with HR on the days before the 1-hour run."""
    past = [
        write_gpx(WORK / f"past_{i}.gpx", runner_workout(100 + i, 5.0, -(i + 1), n=300), hr=True)
        for i in range(n_runs)
    ]
    out = WORK / "me.json"
    cmd = [sys.executable, "-m", "hrpred", "profile", *map(str, past), "-o", str(out)]
    subprocess.run([*cmd, "--bundle", str(bundle), "--quiet"], check=True, cwd=ROOT)
    return out


def time_cli(bundle: Path, gpx: Path, runs: int, extra: tuple[str, ...] = ()) -> list[float]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    cmd = [sys.executable, "-m", "hrpred", "predict", str(gpx), "--bundle", str(bundle)]
    cmd += ["--out", str(WORK / "pred.csv"), "--quiet", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)  # warm the OS file cache and .pyc
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        times.append(time.perf_counter() - t0)
    return times


def time_forward(bundle_dir: Path, runs: int) -> tuple[list[float], int]:
    import numpy as np
    import torch

    from hrpred.serve.predict import load_bundle

    torch.set_num_threads(1)  # as `hrpred predict` runs it (one sequence: latency-bound)
    bundle = load_bundle(bundle_dir)
    x = np.random.default_rng(0).normal(0, 1, (1, 500, len(bundle.features))).astype(np.float32)
    for _ in range(5):
        bundle.predict(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        bundle.predict(x)
        times.append(time.perf_counter() - t0)
    return times, torch.get_num_threads()


def write_section(text: str) -> None:
    old = BENCH_MD.read_text() if BENCH_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Predict\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    BENCH_MD.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--forward-runs", type=int, default=50)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    bundle, which = bench_bundle()
    gpx = write_gpx(WORK / "run_1h_1hz.gpx", simulated_workout(3600, 1.0), hr=True)
    cli = time_cli(bundle, gpx, args.runs)
    personal = time_cli(bundle, gpx, args.runs, ("--profile", str(make_profile(bundle))))
    fwd, threads = time_forward(bundle, args.forward_runs)
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    text = (
        "## Predict\n\n"
        f"`python benchmarks/bench_predict.py` on {os.cpu_count()} CPU cores ({cpu}), "
        f"Python {platform.python_version()}, torch threads {threads}; bundle: {which}; "
        f"load average {load:.1f} at the end of the run (shared machine).\n\n"
        "| measure | median | min | max | target |\n|---|---:|---:|---:|---:|\n"
        f"| `hrpred predict` 1-hour 1 Hz GPX (3600 points), wall incl. start-up, "
        f"{len(cli)} runs | {statistics.median(cli):.2f} s | {min(cli):.2f} s | "
        f"{max(cli):.2f} s | < 3 s |\n"
        f"| `hrpred predict --profile` (10 earlier runs: population + personalised), same "
        f"file, {len(personal)} runs | {statistics.median(personal):.2f} s | "
        f"{min(personal):.2f} s | {max(personal):.2f} s | < 3 s |\n"
        f"| model forward, one 500-step workout, CPU, {len(fwd)} runs | "
        f"{1000 * statistics.median(fwd):.2f} ms | {1000 * min(fwd):.2f} ms | "
        f"{1000 * max(fwd):.2f} ms | < 10 ms |\n"
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
