"""Export: the model bundle (safetensors, config, ONNX, card) and the HF-style dataset.

Uses a tiny random model, fake metrics and a small synthetic clean/features/split tree in a
temporary directory, so it does not depend on the pipeline having run.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hrpred import store
from hrpred.bundle.format import BundleError
from hrpred.bundle.runtime import load_bundle
from hrpred.export.cards import fmt_metric, metric_rows, render_model_card
from hrpred.export.errors import ExportError
from hrpred.export.hf_dataset import workout_splits
from hrpred.export.writer import sampling_stats
from hrpred.features.registry import WorkoutInputs, compute_features
from hrpred.params import load_config, read_params
from hrpred.personal.config import PersonalConfig
from hrpred.uncertainty import Calibration
from tests.predict_fixtures import FAKE_METRICS, FEATURES, make_bundle, simulated_workout
from tests.synthetic_clean import make_clean_rows, write_clean

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the `stages` package lives at the repository root

T = 200  # rows of the synthetic feature arrays


def _test_like_batch(seed: int = 0) -> np.ndarray:
    """Unscaled features of simulated workouts of different lengths, NaN-padded like rows."""
    lengths = [T, 150, 90, 37, 180]
    out = np.full((len(lengths), T, len(FEATURES)), np.nan, dtype=np.float32)
    for i, n in enumerate(lengths):
        w = simulated_workout(n=n, step_s=8.0, seed=seed + i)
        inputs = WorkoutInputs.from_arrays(w.timestamp, w.speed_kmh, w.altitude_m, "male")
        out[i, :n] = compute_features(FEATURES, inputs)
    return out


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("b") / "bundle", onnx=True)


def test_onnx_matches_pytorch_within_1e3_bpm(onnx_bundle):
    import onnxruntime as ort

    bundle = load_bundle(onnx_bundle, backend="torch")  # the PyTorch reference
    session = ort.InferenceSession(str(onnx_bundle / "model.onnx"))
    x = _test_like_batch()
    got = session.run(["hr_bpm"], {"features": x})[0]
    want = bundle.predict(x)
    assert got.shape == want.shape == x.shape[:2]
    assert np.abs(got - want).max() < 1e-3
    assert np.ptp(want[0]) > 1.0  # the random model's output does vary along the workout
    # dynamic batch and length: one long workout alone
    long = _test_like_batch(seed=7)[:1, :, :].repeat(4, axis=1)[:, :700]
    long = np.nan_to_num(long, nan=0.0)
    got1 = session.run(["hr_bpm"], {"features": long})[0]
    assert got1.shape == (1, 700)
    assert np.abs(got1 - bundle.predict(long)).max() < 1e-3


def test_bundle_loads_with_only_the_bundle_and_the_package(onnx_bundle, tmp_path):
    """In a directory outside the repo, with torch.load disabled, reading only the bundle."""
    bundle_dir = shutil.copytree(onnx_bundle, tmp_path / "copied")
    script = f"""
import sys, os
opened = []
sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == "open" and isinstance(args[0], (str, bytes, os.PathLike)) else None)
import torch
def no_pickle(*a, **k):
    raise AssertionError("torch.load called")
torch.load = no_pickle
import numpy as np
from hrpred.serve.predict import load_bundle
b = load_bundle({str(bundle_dir)!r})
x = np.zeros((1, 30, len(b.features)), dtype=np.float32)
assert np.isfinite(b.predict(x)).all()
root = {str(ROOT)!r}
bad = [p for p in opened if os.path.abspath(p).startswith(root + os.sep)
       and not os.path.abspath(p).startswith(os.path.join(root, "hrpred"))
       and not os.path.abspath(p).startswith(os.path.abspath(sys.prefix) + os.sep)]
assert not bad, bad
print("ok", b.step_s)
"""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok 8.0")


def test_load_bundle_errors_are_one_line(tmp_path, onnx_bundle):
    with pytest.raises(BundleError, match="no model bundle"):
        load_bundle(tmp_path / "missing")
    broken = shutil.copytree(onnx_bundle, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="cannot load the weights") as info:
        load_bundle(broken)
    assert "\n" not in str(info.value)
    (broken / "model.safetensors").unlink()
    with pytest.raises(BundleError, match="model.safetensors missing"):
        load_bundle(broken)


def test_bundle_personal_rules_and_history_runs(onnx_bundle):
    """config.json `personal` (params personal) and `history_runs` (split.max_history) as
    serving reads them; a bundle of an older format or a damaged one: one-line errors."""
    bundle = load_bundle(onnx_bundle)
    real = read_params(ROOT / "params.yaml")
    assert bundle.personal == load_config(PersonalConfig, "personal", ROOT / "params.yaml")
    assert bundle.history_runs == real["split"]["max_history"]
    for personal in (None, {"offset": {"k": 10, "shrink": 1.0, "half_life_days": 60.0}},
                     {**real["personal"], "offset": {"k": -1, "shrink": 1.0,
                                                     "half_life_days": 60.0}}):  # fmt: skip
        bundle.config = {**bundle.config, "personal": personal}
        with pytest.raises(BundleError, match="personal rules.*dvc repro export") as info:
            bundle.personal  # noqa: B018 - the property raises
        assert "\n" not in str(info.value)
    for runs in (None, -1, 2.5, True, "10"):
        bundle.config = {**bundle.config, "history_runs": runs}
        with pytest.raises(BundleError, match="history_runs") as info:
            bundle.history_runs  # noqa: B018 - the property raises
        assert "\n" not in str(info.value)


def _card_tables(card: str) -> dict[str, dict[str, str]]:
    """{row label: {column: cell}} for every markdown table of the card."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in card.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: "):
            rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return rows


def test_model_card_numbers_equal_the_metrics(onnx_bundle):
    config = json.loads((onnx_bundle / "config.json").read_text())
    assert config["metrics"] == FAKE_METRICS
    card = (onnx_bundle / "README.md").read_text()
    assert card == render_model_card(config)
    tables = _card_tables(card)
    for split in ("test", "val"):
        for key, value in FAKE_METRICS[split].items():
            assert tables[split][key] == fmt_metric(value), (split, key)
    for name in ("constant", "ridge", "physio"):
        for key, value in FAKE_METRICS["baselines"][name]["test"].items():
            assert tables[f"{name}.test"][key] == f"{value:.2f}"
    for name, row in FAKE_METRICS["categories"]["input_only"].items():
        for key, value in row.items():
            assert tables[name][key] == fmt_metric(value)
    floor = FAKE_METRICS["noise_floor"]
    m = re.search(r"physiology scores MAE (\S+) BPM .* model scores (\S+) BPM, and (\S+) BPM", card)
    assert m and m.groups() == tuple(
        f"{floor[k]:.2f}"
        for k in ("target_vs_physio_mae", "model_mae_same_steps", "model_vs_physio_mae")
    )
    assert [p for p, _ in metric_rows(FAKE_METRICS["baselines"])] == [
        "constant.test", "ridge.test", "physio.test",
    ]  # fmt: skip
    header = yaml.safe_load(card.split("---")[1])
    values = {m["type"]: m["value"] for m in header["model-index"][0]["results"][0]["metrics"]}
    assert values == {"mae": 7.35, "rmse": 9.88}


def test_sampling_stats_against_numpy():
    rng = np.random.default_rng(0)
    elapsed = np.cumsum(rng.integers(1, 15, size=(6, 40)), axis=1).astype(np.float32)
    lengths = np.array([40, 10, 1, 25, 40, 3])
    steps = np.concatenate([np.diff(elapsed[i, :n]) for i, n in enumerate(lengths)])
    s = sampling_stats(elapsed, lengths, pause_s=10.0)
    assert s["median_step_s"] == np.median(steps)
    assert s["mean_step_s"] == pytest.approx(steps.mean())
    assert s["mean_active_step_s"] == pytest.approx(steps[steps <= 10].mean())
    assert s["n_steps"] == len(steps)
    with pytest.raises(ExportError, match="no positive time steps"):
        sampling_stats(np.zeros((2, 5)), np.array([5, 5]), pause_s=60.0)


def test_workout_splits_rejects_a_workout_in_two_splits():
    a = pd.DataFrame(
        {"row": [0, 1, 2], "workout_id": [1, 1, 2], "split": ["train", "train", "val"]}
    )
    assert workout_splits(a) == {1: "train", 2: "val"}
    a.loc[1, "split"] = "test"
    with pytest.raises(ExportError, match="several splits"):
        workout_splits(a)


# ------------------------------------------------------------------- the stage, end to end


def _write_params(root: Path) -> None:
    """The sections export reads, from the committed params.yaml."""
    real = read_params(ROOT / "params.yaml")  # params/clean.yaml merged in (clean.speed)
    params = {
        "data": {"raw": "data/raw/simulated.json"},
        "clean": {"speed": real["clean"]["speed"]},
        "personal": real["personal"],
        "split": {"max_history": real["split"]["max_history"]},
        "export": real["export"],
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _make_tree(root: Path) -> None:
    """params.yaml, models/model.pt, metrics/evaluate.json, clean, features and split.

    The features and split are written with hrpred.store's writers (like the shared
    `make_tree` fixture), but from the clean workouts themselves: the test checks the bundle's
    sampling step against the clean timestamps and the dataset split against the assignment.
    """
    from hrpred.model import build_model, make_checkpoint, save_checkpoint

    rows = make_clean_rows(n_users=9, seed=1, lengths=(40, 260))
    write_clean(root / "data/clean/workouts.parquet", rows)
    n = len(rows)
    feats = np.zeros((n, T, len(FEATURES)), dtype=np.float32)
    elapsed = np.zeros((n, T), dtype=np.float32)
    index = []
    for i, r in enumerate(rows):
        ts = np.asarray(r["timestamp"], dtype=np.float64)
        inputs = WorkoutInputs.from_arrays(ts, r["speed"], r["altitude"], r["gender"])
        f = compute_features(FEATURES, inputs)[:T]
        k = len(f)
        feats[i, :k], feats[i, k:] = f, f[-1]
        elapsed[i, :k] = (ts - ts[0])[:k]
        elapsed[i, k:] = elapsed[i, k - 1]
        index.append(
            {"workout_id": r["workout_id"], "user_id": r["user_id"], "start_time": ts[0],
             "length": k}
        )  # fmt: skip
    writer = store.FeaturesWriter(root / "data/features", n, T, FEATURES)
    arrays = {"features": feats, "elapsed": elapsed, "target": np.zeros((n, T), np.float32)}
    writer.write({**arrays, "mask": np.zeros((n, T), bool)}, pd.DataFrame(index))
    idx = writer.close({"rows": n})
    # user-disjoint: users by id modulo 3
    split = np.array(["train", "val", "test"])[(idx["user_id"] // 13) % 3]
    scaler = {f: {"mean": 1.0, "std": 3.0} for f in FEATURES if f != "gender"}
    assignment = idx[["row", "workout_id", "user_id"]].assign(split=split)
    store.write_split(root / "data/split", assignment, scaler)
    model = build_model(
        {"input_size": len(FEATURES), "hidden": 8, "layers": 1, "dropout": 0.0,
         "bidirectional": False}, 150.0, 12.0,
    )  # fmt: skip
    ckpt = make_checkpoint(
        model, features=FEATURES, scaler=scaler, seq_len=T, best_epoch=2,
        val={"mae": 7.0}, train_params={"lr": 0.001, "hidden": 8},
    )  # fmt: skip
    save_checkpoint(ckpt, root / "models/model.pt")
    cal = Calibration(0.8, {"all": 1.7, "0": 2.0}, {"all": 1.5}, {"all": 30, "0": 20})
    (root / "models/calibration.json").write_text(json.dumps(cal.to_json()))
    (root / "metrics").mkdir()
    (root / "metrics/evaluate.json").write_text(json.dumps(FAKE_METRICS, indent=2))
    _write_params(root)


def test_export_stage_end_to_end(tmp_path, monkeypatch):
    from stages import export

    _make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    export.main()
    bundle_dir, hf = tmp_path / "models/bundle", tmp_path / "data/export/hf"
    assert sorted(p.name for p in bundle_dir.iterdir()) == [
        "README.md", "config.json", "model.onnx", "model.safetensors",
    ]  # fmt: skip
    config = json.loads((bundle_dir / "config.json").read_text())
    assert config["metrics"] == json.loads((tmp_path / "metrics/evaluate.json").read_text())
    assert config["onnx"]["parity"]["max_abs_diff_bpm"] <= 1e-3
    band = json.loads((tmp_path / "models/calibration.json").read_text())
    assert Calibration.from_json(config["band"]) == Calibration.from_json(band)
    # a population model's graph bakes in the cold-start ("0") multiplier; parity of every output
    assert config["onnx"]["outputs"] == ["hr_bpm", "spread_bpm", "hr_p10", "hr_p90"]
    assert config["onnx"]["band"]["step_multiplier_by_context_count"] == [2.0]
    assert max(config["onnx"]["parity"]["by_output_bpm"].values()) <= 1e-3
    assert "## Uncertainty: the 80% band" in (bundle_dir / "README.md").read_text()
    assert config["seq_len"] == T and config["features"] == FEATURES
    # params personal and split.max_history as the bundle carries them (format 2)
    real = read_params(ROOT / "params.yaml")
    assert config["format_version"] == 2 and config["history_runs"] == real["split"]["max_history"]
    assert config["personal"] == real["personal"]
    loaded = load_bundle(bundle_dir)
    assert loaded.personal == load_config(PersonalConfig, "personal", ROOT / "params.yaml")
    assert loaded.history_runs == real["split"]["max_history"]

    # sampling step = mean step (pauses > 60 s left out) of the train workouts' first T steps,
    # recomputed from the clean file
    clean = pd.read_parquet(tmp_path / "data/clean/workouts.parquet")
    assign = pd.read_parquet(tmp_path / "data/split/assignment.parquet")
    train_ids = set(assign.loc[assign["split"] == "train", "workout_id"])
    steps = np.concatenate(
        [np.diff(np.asarray(ts)[:T]) for wid, ts in zip(clean["workout_id"], clean["timestamp"],
                                                        strict=True) if wid in train_ids]
    )  # fmt: skip
    assert config["sampling"]["step_statistic"] == "mean_active"
    assert config["sampling"]["step_s"] == pytest.approx(steps[(steps > 0) & (steps <= 60)].mean())
    assert config["sampling"]["median_step_s"] == np.median(steps[steps > 0])

    # dataset: same split as data/split, every workout exactly once
    files = {"train": "train", "val": "validation", "test": "test"}
    got = {}
    for split, name in files.items():
        part = pd.read_parquet(hf / f"{name}.parquet")
        assert (part["split"] == split).all()
        got.update(dict.fromkeys(part["workout_id"], split))
        assert isinstance(part["timestamp"].iloc[0], np.ndarray)
    want = dict(zip(assign["workout_id"], assign["split"], strict=True))
    assert got == want
    card = (hf / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    data_files = header["configs"][0]["data_files"]
    assert {d["split"]: d["path"] for d in data_files} == {
        "train": "train.parquet", "validation": "validation.parquet", "test": "test.parquet",
    }  # fmt: skip
    for split, name in files.items():
        part = assign[assign["split"] == split]
        m = re.search(rf"^\| {split} \| {name}\.parquet \| (\d+) \| (\d+) \|", card, re.M)
        assert m and int(m.group(1)) == part["workout_id"].nunique()
        assert int(m.group(2)) == part["user_id"].nunique()
    assert "user-disjoint" in card and "user-disjoint" in config["data"]["protocol"]

    # deterministic: a second run gives byte-identical files
    saved = tmp_path / "first"
    shutil.copytree(tmp_path / "models", saved / "models")
    shutil.copytree(hf, saved / "hf")
    export.main()
    for name in ("config.json", "model.onnx", "model.safetensors", "README.md"):
        assert filecmp.cmp(bundle_dir / name, saved / "models/bundle" / name, shallow=False), name
    for name in ("train.parquet", "validation.parquet", "test.parquet", "README.md"):
        assert filecmp.cmp(hf / name, saved / "hf" / name, shallow=False), name

    # the exported bundle predicts a user file
    from hrpred.io.userfiles import read_activity
    from hrpred.serve.predict import predict_activity
    from tests.predict_fixtures import write_gpx

    gpx = write_gpx(tmp_path / "run.gpx", simulated_workout(n=100, step_s=5.0))
    pred = predict_activity(load_bundle(bundle_dir), read_activity(gpx))
    assert np.isfinite(pred.frame["hr_pred"]).all()


def test_export_stage_missing_input_is_one_line(tmp_path, monkeypatch):
    from stages import export

    _write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SystemExit, match=r"^export: models/model.pt not found: run `dvc repro train`"
    ):
        export.main()
    _make_tree(tmp_path)
    (tmp_path / "data/split/scaler.json").unlink()
    with pytest.raises(SystemExit, match=r"scaler.json not found: run `dvc repro split`"):
        export.main()


def test_export_dataset_thread_errors_reach_the_stage_as_one_line(tmp_path, monkeypatch):
    """The dataset is written on a second thread while the bundle is written: its error (a
    clean workouts file without rows) still ends the stage with the one-line message, and an
    error on the bundle's side waits for the dataset thread (nothing left running)."""
    import threading

    import pyarrow.parquet as pq

    from stages import export

    threads = threading.active_count()
    _make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    workouts = tmp_path / "data/clean/workouts.parquet"
    pq.write_table(pq.read_table(workouts).slice(0, 0), workouts)
    with pytest.raises(SystemExit, match=r"^export: the clean workouts file has no rows"):
        export.main()
    assert (tmp_path / "models/bundle/config.json").exists()  # the bundle side finished

    _make_tree(tmp_path / "again")
    monkeypatch.chdir(tmp_path / "again")
    (tmp_path / "again/models/calibration.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"^export: .*calibration.json"):
        export.main()
    assert threading.active_count() == threads
    assert (tmp_path / "again/data/export/hf/train.parquet").exists()  # awaited, not cut off


def test_export_params_are_checked(tmp_path, monkeypatch):
    from stages import export

    _write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for key, value, message in (
        ("onnx_opset", 16, "onnx_opset must be >= 17"),
        ("step_statistic", "mode", "step_statistic must be one of"),
    ):
        bad = {**params, "export": {**params["export"], key: value}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(SystemExit, match=message):
            export.main()
    del params["export"]["license"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="missing key 'export.license'"):
        export.main()


def test_history_bundle_onnx_matches_pytorch_with_and_without_context(tmp_path) -> None:
    """A history model's bundle: config.json carries `history`, load_bundle rebuilds the
    HistoryHRModel, and model.onnx (features, context, context_mask) agrees with PyTorch on
    real contexts and on empty ones (cold start)."""
    import onnxruntime as ort

    from hrpred.export.writer import write_bundle
    from hrpred.model import HistoryHRModel
    from hrpred.personal.context import build_context
    from hrpred.personal.summaries import compute_summaries
    from hrpred.store import open_features, open_history
    from tests.predict_fixtures import make_history_bundle

    src = load_bundle(make_history_bundle(tmp_path))
    assert (
        isinstance(src.model, HistoryHRModel) and src.config["model"]["class"] == "HistoryHRModel"
    )
    feats = open_features(tmp_path / "data" / "features")
    ids = feats.index["workout_id"].to_numpy()[:8]
    ctx = build_context(ids, open_history(tmp_path / "data" / "split"),
                        compute_summaries(tmp_path / "data" / "features"), 10)  # fmt: skip
    assert ctx.mask.any(axis=1).sum() >= 4 and not ctx.mask.all()
    x = np.array(feats.features[:8])
    out = tmp_path / "onnx_bundle"
    state = {k: v.clone() for k, v in src.model.state_dict().items()}
    b = write_bundle(out, state, src.config, onnx=True, check_features=x,
                     check_context=(ctx.values, ctx.mask))  # fmt: skip
    parity = b.config["onnx"]["parity"]
    assert parity["with_history"] == int(ctx.mask.any(axis=1).sum())
    assert parity["max_abs_diff_bpm"] <= 1e-3
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["history"]["k_max"] == 10 and cfg["onnx"]["context_shape"] == ["batch", 10, 10]
    assert "## Personalisation" in (out / "README.md").read_text()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["features", "context", "context_mask"]
    feeds = {"features": x[:3, :50], "context": ctx.values[:3],
             "context_mask": ctx.mask[:3].astype(np.float32)}  # fmt: skip
    got = session.run(None, feeds)[0]
    loaded = load_bundle(out, backend="torch")  # the PyTorch reference
    warm = loaded.predict(x[:3, :50], context=(ctx.values[:3], ctx.mask[:3]))
    assert np.abs(got - warm).max() <= 1e-3
    cold = loaded.predict(x[:3, :50])
    if ctx.mask[:3].any():
        assert np.abs(warm - cold).max() > 0.1  # the context is used
