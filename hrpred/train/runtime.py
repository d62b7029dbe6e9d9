"""Where training runs: device choice, the torchrun process group, sharding, determinism and
the stop signals checked between batches."""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from hrpred.params import ParamError
from hrpred.train.config import TrainConfig, derive_seed


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


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank."""
    if info.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum `t` over ranks in place."""
    if info.world_size > 1:
        dist.all_reduce(t)
    return t


@contextmanager
def deterministic(enabled: bool, device: torch.device) -> Iterator[None]:
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


class StopFlag:
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
