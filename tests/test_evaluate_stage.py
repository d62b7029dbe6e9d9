"""The evaluate stage on a small synthetic tree: metrics recomputed from its own outputs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_eval_data import NAMES, stand_in_predictor, write_tree

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.evaluation import run_evaluate
from hrpred.evaluate.personal import OFFSET_ONLY
from hrpred.params import load_config, load_value, read_params
from hrpred.personal.config import OffsetConfig
from hrpred.store import Layout

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the `stages` package lives at the repository root
evaluate = importlib.import_module("stages.evaluate")
SUMMARY_KEYS = {
    "mae",
    "rmse",
    "mae_after_2min",
    "workout_mae_mean",
    "workout_mae_median",
    "bias",
    "n_workouts",
    "n_steps",
}
PERSONAL_KEYS = {"cold", "personal", "by_history"}


def _setup(root: Path, animations: bool = True) -> dict:
    arrays = write_tree(root)
    params = read_params(ROOT / "params.yaml")  # params/evaluate.yaml merged in (categories)
    params["evaluate"]["animations"] = animations
    params["evaluate"].update(  # small and quick; the rules under test are the same
        example_min_steps=30, animation_frames=4, animation_dpi=40, figure_dpi=40, n_scatter=300
    )
    keep = {
        "evaluate": params["evaluate"],
        "clean": {"truth": params["clean"]["truth"]},
        "personal": {k: params["personal"][k] for k in ("offset", "residual")},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(keep))
    (root / "models").mkdir()
    (root / "models" / "model.pt").write_bytes(b"stand-in")  # the stand-in predictor ignores it
    return arrays


def _run(root: Path) -> dict:
    """The stage's library call on the tree under `root` (no chdir: explicit paths)."""
    cfg = load_config(EvalConfig, "evaluate", root / "params.yaml")
    ocfg = load_config(OffsetConfig, "personal.offset", root / "params.yaml")
    truth = load_value("clean.truth", str | None, root / "params.yaml")
    # the stand-in model.pt is no checkpoint: no learned personaliser (the offset's)
    rcfg = load_config(OffsetConfig, "personal.residual", root / "params.yaml")
    return run_evaluate(cfg, ocfg, rcfg, truth, Layout(root), stand_in_predictor, lambda *_: None)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    arrays = _setup(root)
    _run(root)
    metrics = json.loads((root / "metrics" / "evaluate.json").read_text())
    preds = pd.read_parquet(root / "data" / "eval" / "predictions.parquet")
    return root, arrays, metrics, preds


def _recompute(df: pd.DataFrame) -> dict:
    """Independent recomputation of every summary metric from the long table."""
    v = df[df["valid"]]
    err = v["hr_pred"].astype(np.float64) - v["hr_true"].astype(np.float64)
    per = err.abs().groupby(v["row"]).mean()
    late = v["t"] >= 120
    return {
        "mae": err.abs().mean(),
        "rmse": np.sqrt((err**2).mean()),
        "mae_after_2min": err[late].abs().mean(),
        "workout_mae_mean": per.mean(),
        "workout_mae_median": per.median(),
        "bias": err.mean(),
        "n_workouts": len(per),
        "n_steps": len(v),
    }


@pytest.mark.parametrize("split", ["test", "val"])
def test_metrics_recomputed_from_predictions(stage, split):
    _, _, metrics, preds = stage
    cold = metrics[split]
    if split == "test":  # headline = personalised; the predictions table holds cold ones
        assert set(cold) == SUMMARY_KEYS | PERSONAL_KEYS | {"learned_personal_model"}
        assert cold["learned_personal_model"] == OFFSET_ONLY
        assert {k: cold[k] for k in SUMMARY_KEYS} == cold["personal"]
        cold = cold["cold"]
    assert set(cold) == SUMMARY_KEYS
    again = _recompute(preds[preds["split"] == split])
    for key, value in again.items():
        assert cold[key] == pytest.approx(value, abs=1e-4), key
    assert cold["rmse"] >= cold["mae"]


def test_predictions_table_covers_real_steps(stage):
    _, a, _, preds = stage
    assert list(preds.columns) == [
        "row",
        "workout_id",
        "split",
        "step",
        "t",
        "hr_true",
        "hr_pred",
        "valid",
    ]
    rows = np.flatnonzero(np.isin(a["split"], ["val", "test"]))
    assert len(preds) == int(a["lengths"][rows].sum())  # every real step, no padding
    assert set(preds["split"]) == {"val", "test"}
    # the stand-in 'model' is deterministic: its predictions are reproducible from the features
    r = int(preds["row"].iloc[0])
    expected = 60.0 + 7.0 * a["features"][r, :, NAMES.index("rolling_speed_10")]
    got = preds[preds["row"] == r].sort_values("step")["hr_pred"].to_numpy()
    np.testing.assert_allclose(got, expected[: len(got)], rtol=1e-6)


def test_baselines_and_comparison(stage):
    _, a, metrics, _ = stage
    b = metrics["baselines"]
    assert set(b) == {"constant", "ridge", "physio", "offset"}
    train = a["split"] == "train"
    expected_mean = a["target"][train][a["mask"][train]].astype(np.float64).mean()
    assert b["constant"]["hr_bpm"] == pytest.approx(expected_mean, abs=1e-4)
    for entry in b.values():
        assert set(entry["test"]) == SUMMARY_KEYS | PERSONAL_KEYS
        assert entry["test"]["n_steps"] == metrics["test"]["n_steps"]  # same test steps
        assert entry["test"]["rmse"] >= entry["test"]["mae"]
        buckets = entry["test"]["by_history"]
        assert list(buckets) == ["0", "1-2", "3-9", "10+"]
        assert sum(x["n_workouts"] for x in buckets.values()) == metrics["test"]["n_workouts"]
    # the fake HR is generated by a first-order model: physio must beat the constant
    assert b["physio"]["test"]["cold"]["mae"] < 0.5 * b["constant"]["test"]["cold"]["mae"]
    # no learned model here: the model's personal score is the offset personaliser's
    assert b["offset"]["test"]["mae"] == metrics["test"]["mae"]
    assert b["offset"]["test"]["cold"] == metrics["test"]["cold"]
    # no history: personal == cold
    zero = metrics["test"]["by_history"]["0"]
    assert zero["cold"] == zero["personal"]
    ratio = metrics["comparison"]["test_mae_ratio_to_constant"]
    assert ratio == pytest.approx(metrics["test"]["mae"] / b["constant"]["test"]["mae"], rel=1e-4)


def test_categories_and_noise_floor(stage):
    _, _, metrics, _ = stage
    cats = metrics["categories"]
    n = sum(c["n_workouts"] for c in cats["input_only"].values())
    assert n == metrics["test"]["n_workouts"]
    assert sum(c["n_workouts"] for c in cats["report_only_hr_band"].values()) == n
    floor = metrics["noise_floor"]
    assert floor["available"] == 1
    assert floor["n_workouts"] == metrics["test"]["n_workouts"]
    assert floor["target_vs_clean_mae"] == pytest.approx(0.0, abs=1e-3)  # fake target = hr_clean
    # sensor noise N(0, 2): E|e| = 2 * sqrt(2 / pi) ~ 1.6
    assert floor["clean_vs_physio_mae"] == pytest.approx(1.6, abs=0.15)


def test_offset_diagnostics_recomputed(stage):
    _, _, metrics, preds = stage
    v = preds[(preds["split"] == "test") & preds["valid"]]
    err = v["hr_pred"].astype(np.float64) - v["hr_true"].astype(np.float64)
    bias = err.groupby(v["row"]).transform("mean")
    diag = metrics["diagnostics"]
    assert diag["test_mae_workout_offset_removed"] == pytest.approx(
        (err - bias).abs().mean(), abs=1e-4
    )
    assert diag["test_workout_bias_std"] == pytest.approx(
        err.groupby(v["row"]).mean().std(ddof=0), abs=1e-4
    )


def test_plot_files_match_dvc_yaml(stage):
    root, _, _, _ = stage
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    for entry in declared:
        if isinstance(entry, str):
            if entry.startswith("plots/"):
                assert (root / entry).is_dir(), entry
            continue
        (props,) = entry.values()
        if not isinstance(props, dict) or not isinstance(props.get("y"), dict):
            continue
        for file, fields in props["y"].items():
            if not file.startswith("plots/"):
                continue
            records = json.loads((root / file).read_text())
            if file == "plots/band_by_history.json":  # the stand-in population model: no band
                assert records == []  # (the learned model's: tests/test_evaluate_personal.py)
                continue
            assert records, file
            fields = [fields] if isinstance(fields, str) else fields
            for f in [props["x"], *fields]:
                if f in ("hr_p10", "hr_p90"):  # the band: a learned model's only (see above)
                    continue
                assert f in records[0], (file, f)
    figures = {p.name for p in (root / "plots" / "figures").iterdir()}
    assert {
        "sample_predictions.png",
        "error_distribution.png",
        "scatter.png",
        "per_workout_mae.png",
    } <= figures
    gifs = list((root / "plots" / "animations").glob("*.gif"))
    assert any(g.name == "category_comparison.gif" for g in gifs)
    assert sum(g.stat().st_size for g in gifs) < 3_000_000


def test_histograms_count_every_step_and_workout(stage):
    root, _, metrics, _ = stage
    errs = json.loads((root / "plots" / "error_hist.json").read_text())
    assert sum(r["count"] for r in errs) == metrics["test"]["n_steps"]
    wm = json.loads((root / "plots" / "workout_mae_hist.json").read_text())
    assert sum(r["count"] for r in wm) == metrics["test"]["n_workouts"]


def test_rerun_is_byte_identical(stage, tmp_path):
    root, _, _, _ = stage
    _setup(tmp_path)
    _run(tmp_path)
    for rel in [
        "metrics/evaluate.json",
        "data/eval/predictions.parquet",
        "plots/scatter.json",
        "plots/traces.json",
        "plots/mae_by_history.json",
        "plots/personal_traces.json",
        "plots/figures/sample_predictions.png",
        "plots/animations/category_comparison.gif",
    ]:
        assert (root / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_animations_off_writes_no_gif(tmp_path):
    _setup(tmp_path, animations=False)
    _run(tmp_path)
    assert not (tmp_path / "plots" / "animations").exists()
    assert (tmp_path / "plots" / "figures" / "scatter.png").exists()


def test_missing_inputs_give_one_line_errors(tmp_path, monkeypatch):
    _setup(tmp_path, animations=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "model.pt").unlink()
    with pytest.raises(
        SystemExit, match=r"^evaluate: models/model.pt not found: run `dvc repro train`"
    ):
        evaluate.main()
    (tmp_path / "data" / "split" / "scaler.json").unlink()
    with pytest.raises(SystemExit, match=r"scaler.json not found: run `dvc repro split`") as info:
        evaluate.main()
    assert "\n" not in str(info.value)
    (tmp_path / "params.yaml").write_text(
        (tmp_path / "params.yaml").read_text().replace("batch_rows: 256", "batch_rows: 0")
    )
    with pytest.raises(SystemExit, match="batch_rows >= 1"):
        evaluate.main()


def test_main_with_a_real_checkpoint(tmp_path, monkeypatch):
    """Integration with hrpred.model: a tiny untrained LSTM saved in the checkpoint format."""
    model_lib = pytest.importorskip("hrpred.model")
    import torch

    _setup(tmp_path, animations=False)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = model_lib.HRLSTM(len(NAMES), hidden=4, layers=1, target_mean=140.0, target_std=15.0)
    scaler = json.loads((tmp_path / "data/split/scaler.json").read_text())
    ckpt = model_lib.make_checkpoint(
        model,
        features=NAMES,
        scaler=scaler,
        seq_len=120,
        best_epoch=0,
        val={},
        train_params={},
    )
    model_lib.save_checkpoint(ckpt, tmp_path / "models" / "model.pt")
    evaluate.main()
    metrics = json.loads((tmp_path / "metrics/evaluate.json").read_text())
    assert metrics["test"]["learned_personal_model"] == OFFSET_ONLY  # an LSTM: offset
    preds = pd.read_parquet(tmp_path / "data/eval/predictions.parquet")
    assert metrics["test"]["cold"]["mae"] == pytest.approx(
        _recompute(preds[preds["split"] == "test"])["mae"], abs=1e-4
    )
    features = np.load(tmp_path / "data/features/features.npy")
    r = int(preds["row"].iloc[0])
    direct = model_lib.predict(*model_lib.load_checkpoint("models/model.pt"), features[r : r + 1])
    got = preds[preds["row"] == r].sort_values("step")["hr_pred"].to_numpy()
    np.testing.assert_allclose(got, direct[0, : len(got)], rtol=1e-5)
