"""Featurize stage on a synthetic clean file: contract, streaming equivalence, determinism."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from synthetic_clean import SCHEMA, make_clean_rows, write_clean

from hrpred.features.batch import featurize_batch
from hrpred.features.registry import WorkoutInputs, compute_features

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the `stages` package lives at the repository root

# the committed feature list (params.yaml is its only home)
DEFAULT_FEATURES = tuple(
    yaml.safe_load((ROOT / "params.yaml").read_text())["featurize"]["features"]
)
FEATURE_FILES = ("features.npy", "target.npy", "mask.npy", "elapsed.npy", "index.parquet",
                 "feature_names.json")  # fmt: skip


def write_params(root: Path, **featurize: object) -> None:
    """The real params.yaml with small featurize/split changes (every other value as committed)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["featurize"].update({"seq_len": 100, "batch_size": 7, **featurize})
    params["split"].update({"min_workouts": 3, "scaler_block_rows": 8})
    (root / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_clean(tmp_path / "data/clean/workouts.parquet", make_clean_rows())
    write_params(tmp_path)
    return tmp_path


def run_featurize() -> None:
    importlib.import_module("stages.featurize").main()


def test_stage_writes_contract(workdir: Path) -> None:
    run_featurize()
    out = workdir / "data/features"
    rows = make_clean_rows()
    x = np.load(out / "features.npy")
    y = np.load(out / "target.npy")
    m = np.load(out / "mask.npy")
    e = np.load(out / "elapsed.npy")
    idx = pd.read_parquet(out / "index.parquet")
    names = json.loads((out / "feature_names.json").read_text())
    n = len(rows)
    assert x.shape == (n, 100, 14) and x.dtype == np.float32
    assert y.shape == m.shape == e.shape == (n, 100)
    assert y.dtype == np.float32 and m.dtype == np.bool_ and e.dtype == np.float32
    assert names == list(DEFAULT_FEATURES)
    for c in ("row", "workout_id", "user_id", "start_time", "length", "duration_s",
              "mean_speed_kmh", "speed_source"):  # fmt: skip
        assert c in idx.columns
    assert idx["row"].tolist() == list(range(n))
    assert idx["workout_id"].tolist() == [r["workout_id"] for r in rows]
    # Row 3 equals a direct computation on the same workout (no scaling, same order).
    r = rows[3]
    k = min(len(r["timestamp"]), 100)
    w = WorkoutInputs.from_arrays(r["timestamp"], r["speed"], r["altitude"], r["gender"])
    np.testing.assert_array_equal(x[3, :k], compute_features(DEFAULT_FEATURES, w)[:k])
    np.testing.assert_array_equal(y[3, :k], np.asarray(r["heart_rate"][:k], np.float32))
    np.testing.assert_array_equal(m[3, :k], np.asarray(r["hr_valid"][:k]))
    assert not m[3, k:].any()
    assert idx.loc[3, "length"] == k and idx.loc[3, "n_valid"] == m[3].sum()
    assert idx.loc[3, "start_time"] == r["timestamp"][0]


def test_stage_is_deterministic_and_batch_size_independent(workdir: Path) -> None:
    run_featurize()
    first = {f: (workdir / "data/features" / f).read_bytes() for f in FEATURE_FILES}
    write_params(workdir, batch_size=1000)
    run_featurize()
    for f in FEATURE_FILES:
        assert (workdir / "data/features" / f).read_bytes() == first[f], f


def test_windows_mode_scores_every_valid_step_once(workdir: Path) -> None:
    write_params(workdir, long_workouts="windows", seq_len=64)
    run_featurize()
    rows = make_clean_rows()
    m = np.load(workdir / "data/features/mask.npy")
    idx = pd.read_parquet(workdir / "data/features/index.parquet")
    assert len(idx) > len(rows)
    assert m.sum() == sum(int(np.sum(r["hr_valid"])) for r in rows)
    assert idx["workout_id"].nunique() == len(rows)


def test_missing_input_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    with pytest.raises(SystemExit, match="dvc repro clean"):
        run_featurize()


def test_unknown_feature_is_a_one_line_error(workdir: Path) -> None:
    write_params(workdir, features=["speed", "heart_rate"])
    with pytest.raises(SystemExit, match="unknown feature"):
        run_featurize()


def test_batch_survives_mismatched_lengths_and_nulls() -> None:
    rows = make_clean_rows(n_users=1, seed=5)[:2]
    rows[0]["speed"] = rows[0]["speed"][:-3]  # shorter than timestamp
    rows[1]["heart_rate"] = [None] * len(rows[1]["heart_rate"])
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    fb = featurize_batch(batch, DEFAULT_FEATURES, 300, "truncate")
    assert fb.index["length_mismatch"].tolist() == [True, False]
    n0 = len(rows[0]["timestamp"])
    assert not fb.mask[0, n0 - 3 : n0].any()  # the missing speed steps are masked
    assert not fb.mask[1].any() and np.isfinite(fb.features).all()


def test_split_stage_runs_on_featurized_output(workdir: Path) -> None:
    run_featurize()
    importlib.import_module("stages.split").main()
    table = pd.read_parquet(workdir / "data/split/assignment.parquet")
    metrics = json.loads((workdir / "metrics/split.json").read_text())
    scaler = json.loads((workdir / "data/split/scaler.json").read_text())
    assert list(table.columns) == ["row", "workout_id", "user_id", "split"]
    assert set(table["split"]) <= {"train", "val", "test"}
    w = metrics["workouts"]
    assert w["train"] + w["val"] + w["test"] + w["dropped"] == w["total"] == len(table)
    assert "gender" not in scaler and len(scaler) == 13
    assert all(v["std"] > 0 for v in scaler.values())
    outs = [workdir / "data/split/assignment.parquet", workdir / "data/split/scaler.json"]
    first = [p.read_bytes() for p in outs]
    importlib.import_module("stages.split").main()
    assert [p.read_bytes() for p in outs] == first


def test_features_file_ignores_heart_rate(workdir: Path) -> None:
    run_featurize()
    before = (workdir / "data/features/features.npy").read_bytes()
    target_before = (workdir / "data/features/target.npy").read_bytes()
    rows = make_clean_rows()
    for r in rows:
        r["heart_rate"] = [200.0 - h for h in r["heart_rate"]]
        r["heart_rate_raw"] = r["heart_rate"]
    write_clean(workdir / "data/clean/workouts.parquet", rows)
    run_featurize()
    assert (workdir / "data/features/features.npy").read_bytes() == before
    assert (workdir / "data/features/target.npy").read_bytes() != target_before
