"""The training loop: AdamW, clipping, ReduceLROnPlateau + early stopping on val MAE, dvclive,
resumable checkpoints, CPU determinism, optional bf16 autocast and DDP (torchrun).

Randomness is re-seeded from (seed, epoch, rank) at every epoch start, so an epoch boundary is
a complete resume point without saving RNG states; a mid-epoch stop (SIGTERM/SIGINT between
batches) additionally saves the RNG state and the batch position.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hrpred.model import (
    HRLSTM,
    count_parameters,
    cpu_state_dict,
    make_checkpoint,
    save_checkpoint,
    save_torch,
    scaler_arrays,
)
from hrpred.params import ParamError, Params
from hrpred.train.data import RowSource, TrainData, target_stats
from hrpred.train.losses import LOSSES, ErrorSums, masked_loss

CHECKPOINT_VERSION = 1
# Keys that do not change the trained weights: left out of the resume fingerprint.
NON_RESULT_KEYS = ("progress",)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.3
    bidirectional: bool = False
    lr: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 16
    eval_batch_size: int = 256
    clip: float = 1.0
    loss: str = "mse"
    huber_delta: float = 5.0
    patience: int = 10
    lr_patience: int = 3
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    min_delta: float = 0.0
    max_epochs: int = 12
    max_batches: int = 0
    device: str = "auto"
    amp: bool = False
    data_on_device: bool = False
    num_threads: int = 0
    deterministic: bool = True
    progress: bool = True

    @classmethod
    def from_params(cls, p: Params) -> TrainConfig:
        """Read the `train` params section (missing optional keys take the defaults above)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            default = f.default
            if f.type == "bool":
                values[f.name] = p.bool(f.name, default)
            elif f.type == "int":
                values[f.name] = p.int(f.name, default)
            elif f.type == "float":
                values[f.name] = p.float(f.name, default)
            else:
                values[f.name] = p.str(f.name, default)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def bad(msg: str) -> ParamError:
            return ParamError(f"params.yaml: train.{msg}")

        if self.loss not in LOSSES:
            raise bad(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("hidden", "layers", "batch_size", "eval_batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1")
        if not 0 <= self.lr_patience < self.patience:
            raise bad(
                f"lr_patience ({self.lr_patience}) must be < patience ({self.patience}), "
                "otherwise early stopping fires before the LR can drop"
            )
        if not 0.0 < self.lr_factor < 1.0:
            raise bad("lr_factor must be in (0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout must be in [0, 1)")
        if self.lr <= 0 or self.weight_decay < 0 or self.clip < 0 or self.huber_delta <= 0:
            raise bad("lr and huber_delta must be > 0; weight_decay and clip >= 0")
        if self.num_threads < 0:
            raise bad("num_threads must be >= 0 (0 = torch default)")
        if self.max_batches < 0:
            raise bad("max_batches must be >= 0 (0 = the whole train set each epoch)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def result_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in NON_RESULT_KEYS}


@dataclass(frozen=True)
class TrainPaths:
    model: Path  # models/model.pt: best weights + everything inference needs
    checkpoint: Path  # models/checkpoint.pt: resume state (persisted by DVC)
    live_dir: str | None = "dvclive/train"  # dvclive folder; None = no logging


class TrainingInterrupted(RuntimeError):
    """Stopped between batches by a signal or the `interrupt` hook; state was checkpointed."""


# --- helpers ---------------------------------------------------------------------------------


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the base seed and a tag (e.g. 'shuffle', epoch, rank)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ParamError("params.yaml: train.device is 'cuda' but no CUDA device is available")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def shard_positions(n: int, epoch: int, cfg: TrainConfig, info: DistInfo) -> torch.Tensor:
    """This rank's shuffled positions for `epoch` (DistributedSampler semantics).

    Every rank draws the same permutation; it is padded by wrapping around to a multiple of
    the world size and dealt round-robin, so all ranks run the same number of batches.
    """
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "shuffle", epoch))
    perm = torch.randperm(n, generator=g)
    if info.world_size > 1:
        total = math.ceil(n / info.world_size) * info.world_size
        if total > n:
            perm = torch.cat([perm, perm[: total - n]])
        perm = perm[info.rank :: info.world_size]
    return perm


def fingerprint(cfg: TrainConfig, data: TrainData, world_size: int) -> str:
    blob = json.dumps(
        {"train": cfg.result_dict(), "data": data.fingerprint, "world_size": world_size},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@contextmanager
def _deterministic(enabled: bool, device: torch.device):
    """torch.use_deterministic_algorithms on CPU (restored afterwards); cuDNN flags on CUDA."""
    import torch.utils.deterministic as det

    prev_alg = torch.are_deterministic_algorithms_enabled()
    prev_fill = det.fill_uninitialized_memory
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        if enabled and device.type == "cpu":
            torch.use_deterministic_algorithms(True)
            # NaN-filling every torch.empty made the LSTM forward ~60% slower; our ops write
            # all of their outputs, so the fill buys nothing here.
            det.fill_uninitialized_memory = False
        if device.type == "cuda":
            torch.backends.cudnn.deterministic = enabled
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.use_deterministic_algorithms(prev_alg)
        det.fill_uninitialized_memory = prev_fill
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn


class _StopFlag:
    """SIGTERM/SIGINT set a flag checked between batches (single process, main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.requested = True

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _truncate_live_history(live_dir: str, from_step: int) -> None:
    """Drop dvclive history rows at or after `from_step` (logged after the last checkpoint)."""
    folder = Path(live_dir) / "plots" / "metrics"
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.tsv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        col = rows[0].index("step")
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[col]) < from_step]
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t", lineterminator=os.linesep).writerows(kept)


def _state_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode() + b"\0")
        h.update(state[key].numpy().tobytes())
    return h.hexdigest()


def _broadcast_object(obj: Any, info: DistInfo) -> Any:
    if info.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _all_reduce(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world_size > 1:
        dist.all_reduce(t)
    return t


# --- the loop --------------------------------------------------------------------------------


@dataclass
class _EarlyStop:
    best_mae: float = math.inf
    best_rmse: float = math.inf
    best_loss: float = math.inf
    best_epoch: int = 0  # 1-based; 0 = none yet
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def update(self, val: dict[str, float], epoch: int, model: HRLSTM, cfg: TrainConfig) -> bool:
        """Record epoch `epoch` (1-based); True when patience is exhausted."""
        if val["mae"] < self.best_mae - cfg.min_delta:
            self.best_mae, self.best_rmse, self.best_loss = val["mae"], val["rmse"], val["loss"]
            self.best_epoch = epoch
            self.bad_epochs = 0
            self.best_state = cpu_state_dict(model)
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= cfg.patience

    def state(self) -> dict[str, Any]:
        return {
            "best_mae": self.best_mae,
            "best_rmse": self.best_rmse,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> _EarlyStop:
        return cls(**s)


class _Trainer:
    def __init__(self, cfg: TrainConfig, data: TrainData, paths: TrainPaths) -> None:
        self.cfg, self.data, self.paths = cfg, data, paths

    # setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, data = self.cfg, self.data
        self.info = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.info.local_rank)
        self.target_mean, self.target_std = target_stats(data, data.train_rows)
        mean, std = scaler_arrays(data.feature_names, data.scaler)
        on_device = cfg.data_on_device
        self.train_src = RowSource(data, data.train_rows, mean, std, self.device, on_device)
        self.val_src = RowSource(data, data.val_rows, mean, std, self.device, on_device)
        torch.manual_seed(cfg.seed)
        self.model = HRLSTM(
            len(data.feature_names),
            cfg.hidden,
            cfg.layers,
            cfg.dropout,
            cfg.bidirectional,
            self.target_mean,
            self.target_std,
        ).to(self.device)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="min",
            factor=cfg.lr_factor,
            patience=cfg.lr_patience,
            min_lr=cfg.min_lr,
        )
        self.early = _EarlyStop()
        self.fingerprint = fingerprint(cfg, data, self.info.world_size)
        self.start_epoch, self.start_batch = 0, 0
        self.partial_sums: torch.Tensor | None = None
        self.rng_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        self._maybe_resume()
        self.net: torch.nn.Module = self.model
        if self.info.world_size > 1:
            self.net = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,  # target mean/std buffers are constants
            )
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if cfg.amp and self.device.type == "cuda"
            else nullcontext()
        )

    def _maybe_resume(self) -> None:
        ckpt = None
        if self.info.is_main and self.paths.checkpoint.is_file():
            try:
                ckpt = torch.load(self.paths.checkpoint, map_location="cpu", weights_only=True)
            except Exception as exc:  # a torn or foreign file must not block training
                print(
                    f"train: ignoring unreadable {self.paths.checkpoint} ({exc})", file=sys.stderr
                )
                ckpt = None
            if ckpt is not None and not self._resumable(ckpt):
                ckpt = None
        ckpt = _broadcast_object(ckpt, self.info)
        if ckpt is None:
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.early = _EarlyStop.from_state(ckpt["early_stopping"])
        self.start_epoch, self.start_batch = ckpt["next_epoch"], ckpt["next_batch"]
        self.history = list(ckpt["history"])
        if self.start_batch > 0:
            self.partial_sums = ckpt["partial_sums"]
            self.rng_state = ckpt["rng"]
        self.resumed_from = self.start_epoch
        if self.info.is_main:
            where = f"epoch {self.start_epoch + 1}" + (
                f", batch {self.start_batch}" if self.start_batch else ""
            )
            print(f"train: resuming from {self.paths.checkpoint} at {where}", file=sys.stderr)

    def _resumable(self, ckpt: Any) -> bool:
        if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
            return False
        if ckpt.get("finished", True):
            return False  # a completed run is retrained from scratch, never continued
        if ckpt.get("fingerprint") != self.fingerprint:
            print("train: checkpoint is for other params/data; starting fresh", file=sys.stderr)
            return False
        return True

    # checkpoint ----------------------------------------------------------------------------
    def _save_resume_state(
        self,
        next_epoch: int,
        next_batch: int,
        finished: bool,
        partial_sums: torch.Tensor | None = None,
    ) -> None:
        if not self.info.is_main:
            return
        rng: dict[str, torch.Tensor] = {}
        if next_batch > 0:
            rng["cpu"] = torch.get_rng_state()
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "finished": bool(finished),
            "next_epoch": int(next_epoch),
            "next_batch": int(next_batch),
            "model": cpu_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "early_stopping": self.early.state(),
            "history": self.history,
            "partial_sums": partial_sums.detach().cpu() if partial_sums is not None else None,
            "rng": rng,
        }
        save_torch(state, self.paths.checkpoint)

    # epochs --------------------------------------------------------------------------------
    def _seed_epoch(self, epoch: int, start_batch: int) -> None:
        if start_batch > 0 and self.rng_state is not None:
            torch.set_rng_state(self.rng_state["cpu"])
            if "cuda" in self.rng_state and self.device.type == "cuda":
                torch.cuda.set_rng_state(self.rng_state["cuda"], self.device)
        else:
            torch.manual_seed(derive_seed(self.cfg.seed, "dropout", epoch, self.info.rank))

    def train_epoch(
        self,
        epoch: int,
        start_batch: int,
        stop: _StopFlag,
        interrupt: Callable[[int, int], bool] | None,
    ) -> dict[str, float]:
        cfg = self.cfg
        positions = shard_positions(len(self.train_src), epoch, cfg, self.info)
        n_batches = math.ceil(len(positions) / cfg.batch_size)
        if cfg.max_batches:  # a fixed training budget (benchmarks), not a default
            n_batches = min(n_batches, cfg.max_batches)
        sums = ErrorSums(self.device)
        if start_batch > 0 and self.partial_sums is not None:
            sums.load(self.partial_sums)
        self._seed_epoch(epoch, start_batch)
        self.net.train()
        tm, ts = self.target_mean, self.target_std
        delta = cfg.huber_delta / ts  # huber_delta is in BPM; the loss is on the z scale
        params = list(self.model.parameters())
        bar = tqdm(
            total=n_batches,
            initial=start_batch,
            desc=f"epoch {epoch + 1}/{cfg.max_epochs}",
            file=sys.stderr,
            leave=False,
            disable=not (cfg.progress and self.info.is_main),
            dynamic_ncols=True,
        )
        for b in range(start_batch, n_batches):
            x, y, m = self.train_src.batch(positions[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            with self.autocast:
                z = self.net(x, standardized=True)
            z = z.float()
            loss = masked_loss(z, (y - tm) / ts, m, cfg.loss, delta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            self.optimizer.step()
            sums.update(z.detach() * ts + tm, y, m, loss)
            bar.update(1)
            if stop.requested or (
                interrupt is not None and self.info.world_size == 1 and interrupt(epoch, b + 1)
            ):
                bar.close()
                if b + 1 < n_batches:
                    self._save_resume_state(epoch, b + 1, False, sums.sums)
                    raise TrainingInterrupted(
                        f"training interrupted in epoch {epoch + 1} after batch {b + 1}/"
                        f"{n_batches}; state saved to {self.paths.checkpoint}, rerun to resume"
                    )
                stop.requested = True  # last batch: finish the epoch, then stop
        bar.close()
        _all_reduce(sums.sums, self.info)
        return sums.result()

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        cfg = self.cfg
        model = self.model  # unwrapped: no collectives in eval
        model.eval()
        n = len(self.val_src)
        positions = torch.arange(self.info.rank, n, self.info.world_size)
        bs = max(cfg.eval_batch_size, cfg.batch_size)
        tm, ts = self.target_mean, self.target_std
        delta = cfg.huber_delta / ts
        sums = ErrorSums(self.device)
        for start in range(0, len(positions), bs):
            x, y, m = self.val_src.batch(positions[start : start + bs])
            with self.autocast:
                z = model(x, standardized=True)
            z = z.float()
            loss = masked_loss(z, (y - tm) / ts, m, cfg.loss, delta)
            sums.update(z * ts + tm, y, m, loss)
        _all_reduce(sums.sums, self.info)
        return sums.result()

    def run(
        self,
        interrupt: Callable[[int, int], bool] | None,
        on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        cfg = self.cfg
        live = None
        if self.info.is_main and self.paths.live_dir is not None:
            from dvclive import Live  # imported late: it pulls in dvc

            resume = self.resumed_from is not None
            if resume:
                _truncate_live_history(self.paths.live_dir, self.start_epoch)
            live = Live(self.paths.live_dir, dvcyaml=False, save_dvc_exp=False, resume=resume)
            live.step = self.start_epoch
        stop = _StopFlag()
        if self.info.world_size == 1:
            stop.install()
        n_train = len(self.data.train_rows)
        stopped_early = False
        epoch = self.start_epoch
        try:
            start_batch = self.start_batch
            for epoch in range(self.start_epoch, cfg.max_epochs):
                lr = float(self.optimizer.param_groups[0]["lr"])
                t0 = time.perf_counter()
                tr = self.train_epoch(epoch, start_batch, stop, interrupt)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                t1 = time.perf_counter()
                va = self.validate()
                t2 = time.perf_counter()
                trained = n_train * (1 - start_batch / max(1, math.ceil(n_train / cfg.batch_size)))
                start_batch = 0
                self.partial_sums, self.rng_state = None, None
                self.scheduler.step(va["mae"])
                stopped_early = self.early.update(va, epoch + 1, self.model, cfg)
                record = {
                    "epoch": epoch + 1,
                    "train_loss": tr["loss"],
                    "train_mae": tr["mae"],
                    "train_rmse": tr["rmse"],
                    "val_loss": va["loss"],
                    "val_mae": va["mae"],
                    "val_rmse": va["rmse"],
                    "lr": lr,
                    "train_time_s": t1 - t0,
                    "val_time_s": t2 - t1,
                    "epoch_time_s": t2 - t0,
                    "throughput_workouts_per_s": trained / max(t1 - t0, 1e-9),
                }
                self.history.append(record)
                if live is not None:
                    for key in ("loss", "mae", "rmse"):
                        live.log_metric(f"train/{key}", record[f"train_{key}"])
                        live.log_metric(f"val/{key}", record[f"val_{key}"])
                    live.log_metric("lr", lr)
                    live.log_metric("epoch_time_s", record["epoch_time_s"])
                    live.log_metric(
                        "throughput_workouts_per_s", record["throughput_workouts_per_s"]
                    )
                    live.next_step()
                finished = stopped_early or epoch + 1 >= cfg.max_epochs
                self._save_resume_state(epoch + 1, 0, finished)
                if self.info.is_main:
                    tqdm.write(
                        f"epoch {epoch + 1}: train MAE {tr['mae']:.2f}  val MAE {va['mae']:.2f}  "
                        f"val RMSE {va['rmse']:.2f} BPM  lr {lr:.2e}  {t2 - t0:.1f}s",
                        file=sys.stderr,
                    )
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, record)
                if stopped_early:
                    break
                if stop.requested and not finished:
                    raise TrainingInterrupted(
                        f"training interrupted after epoch {epoch + 1}; state saved to "
                        f"{self.paths.checkpoint}, rerun to resume"
                    )
        finally:
            stop.restore()
            if live is not None:
                live.end()
        return self._finish(stopped_early)

    def _finish(self, stopped_early: bool) -> dict[str, Any]:
        if self.early.best_state is None:
            raise RuntimeError("no epoch completed; cannot write a model")
        val = {
            "mae": self.early.best_mae,
            "rmse": self.early.best_rmse,
            "loss": self.early.best_loss,
        }
        if self.info.is_main:
            ckpt = make_checkpoint(
                self.model,
                state_dict=self.early.best_state,
                features=self.data.feature_names,
                scaler=self.data.scaler,
                seq_len=self.data.seq_len,
                best_epoch=self.early.best_epoch,
                val=val,
                train_params=self.cfg.result_dict(),
            )
            save_checkpoint(ckpt, self.paths.model)
        full = [h for h in self.history if h["epoch"] > (self.resumed_from or 0)]
        return {
            "best_epoch": self.early.best_epoch,
            "best_val_mae": self.early.best_mae,
            "best_val_rmse": self.early.best_rmse,
            "epochs_run": len(self.history),
            "stopped_early": bool(stopped_early),
            "resumed_from_epoch": self.resumed_from,
            "final_lr": float(self.optimizer.param_groups[0]["lr"]),
            "n_params": count_parameters(self.model),
            "n_train": len(self.data.train_rows),
            "n_val": len(self.data.val_rows),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "device": describe_device(self.device),
            "world_size": self.info.world_size,
            "mean_epoch_time_s": float(np.mean([h["epoch_time_s"] for h in full]))
            if full
            else None,
            "mean_throughput_workouts_per_s": (
                float(np.mean([h["throughput_workouts_per_s"] for h in full])) if full else None
            ),
            "best_state_sha256": _state_sha256(self.early.best_state),
            "rank": self.info.rank,
            "wrote_outputs": self.info.is_main,
            "history": self.history,
        }

    def close(self) -> None:
        if getattr(self, "info", None) is not None and self.info.owns_group:
            dist.destroy_process_group()


def fit(
    cfg: TrainConfig,
    data: TrainData,
    paths: TrainPaths,
    *,
    interrupt: Callable[[int, int], bool] | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) and write `paths.model`, `paths.checkpoint` and dvclive on rank 0.

    `interrupt(epoch0, batches_done)` is polled after every batch (single process): returning
    True acts like SIGTERM (state saved, `TrainingInterrupted` raised). `on_epoch_end(epoch,
    record)` runs after each epoch's checkpoint is written (an exception there simulates a kill).
    Returns a summary dict (also on ranks > 0, with `wrote_outputs` False).
    """
    prev_threads = torch.get_num_threads()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    trainer = _Trainer(cfg, data, paths)
    t0 = time.perf_counter()
    try:
        trainer.setup()
        with _deterministic(cfg.deterministic, trainer.device):
            summary = trainer.run(interrupt, on_epoch_end)
    finally:
        trainer.close()
        torch.set_num_threads(prev_threads)
    summary["wall_time_s"] = time.perf_counter() - t0
    return summary
