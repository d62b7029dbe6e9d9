"""Training loop: determinism, resume after a kill, masking, the stage, DDP (gloo, 2 procs).

Data is conftest's `make_tree` (written by hrpred.store's writers); configs are the real
params.yaml changed with `dataclasses.replace`; dvclive runs in tmp dirs outside any Git repo.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fake_eval_data import NAMES

from hrpred.model import load_checkpoint, predict
from hrpred.params import ParamError, load_config
from hrpred.store import StoreError
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import load_train_data
from hrpred.train.loop import TrainingInterrupted, fit
from hrpred.train.runtime import DistInfo, shard_positions

REPO = Path(__file__).resolve().parents[1]
TINY = {  # small and quick; every other value comes from params.yaml
    "seed": 7,
    "hidden": 8,
    "layers": 2,
    "dropout": 0.2,  # dropout on, so RNG handling is exercised by the resume tests
    "lr": 5e-3,
    "batch_size": 8,
    "eval_batch_size": 16,
    "patience": 5,
    "lr_patience": 1,
    "max_epochs": 4,
    "device": "cpu",
    "num_threads": 1,  # tiny tensors: extra threads only add contention
    "val_threads": 0,  # each eval batch whole (tests/test_training.py checks 2 below)
}
N, T = 40, 24  # workouts and steps of the default tree


@pytest.fixture
def tiny(config) -> TrainConfig:
    """The real train config with the TINY changes."""
    return replace(config(TrainConfig, "train"), **TINY)


def paths_in(root: Path) -> TrainPaths:
    return TrainPaths(root / "models" / "model.pt", root / "models" / "checkpoint.pt", None)


@pytest.fixture
def dataset(make_tree, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_tree(root, n=N, t=T)
    return root


def _data(root: Path):
    return load_train_data(root / "data" / "features", root / "data" / "split")


def test_two_runs_give_identical_bytes(dataset, tmp_path, tiny) -> None:
    data = _data(dataset)
    outs = []
    for name in ("a", "b"):
        res = fit(tiny, data, paths_in(tmp_path / name))
        outs.append((tmp_path / name / "models" / "model.pt").read_bytes())
        assert res["epochs_run"] == 4
    assert outs[0] == outs[1]
    ckpt = torch.load(tmp_path / "a" / "models" / "model.pt", weights_only=True)
    assert ckpt["features"] == NAMES and ckpt["seq_len"] == T
    assert 1 <= ckpt["best_epoch"] <= 4
    assert ckpt["train_params"]["lr"] == 5e-3
    state = torch.load(tmp_path / "a" / "models" / "checkpoint.pt", weights_only=True)
    assert state["finished"] is True
    # a different seed gives a different model (the comparison can fail)
    fit(replace(tiny, seed=8), data, paths_in(tmp_path / "c"))
    assert (tmp_path / "c" / "models" / "model.pt").read_bytes() != outs[0]


class _Kill(Exception):
    pass


def test_resume_after_kill_between_epochs_matches_uninterrupted(dataset, tmp_path, tiny) -> None:
    data = _data(dataset)
    fit(tiny, data, paths_in(tmp_path / "full"))
    want = (tmp_path / "full" / "models" / "model.pt").read_bytes()

    root = tmp_path / "killed"
    live = root / "dvclive"
    paths = TrainPaths(root / "models" / "model.pt", root / "models" / "checkpoint.pt", live)

    def kill_after_two(epoch: int, record: dict) -> None:
        if epoch == 2:
            raise _Kill

    with pytest.raises(_Kill):
        fit(tiny, data, paths, on_epoch_end=kill_after_two)
    assert not paths.model.exists()
    state = torch.load(paths.checkpoint, weights_only=True)
    assert state["next_epoch"] == 2 and not state["finished"]
    res = fit(tiny, data, paths)
    assert res["resumed_from_epoch"] == 2
    assert paths.model.read_bytes() == want
    tsv = pd.read_csv(live / "plots" / "metrics" / "val" / "mae.tsv", sep="\t")
    assert tsv["step"].tolist() == [0, 1, 2, 3]
    assert json.loads((live / "metrics.json").read_text())["step"] == 3


def test_resume_mid_epoch_matches_uninterrupted(dataset, tmp_path, tiny) -> None:
    data = _data(dataset)
    fit(tiny, data, paths_in(tmp_path / "full"))
    want = (tmp_path / "full" / "models" / "model.pt").read_bytes()
    paths = paths_in(tmp_path / "mid")
    with pytest.raises(TrainingInterrupted, match="epoch 2 after batch 2"):
        fit(tiny, data, paths, interrupt=lambda epoch, batch: epoch == 1 and batch == 2)
    state = torch.load(paths.checkpoint, weights_only=True)
    assert (state["next_epoch"], state["next_batch"]) == (1, 2)
    fit(tiny, data, paths)
    assert paths.model.read_bytes() == want


def test_sigterm_between_batches_saves_and_resumes(dataset, tmp_path, tiny) -> None:
    data = _data(dataset)
    fit(tiny, data, paths_in(tmp_path / "full"))
    want = (tmp_path / "full" / "models" / "model.pt").read_bytes()
    paths = paths_in(tmp_path / "sig")

    def send_sigterm(epoch: int, batch: int) -> bool:
        if epoch == 0 and batch == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # our handler only sets a flag
        return False

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted):
        fit(tiny, data, paths, interrupt=send_sigterm)
    assert signal.getsignal(signal.SIGTERM) == previous  # handler restored
    state = torch.load(paths.checkpoint, weights_only=True)
    # Python runs the handler at the next bytecode boundary: after batch 1 or 2
    assert state["next_epoch"] == 0 and state["next_batch"] in (1, 2)
    fit(tiny, data, paths)
    assert paths.model.read_bytes() == want


def test_cosine_resume_mid_epoch_matches_uninterrupted(dataset, tmp_path, tiny) -> None:
    cfg = replace(tiny, schedule="cosine", warmup_epochs=1.5)
    data = _data(dataset)
    full = fit(cfg, data, paths_in(tmp_path / "full"))
    want = (tmp_path / "full" / "models" / "model.pt").read_bytes()
    paths = paths_in(tmp_path / "mid")
    with pytest.raises(TrainingInterrupted, match="epoch 3 after batch 1"):
        fit(cfg, data, paths, interrupt=lambda epoch, batch: epoch == 2 and batch == 1)
    resumed = fit(cfg, data, paths)
    assert paths.model.read_bytes() == want
    assert [h["lr"] for h in resumed["history"]] == [h["lr"] for h in full["history"]]


def test_cosine_schedule_warms_up_then_decays_to_min_lr(dataset, tmp_path, tiny) -> None:
    """The LR at each epoch start against the formula written out here (3 batches of 8 per
    epoch on the 24 train rows; warmup 1.5 epochs = 4 or 5 steps, round half to even: 4)."""
    cfg = replace(tiny, schedule="cosine", warmup_epochs=1.5, lr=1e-2, min_lr=1e-4)
    res = fit(cfg, _data(dataset), paths_in(tmp_path))
    per_epoch, total, warmup = 3, 3 * cfg.max_epochs, 4
    assert len(res["history"]) == cfg.max_epochs

    def want(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        cos = 0.5 * (1 + np.cos(np.pi * (step - warmup) / (total - warmup)))
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * cos

    got = [h["lr"] for h in res["history"]]
    assert got == pytest.approx([want(e * per_epoch) for e in range(cfg.max_epochs)], rel=1e-9)
    assert got[0] < got[1] and got[1] > got[2] > got[3]  # warm up, then decay
    assert res["final_lr"] == pytest.approx(cfg.min_lr, rel=1e-9)  # ends at the floor


def test_early_stopping_stops_and_keeps_the_best_epoch(make_tree, tmp_path, tiny) -> None:
    """Few train rows and a large LR: val MAE stops improving long before max_epochs; the
    run stops `patience` epochs after its best epoch and model.pt holds that epoch's weights
    (their val MAE, recomputed here, is the best epoch's, not the last epoch's)."""
    root = tmp_path / "overfit"
    make_tree(root, n=40, t=30, seed=2)
    data = _data(root)
    cfg = replace(
        tiny, hidden=32, dropout=0.0, lr=3e-2, schedule="plateau", max_epochs=40, patience=3
    )
    res = fit(cfg, data, paths_in(root))
    val = [h["val_mae"] for h in res["history"]]
    assert res["stopped_early"] and res["epochs_run"] < cfg.max_epochs
    assert res["epochs_run"] == res["best_epoch"] + cfg.patience
    assert min(val) == val[res["best_epoch"] - 1] == res["best_val_mae"]
    assert val[-1] > res["best_val_mae"]  # the last epoch is worse: restoring matters
    model, ckpt = load_checkpoint(root / "models" / "model.pt")
    assert ckpt["best_epoch"] == res["best_epoch"]
    rows = data.val_rows
    pred = predict(model, ckpt, data.features[rows])
    y, m = data.target[rows], data.mask[rows] & np.isfinite(data.target[rows])
    assert float(np.abs(pred - y)[m].mean()) == pytest.approx(res["best_val_mae"], rel=1e-5)


def test_two_threads_rerun_gives_identical_bytes(dataset, tmp_path, tiny) -> None:
    """train.num_threads 2 (an idle 2-core machine's choice) is deterministic too: two runs
    write the same model.pt. (It is not bit-equal to 1 thread for every hidden size.)"""
    data = _data(dataset)
    cfg = replace(tiny, num_threads=2, hidden=24)
    outs = []
    for name in ("a", "b"):
        fit(cfg, data, paths_in(tmp_path / name))
        outs.append((tmp_path / name / "models" / "model.pt").read_bytes())
    assert outs[0] == outs[1]


def test_validation_threads_change_nothing_but_time(dataset, tmp_path, tiny) -> None:
    """train.val_threads trains the same weights as validating each batch whole in turn (0),
    with the val MAE of every epoch equal to ~1e-9 (only the sums' order moves); hidden 48 and
    batches of 64. With 2 and the cosine schedule each epoch but the last is validated on the
    second thread while the next one trains; with plateau the parts of each eval batch are."""
    data = _data(dataset)
    runs = {}
    for schedule, threads in (("cosine", 0), ("cosine", 2), ("plateau", 0), ("plateau", 2)):
        cfg = replace(tiny, hidden=48, eval_batch_size=64, val_threads=threads, schedule=schedule)
        res = fit(cfg, data, paths_in(tmp_path / f"{schedule}{threads}"))
        runs[schedule, threads] = (
            [r["val_mae"] for r in res["history"]],
            res["best_state_sha256"],
            [r["val_beside"] for r in res["history"]],
        )
    for schedule in ("cosine", "plateau"):
        whole, parts = runs[schedule, 0], runs[schedule, 2]
        assert whole[0] == pytest.approx(parts[0], rel=1e-9, abs=0)
        assert len(whole[0]) == tiny.max_epochs
        assert whole[1] == parts[1]  # the same weights (model.pt also stores the params)
        assert not any(whole[2])
    assert runs["cosine", 2][2] == [True] * (tiny.max_epochs - 1) + [False]
    assert not any(runs["plateau", 2][2])  # plateau's learning rate needs the val MAE first
    assert runs["cosine", 0][1] != runs["plateau", 0][1]  # the comparison can fail


def test_validation_beside_the_next_epoch_keeps_early_stopping(make_tree, tmp_path, tiny) -> None:
    """Validated beside the next epoch, early stopping ends the run at the same epoch with the
    same best weights as validating in turn (the epoch trained meanwhile is dropped)."""
    root = tmp_path / "overfit"
    make_tree(root, n=40, t=30, seed=2)
    data = _data(root)
    cfg = replace(tiny, hidden=32, dropout=0.0, lr=3e-2, max_epochs=40, patience=2)
    runs = [fit(replace(cfg, val_threads=v), data, paths_in(root / str(v))) for v in (0, 2)]
    turn, beside = runs
    assert turn["stopped_early"] and turn["epochs_run"] < cfg.max_epochs
    for key in ("stopped_early", "epochs_run", "best_epoch", "best_state_sha256"):
        assert beside[key] == turn[key], key
    assert [h["val_mae"] for h in beside["history"]] == [h["val_mae"] for h in turn["history"]]
    assert all(h["val_beside"] for h in beside["history"])


def test_validation_beside_keeps_resume_points(dataset, tmp_path, tiny) -> None:
    """Validated beside the next epoch, a kill after an epoch's bookkeeping resumes from that
    epoch's end (its checkpoint holds the weights and optimizer state of then, not of the
    epoch training meanwhile), and a stop inside an epoch first settles the previous epoch:
    both resume to the uninterrupted run's weights and history."""
    cfg = replace(tiny, val_threads=2)
    data = _data(dataset)
    full = fit(cfg, data, paths_in(tmp_path / "full"))

    def kill_after_two(epoch: int, record: dict) -> None:
        if epoch == 2:
            raise _Kill

    paths = paths_in(tmp_path / "killed")
    with pytest.raises(_Kill):
        fit(cfg, data, paths, on_epoch_end=kill_after_two)
    state = torch.load(paths.checkpoint, weights_only=True)
    assert state["next_epoch"] == 2 and state["next_batch"] == 0
    assert [h["val_beside"] for h in state["history"]] == [True, True]
    killed = fit(cfg, data, paths)
    assert killed["resumed_from_epoch"] == 2

    paths = paths_in(tmp_path / "mid")
    with pytest.raises(TrainingInterrupted, match="epoch 3 after batch 1"):
        fit(cfg, data, paths, interrupt=lambda epoch, batch: epoch == 2 and batch == 1)
    state = torch.load(paths.checkpoint, weights_only=True)
    assert (state["next_epoch"], state["next_batch"]) == (2, 1)
    assert len(state["history"]) == 2  # epoch 2's validation was settled first
    mid = fit(cfg, data, paths)
    for res in (killed, mid):
        assert res["best_state_sha256"] == full["best_state_sha256"]
        assert [h["val_mae"] for h in res["history"]] == [h["val_mae"] for h in full["history"]]


def test_finished_or_foreign_checkpoint_is_not_resumed(dataset, tmp_path, tiny) -> None:
    data = _data(dataset)
    paths = paths_in(tmp_path)
    fit(tiny, data, paths)
    first = paths.model.read_bytes()
    again = fit(tiny, data, paths)
    assert again["resumed_from_epoch"] is None and again["epochs_run"] == 4
    assert paths.model.read_bytes() == first

    with pytest.raises(_Kill):
        fit(tiny, data, paths, on_epoch_end=lambda e, r: (_ for _ in ()).throw(_Kill()))
    other = fit(replace(tiny, lr=1e-3), data, paths)  # different params: fingerprint mismatch
    assert other["resumed_from_epoch"] is None and other["epochs_run"] == 4


def test_model_learns_and_beats_constant_mean(make_tree, tmp_path, tiny) -> None:
    root = tmp_path / "big"
    make_tree(root, n=120, t=30, seed=1)
    data = _data(root)
    cfg = replace(tiny, hidden=16, dropout=0.0, lr=2e-2, max_epochs=12, patience=12, lr_patience=4)
    res = fit(cfg, data, paths_in(root))
    model, ckpt = load_checkpoint(root / "models" / "model.pt")
    rows = data.val_rows
    pred = predict(model, ckpt, data.features[rows])
    y, m = data.target[rows], data.mask[rows]
    mae = float(np.abs(pred - y)[m].mean())
    assert mae == pytest.approx(res["best_val_mae"], rel=1e-4)  # global MAE, recomputed
    train_y = data.target[data.train_rows][data.mask[data.train_rows]]
    baseline = float(np.abs(y[m] - train_y.mean()).mean())
    assert mae < 0.6 * baseline


def test_config_from_params_and_validation(tmp_path, params) -> None:
    train = {**params["train"], "lr": "1e-05", "batch_size": 32, "amp": "true", "loss": "huber"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": train}))
    cfg = load_config(TrainConfig, "train", path)
    assert cfg.lr == 1e-5 and cfg.batch_size == 32 and cfg.amp is True and cfg.loss == "huber"
    assert cfg.hidden == params["train"]["hidden"]
    with pytest.raises(ParamError, match="lr_patience"):
        replace(cfg, lr_patience=10, patience=10)
    with pytest.raises(ParamError, match="loss"):
        replace(cfg, loss="l3")
    del train["hidden"]  # no defaults in code: a missing key is an error
    path.write_text(yaml.safe_dump({"train": train}))
    with pytest.raises(ParamError, match="missing key 'train.hidden'"):
        load_config(TrainConfig, "train", path)
    assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(TrainConfig))


def test_load_train_data_reports_missing_inputs(tmp_path) -> None:
    with pytest.raises(StoreError, match="dvc repro featurize"):
        load_train_data(tmp_path / "data" / "features", tmp_path / "data" / "split")


def test_shards_cover_every_row_with_equal_sizes(tiny) -> None:
    cfg = tiny
    shards = [shard_positions(11, 3, cfg, DistInfo(rank=r, world_size=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert set(torch.cat(shards).tolist()) == set(range(11))
    assert torch.equal(
        shard_positions(11, 3, cfg, DistInfo()), shard_positions(11, 3, cfg, DistInfo())
    )
    assert not torch.equal(
        shard_positions(11, 3, cfg, DistInfo()), shard_positions(11, 4, cfg, DistInfo())
    )


STAGE_TRAIN = {**TINY, "max_epochs": 3, "eval_batch_size": 256}


def write_params(root: Path) -> None:
    """The real params.yaml with a tiny train section (the stage reads root/params.yaml)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(STAGE_TRAIN)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DVC_ROOT", None)
    return env


def test_stage_main_writes_declared_outputs(dataset, tmp_path, monkeypatch) -> None:
    import importlib
    import shutil

    monkeypatch.syspath_prepend(str(REPO))  # `stages` is not an installed package
    stage = importlib.import_module("stages.train")
    shutil.copytree(dataset / "data", tmp_path / "data")
    write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    stage.main()
    metrics = json.loads(Path("metrics/train.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["world_size"] == 1
    assert set(metrics) >= {"best_epoch", "best_val_mae", "n_params", "wall_time_s", "device"}
    assert Path("dvclive/train/plots/metrics/train/loss.tsv").is_file()
    model, ckpt = load_checkpoint("models/model.pt")
    assert ckpt["val"]["mae"] == pytest.approx(metrics["best_val_mae"])
    shutil.rmtree("data/split")
    with pytest.raises(SystemExit, match="dvc repro split"):
        stage.main()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_SCRIPT = """
import json, os, sys
from dataclasses import replace
from pathlib import Path
from hrpred.params import load_config
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import load_train_data
from hrpred.train.loop import fit
root = Path(sys.argv[1])
cfg = replace(load_config(TrainConfig, "train", sys.argv[2]), **json.loads(sys.argv[3]))
data = load_train_data(root / "data/features", root / "data/split")
res = fit(cfg, data, TrainPaths(root / "models/model.pt", root / "models/checkpoint.pt",
                                root / "dvclive"))
rank = int(os.environ["RANK"])
(root / f"rank{rank}.json").write_text(json.dumps(
    {"wrote": res["wrote_outputs"], "world": res["world_size"], "state": res["best_state_sha256"]}))
"""


def _torchrun(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def test_ddp_two_gloo_processes_rank0_writes(make_tree, tmp_path) -> None:
    root = tmp_path / "ddp"
    make_tree(root, n=N, t=T)
    (root / "ddp.py").write_text(DDP_SCRIPT)
    changes = json.dumps({**TINY, "batch_size": 4, "max_epochs": 2})
    args = [str(root / "ddp.py"), str(root), str(REPO / "params.yaml"), changes]
    proc = _torchrun(args, root, _env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["wrote"] for r in ranks] == [True, False]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["state"] == ranks[1]["state"]  # gradients were all-reduced: same weights
    loaded, ckpt = load_checkpoint(root / "models" / "model.pt")
    assert ckpt["train_params"]["batch_size"] == 4
    tsv = pd.read_csv(root / "dvclive" / "plots" / "metrics" / "val" / "mae.tsv", sep="\t")
    assert tsv["step"].tolist() == [0, 1]  # logged once per epoch, by one rank


def test_ddp_stage_command_from_readme(dataset, tmp_path) -> None:
    import shutil

    shutil.copytree(dataset / "data", tmp_path / "data")
    write_params(tmp_path)
    proc = _torchrun(["-m", "stages.train"], tmp_path, _env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_run"] == 3
    load_checkpoint(tmp_path / "models" / "model.pt")
