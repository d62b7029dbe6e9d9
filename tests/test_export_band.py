"""The bundle's 80% band (issue 14): `Bundle.predict_band` / `Bundle.band`, the ONNX outputs
`spread_bpm`, `hr_p10`, `hr_p90` and their parity with PyTorch, the model card's band section,
and the two prediction backends (ONNX Runtime, PyTorch) agreeing on every output.

Small random models (no training) with a randomised spread head, so the spread varies along the
workout and with the context; the band is checked against an independent numpy computation
from the spread and the calibration table.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from hrpred.bundle.format import ONNX_LOWER, ONNX_OUTPUT, ONNX_SPREAD, ONNX_UPPER, BundleError
from hrpred.bundle.runtime import load_bundle
from hrpred.export.cards import render_model_card
from hrpred.features.registry import WorkoutInputs, compute_features
from hrpred.uncertainty import Calibration
from tests.predict_fixtures import (
    FAKE_METRICS,
    FEATURES,
    history_runs,
    personal_rules,
    simulated_workout,
    speed_rules,
)

K, T = 10, 120  # context entries, steps per row
TOLERANCE = 1e-3  # BPM: export's ONNX parity tolerance, which the backends must keep
# "1-2" too few validation workouts: falls back to the pooled multiplier
CAL = Calibration(
    0.8,
    {"all": 1.6, "0": 2.1, "3-9": 1.4, "10+": 1.2},
    {"all": 1.3, "0": 1.7, "3-9": 1.1, "10+": 0.9},
    {"all": 300, "0": 120, "1-2": 12, "3-9": 90, "10+": 78},
)
COUNTS = np.array([0, 1, 2, 3, 9, 10, 5, 0])  # context entries of the 8 test rows
BAND_REPORT = {
    "level": 0.8,
    "coverage": 0.8012,
    "width_bpm": 14.567,
    "workout_avg_coverage": 0.7931,
    "by_history": {
        "0": {"n_workouts": 40, "coverage": 0.7899, "width_bpm": 17.25,
              "workout_avg_coverage": 0.775, "n_runners": 9,
              "coverage_runner_interval_90": [0.7312, 0.8456]},
        "10+": {"n_workouts": 35, "coverage": 0.8123, "width_bpm": 11.5,
                "workout_avg_coverage": 0.8},
    },
}  # fmt: skip


def _bucket_q(count: int, table: dict[str, float]) -> float:
    """The multiplier of a history size, written out independently of hrpred's bucketing."""
    label = "0" if count == 0 else "1-2" if count <= 2 else "3-9" if count <= 9 else "10+"
    return table.get(label, table["all"])


def _features(n: int, seed: int = 0) -> np.ndarray:
    """Unscaled features [n, T, F] of simulated workouts (NaN-padded tails like real rows)."""
    out = np.full((n, T, len(FEATURES)), np.nan, dtype=np.float32)
    for i in range(n):
        m = T - 13 * (i % 4)
        w = simulated_workout(n=m, step_s=8.0, seed=seed + i)
        inputs = WorkoutInputs.from_arrays(w.timestamp, w.speed_kmh, w.altitude_m, "male")
        out[i, :m] = compute_features(FEATURES, inputs)
    return out


def _contexts(counts: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw context values around the scaler's means and masks with `counts` real entries."""
    from hrpred.personal.context import CONTEXT_FEATURES

    rng = np.random.default_rng(seed)
    values = (140 + 10 * rng.normal(size=(len(counts), K, len(CONTEXT_FEATURES)))).astype(
        np.float32
    )
    mask = np.arange(K)[None, :] < counts[:, None]
    return np.where(mask[..., None], values, 0.0).astype(np.float32), mask


def write_random_bundle(
    out: Path, *, history: bool, band: Calibration | None, check: bool = True
) -> Path:
    """A bundle of a random (history) model with a randomised spread head, ONNX included."""
    import torch

    from hrpred.export.writer import build_config, write_bundle
    from hrpred.features.registry import BINARY_FEATURES
    from hrpred.model import HistoryHRModel, build_model, make_checkpoint
    from hrpred.personal.context import CONTEXT_FEATURES
    from hrpred.personal.summaries import SUMMARY_FEATURES

    torch.manual_seed(3)
    arch = {"input_size": len(FEATURES), "hidden": 16, "layers": 1, "dropout": 0.0,
            "bidirectional": False}  # fmt: skip
    meta = None
    if history:
        meta = {"design": "condition", "k_max": K, "context_size": len(CONTEXT_FEATURES),
                "enc_hidden": 16, "embed": 8}  # fmt: skip
        model = HistoryHRModel(arch, meta, 145.0, 14.0)
        meta = {**meta, "context_features": list(CONTEXT_FEATURES),
                "summary_features": list(SUMMARY_FEATURES),
                "scaler": {"mean": [140.0] * len(CONTEXT_FEATURES),
                           "std": [10.0] * len(CONTEXT_FEATURES)}}  # fmt: skip
    else:
        model = build_model(arch, 145.0, 14.0)
    with torch.no_grad():  # visible variation of the curve and of the spread
        model.head.weight.mul_(6.0)
        model.spread.weight.normal_(0.0, 0.5)
    scaler = {f: {"mean": 5.0, "std": 10.0} for f in FEATURES if f not in BINARY_FEATURES}
    ckpt = make_checkpoint(
        model, features=FEATURES, scaler=scaler, seq_len=T, best_epoch=1, val={"mae": 7.0},
        train_params={"lr": 0.001}, history=meta,
    )  # fmt: skip
    metrics = {**FAKE_METRICS, "test": {**FAKE_METRICS["test"], "band": BAND_REPORT}}
    config = build_config(
        ckpt, metrics, {"median_step_s": 8.0, "mean_step_s": 8.0}, "median",
        {"source": "tests"}, BINARY_FEATURES, speed=speed_rules(), personal=personal_rules(),
        history_runs=history_runs(), band=None if band is None else band.to_json(),
    )  # fmt: skip
    x = _features(len(COUNTS)) if check else None
    ctx = _contexts(COUNTS) if check and history else None
    write_bundle(out, ckpt["state_dict"], config, onnx=True, check_features=x, check_context=ctx)
    return out


@pytest.fixture(scope="module")
def history_band(tmp_path_factory) -> Path:
    return write_random_bundle(tmp_path_factory.mktemp("hb") / "bundle", history=True, band=CAL)


@functools.cache
def _session(model: Path):  # -> onnxruntime.InferenceSession
    from hrpred.bundle.backends import onnx_session

    return onnx_session(model)


def _run_onnx(path: Path, x: np.ndarray, ctx=None) -> dict[str, np.ndarray]:
    session = _session(path / "model.onnx")
    feeds = {"features": x}
    if ctx is not None:
        feeds.update(context=ctx[0], context_mask=ctx[1].astype(np.float32))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def test_history_band_pytorch_and_onnx_agree_and_follow_the_table(history_band) -> None:
    bundle = load_bundle(history_band, backend="torch")
    assert bundle.calibration == CAL
    x = _features(len(COUNTS), seed=11)
    ctx = _contexts(COUNTS, seed=5)
    cold = (np.zeros_like(ctx[0]), np.zeros_like(ctx[1]))
    parity = bundle.config["onnx"]["parity"]
    assert set(parity["by_output_bpm"]) == {ONNX_OUTPUT, ONNX_SPREAD, ONNX_LOWER, ONNX_UPPER}
    assert parity["max_abs_diff_bpm"] <= 1e-3 and parity["with_history"] == 6
    for context, counts in ((ctx, COUNTS), (None, np.zeros_like(COUNTS)), (cold, 0 * COUNTS)):
        hr, lo, hi = bundle.predict_band(x, context=context)
        hr2, spread = bundle.predict_spread(x, context=context)
        np.testing.assert_array_equal(hr, hr2)
        assert hr.shape == lo.shape == hi.shape == x.shape[:2]
        assert (lo < hr).all() and (hr < hi).all()
        # independent: half-width = table[bucket(count)] * spread
        q = np.array([_bucket_q(int(c), CAL.step) for c in counts])
        np.testing.assert_allclose(hi - hr, q[:, None] * spread, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(hr - lo, q[:, None] * spread, rtol=1e-5, atol=1e-4)
        got = _run_onnx(history_band, x, context if context is not None else cold)
        assert list(got) == [ONNX_OUTPUT, ONNX_SPREAD, ONNX_LOWER, ONNX_UPPER]
        for name, want in ((ONNX_OUTPUT, hr), (ONNX_SPREAD, spread), (ONNX_LOWER, lo),
                           (ONNX_UPPER, hi)):  # fmt: skip
            assert np.abs(got[name] - want).max() <= 1e-3, name
    np.testing.assert_array_equal(hr, bundle.predict(x, context=cold))  # the same center
    assert np.ptp(spread[0]) > 0.05  # the spread varies along the workout
    # the context changes the curve and the spread, and the band follows the bucket
    hr_w, sp_w = bundle.predict_spread(x, context=ctx)
    assert np.abs(sp_w - spread)[COUNTS > 0].max() > 1e-3
    # a single workout [T, F] with a [K, C] context: [T] outputs, the same band
    one = bundle.predict_band(x[3], context=(ctx[0][3], ctx[1][3]))
    full = bundle.predict_band(x, context=ctx)
    for a, b in zip(one, full, strict=True):
        assert a.shape == (T,)
        np.testing.assert_allclose(a, b[3], atol=1e-4)


def test_workout_average_band(history_band) -> None:
    """`Bundle.band`: per step hr -/+ q_step x factor x spread, the workout average mean(hr)
    -/+ q_average x factor x mean(spread) over the valid steps, q of each row's bucket."""
    bundle = load_bundle(history_band)
    x = _features(len(COUNTS), seed=2)
    ctx = _contexts(COUNTS, seed=3)
    hr, spread = bundle.predict_spread(x, context=ctx)
    valid = np.isfinite(x).all(axis=-1)  # the NaN-padded tail is not part of the workout
    factor = np.linspace(0.7, 1.6, len(COUNTS))
    b = bundle.band(hr, spread, COUNTS, factor, valid)
    for i, c in enumerate(COUNTS):
        h, s = hr[i].astype(np.float64), spread[i].astype(np.float64)
        m = h[valid[i]].mean()
        half = _bucket_q(int(c), CAL.average) * factor[i] * s[valid[i]].mean()
        assert b.average[i] == pytest.approx(m) and b.average_lower[i] == pytest.approx(m - half)
        assert b.average_upper[i] == pytest.approx(m + half)
        step = _bucket_q(int(c), CAL.step) * factor[i] * s
        np.testing.assert_allclose(b.lower[i], h - step, rtol=1e-12)
        np.testing.assert_allclose(b.upper[i], h + step, rtol=1e-12)
    one = bundle.band(hr[2][valid[2]], spread[2][valid[2]], int(COUNTS[2]), float(factor[2]))
    assert np.ndim(one.average) == np.ndim(one.average_lower) == 0 and one.lower.ndim == 1
    got = (float(one.average), float(one.average_lower), float(one.average_upper))
    assert got == pytest.approx((b.average[2], b.average_lower[2], b.average_upper[2]))
    # the default factor is 1: predict_band's band (the ONNX outputs' band)
    _, lo, hi = bundle.predict_band(x, context=ctx)
    plain = bundle.band(hr, spread, COUNTS)
    np.testing.assert_allclose(plain.lower, lo, atol=1e-4)
    np.testing.assert_allclose(plain.upper, hi, atol=1e-4)


def test_population_band_uses_the_cold_multiplier(tmp_path) -> None:
    path = write_random_bundle(tmp_path / "pop", history=False, band=CAL)
    bundle = load_bundle(path, backend="torch")
    x = _features(4)
    hr, lo, hi = bundle.predict_band(x, context=_contexts(COUNTS[:4]))  # context ignored
    _, spread = bundle.predict_spread(x)
    np.testing.assert_allclose(hi - hr, CAL.step["0"] * spread, rtol=1e-5, atol=1e-4)
    got = _run_onnx(path, x)
    assert list(got) == [ONNX_OUTPUT, ONNX_SPREAD, ONNX_LOWER, ONNX_UPPER]
    assert (
        max(np.abs(got[n] - w).max() for n, w in zip(got, (hr, spread, lo, hi), strict=True))
        <= 1e-3
    )
    assert bundle.config["onnx"]["band"]["step_multiplier_by_context_count"] == [CAL.step["0"]]
    assert bundle.config["onnx"]["parity"]["max_abs_diff_bpm"] <= 1e-3
    # the ONNX backend (the default with model.onnx) gives the same band, context ignored
    ort = load_bundle(path)
    assert ort.backend == "onnx"
    got_band = ort.predict_band(x, context=_contexts(COUNTS[:4]))
    for a, b in zip(got_band, (hr, lo, hi), strict=True):
        assert a.dtype == np.float32 and np.abs(a - b).max() <= TOLERANCE


def test_bundle_without_band(tmp_path) -> None:
    path = write_random_bundle(tmp_path / "plain", history=True, band=None)
    bundle = load_bundle(path)
    assert bundle.calibration is None
    with pytest.raises(BundleError, match="no calibrated band") as info:
        bundle.predict_band(_features(1)[0])
    assert "\n" not in str(info.value)
    got = _run_onnx(path, _features(2), _contexts(COUNTS[:2]))
    assert list(got) == [ONNX_OUTPUT, ONNX_SPREAD]
    config = json.loads((path / "config.json").read_text())
    assert config["band"] is None and "band" not in config["onnx"]
    assert set(config["onnx"]["parity"]["by_output_bpm"]) == {ONNX_OUTPUT, ONNX_SPREAD}
    assert "## Uncertainty" not in (path / "README.md").read_text()


@pytest.mark.parametrize(
    "band",
    ["nonsense", {"format": "hrpred-calibration", "level": 0.8},
     {**CAL.to_json(), "step": {"all": -1.0}}, {**CAL.to_json(), "level": 1.5}],
)  # fmt: skip
def test_malformed_band_is_a_one_line_error(history_band, band, tmp_path) -> None:
    from hrpred.export.errors import ExportError
    from hrpred.export.writer import write_bundle

    bundle = load_bundle(history_band)
    bundle.config = {**bundle.config, "band": band}
    with pytest.raises(BundleError, match="band") as info:
        bundle.calibration  # noqa: B018 - the property raises
    assert "\n" not in str(info.value)
    with pytest.raises(ExportError, match="band"):
        write_bundle(tmp_path / "b", bundle.model.state_dict(), bundle.config, onnx=False)
    assert not (tmp_path / "b").exists()


def test_card_states_the_band(history_band) -> None:
    config = json.loads((history_band / "config.json").read_text())
    card = (history_band / "README.md").read_text()
    assert card == render_model_card(config)
    assert "## Uncertainty: the 80% band" in card and "split-conformal" in card
    assert "| 1-2 | 12 | pooled 1.60 | pooled 1.30 |" in card  # fewer than min_workouts: pooled
    assert "| 10+ | 78 | 1.20 | 0.90 |" in card and "| all | 300 | 1.60 | 1.30 |" in card
    assert "per-step coverage 80.1%, mean width 14.57 BPM" in card
    assert "workout-average band coverage 79.3%" in card
    assert "| 0 | 40 | 9 | 79.0% | 73.1%-84.6% | 17.25 | 77.5% |" in card
    assert "| 10+ | 35 | n/a | 81.2% | n/a-n/a | 11.50 | 80.0% |" in card  # older metrics
    assert f"`{ONNX_LOWER}` and `{ONNX_UPPER}`" in card
    assert not math.isnan(config["onnx"]["parity"]["by_output_bpm"][ONNX_UPPER])


def _max_diff(got, want) -> float:
    """Largest |got - want| over arrays of the same shape and dtype (float32)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype == np.float32
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())


def test_onnx_backend_matches_the_torch_backend(history_band, monkeypatch) -> None:
    """ONNX Runtime (the default with model.onnx) against PyTorch: HR, spread and band, with
    and without context, batched and single, within export's parity tolerance."""
    import hrpred.bundle.runtime as bundle_mod

    ort, ref = load_bundle(history_band), load_bundle(history_band, backend="torch")
    assert (ort.backend, ref.backend) == ("onnx", "torch")
    monkeypatch.setattr(bundle_mod, "PREDICT_BATCH", 3)  # 8 rows: batches of 3, 3, 2
    x = _features(len(COUNTS), seed=21)  # NaN-padded tails, as real rows
    ctx = _contexts(COUNTS, seed=8)
    cold = (np.zeros_like(ctx[0]), np.zeros_like(ctx[1]))
    for context in (ctx, None, cold):
        assert _max_diff(ort.predict(x, context), ref.predict(x, context)) <= TOLERANCE
        pairs = zip(ort.predict_spread(x, context), ref.predict_spread(x, context), strict=True)
        assert max(_max_diff(a, b) for a, b in pairs) <= TOLERANCE
        pairs = zip(ort.predict_band(x, context), ref.predict_band(x, context), strict=True)
        assert max(_max_diff(a, b) for a, b in pairs) <= TOLERANCE
    # the context matters on both (so the comparison above is not of two cold curves)
    assert np.abs(ort.predict(x, ctx) - ort.predict(x))[COUNTS > 0].max() > 0.01
    one = (ctx[0][3], ctx[1][3])  # a single workout [T, F] with a [K, C] context
    assert _max_diff(ort.predict(x[3], one), ref.predict(x[3], one)) <= TOLERANCE
    pairs = zip(ort.predict_spread(x[3]), ref.predict_spread(x[3]), strict=True)
    assert max(_max_diff(a, b) for a, b in pairs) <= TOLERANCE
    # a context of another length than the graph's K runs on the PyTorch model: identical
    short = (ctx[0][:, :4], ctx[1][:, :4])
    np.testing.assert_array_equal(ort.predict(x, short), ref.predict(x, short))
    # the same input errors as the PyTorch path
    for bad in (x[..., :-1], x[None]):
        with pytest.raises(ValueError) as want:
            ref.predict(bad)
        with pytest.raises(ValueError, match=re.escape(str(want.value))):
            ort.predict(bad)
    # the PyTorch model is still there, built on first use; its torch twin is the reference
    assert sum(p.numel() for p in ort.model.parameters()) > 0
    np.testing.assert_array_equal(ort.on_torch().predict(x, ctx), ref.predict(x, ctx))


def test_backend_choice_and_errors(history_band, tmp_path, monkeypatch) -> None:
    """HRPRED_BACKEND (torch, onnx, auto), a bundle without model.onnx, and broken files."""
    import shutil

    monkeypatch.setenv("HRPRED_BACKEND", "torch")
    assert load_bundle(history_band).backend == "torch"
    monkeypatch.setenv("HRPRED_BACKEND", "onnx")
    assert load_bundle(history_band).backend == "onnx"
    monkeypatch.setenv("HRPRED_BACKEND", "gpu")
    with pytest.raises(BundleError, match="HRPRED_BACKEND=gpu: must be one of") as info:
        load_bundle(history_band)
    assert "\n" not in str(info.value)
    monkeypatch.delenv("HRPRED_BACKEND")
    no_graph = shutil.copytree(history_band, tmp_path / "no_graph")
    (no_graph / "model.onnx").unlink()
    assert load_bundle(no_graph).backend == "torch"  # auto: the PyTorch model, as before
    with pytest.raises(BundleError, match="HRPRED_BACKEND=onnx: .* has no model.onnx"):
        load_bundle(no_graph, backend="onnx")
    broken = shutil.copytree(history_band, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="cannot load the ONNX graph.*HRPRED_BACKEND=torch"):
        load_bundle(broken)
    assert load_bundle(broken, backend="torch").backend == "torch"
    (broken / "model.onnx").write_bytes((history_band / "model.onnx").read_bytes())
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="cannot load the weights"):
        load_bundle(broken)  # checked at load on the ONNX backend too


def _card_metrics() -> dict:
    """Test band metrics with the buckets in the metrics file's order ("10+" before "0")."""
    report = {**BAND_REPORT, "by_history": {"10+": BAND_REPORT["by_history"]["10+"],
                                            "0": BAND_REPORT["by_history"]["0"]}}  # fmt: skip
    return {"test": {"band": report}}


def test_card_orders_the_buckets() -> None:
    """Test buckets print in history order (the metrics file sorts "10+" before "0")."""
    from hrpred.export.cards import _band_section

    text = "\n".join(_band_section({"band": CAL.to_json(), "metrics": _card_metrics()}))
    assert text.index("| 0 | 40 |") < text.index("| 10+ | 35 |")
    assert "Runner scale:" not in text  # no reference score: no runner scale


def test_card_states_the_runner_scale() -> None:
    """A bundle whose calibration has a runner-scale reference and whose personal rules have
    a runner scale (k > 0) states it on the card: the reference and the rule's constants."""
    from dataclasses import replace

    from hrpred.export.cards import _band_section

    config = {"band": replace(CAL, runner_ref=1.0657).to_json(), "metrics": _card_metrics(),
              "personal": personal_rules().to_json()}  # fmt: skip
    text = "\n".join(_band_section(config))
    k = personal_rules().runner_scale.k
    assert "Runner scale:" in text and "ref 1.07" in text and f"{k} most recent" in text
