"""The evaluate stage on a small synthetic tree with a stand-in population model (no history
network: personalised by the offset, no band): metrics recomputed from its own outputs, the
saved predictions (data/eval/predictions.parquet, workouts.parquet) and the offset of one
workout by hand."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from eval_fixtures import assert_test_block_recomputes
from fake_eval_data import NAMES, stand_in_predictor, write_tree

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.evaluation import run_evaluate
from hrpred.params import load_config, load_value, read_params
from hrpred.personal.config import PersonalConfig
from hrpred.personal.rules import shrunk_mean
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
TEST_KEYS = {
    "learned_personal_model",
    "personalisation",
    "after_change",
    "runners_made_worse",
    "history_3plus",
}
OFFSET_ONLY = "none (population model + offset)"  # what personalised a population model
PREDICTION_COLUMNS = ["row", "workout_id", "split", "step", "t", "hr_true", "valid", "hr_cold",
                      "hr_offset", "hr_learned", "hr_personal", "hr_p10", "hr_p90"]  # fmt: skip


def _setup(root: Path, animations: bool = True, plot_workers: int | None = None) -> dict:
    arrays = write_tree(root)
    params = read_params(ROOT / "params.yaml")  # params/evaluate.yaml merged in (categories)
    params["evaluate"]["animations"] = animations
    if plot_workers is not None:
        params["evaluate"]["plot_workers"] = plot_workers
    params["evaluate"].update(  # small and quick; the rules under test are the same
        example_min_steps=30, animation_frames=4, animation_dpi=40, figure_dpi=40, n_scatter=300
    )
    keep = {
        "evaluate": params["evaluate"],
        "clean": {"truth": params["clean"]["truth"]},
        "personal": params["personal"],
    }
    (root / "params.yaml").write_text(yaml.safe_dump(keep))
    (root / "models").mkdir()
    (root / "models" / "model.pt").write_bytes(b"stand-in")  # the stand-in predictor ignores it
    return arrays


def _run(root: Path) -> dict:
    """The stage's library call on the tree under `root` (no chdir: explicit paths)."""
    cfg = load_config(EvalConfig, "evaluate", root / "params.yaml")
    pcfg = load_config(PersonalConfig, "personal", root / "params.yaml")
    truth = load_value("clean.truth", str | None, root / "params.yaml")
    # the stand-in model.pt is no checkpoint: no learned network (personalised by the offset)
    return run_evaluate(cfg, pcfg, truth, Layout(root), stand_in_predictor, lambda *_: None)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    arrays = _setup(root)
    _run(root)
    metrics = json.loads((root / "metrics" / "evaluate.json").read_text())
    preds = pd.read_parquet(root / "data" / "eval" / "predictions.parquet")
    return root, arrays, metrics, preds


def _recompute(df: pd.DataFrame, column: str = "hr_cold") -> dict:
    """Independent recomputation of every summary metric of one curve from the long table."""
    v = df[df["valid"]]
    err = v[column].astype(np.float64) - v["hr_true"].astype(np.float64)
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
    if split == "test":  # headline = the personal prediction; `cold` the population one
        assert set(cold) == SUMMARY_KEYS | PERSONAL_KEYS | TEST_KEYS
        assert cold["learned_personal_model"] == OFFSET_ONLY
        assert {k: cold[k] for k in SUMMARY_KEYS} == cold["personal"]
        again = _recompute(preds[preds["split"] == split], "hr_personal")
        for key, value in again.items():
            assert cold["personal"][key] == pytest.approx(value, abs=1e-4), key
        cold = cold["cold"]
    assert set(cold) == SUMMARY_KEYS
    again = _recompute(preds[preds["split"] == split])
    for key, value in again.items():
        assert cold[key] == pytest.approx(value, abs=1e-4), key
    assert cold["rmse"] >= cold["mae"]


def test_the_test_block_recomputes_from_the_saved_files(stage):
    """Issue 23's acceptance: every test figure from predictions.parquet + workouts.parquet
    (recompute_test and pandas); a population model has no band and no learned row."""
    root, _, metrics, preds = stage
    figures = assert_test_block_recomputes(root)
    assert "band" not in metrics["test"] and "learned" not in metrics["baselines"]
    assert {"headline.mae", "cold.mae", "offset.mae", "by_history.3-9.personal.mae"} <= set(figures)
    assert preds[["hr_p10", "hr_p90"]].isna().all().all()


def test_predictions_table_covers_real_steps(stage):
    root, a, _, preds = stage
    assert list(preds.columns) == PREDICTION_COLUMNS
    rows = np.flatnonzero(np.isin(a["split"], ["val", "test"]))
    assert len(preds) == int(a["lengths"][rows].sum())  # every real step, no padding
    assert set(preds["split"]) == {"val", "test"}
    # the stand-in 'model' is deterministic: its predictions are reproducible from the features
    r = int(preds["row"].iloc[0])
    expected = 60.0 + 7.0 * a["features"][r, :, NAMES.index("rolling_speed_10")]
    got = preds[preds["row"] == r].sort_values("step")["hr_cold"].to_numpy()
    np.testing.assert_allclose(got, expected[: len(got)], rtol=1e-6)
    # no history network: learned = offset (weight 0); the headline weighs population and
    # offset by the workout's saved weights; the offset is one constant per workout
    workouts = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    assert (workouts["w_learned"] == 0).all()
    assert np.allclose(workouts[["w_population", "w_offset"]].sum(axis=1), 1.0)
    np.testing.assert_array_equal(preds["hr_learned"], preds["hr_offset"])
    w = preds.merge(workouts[["workout_id", "w_population", "w_offset", "offset_bpm"]])
    head = w["w_population"] * w["hr_cold"] + w["w_offset"] * w["hr_offset"]
    np.testing.assert_allclose(w["hr_personal"], head, atol=1e-3)
    np.testing.assert_allclose(w["hr_offset"] - w["hr_cold"], w["offset_bpm"], atol=1e-3)
    assert (workouts.loc[workouts["n_history"] == 0, "offset_bpm"] == 0).all()
    assert (workouts.loc[workouts["n_history"] > 0, "offset_bpm"] != 0).all()


def test_offset_of_one_workout_by_hand(stage, config):
    """A test runner's 4th workout: the offset is the rule over the mean residuals (recorded -
    population, valid steps) of its 3 earlier workouts, 1, 2 and 3 days before (pandas from
    the saved steps)."""
    root, _, _, preds = stage
    rule = config(PersonalConfig, "personal").offset
    workouts = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    w = workouts[(workouts["split"] == "test") & (workouts["n_history"] == 3)].iloc[0]
    assert w["n_used"] == 3 and not w["change"]
    earlier = workouts[(workouts["user_id"] == w["user_id"]) & (workouts["n_history"] < 3)]
    steps = preds[preds["workout_id"].isin(earlier["workout_id"]) & preds["valid"]]
    resid = (
        (steps["hr_true"].astype(float) - steps["hr_cold"].astype(float))
        .groupby(steps["workout_id"])
        .mean()
    )
    # the fake tree starts workout i at day i (ids 1000 + i): most recent first
    resid = resid.sort_index(ascending=False)
    days = (w["workout_id"] - resid.index.to_numpy()).astype(float)
    weights = 0.5 ** (days / rule.half_life_days)
    want = float((weights * resid).sum() / (weights.sum() + rule.shrink))
    assert w["offset_bpm"] == pytest.approx(want, abs=1e-4)
    assert want == pytest.approx(shrunk_mean(rule, resid.to_numpy(), days)[0], abs=1e-9)
    mine = preds[preds["workout_id"] == w["workout_id"]]
    np.testing.assert_allclose(mine["hr_offset"] - mine["hr_cold"], want, atol=1e-3)


def test_population_model_has_no_band(stage):
    root, _, metrics, _ = stage
    cal = json.loads((root / "models" / "calibration.json").read_text())
    assert cal == {"format": "hrpred-calibration", "available": False}
    assert json.loads((root / "plots" / "band_by_history.json").read_text()) == []
    workouts = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    assert (workouts["runner_factor"] == 1.0).all()
    assert workouts[["avg_lo", "avg_hi", "band_width_bpm"]].isna().all().all()
    share = metrics["test"]["personalisation"]["headline_weights_mean"]
    assert share["learned"] == 0 and share["population"] + share["offset"] == pytest.approx(1)


WORKOUT_COLUMNS = {
    "workout_id", "user_id", "split", "n_history", "bucket", "n_used", "band_bucket", "change",
    "change_shift_bpm", "offset_bpm", "residual_bpm", "runner_factor", "w_population",
    "w_offset", "w_learned", "n_valid", "n_covered", "mae_cold", "mae_offset", "mae_learned",
    "mae_personal", "avg_true", "avg_personal", "avg_lo", "avg_hi", "band_width_bpm",
    "runs_after_change",
}  # fmt: skip


def test_workouts_table_and_its_plot(stage):
    """workouts.parquet: one line per val/test workout, its MAEs recomputed from the saved
    steps; plots/mae_by_history.json from it (pandas)."""
    root, a, _, preds = stage
    w = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    assert set(w.columns) == WORKOUT_COLUMNS
    assert sorted(w["workout_id"]) == sorted(a["ids"][np.isin(a["split"], ["val", "test"])])
    assert (w["runs_after_change"] == -1).all()  # this fake truth has no level changes
    v = preds[preds["valid"]]
    for curve, col in (("cold", "hr_cold"), ("offset", "hr_offset"), ("personal", "hr_personal")):
        mae = (v[col].astype(float) - v["hr_true"].astype(float)).abs().groupby(v["workout_id"])
        got = w.set_index("workout_id")[f"mae_{curve}"]
        np.testing.assert_allclose(got.loc[mae.mean().index], mae.mean(), atol=1e-4)
    np.testing.assert_array_equal(
        w.set_index("workout_id")["n_valid"].loc[v["workout_id"].unique()],
        v.groupby("workout_id", sort=False).size(),
    )
    plot = json.loads((root / "plots" / "mae_by_history.json").read_text())
    test = v[v["split"] == "test"].merge(w[["workout_id", "n_history"]])
    test["h"] = test["n_history"].clip(upper=10)
    for rec in plot:
        g = test[test["h"] == rec["history"]]
        assert rec["n_workouts"] == g["workout_id"].nunique()
        assert rec["headline"] == pytest.approx(
            (g["hr_personal"].astype(float) - g["hr_true"].astype(float)).abs().mean(), abs=1e-4
        )
        assert rec["cold"] == pytest.approx(
            (g["hr_cold"].astype(float) - g["hr_true"].astype(float)).abs().mean(), abs=1e-4
        )
    assert [r["history"] for r in plot] == sorted(test["h"].unique())


def test_runners_made_worse_from_the_saved_workouts(stage):
    root, _, metrics, _ = stage
    w = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    w = w[(w["split"] == "test") & (w["n_valid"] > 0)]
    per = w.assign(c=w["mae_cold"] * w["n_valid"], p=w["mae_personal"] * w["n_valid"])
    per = per.groupby("user_id")[["c", "p"]].sum()
    got = metrics["test"]["runners_made_worse"]
    assert got["n_runners"] == len(per)
    assert got["share"] == pytest.approx((per["p"] > got["ratio"] * per["c"]).mean())
    lo, hi = got["share_runner_interval_90"]
    assert 0.0 <= lo <= got["share"] <= hi <= 1.0


def test_history_3plus_against_the_plain_constant_from_the_saved_predictions(stage):
    """The headline / plain-constant ratio on workouts with >= 3 earlier runs, recomputed with
    pandas from the saved predictions, the saved per-workout table and the constant's HR."""
    root, _, metrics, _ = stage
    p = pd.read_parquet(root / "data" / "eval" / "predictions.parquet")
    w = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    many = w.loc[(w["split"] == "test") & (w["n_history"] >= 3), ["workout_id", "user_id"]]
    p = p[p["valid"] & (p["split"] == "test")].merge(many, on="workout_id")
    const = metrics["baselines"]["constant"]["hr_bpm"]
    y = p["hr_true"].astype(float)
    head = (p["hr_personal"].astype(float) - y).abs()
    plain = (const - y).abs()
    got = metrics["test"]["history_3plus"]
    assert got["n_workouts"] == len(many) > 0
    assert got["n_runners"] == many["user_id"].nunique()
    assert got["headline_mae"] == pytest.approx(head.mean(), abs=1e-4)
    assert got["constant_mae"] == pytest.approx(plain.mean(), abs=1e-4)
    assert got["headline_to_constant"] == pytest.approx(head.sum() / plain.sum(), rel=1e-4)
    lo, hi = got["headline_to_constant_runner_interval_90"]
    assert lo <= got["headline_to_constant"] <= hi


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
    # the offset row is the same population model + the offset
    assert b["offset"]["test"]["cold"] == metrics["test"]["cold"]
    assert b["offset"]["test"]["personal"] != metrics["test"]["cold"]
    # no history: personal == cold (offset 0: every curve is the population prediction)
    for entry in (metrics["test"], b["offset"]["test"]):
        zero = entry["by_history"]["0"]
        assert zero["n_workouts"] > 0 and zero["cold"] == zero["personal"]
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
    err = v["hr_cold"].astype(np.float64) - v["hr_true"].astype(np.float64)
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
        "data/eval/workouts.parquet",
        "models/calibration.json",
        "plots/scatter.json",
        "plots/traces.json",
        "plots/mae_by_history.json",
        "plots/personal_traces.json",
        "plots/figures/sample_predictions.png",
        "plots/animations/category_comparison.gif",
    ]:
        assert (root / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_figures_and_gifs_are_the_same_drawn_in_one_process(stage, tmp_path):
    """evaluate.plot_workers only says who draws: in-process, every PNG and GIF has the
    bytes the worker processes wrote."""
    root, _, _, _ = stage
    assert load_config(EvalConfig, "evaluate", root / "params.yaml").plot_workers > 1
    _setup(tmp_path, plot_workers=1)
    _run(tmp_path)
    drawn = sorted(
        p.relative_to(root)
        for sub in ("figures", "animations")
        for p in (root / "plots" / sub).iterdir()
    )
    assert len(drawn) >= 8 and any(p.suffix == ".gif" for p in drawn)
    for rel in drawn:
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
    got = preds[preds["row"] == r].sort_values("step")["hr_cold"].to_numpy()
    np.testing.assert_allclose(got, direct[0, : len(got)], rtol=1e-5)


def test_model_predicts_on_one_torch_thread_in_predict_threads_parts(tmp_path):
    """While the model predicts, torch runs on 1 thread whatever the process had before (here
    3) and predict splits each batch into evaluate.predict_threads parts; both are restored
    afterwards."""
    import torch

    from hrpred.threads import current_parts

    _setup(tmp_path, animations=False)
    cfg = load_config(EvalConfig, "evaluate", tmp_path / "params.yaml")
    assert cfg.predict_threads == 2
    seen: list[tuple[int, int]] = []

    def counting(path: Path, names: list[str]):
        inner = stand_in_predictor(path, names)

        def predict(x: np.ndarray) -> np.ndarray:
            seen.append((torch.get_num_threads(), current_parts()))
            return inner(x)

        return predict

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        pcfg = load_config(PersonalConfig, "personal", tmp_path / "params.yaml")
        run_evaluate(cfg, pcfg, None, Layout(tmp_path), counting, lambda *_: None)
        assert seen and set(seen) == {(1, 2)}
        assert torch.get_num_threads() == 3 and current_parts() == 1
    finally:
        torch.set_num_threads(before)
