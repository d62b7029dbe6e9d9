"""The training loop: AdamW, clipping, an LR schedule (hrpred.train.schedule) + early stopping
on val MAE, dvclive, resumable checkpoints, CPU determinism, optional bf16 autocast and DDP
(torchrun).

Randomness is re-seeded from (seed, epoch, rank) at every epoch start, so an epoch boundary is
a complete resume point without saving RNG states; a mid-epoch stop (SIGTERM/SIGINT between
batches) additionally saves the RNG state and the batch position (hrpred.train.checkpoint).
The train and the validation pass run the same `Trainer.step`; only training steps the
optimizer. On the CPU the second core validates epoch k while epoch k + 1 trains
(hrpred.train.epochs): the same weights, metrics and resume points as in turn.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from hrpred.errors import HrpredError
from hrpred.features.scaler import scaler_arrays
from hrpred.model import count_parameters, cpu_state_dict, make_checkpoint, save_checkpoint
from hrpred.progress import Bar, write
from hrpred.threads import keep_freed_buffers, part_bounds, part_pool, run_parts, torch_threads
from hrpred.train.build import build_model
from hrpred.train.checkpoint import (
    EarlyStop,
    load_resumable,
    run_fingerprint,
    save_resume_state,
    state_sha256,
    truncate_live_history,
)
from hrpred.train.config import TrainConfig, TrainPaths, derive_seed
from hrpred.train.data import RowSource, TrainData, target_stats
from hrpred.train.epochs import (
    EpochEnd,
    StoppedEarly,
    epoch_line,
    epoch_record,
    log_epoch,
    validates_beside,
)
from hrpred.train.history_data import HistoryData
from hrpred.train.losses import ErrorSums, masked_loss, spread_nll
from hrpred.train.runtime import (
    StopFlag,
    all_reduce,
    broadcast_object,
    describe_device,
    deterministic,
    init_distributed,
    resolve_device,
    shard_positions,
)
from hrpred.train.schedule import Schedule

Batch = tuple[torch.Tensor, ...]  # x, y, mask (+ context, context mask)


class TrainingInterrupted(HrpredError):
    """Stopped between batches by a signal or the `interrupt` hook; state was checkpointed."""


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        data: TrainData,
        paths: TrainPaths,
        history: HistoryData | None = None,
    ) -> None:
        self.cfg, self.data, self.paths = cfg, data, paths
        self.history_data = history  # None: the population model (no context)

    # setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, data = self.cfg, self.data
        self.info = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.info.local_rank)
        self.target_mean, self.target_std = target_stats(data, data.train_rows)
        mean, std = scaler_arrays(data.feature_names, data.scaler)
        on_device = cfg.data_on_device
        hd = self.history_data
        tctx = (hd.train.values, hd.train.mask) if hd is not None else None
        vctx = (hd.val.values, hd.val.mask) if hd is not None else None
        self.train_src = RowSource(data, data.train_rows, mean, std, self.device, on_device, tctx)
        self.val_src = RowSource(data, data.val_rows, mean, std, self.device, on_device, vctx)
        torch.manual_seed(cfg.seed)  # the weights' initial draws
        self.model = build_model(cfg, data.feature_names, hd, self.target_mean, self.target_std)
        self.model.to(self.device)
        spread = {id(p) for p in self.model.spread.parameters()}
        self.params = [p for p in self.model.parameters() if id(p) not in spread]
        self.spread_params = list(self.model.spread.parameters())
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.scheduler = Schedule(self.optimizer, cfg, self._batches_per_epoch())
        self.early = EarlyStop()
        extra = (
            None if hd is None else {"params": hd.meta["personal_params"], "data": hd.fingerprint}
        )
        self.fingerprint = run_fingerprint(cfg, data.fingerprint, self.info.world_size, extra)
        self.start_epoch, self.start_batch = 0, 0
        self.partial_sums: torch.Tensor | None = None
        self.rng_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        self._pending: EpochEnd | None = None  # an epoch whose validation runs beside
        self._live: Any = None  # run's dvclive and on_epoch_end, for the epochs' bookkeeping
        self._on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None
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

    def _batches_per_epoch(self) -> int:
        """Train batches per epoch on this rank (shards are padded to equal sizes)."""
        n = math.ceil(len(self.train_src) / self.info.world_size)
        n_batches = math.ceil(n / self.cfg.batch_size)
        return min(n_batches, self.cfg.max_batches) if self.cfg.max_batches else n_batches

    def _maybe_resume(self) -> None:
        ckpt = None
        if self.info.is_main:
            ckpt = load_resumable(self.paths.checkpoint, self.fingerprint)
        ckpt = broadcast_object(ckpt, self.info)
        if ckpt is None:
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.early = EarlyStop.from_state(ckpt["early_stopping"])
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

    def _save_resume_state(
        self,
        next_epoch: int,
        next_batch: int,
        finished: bool,
        partial_sums: torch.Tensor | None = None,
        end: EpochEnd | None = None,
    ) -> None:
        """The resume state now, or at `end` if it kept a copy (validated beside the next)."""
        if not self.info.is_main:
            return
        snap = end if end is not None and end.beside else None
        save_resume_state(
            self.paths.checkpoint,
            fingerprint=self.fingerprint,
            finished=finished,
            next_epoch=next_epoch,
            next_batch=next_batch,
            model=cpu_state_dict(self.model if snap is None else snap.model),
            optimizer=self.optimizer.state_dict() if snap is None else snap.optimizer,
            scheduler=self.scheduler.state_dict() if snap is None else snap.scheduler,
            early=self.early,
            history=self.history,
            partial_sums=partial_sums,
            device=self.device,
        )

    # one step --------------------------------------------------------------------------------
    def step(
        self, batch: Batch, sums: ErrorSums, train: bool, model: torch.nn.Module | None = None
    ) -> None:
        """Forward one batch and add its errors to `sums`; a training step also updates the
        weights. Evaluation runs `model` (default: the model trained). The loss is on the
        standardised target (huber_delta, in BPM, is scaled too)."""
        cfg, tm, ts = self.cfg, self.target_mean, self.target_std
        x, y, m, *ctx = batch
        net = self.net if train else (self.model if model is None else model)  # no collectives
        with self.autocast:
            z, raw = net(x, *ctx, standardized=True, with_spread=True)
        z = z.float()
        loss = masked_loss(z, (y - tm) / ts, m, cfg.loss, cfg.huber_delta / ts)
        if train:
            self.optimizer.zero_grad(set_to_none=True)
            # the spread loss reads only detached outputs: the central weights' gradients are
            # those of `loss` alone; each part is clipped on its own (same central updates)
            (loss + spread_nll(raw, z, (y - tm) / ts, m)).backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.clip)
                torch.nn.utils.clip_grad_norm_(self.spread_params, cfg.clip)
            self.optimizer.step()
        sums.update(z.detach() * ts + tm, y, m, loss)

    # epochs --------------------------------------------------------------------------------
    def _seed_epoch(self, epoch: int, start_batch: int) -> None:
        if start_batch > 0 and self.rng_state is not None:
            torch.set_rng_state(self.rng_state["cpu"])
            if "cuda" in self.rng_state and self.device.type == "cuda":
                torch.cuda.set_rng_state(self.rng_state["cuda"], self.device)
        else:
            torch.manual_seed(derive_seed(self.cfg.seed, "dropout", epoch, self.info.rank))

    def _history_sizes(self, epoch: int) -> np.ndarray | None:
        """History entries each train row sees this epoch, uniform in 0..k_max (seeded per
        epoch and rank, so one model learns cold and warm start; resumes draw the same)."""
        if self.history_data is None:
            return None
        k_max = int(self.history_data.meta["personal_params"]["k_max"])
        rng = np.random.default_rng(derive_seed(self.cfg.seed, "history", epoch, self.info.rank))
        return rng.integers(0, k_max + 1, size=len(self.train_src))

    def train_epoch(
        self,
        epoch: int,
        start_batch: int,
        stop: StopFlag,
        interrupt: Callable[[int, int], bool] | None,
    ) -> dict[str, float]:
        cfg = self.cfg
        positions = shard_positions(len(self.train_src), epoch, cfg, self.info)
        n_batches = self._batches_per_epoch()  # max_batches: a fixed budget (benchmarks)
        sums = ErrorSums(self.device)
        if start_batch > 0 and self.partial_sums is not None:
            sums.load(self.partial_sums)
        self._seed_epoch(epoch, start_batch)
        sizes = self._history_sizes(epoch)
        self.net.train()
        bar = Bar(  # on a log, the epoch's line (fit) is its summary
            f"epoch {epoch + 1}/{cfg.max_epochs}",
            "batches",
            total=n_batches,
            initial=start_batch,
            enabled=self.info.is_main,
            leave=False,
            summary=False,
        )
        for b in range(start_batch, n_batches):
            pos = positions[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = self.train_src.batch(pos, None if sizes is None else sizes[pos.numpy()])
            self.step(batch, sums, train=True)
            self.scheduler.after_batch()
            bar.update(1)
            if stop.requested or (
                interrupt is not None and self.info.world_size == 1 and interrupt(epoch, b + 1)
            ):
                bar.close()
                if b + 1 < n_batches:
                    if self._settle_pending():  # the previous epoch ended the training
                        raise StoppedEarly
                    self._save_resume_state(epoch, b + 1, False, sums.sums)
                    raise TrainingInterrupted(
                        f"training interrupted in epoch {epoch + 1} after batch {b + 1}/"
                        f"{n_batches}; state saved to {self.paths.checkpoint}, rerun to resume"
                    )
                stop.requested = True  # last batch: finish the epoch, then stop
        bar.close()
        all_reduce(sums.sums, self.info)
        return sums.result()

    @torch.inference_mode()
    def validate(
        self, model: torch.nn.Module | None = None, parts: int | None = None
    ) -> dict[str, float]:
        """Val metrics of `model`'s weights (default: the model trained). On the CPU each eval
        batch is split into `parts` (default `val_threads`) contiguous parts validated at once
        in Python threads, each torch op on the training's thread count (a torch thread team
        spins while another job holds a core); the parts' sums are added in a fixed order."""
        model = self.model if model is None else model
        model.eval()
        positions = torch.arange(self.info.rank, len(self.val_src), self.info.world_size)
        bs = max(self.cfg.eval_batch_size, self.cfg.batch_size)
        parts = max(1, self.cfg.val_threads if parts is None else parts)
        parts = parts if self.device.type == "cpu" else 1
        part_sums: dict[int, ErrorSums] = {}  # by first position: added in a fixed order

        def run(lo: int, hi: int) -> None:  # positions [lo, hi) of one eval batch
            part_sums[lo] = ErrorSums(self.device)
            with torch.inference_mode():  # thread-local: entered in every worker thread
                batch = self.val_src.batch(positions[lo:hi])
                self.step(batch, part_sums[lo], train=False, model=model)

        with part_pool(parts) as pool:
            for start in range(0, len(positions), bs):
                run_parts(run, part_bounds(start, min(start + bs, len(positions)), parts), pool)
        sums = ErrorSums(self.device)
        for lo in sorted(part_sums):
            sums.sums += part_sums[lo].sums
        all_reduce(sums.sums, self.info)
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
                truncate_live_history(self.paths.live_dir, self.start_epoch)
            live = Live(str(self.paths.live_dir), dvcyaml=False, save_dvc_exp=False, resume=resume)
            live.step = self.start_epoch
        stop = StopFlag()
        if self.info.world_size == 1:
            stop.install()
        n_train = len(self.data.train_rows)
        stopped_early = False
        self._live, self._on_epoch_end = live, on_epoch_end
        beside_ok = validates_beside(cfg, self.device, self.info.world_size)
        beside = ThreadPoolExecutor(1) if beside_ok else None
        try:
            start_batch = self.start_batch
            for epoch in range(self.start_epoch, cfg.max_epochs):
                lr = self.scheduler.epoch_lr(epoch)
                t0 = time.perf_counter()
                try:
                    tr = self.train_epoch(epoch, start_batch, stop, interrupt)
                except StoppedEarly:
                    stopped_early = True
                    break
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                train_s = time.perf_counter() - t0
                trained = n_train * (1 - start_batch / max(1, math.ceil(n_train / cfg.batch_size)))
                start_batch = 0
                self.partial_sums, self.rng_state = None, None
                if self._settle_pending():  # the previous epoch's validation ends training
                    stopped_early = True
                    break
                last = epoch + 1 >= cfg.max_epochs
                end = EpochEnd(epoch, tr, lr, trained, train_s)
                if beside is not None and not last and not stop.requested:
                    # validate a copy of these weights on the second core while the next
                    # epoch trains; the bookkeeping follows when its result is in
                    end.model = copy.deepcopy(self.model)
                    end.optimizer = copy.deepcopy(self.optimizer.state_dict())
                    end.scheduler = copy.deepcopy(self.scheduler.state_dict())
                    end.val = beside.submit(self._timed_validate, end.model, 1)
                    self._pending = end
                    continue
                va, val_s = self._timed_validate(self.model, None)
                if stopped_early := self._end_epoch(end, va, val_s, 0.0):
                    break
                if stop.requested and not last:
                    raise TrainingInterrupted(
                        f"training interrupted after epoch {epoch + 1}; state saved to "
                        f"{self.paths.checkpoint}, rerun to resume"
                    )
        finally:
            if beside is not None:
                beside.shutdown(wait=True, cancel_futures=True)
            self._pending = None
            stop.restore()
            if live is not None:
                live.end()
        return self._finish(stopped_early)

    def _timed_validate(
        self, model: torch.nn.Module, parts: int | None
    ) -> tuple[dict[str, float], float]:
        t0 = time.perf_counter()
        va = self.validate(model, parts)
        return va, time.perf_counter() - t0

    def _settle_pending(self) -> bool:
        """Finish the epoch whose validation ran beside this one (waiting for it); True when it
        exhausted the patience. False when none is pending."""
        end, self._pending = self._pending, None
        if end is None or end.val is None:
            return False
        t0 = time.perf_counter()
        va, val_s = end.val.result()
        return self._end_epoch(end, va, val_s, time.perf_counter() - t0)

    def _end_epoch(self, end: EpochEnd, va: dict[str, float], val_s: float, wait_s: float) -> bool:
        """An epoch's bookkeeping once its val metrics are in: schedule, early stopping (best
        weights from `end`'s copy when it ran beside the next epoch), history, dvclive, resume
        state, the epoch's line, on_epoch_end. True when patience is exhausted."""
        cfg = self.cfg
        self.scheduler.after_epoch(va["mae"])
        weights = end.model if end.model is not None else self.model
        stopped_early = self.early.update(va, end.epoch + 1, weights, cfg)
        record = epoch_record(end, va, val_s, wait_s)
        self.history.append(record)
        if self._live is not None:
            log_epoch(self._live, record)
        finished = stopped_early or end.epoch + 1 >= cfg.max_epochs
        self._save_resume_state(end.epoch + 1, 0, finished, end=end)
        if self.info.is_main:
            write(epoch_line(record, end.beside))
        if self._on_epoch_end is not None:
            self._on_epoch_end(end.epoch + 1, record)
        return stopped_early

    def _finish(self, stopped_early: bool) -> dict[str, Any]:
        if self.early.best_state is None:
            raise RuntimeError("no epoch completed; cannot write a model")
        early = self.early
        val = {"mae": early.best_mae, "rmse": early.best_rmse, "loss": early.best_loss}
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
                history=None if self.history_data is None else self.history_data.meta,
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
            "best_state_sha256": state_sha256(self.early.best_state),
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
    history: HistoryData | None = None,
) -> dict[str, Any]:
    """Train (or resume) and write `paths.model`, `paths.checkpoint` and dvclive on rank 0.

    `interrupt(epoch0, batches_done)` is polled after every batch (single process): returning
    True acts like SIGTERM (state saved, `TrainingInterrupted` raised). `on_epoch_end(epoch,
    record)` runs after each epoch's checkpoint is written (an exception there simulates a kill).
    `history` (hrpred.train.history_data) trains the history-conditioned model instead of the
    population LSTM. Returns a summary dict (also on ranks > 0, with `wrote_outputs` False).
    """
    keep_freed_buffers()
    trainer = Trainer(cfg, data, paths, history)
    t0 = time.perf_counter()
    with torch_threads(cfg.num_threads):
        try:
            trainer.setup()
            with deterministic(cfg.deterministic, trainer.device):
                summary = trainer.run(interrupt, on_epoch_end)
        finally:
            trainer.close()
    summary["wall_time_s"] = time.perf_counter() - t0
    return summary
