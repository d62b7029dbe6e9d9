"""Shared by the profile hardening tests (issue 25): a random history bundle (no training),
a runner's earlier runs, and hostile files (links, FIFOs, sparse giants)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.predict_fixtures import FEATURES, runner_workout, write_gpx, write_test_bundle

K_MAX = 10


def random_history_bundle(out: Path, seed: int = 5) -> Path:
    """A bundle of a random history model (condition design): the personalised records and
    scores of a profile, in a second instead of a training run."""
    import torch

    from hrpred.features.registry import BINARY_FEATURES
    from hrpred.model import HistoryHRModel, make_checkpoint
    from hrpred.personal.context import CONTEXT_FEATURES
    from hrpred.personal.summaries import SUMMARY_FEATURES

    torch.manual_seed(seed)
    arch = {"input_size": len(FEATURES), "hidden": 16, "layers": 1, "dropout": 0.0,
            "bidirectional": False}  # fmt: skip
    meta = {"design": "condition", "k_max": K_MAX, "context_size": len(CONTEXT_FEATURES),
            "enc_hidden": 16, "embed": 8}  # fmt: skip
    model = HistoryHRModel(arch, meta, 145.0, 14.0)
    with torch.no_grad():
        model.spread.weight.normal_(0.0, 0.5)
    meta = {**meta, "context_features": list(CONTEXT_FEATURES),
            "summary_features": list(SUMMARY_FEATURES),
            "scaler": {"mean": [140.0] * len(CONTEXT_FEATURES),
                       "std": [10.0] * len(CONTEXT_FEATURES)}}  # fmt: skip
    scaler = {f: {"mean": 5.0, "std": 10.0} for f in FEATURES if f not in BINARY_FEATURES}
    ckpt = make_checkpoint(
        model, features=FEATURES, scaler=scaler, seq_len=150, best_epoch=1, val={"mae": 7.0},
        train_params={"lr": 0.001}, history=meta,
    )  # fmt: skip
    sampling = {"median_step_s": 8.0, "mean_step_s": 8.0}
    return write_test_bundle(out, ckpt, ckpt["state_dict"], sampling, {"source": "tests"})


def write_runs(folder: Path, n: int, *, first_day: int = 0, seed: int = 70) -> list[Path]:
    """`n` GPX runs with HR of one runner on consecutive days (short: 80 points at 8 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_gpx(folder / f"run{k:03d}.gpx", runner_workout(seed + k, 8.0, first_day + k, n=80))
        for k in range(n)
    ]


def hostile_paths(folder: Path) -> dict[str, Path]:
    """A symbolic link loop, a FIFO, a link to a character device and a dangling link, each
    named like an activity file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "loop": folder / "loop.gpx",
        "fifo": folder / "fifo.gpx",
        "device": folder / "zero.fit",
        "dangling": folder / "gone.gpx",
    }
    os.symlink(paths["loop"].name, paths["loop"])  # points at itself
    os.mkfifo(paths["fifo"])
    os.symlink("/dev/zero", paths["device"])
    os.symlink(folder / "missing.gpx", paths["dangling"])
    return paths


def sparse_file(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that takes no disk (a hole after `head`)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path
