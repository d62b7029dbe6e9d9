"""Training throughput at the reference's full-scale shapes (27,806 x 500 x 14), random data.

Compares the pipeline's own loop (`hrpred.train.loop.fit`: memmapped arrays, on-the-fly scaling,
masked loss, global metrics, validation, checkpoint and dvclive every epoch) with a plain
PyTorch loop over the same model (tensors preloaded, plain masked MSE, no validation).

    python benchmarks/bench_train.py --device cpu --n 1024          # subsample, extrapolated
    python benchmarks/bench_train.py --device cuda                  # full scale, 4 GPU configs

Prints one JSON line per measurement; times are the fastest epoch over epochs x repeats. `n` rows are trained per epoch; `full_epoch_s` is the
train-phase time scaled linearly to 27,806 rows (stated as `extrapolated` when n is smaller).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hrpred import store
from hrpred.model import HRLSTM
from hrpred.params import load_config
from hrpred.personal.config import LearnedConfig
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import load_train_data
from hrpred.train.loop import fit
from hrpred.train.pipeline import load_inputs

ROOT = Path(__file__).resolve().parents[1]
FULL_TRAIN, FULL_VAL, SEQ_LEN, N_FEATURES = 27_806, 6_606, 500, 14
NAMES = [f"f{i}" for i in range(N_FEATURES - 1)] + ["gender"]
# (label, batch size, bf16 autocast, data on device)
CUDA_CONFIGS = [
    ("b16_fp32_host", 16, False, False),
    ("b64_fp32_host", 64, False, False),
    ("b256_bf16_device", 256, True, True),
    ("b1024_bf16_device", 1024, True, True),
]
CPU_CONFIGS = [("b16_fp32_host", 16, False, False)]


def write_random_dataset(root: Path, n_train: int, n_val: int, seed: int = 0) -> None:
    """data/features + data/split through hrpred.store's writers, in chunks (bounded RAM)."""
    n = n_train + n_val
    rng = np.random.default_rng(seed)
    writer = store.FeaturesWriter(root / "data" / "features", n, SEQ_LEN, NAMES)
    for start in range(0, n, 2048):
        k = min(n, start + 2048) - start
        ids = np.arange(start, start + k)
        arrays = {
            "features": rng.standard_normal((k, SEQ_LEN, N_FEATURES), np.float32),
            "target": 150 + 15 * rng.standard_normal((k, SEQ_LEN), np.float32),
            "mask": np.ones((k, SEQ_LEN), dtype=bool),
            "elapsed": np.tile(np.arange(SEQ_LEN, dtype=np.float32) * 8, (k, 1)),
        }
        index = pd.DataFrame(
            {"workout_id": ids, "user_id": ids, "start_time": ids * 86400, "length": SEQ_LEN}
        )
        writer.write(arrays, index)
    writer.close({"rows": n, "seq_len": SEQ_LEN})
    split = np.array(["train"] * n_train + ["val"] * n_val)
    assignment = pd.DataFrame(
        {"row": np.arange(n), "workout_id": np.arange(n), "user_id": np.arange(n), "split": split}
    )
    scaler = {name: {"mean": 0.0, "std": 1.0} for name in NAMES[:-1]}
    store.write_split(root / "data" / "split", assignment, scaler)


def bench_ours(
    root: Path, base: TrainConfig, batch: int, amp: bool, on_device: bool, epochs: int
) -> dict:
    data = load_train_data(root / "data" / "features", root / "data" / "split")
    cfg = replace(
        base,
        batch_size=batch,
        eval_batch_size=max(256, batch),
        max_epochs=epochs,
        patience=epochs + 1,
        lr_patience=epochs,
        amp=amp,
        data_on_device=on_device,
    )
    out = root / f"out_{batch}_{amp}_{on_device}"
    paths = TrainPaths(out / "model.pt", out / "checkpoint.pt", out / "dvclive")
    t0 = time.perf_counter()
    res = fit(cfg, data, paths)
    total = time.perf_counter() - t0
    best = min(res["history"], key=lambda h: h["train_time_s"])  # least disturbed epoch
    return {
        "train_s": best["train_time_s"],
        "epoch_s": best["epoch_time_s"],
        "val_s": best["val_time_s"],
        "first_epoch_s": res["history"][0]["epoch_time_s"],
        "fit_total_s": total,
    }


def bench_plain(
    root: Path, base: TrainConfig, batch: int, amp: bool, on_device: bool, epochs: int
) -> dict:
    """The loop a user would write by hand: preloaded tensors, Adam, clip, masked MSE."""
    dev = torch.device(base.device)
    fdir = root / "data" / "features"
    assignment = pd.read_parquet(root / "data" / "split" / "assignment.parquet")
    rows = np.sort(assignment.loc[assignment["split"] == "train", "row"].to_numpy())
    x_all = torch.from_numpy(np.load(fdir / "features.npy", mmap_mode="r")[rows].copy())
    y_all = torch.from_numpy(np.load(fdir / "target.npy", mmap_mode="r")[rows].copy())
    m_all = torch.from_numpy(np.load(fdir / "mask.npy", mmap_mode="r")[rows].copy())
    if on_device:
        x_all, y_all, m_all = x_all.to(dev), y_all.to(dev), m_all.to(dev)
    torch.manual_seed(0)
    model = HRLSTM(
        N_FEATURES, base.hidden, base.layers, base.dropout, base.bidirectional, 150.0, 15.0
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=base.lr)
    ctx = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if amp and dev.type == "cuda"
        else nullcontext()
    )
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(rows))
        model.train()
        for b in range(math.ceil(len(rows) / batch)):
            idx = perm[b * batch : (b + 1) * batch]
            if on_device:
                idx = idx.to(dev)
            x, y, m = x_all[idx].to(dev), y_all[idx].to(dev), m_all[idx].to(dev)
            with ctx:
                out = model(x)
            out = out.float()
            loss = ((out - y) ** 2 * m).sum() / m.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    return {"train_s": min(times), "first_epoch_s": times[0]}


# --converge: candidates trained on the pipeline's own data (data/features + data/split, the
# stage's model incl. personal.learned), each a set of changes to params.yaml's train section
OLD_DEFAULT = {  # params.yaml's train section before issue 27
    "hidden": 128,
    "batch_size": 16,
    "lr": 5.0e-4,
    "schedule": "plateau",
    "warmup_epochs": 0.0,
    "patience": 10,
    "lr_patience": 3,
    "max_epochs": 6,
    "num_threads": 1,
}
CANDIDATES: dict[str, dict] = {
    "old_default": OLD_DEFAULT,
    "old_default_x3": {**OLD_DEFAULT, "max_epochs": 18, "patience": 19},
    "new_default": {},  # params.yaml as it is
}


def parse_candidate(text: str) -> tuple[str, dict]:
    """NAME (from CANDIDATES) or NAME=JSON (changes to params.yaml's train section)."""
    name, _, changes = text.partition("=")
    if not changes:
        if name not in CANDIDATES:
            raise SystemExit(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
        return name, CANDIDATES[name]
    return name, json.loads(changes)


def bench_converge(root: Path, name: str, changes: dict, workdir: Path) -> dict:
    """Train one candidate like the stage does; per-epoch val MAE with cumulative wall and CPU
    time since the start (data loading included)."""
    base = load_config(TrainConfig, "train", root / "params.yaml")
    cfg = replace(base, **changes)
    learned = load_config(LearnedConfig, "personal.learned", root / "params.yaml")
    out = workdir / name
    paths = TrainPaths(out / "model.pt", out / "checkpoint.pt", None)
    paths.checkpoint.unlink(missing_ok=True)  # never resume an earlier run
    fdir, sdir = root / "data" / "features", root / "data" / "split"
    w0, c0 = time.perf_counter(), time.process_time()
    epochs: list[dict] = []

    def on_epoch_end(epoch: int, record: dict) -> None:
        epochs.append(
            {
                "candidate": name,
                "epoch": epoch,
                "val_mae": round(record["val_mae"], 4),
                "train_mae": round(record["train_mae"], 4),
                "lr": record["lr"],
                "epoch_s": round(record["epoch_time_s"], 2),
                "wall_s": round(time.perf_counter() - w0, 2),
                "cpu_s": round(time.process_time() - c0, 2),
            }
        )
        print(json.dumps(epochs[-1]), flush=True)

    data, history = load_inputs(fdir, sdir, learned)
    res = fit(cfg, data, paths, history=history, on_epoch_end=on_epoch_end)
    return {
        "candidate": name,
        "changes": changes,
        "hidden": cfg.hidden,
        "batch": cfg.batch_size,
        "lr": cfg.lr,
        "schedule": cfg.schedule,
        "threads": cfg.num_threads,
        "best_val_mae": round(res["best_val_mae"], 4),
        "best_epoch": res["best_epoch"],
        "epochs_run": res["epochs_run"],
        "stopped_early": res["stopped_early"],
        "wall_s": round(time.perf_counter() - w0, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "epochs": epochs,
    }


def to_target(run: dict, target: float) -> dict:
    """The first epoch whose val MAE is <= target, and the time spent until its end."""
    hit = next((e for e in run["epochs"] if e["val_mae"] <= target), None)
    return {
        "epochs_to_target": hit["epoch"] if hit else None,
        "wall_to_target_s": hit["wall_s"] if hit else None,
        "cpu_to_target_s": hit["cpu_s"] if hit else None,
    }


def converge(args: argparse.Namespace) -> None:
    """Run each candidate (alternating over repeats; val MAE is the same in every repeat,
    times keep the fastest) and print a summary line per candidate with time-to-target."""
    cands = [parse_candidate(c) for c in args.candidate]
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for _ in range(args.repeats):
            for name, changes in cands:
                run = bench_converge(ROOT, name, changes, Path(tmp))
                if name not in runs or run["wall_s"] < runs[name]["wall_s"]:
                    runs[name] = run
    first = runs[cands[0][0]]
    target = args.target if args.target is not None else first["best_val_mae"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    for name, _ in cands:
        run = runs[name]
        rec = {k: v for k, v in run.items() if k != "epochs"}
        rec |= {"target_val_mae": target, "machine": machine, "torch": torch.__version__}
        rec |= to_target(run, target)
        rec["wall_vs_first"] = round(run["wall_s"] / first["wall_s"], 3)
        print(json.dumps(rec), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--converge",
        action="store_true",
        help="train --candidate configs on the repo's data/features + data/split instead",
    )
    ap.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="--converge: NAME from CANDIDATES or NAME=JSON train changes (repeatable)",
    )
    ap.add_argument(
        "--target", type=float, default=None, help="--converge: target val MAE (default: first's)"
    )
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--n", type=int, default=None, help="train rows (default: 1024 cpu, full cuda)")
    ap.add_argument("--n-val", type=int, default=None, help="val rows (default: n x 6606/27806)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (last one is timed)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--configs", default="", help="comma-separated labels to run (default all)")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--repeats", type=int, default=1, help="alternate ours/plain; keep the best")
    ap.add_argument("--workdir", default=None, help="where the random arrays go (default tmp)")
    args = ap.parse_args()
    if args.converge:
        converge(args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.n or (FULL_TRAIN if args.device == "cuda" else 1024)
    n_val = args.n_val if args.n_val is not None else max(1, round(n * FULL_VAL / FULL_TRAIN))
    epochs = args.epochs or (2 if args.device == "cuda" else 1)
    configs = CUDA_CONFIGS if args.device == "cuda" else CPU_CONFIGS
    if args.configs:
        wanted = set(args.configs.split(","))
        configs = [c for c in CUDA_CONFIGS + CPU_CONFIGS if c[0] in wanted]
    machine = (
        torch.cuda.get_device_name(0)
        if args.device == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    # The model and optimiser as in params.yaml; --threads (0 = torch default) replaces
    # train.num_threads so the CLI flag, not the stage's single-thread setting, decides.
    base = replace(
        load_config(TrainConfig, "train", ROOT / "params.yaml"),
        device=args.device,
        num_threads=args.threads,
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_random_dataset(root, n, n_val)
        print(
            json.dumps(
                {"event": "data", "n_train": n, "n_val": n_val, "s": time.perf_counter() - t0}
            ),
            flush=True,
        )
        for label, batch, amp, on_device in configs:
            runs: dict[str, dict] = {}
            for _ in range(args.repeats):  # alternating evens out a shared machine's load
                cand = {"ours": bench_ours(root, base, batch, amp, on_device, epochs)}
                if not args.skip_plain:
                    cand["plain"] = bench_plain(root, base, batch, amp, on_device, epochs)
                for name, r in cand.items():
                    if name not in runs or r["train_s"] < runs[name]["train_s"]:
                        runs[name] = r
            for name, r in runs.items():
                rec = {
                    "loop": name,
                    "config": label,
                    "device": args.device,
                    "machine": machine,
                    "torch": torch.__version__,
                    "batch": batch,
                    "amp_bf16": amp,
                    "data_on_device": on_device,
                    "n_train": n,
                    "epochs": epochs,
                    "train_s": round(r["train_s"], 3),
                    "workouts_per_s": round(n / r["train_s"], 1),
                    "full_train_epoch_s": round(r["train_s"] * FULL_TRAIN / n, 2),
                    "extrapolated": n != FULL_TRAIN,
                }
                if "epoch_s" in r:  # ours: epoch = train + validation + checkpoint/logging
                    rec["epoch_s"] = round(r["epoch_s"], 3)
                    rec["full_epoch_s"] = round(
                        r["train_s"] * FULL_TRAIN / n + r["val_s"] * FULL_VAL / n_val, 2
                    )
                rec["first_epoch_s"] = round(r["first_epoch_s"], 3)
                print(json.dumps(rec), flush=True)
            if "plain" in runs:
                ratio = runs["plain"]["train_s"] / runs["ours"]["train_s"]
                print(
                    json.dumps({"config": label, "ours_vs_plain_throughput": round(ratio, 3)}),
                    flush=True,
                )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
