"""Cost of every pipeline stage against the number of raw workouts.

    python benchmarks/scale.py                          # 1k, 10k, 40k, 167,783 workouts
    python benchmarks/scale.py --sizes 1000 10000       # a quick look

For each size it simulates a raw file of that many workouts (the last size is the real
file's), runs each stage as a separate process (`python -m stages.<name>`) in a scratch
work dir under benchmarks/scratch/, and records wall time, CPU time, peak RSS (largest
process of the stage, from wait4), output size and throughput. Training gets a fixed
budget (one epoch capped at `--train-batches` batches) so its cost is comparable across
sizes. At the largest size it also records `dvc status` and a no-op `dvc repro` after
`dvc commit`. Results: benchmarks/results/scale.csv and scale.png.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repro import interpreter_env

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["simulate", "clean", "featurize", "split", "train", "evaluate", "export"]
OUTS = {
    "simulate": ["data/raw"],
    "clean": ["data/clean"],
    "featurize": ["data/features"],
    "split": ["data/split"],
    "train": ["models/model.pt", "models/checkpoint.pt", "dvclive"],
    "evaluate": ["data/eval", "plots"],
    "export": ["models/bundle", "data/export"],
}
REAL_WORKOUTS = 167_783
REAL_USERS = 1_000  # users at full scale; scaled down proportionally


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_measured(args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run a process; wall, CPU (incl. children) and peak RSS of its largest process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with exit code {proc.returncode} in {cwd}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def prepare(work: Path, n: int, train_batches: int) -> dict[str, str]:
    """Scratch dir with the project's code, params for `n` workouts, git + DVC initialised."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for rel in ["hrpred", "stages"]:
        shutil.copytree(ROOT / rel, work / rel, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "params", work / "params")  # the calibrated params files
    for rel in ["dvc.yaml", "pyproject.toml"]:
        shutil.copy2(ROOT / rel, work / rel)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["simulate"]["n_workouts"] = n
    params["simulate"]["n_users"] = max(20, round(REAL_USERS * n / REAL_WORKOUTS))
    params["train"].update({"max_epochs": 1, "max_batches": train_batches})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    part = work / "params" / "evaluate.yaml"  # the GIF switch lives with the figures' look
    part.write_text(part.read_text().replace("animations: true", "animations: false", 1))
    env = interpreter_env()
    env["PYTHONPATH"] = str(work)
    return env


def dvc_noop(work: Path, env: dict[str, str]) -> dict[str, float]:
    """`dvc status` and `dvc repro` on an up-to-date pipeline (outputs already hashed)."""
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid"]
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run([*dvc, "init", "-q"], cwd=work, check=True, env=env)
    subprocess.run(
        [*dvc, "config", "cache.type", "hardlink,symlink"], cwd=work, check=True, env=env
    )
    start = time.perf_counter()
    subprocess.run([*dvc, "commit", "-f", "-q"], cwd=work, check=True, env=env)
    commit_s = time.perf_counter() - start
    subprocess.run([*git, "add", "-A"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=work, check=True)
    status = run_measured([*dvc, "status", "-q"], work, env)
    repro = run_measured([*dvc, "repro"], work, env)
    return {
        "dvc_commit_s": commit_s,
        "dvc_status_s": status["wall_s"],
        "dvc_repro_noop_s": repro["wall_s"],
    }


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage in STAGES:
        pts = sorted(
            (r["workouts"], r["wall_s"], r["peak_rss_mb"]) for r in rows if r["stage"] == stage
        )
        if not pts:
            continue
        n, wall, rss = zip(*pts, strict=True)
        axes[0].loglog(n, wall, marker="o", label=stage)
        axes[1].loglog(n, rss, marker="o", label=stage)
    ns = sorted({r["workouts"] for r in rows})
    if len(ns) > 1:
        ref = [ns[0] and 1.0 * x / ns[0] for x in ns]
        axes[0].loglog(ns, ref, "k--", lw=0.8, label="linear (slope 1)")
    axes[0].set(xlabel="raw workouts", ylabel="wall time (s)", title="Stage cost")
    axes[1].set(xlabel="raw workouts", ylabel="peak RSS (MB)", title="Stage memory")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 40000, REAL_WORKOUTS])
    ap.add_argument("--train-batches", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--keep", action="store_true", help="keep the work dirs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    extra: list[dict] = []
    for n in args.sizes:
        work = ROOT / "benchmarks" / "scratch" / f"n{n}"
        env = prepare(work, n, args.train_batches)
        raw_mb = 0.0
        for stage in STAGES:
            m = run_measured([sys.executable, "-m", f"stages.{stage}"], work, env)
            out_bytes = sum(size_of(work / o) for o in OUTS[stage] if (work / o).exists())
            if stage == "simulate":
                raw_mb = size_of(work / "data/raw/simulated.json") / 1e6
            row = {"workouts": n, "stage": stage, **{k: round(v, 2) for k, v in m.items()}}
            row["output_mb"] = round(out_bytes / 1e6, 1)
            row["workouts_per_s"] = round(n / m["wall_s"], 1)
            row["input_mb_per_s"] = round(raw_mb / m["wall_s"], 1) if stage == "clean" else ""
            rows.append(row)
            print(row, flush=True)
        if n == max(args.sizes):
            extra.append(
                {"workouts": n, **{k: round(v, 2) for k, v in dvc_noop(work, env).items()}}
            )
            print(extra[-1], flush=True)
        if not args.keep:
            shutil.rmtree(work)
    with (args.out / "scale.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if extra:
        with (args.out / "dvc_noop.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(extra[0]))
            writer.writeheader()
            writer.writerows(extra)
    plot(rows, args.out / "scale.png")
    print(f"wrote {args.out / 'scale.csv'} and {args.out / 'scale.png'}")


if __name__ == "__main__":
    main()
