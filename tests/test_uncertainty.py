"""The 80% band (issue 14): conformal quantile against numpy, calibration on a synthetic case
with known noise, `band_of` (the one band function: per step and workout average, history
bucket and runner scale) against a hand computation, the calibration file with its runner-scale
reference, and a spread head that leaves the central prediction untouched."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from fake_eval_data import write_data
from test_personal_model import add_user_levels

from hrpred.model import load_checkpoint
from hrpred.train import loop
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import load_train_data
from hrpred.train.losses import spread_nll
from hrpred.uncertainty import (
    BandConfig,
    Calibration,
    CalibrationError,
    band,
    band_of,
    calibrate,
    conformal_quantile,
    coverage,
    pinball,
    runner_interval,
    workout_level,
)


def test_conformal_quantile_is_the_finite_sample_rank() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 5, 37, 1000):
        s = rng.exponential(size=n)
        k = min(math.ceil((n + 1) * 0.8), n)
        assert conformal_quantile(s, 0.8) == np.sort(s)[k - 1]
        # the rank is never below numpy's plain quantile
        assert conformal_quantile(s, 0.8) >= np.quantile(s, 0.8, method="lower")
    assert math.isnan(conformal_quantile(np.array([]), 0.8))


def _laplace_rows(rng: np.random.Generator, n: int, t: int, scale: np.ndarray):
    """Rows with known Laplace noise: the center is the truth, spread = the true scale."""
    center = rng.normal(150, 10, size=(n, t))
    spread = np.repeat(scale[:, None], t, axis=1)
    y = center + rng.laplace(0.0, spread)
    return y, center, spread, np.ones((n, t), bool)


def test_calibration_recovers_the_known_noise_and_covers_80_percent() -> None:
    rng = np.random.default_rng(1)
    cfg = BandConfig(level=0.8, min_workouts=15, pool_history=False)
    sizes = np.repeat([0, 2, 5, 20], 50)
    # the spread head is 2x too small for history 0, right elsewhere: calibration fixes both
    true = np.where(sizes == 0, 8.0, 3.0)
    head = np.where(sizes == 0, 4.0, 3.0)
    y, c, _, v = _laplace_rows(rng, len(sizes), 100, true)
    cal = calibrate(y, c, np.repeat(head[:, None], 100, axis=1), v, sizes, cfg)
    # |r| / b ~ Exp(1) where the head is right: its quantile at the workout-corrected level
    # ceil(51 * 0.8) / 50 = 0.82 is -ln(0.18)
    level = math.ceil(51 * 0.8) / 50
    assert level == workout_level(50, 0.8) == 0.82
    assert cal.step["10+"] == pytest.approx(-math.log(1 - level), rel=0.05)
    assert cal.step["0"] == pytest.approx(-2 * math.log(1 - level), rel=0.05)
    # fresh data from the same process: 80% coverage per bucket
    y2, c2, _, v2 = _laplace_rows(rng, len(sizes), 100, true)
    s2 = np.repeat(head[:, None], 100, axis=1)
    lo, hi = band(c2, s2, cal.multipliers(sizes))
    for b in (0, 2, 5, 20):
        sel = sizes == b
        assert coverage(y2[sel], lo[sel], hi[sel], v2[sel]) == pytest.approx(level, abs=0.02)
    # uncalibrated, the 0-history band would cover much less
    lo0, hi0 = band(c2, s2, math.log(5))
    assert coverage(y2[sizes == 0], lo0[sizes == 0], hi0[sizes == 0], v2[sizes == 0]) < 0.6
    # the round trip through JSON keeps every constant
    assert Calibration.from_json(cal.to_json()) == cal


def test_small_buckets_use_the_pooled_constant() -> None:
    rng = np.random.default_rng(2)
    sizes = np.array([0] * 40 + [1] * 3)
    y, c, s, v = _laplace_rows(rng, len(sizes), 50, np.full(len(sizes), 3.0))
    cal = calibrate(
        y,
        c,
        s,
        v,
        sizes,
        BandConfig(level=0.8, min_workouts=15, pool_history=False),
    )
    assert "1-2" not in cal.step and cal.n_workouts["1-2"] == 3
    assert cal.multipliers(np.array([1]))[0] == cal.step["all"]


def test_pooled_history_shares_one_multiplier_and_keeps_the_cold_one() -> None:
    """pool_history: every bucket with history gets the quantile of all their scores together
    (checked against the per-bucket calibration of the same rows relabelled as one bucket);
    the cold bucket keeps its own."""
    rng = np.random.default_rng(4)
    sizes = np.repeat([0, 1, 5, 20], [30, 20, 25, 35])
    true = np.where(sizes == 0, 8.0, np.where(sizes < 10, 3.5, 2.5))
    y, c, _, v = _laplace_rows(rng, len(sizes), 60, true)
    s = np.full(y.shape, 3.0)
    cfg = BandConfig(level=0.8, min_workouts=15, pool_history=True)
    cal = calibrate(y, c, s, v, sizes, cfg)
    apart = calibrate(y, c, s, v, sizes, replace(cfg, pool_history=False))
    assert cal.step["0"] == apart.step["0"] and cal.average["0"] == apart.average["0"]
    as_one = calibrate(y, c, s, v, np.where(sizes > 0, 20, 0), replace(cfg, pool_history=False))
    for b in ("1-2", "3-9", "10+"):
        assert cal.step[b] == as_one.step["10+"] and cal.average[b] == as_one.average["10+"]
    assert len({apart.step[b] for b in ("1-2", "3-9", "10+")}) == 3  # apart, they differ
    assert cal.n_workouts == apart.n_workouts == {"all": 110, "0": 30, "1-2": 20, "3-9": 25,
                                                  "10+": 35}  # fmt: skip


def test_runner_interval_resamples_runners_not_steps() -> None:
    """Against a plain pandas/loop reference with the same draws; a runner-level error widens
    the interval, identical runners collapse it."""
    rng = np.random.default_rng(3)
    runners = np.repeat([7, 3, 9, 5], [4, 2, 5, 1])
    valid = rng.integers(50, 100, len(runners))
    inside = np.floor(valid * rng.uniform(0.3, 1.0, len(runners)))
    lo, hi = runner_interval(inside, valid, runners, 500, seed=11)
    per = pd.DataFrame({"r": runners, "i": inside, "n": valid}).groupby("r").sum()
    pick = np.random.default_rng(11).integers(0, len(per), (500, len(per)))
    cov = [per["i"].to_numpy()[p].sum() / per["n"].to_numpy()[p].sum() for p in pick]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(cov, [0.05, 0.95])))
    assert lo < inside.sum() / valid.sum() < hi
    same = runner_interval(np.full(6, 80.0), np.full(6, 100.0), np.arange(6), 200, seed=0)
    assert same == pytest.approx((0.8, 0.8))
    assert all(math.isnan(x) for x in runner_interval(inside, valid, runners, 0, seed=0))


def test_pinball_matches_a_hand_computation() -> None:
    y = np.array([[1.0, 2.0, 3.0]])
    q = np.array([[2.0, 2.0, 2.0]])
    v = np.array([[True, True, False]])
    # tau 0.9: y<q -> (1-0.9)*1 = 0.1; y=q -> 0; third step masked
    assert pinball(y, q, 0.9, v) == pytest.approx(0.05)


def test_spread_nll_against_torch_laplace() -> None:
    torch.manual_seed(0)
    raw, z, y = torch.randn(2, 5), torch.randn(2, 5), torch.randn(2, 5)
    m = torch.ones(2, 5, dtype=torch.bool)
    m[1, 3:] = False
    b = torch.nn.functional.softplus(raw) + 1e-3
    ref = -torch.distributions.Laplace(z, b).log_prob(y)[m].mean() - math.log(2)
    assert spread_nll(raw, z, y, m).item() == pytest.approx(ref.item(), rel=1e-5)


def test_the_spread_head_never_changes_the_central_prediction(
    tmp_path, config, monkeypatch
) -> None:
    """Training with the spread loss and with it zeroed gives byte-identical central weights
    (the loss reads detached outputs, its head is created last, it is clipped on its own)."""
    write_data(tmp_path, n=60, t=20, seed=3)
    add_user_levels(tmp_path)
    cfg = replace(config(TrainConfig, "train"), hidden=8, layers=1, batch_size=8, max_epochs=2)
    data = load_train_data(tmp_path / "data" / "features", tmp_path / "data" / "split")

    def train(name: str) -> dict[str, torch.Tensor]:
        paths = TrainPaths(tmp_path / f"{name}.pt", tmp_path / f"{name}_ckpt.pt", None)
        loop.fit(cfg, data, paths)
        return load_checkpoint(paths.model)[1]["state_dict"]

    with_spread = train("a")
    monkeypatch.setattr(loop, "spread_nll", lambda raw, *a: raw.sum() * 0.0)
    without = train("b")
    central = [k for k in with_spread if not k.startswith("spread.")]
    assert central and all(torch.equal(with_spread[k], without[k]) for k in central)
    # and the spread head did learn (the comparison above could fail)
    assert not torch.equal(with_spread["spread.weight"], without["spread.weight"])


CAL = Calibration(
    0.8,
    {"all": 1.5, "0": 2.0, "3-9": 1.2, "10+": 1.1},  # "1-2": the pooled multiplier
    {"all": 1.1, "0": 1.8, "3-9": 0.9, "10+": 0.7},
    {"all": 80, "0": 20, "1-2": 5, "3-9": 30, "10+": 25},
    runner_ref=1.05,
)


def test_band_of_against_a_hand_computation() -> None:
    """Per step: center -/+ q_step(bucket) x factor x spread; the workout average: the mean
    center over the valid steps -/+ q_average(bucket) x factor x the mean spread over them."""
    rng = np.random.default_rng(7)
    center = rng.normal(150, 8, (3, 12))
    spread = rng.uniform(2, 5, (3, 12))
    valid = rng.random((3, 12)) > 0.25
    used, factor = np.array([0, 2, 12]), np.array([1.0, 1.4, 0.8])
    b = band_of(CAL, center, spread, used, factor, valid)
    for i, (q, qa) in enumerate([(2.0, 1.8), (1.5, 1.1), (1.1, 0.7)]):  # 0, 1-2 pooled, 10+
        half = q * factor[i] * spread[i]
        np.testing.assert_allclose(b.lower[i], center[i] - half, rtol=1e-12)
        np.testing.assert_allclose(b.upper[i], center[i] + half, rtol=1e-12)
        v = valid[i]
        mean = sum(c for c, ok in zip(center[i], v, strict=True) if ok) / v.sum()
        avg_half = qa * factor[i] * spread[i][v].mean()
        assert b.average[i] == pytest.approx(mean, rel=1e-12)
        assert (b.average_lower[i], b.average_upper[i]) == pytest.approx(
            (mean - avg_half, mean + avg_half), rel=1e-12
        )
    # one curve [T], int bucket, scalar factor: the same numbers as its row of a batch
    one = band_of(CAL, center[2], spread[2], 12, 0.8, valid[2])
    np.testing.assert_array_equal(one.lower, b.lower[2])
    assert float(one.average_upper) == b.average_upper[2]
    # factor 1 by default; without `valid` every step where center and spread are finite
    c = center[1].copy()
    c[:3] = np.nan
    plain = band_of(CAL, c, spread[1], 5)
    assert float(plain.average) == pytest.approx(np.mean(c[3:]), rel=1e-12)
    avg_half = 0.9 * spread[1][3:].mean()
    assert float(plain.average_upper) == pytest.approx(np.mean(c[3:]) + avg_half, rel=1e-12)
    np.testing.assert_allclose(plain.upper[3:], c[3:] + 1.2 * spread[1][3:], rtol=1e-12)
    # a row without a valid step has no average (nan), and no error
    none = band_of(CAL, center, spread, used, factor, np.zeros_like(valid))
    assert np.isnan(none.average).all() and np.isnan(none.average_lower).all()


def test_calibration_round_trips_the_runner_reference() -> None:
    assert Calibration.from_json(CAL.to_json()) == CAL
    assert CAL.to_json()["runner_ref"] == 1.05 and "runner" not in CAL.to_json()
    no_scale = Calibration(0.8, {"all": 1.3}, {"all": 1.1}, {"all": 9})
    assert Calibration.from_json(no_scale.to_json()).runner_ref is None
    # a calibration of before the engine (`runner`: the old rule with its reference) loads
    # cleanly without a runner scale: the rule now lives in params personal.runner_scale
    old = {k: v for k, v in CAL.to_json().items() if k != "runner_ref"}
    old["runner"] = {"ref": 1.04, "k": 10, "shrink": 5.0, "half_life_days": 60.0}
    loaded = Calibration.from_json(old)
    assert loaded.runner_ref is None and loaded.step == CAL.step
    # a reference that is no positive finite number: one line
    for bad in (0.0, -1.0, float("nan"), "high", [1.0]):
        with pytest.raises(CalibrationError, match="malformed calibration") as info:
            Calibration.from_json({**CAL.to_json(), "runner_ref": bad})
        assert "\n" not in str(info.value)
    with pytest.raises(CalibrationError, match="not an hrpred calibration"):
        Calibration.from_json({"format": "hrpred-calibration-v0"})
    with pytest.raises(CalibrationError, match="pooled"):
        Calibration.from_json({**CAL.to_json(), "step": {"0": 1.0}})
