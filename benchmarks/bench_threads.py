"""Validation time for `train.val_threads` values, on idle cores and with one core kept busy.

Usage (after `dvc repro train`: it reads data/features, data/split and params.yaml):
  python benchmarks/bench_threads.py [--threads 1 2] [--repeats 3] [--busy] [--torch]

For each value it builds the train stage's `Trainer` (the default model, untrained) and times
`validate()` `--repeats` times (wall and process CPU seconds): with `--torch` the value is
torch's intra-op thread count during validation (each batch whole: the earlier design),
otherwise `train.val_threads` (each eval batch in that many parts validated at once in Python
threads, torch on the training's 1 thread). `--busy` first starts a process that spins on one
core for the whole run: a second job on the machine, as on a shared CI runner. A torch thread
team spins at its barriers while it waits for a core that another job holds, so 2 torch
threads can be many times slower than 1 there (BENCHMARKS.md "Training").
Prints one JSON line per thread count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrpred.params import load_config  # noqa: E402
from hrpred.personal.config import LearnedConfig  # noqa: E402
from hrpred.threads import torch_threads  # noqa: E402
from hrpred.train.config import TrainConfig, TrainPaths  # noqa: E402
from hrpred.train.loop import Trainer  # noqa: E402
from hrpred.train.pipeline import load_inputs  # noqa: E402


def spin() -> None:
    """Keep one core busy until terminated."""
    while True:
        pass


def time_validation(threads: int, repeats: int, workdir: Path, torch_team: bool) -> dict:
    params = ROOT / "params.yaml"
    cfg = replace(
        load_config(TrainConfig, "train", params), val_threads=1 if torch_team else threads
    )
    learned = load_config(LearnedConfig, "personal.learned", params)
    fdir, sdir = ROOT / "data" / "features", ROOT / "data" / "split"
    data, history = load_inputs(fdir, sdir, learned)
    trainer = Trainer(cfg, data, TrainPaths(workdir / "m.pt", workdir / "c.pt", None), history)
    wall, cpu = [], []
    with torch_threads(cfg.num_threads):
        trainer.setup()
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            with torch_threads(threads if torch_team else 0):
                trainer.validate()
            wall.append(round(time.perf_counter() - w0, 2))
            cpu.append(round(time.process_time() - c0, 2))
    key = "torch_threads" if torch_team else "val_threads"
    return {key: threads, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    ap.add_argument("--torch", action="store_true", help="values are torch's thread counts")
    args = ap.parse_args()
    busy = None
    if args.busy:
        busy = mp.get_context("spawn").Process(target=spin, daemon=True)
        busy.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.threads:
                rec = time_validation(n, args.repeats, Path(tmp), args.torch)
                print(json.dumps(rec | {"busy_core": args.busy}), flush=True)
    finally:
        if busy is not None:
            busy.terminate()


if __name__ == "__main__":
    main()
