"""Benchmark `hrpred predict`: wall time on a 1-hour 1 Hz GPX (Python start-up included), the
same with `--profile` (a profile of 10 earlier runs: population, offset-personalised and, for a
history model, learned personalised predictions), `hrpred profile` of those 10 runs, and the
model's forward pass on one 500-step workout (CPU). The commands run on the bundle's default
backend (ONNX Runtime over model.onnx: no torch import) and, for comparison, `predict` with
HRPRED_BACKEND=torch (the PyTorch model, as before ONNX Runtime served predictions).

Uses models/bundle when it exists, else a bundle with a randomly initialised history model
(`HistoryHRModel`) of the training architecture (params.yaml train/featurize/personal.learned)
in benchmarks/scratch/, ONNX included (timing does not depend on the weights; also when
models/bundle was exported by older model code and no longer loads). models/bundle is timed
from a copy in benchmarks/scratch/ (with params.yaml's `personal.offset`/`personal.residual`
added when it was exported before bundles carried them). Rewrites the "## Predict" section of
BENCHMARKS.md (created if absent).

    python benchmarks/bench_predict.py [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import replace_section, timing_row  # noqa: E402
from tests.predict_fixtures import (  # noqa: E402
    make_bundle,
    runner_workout,
    simulated_workout,
    write_gpx,
)

WORK = ROOT / "benchmarks" / "scratch" / "predict"


def bench_bundle() -> tuple[Path, str]:
    from hrpred.bundle.format import BundleError
    from hrpred.bundle.runtime import load_bundle

    real = ROOT / "models" / "bundle"
    stale = ""
    if (real / "config.json").exists():
        try:
            path, which = with_personal_rules(real)
            load_bundle(path)
            return path, which
        except (BundleError, OSError):  # older model code or mid-export: time a random one
            stale = "; models/bundle does not load with this code (stale or mid-export)"
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

    from hrpred.export.writer import write_bundle
    from hrpred.model import HistoryHRModel, cpu_state_dict

    b = load_bundle(out, backend="torch")
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
    write_bundle(out, cpu_state_dict(model), b.config, onnx=True)  # as export: model.onnx too
    what = "no trained bundle yet" if not stale else stale.removeprefix("; ")
    return out, f"random {arch['layers']}x{arch['hidden']} {learned.design} history LSTM ({what})"


def with_personal_rules(real: Path) -> tuple[Path, str]:
    """A copy of models/bundle in benchmarks/scratch/ (a `dvc repro` running meanwhile may
    replace it), with params.yaml's personalisers added when it was exported without them."""
    import json
    import shutil

    out = WORK / "bundle_trained"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").unlink(missing_ok=True)
    for name in ("model.safetensors", "config.json", "model.onnx"):
        if name != "model.onnx" or (real / name).exists():
            shutil.copyfile(real / name, out / name)
    config = json.loads((out / "config.json").read_text())
    if "personal" in config:
        return out, "models/bundle (trained)"
    from tests.predict_fixtures import personal_rules

    config["personal"] = {k: vars(v) for k, v in personal_rules().items()}
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out, "models/bundle (trained; personalisers' rules from params.yaml, not yet exported)"


def profile_cmd(bundle: Path, out: Path, n_runs: int = 10) -> list[str]:
    """`hrpred profile` of `n_runs` 40-minute runs with HR on the days before the 1-hour run,
    writing `out` (the run files are written now)."""
    past = [
        write_gpx(WORK / f"past_{i}.gpx", runner_workout(100 + i, 5.0, -(i + 1), n=300), hr=True)
        for i in range(n_runs)
    ]
    cmd = [sys.executable, "-m", "hrpred", "profile", *map(str, past), "-o", str(out)]
    return [*cmd, "--bundle", str(bundle), "--quiet"]


def predict_cmd(bundle: Path, gpx: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "hrpred", "predict", str(gpx), "--bundle", str(bundle)]
    return [*cmd, "--out", str(WORK / "pred.csv"), "--quiet", *extra]


def time_cmds(
    cmds: dict[str, tuple[list[str], str]], runs: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU (user + sys) seconds of each (command, HRPRED_BACKEND); the commands' runs
    alternate, so a change in the machine's load hits all of them alike."""
    import resource

    base = {k: v for k, v in os.environ.items() if k != "HRPRED_BACKEND"}
    envs = {
        k: dict(base, PYTHONDONTWRITEBYTECODE="0", HRPRED_BACKEND=b) for k, (_, b) in cmds.items()
    }
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cmds}
    for name, (cmd, _) in cmds.items():  # warm the file cache and .pyc
        subprocess.run(cmd, check=True, cwd=ROOT, env=envs[name])
    for _ in range(runs):
        for name, (cmd, _) in cmds.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, env=envs[name])
            out[name][0].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            out[name][1].append(cpu)
    return out


def time_forward(bundle_dir: Path, runs: int, backend: str) -> list[float]:
    """Seconds of `Bundle.predict` on one 500-step workout on `backend` (one intra-op thread
    either way, as `hrpred predict` runs it: one sequence is latency-bound)."""
    import numpy as np

    from hrpred.serve.predict import load_bundle

    bundle = load_bundle(bundle_dir, backend=backend, torch_threads=1)
    x = np.random.default_rng(0).normal(0, 1, (1, 500, len(bundle.features))).astype(np.float32)
    for _ in range(5):
        bundle.predict(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        bundle.predict(x)
        times.append(time.perf_counter() - t0)
    return times


def time_in_process(
    bundle_dir: Path, gpx: Path, profile: Path, runs: int
) -> tuple[list[float], list[float], str]:
    """Seconds of `predict_activity` on the read file after all imports, without and with the
    profile (loaded, bundle fingerprint checked, personalised): what personalisation adds; and
    the backend it ran on (the default: what `hrpred predict` uses)."""
    from hrpred.io.userfiles import read_activity
    from hrpred.serve.predict import load_bundle, predict_activity
    from hrpred.serve.profile import check_compatible, load_profile

    bundle, activity = load_bundle(bundle_dir, torch_threads=1), read_activity(gpx)
    plain, personal = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        predict_activity(bundle, activity)
        t1 = time.perf_counter()
        prof = load_profile(profile)
        check_compatible(prof, bundle)
        predict_activity(bundle, activity, profile=prof)
        personal.append(time.perf_counter() - t1)
        plain.append(t1 - t0)
    return plain, personal, bundle.backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--forward-runs", type=int, default=50)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    bundle, which = bench_bundle()
    gpx = write_gpx(WORK / "run_1h_1hz.gpx", simulated_workout(3600, 1.0), hr=True)
    profile = WORK / "me.json"
    build = profile_cmd(bundle, profile)
    subprocess.run(build, check=True, cwd=ROOT)  # the profile `--profile` reads
    py = sys.executable
    cmds = {  # (command, HRPRED_BACKEND): "" = the default (ONNX Runtime with model.onnx)
        "plain": (predict_cmd(bundle, gpx), ""),
        "profile": (predict_cmd(bundle, gpx, "--profile", str(profile)), ""),
        "build": (profile_cmd(bundle, WORK / "me_timed.json"), ""),
        "plain_torch": (predict_cmd(bundle, gpx), "torch"),
        "torch": ([py, "-c", "import torch"], ""),  # what the ONNX backend no longer loads
        "ort": ([py, "-c", "import onnxruntime"], ""),  # what it loads instead
    }
    timed = time_cmds(cmds, args.runs)
    fwd = {b: time_forward(bundle, args.forward_runs, b) for b in ("onnx", "torch")}
    plain_ms, personal_ms, backend = time_in_process(bundle, gpx, profile, args.forward_runs)
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()  # the machine may be shared: say how busy it was

    def row(label: str, key: str, target: str = "< 3 s") -> str:
        return timing_row(label, *timed[key], target)

    def fwd_row(label: str, key: str, target: str = "< 10 ms") -> str:
        t = fwd[key]
        return (
            f"| model forward, one 500-step workout, CPU, {label}, {len(t)} runs | "
            f"{1000 * statistics.median(t):.2f} ms | {1000 * min(t):.2f} ms | "
            f"{1000 * max(t):.2f} ms | | {target} |\n"
        )

    text = (
        "## Predict\n\n"
        f"`python benchmarks/bench_predict.py` on {os.cpu_count()} CPU cores ({cpu}), "
        f"Python {platform.python_version()}; bundle: {which}; backend: {backend} (ONNX "
        "Runtime over model.onnx, 1 intra-op thread, torch never imported; `HRPRED_BACKEND="
        "torch` runs the PyTorch model with 1 thread instead); "
        f"1-min load average {load0:.1f} at the start, {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1/5/15 min) at the end (shared machine). Wall times include Python "
        "start-up; CPU = user + sys time of the command.\n\n"
        "| measure | median | min | max | CPU (median) | target |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        + row("`hrpred predict` 1-hour 1 Hz GPX (3600 points)", "plain")
        + row(
            "`hrpred predict --profile` (10 earlier runs: population, + offset, learned), "
            "same file",
            "profile",
        )
        + row("`hrpred profile` of the 10 earlier runs (40-min GPX each)", "build", "")
        + row("`hrpred predict`, same file, `HRPRED_BACKEND=torch` (before)", "plain_torch", "")
        + row("`python -c 'import torch'` alone (the torch backend's start-up)", "torch", "")
        + row("`python -c 'import onnxruntime'` alone", "ort", "")
        + f"| `predict_activity` in-process (after imports), without / with the "
        f"profile, {len(plain_ms)} runs | {1000 * statistics.median(plain_ms):.0f} / "
        f"{1000 * statistics.median(personal_ms):.0f} ms | | | | |\n"
        + fwd_row("ONNX Runtime", "onnx")
        + fwd_row("PyTorch", "torch")
    )
    wall = statistics.median(timed["plain"][0])
    before = statistics.median(timed["plain_torch"][0])
    added = statistics.median(personal_ms) - statistics.median(plain_ms)
    text += (
        f"\n`hrpred predict` takes {wall:.2f} s against {before:.2f} s on the torch backend "
        f"({before / wall:.1f}x): `import torch` alone is "
        f"{statistics.median(timed['torch'][0]):.2f} s, `import onnxruntime` "
        f"{statistics.median(timed['ort'][0]):.2f} s. Personalising adds "
        f"{1000 * added:.0f} ms to the prediction itself; the rest of the wall time is "
        "start-up (Python, numpy, pandas, the GPX parser), so it follows the machine's load.\n"
    )
    print(text)
    if not args.no_write:
        replace_section("Predict", text)


if __name__ == "__main__":
    main()
