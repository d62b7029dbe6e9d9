"""The band's runner scale on the serving side: `hrpred profile` stores per run the score of
its personalised prediction (`residuals.personal.score_sq`), and `hrpred predict` with a
profile widens or narrows the learned personalised band by the factor from the runs that
started strictly before the predicted one (`profile_runner_factor`), as evaluate scores it.

A small random history model (no training, randomised spread head) is enough: the factor is
checked against an independent pandas computation from the stored scores, the band against
numpy on the network's spread, the calibration table and that factor.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrpred.bundle.runtime import load_bundle
from hrpred.io.activity import HR_MAX_BPM, HR_MIN_BPM
from hrpred.io.userfiles import read_activity
from hrpred.serve.cli import main
from hrpred.serve.inputs import on_grid
from hrpred.serve.predict import predict_activity
from hrpred.serve.profile import (
    Profile,
    ProfileError,
    build_profile,
    load_profile,
    profile_context,
    profile_runner_factor,
    save_profile,
)
from hrpred.uncertainty import Calibration
from tests.predict_fixtures import FEATURES, runner_workout, write_gpx, write_test_bundle
from tests.test_predict import with_band

DAY_S = 86400.0
K_MAX = 10
STEP = {"all": 1.5, "0": 2.4, "3-9": 1.3, "10+": 1.2}  # "1-2": the pooled multiplier
AVERAGE = {"all": 1.1, "0": 1.9, "3-9": 0.9, "10+": 0.8}
COUNTS = {"all": 200, "0": 30, "1-2": 9, "3-9": 90, "10+": 71}
RULE = {"k": 3.0, "shrink": 1.5, "half_life_days": 20.0}  # k < the earlier runs: the cut counts


def calibration(ref: float | None, **rule: float) -> Calibration:
    """The band's table with a runner scale of reference score `ref` (None: no runner scale,
    as a bundle exported before it)."""
    runner = None if ref is None else {"ref": ref, **RULE, **rule}
    return Calibration(0.8, STEP, AVERAGE, COUNTS, runner)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    """A random history model (condition design) with a spread varying along the run."""
    import torch

    from hrpred.features.registry import BINARY_FEATURES
    from hrpred.model import HistoryHRModel, make_checkpoint
    from hrpred.personal.context import CONTEXT_FEATURES
    from hrpred.personal.summaries import SUMMARY_FEATURES

    torch.manual_seed(5)
    arch = {"input_size": len(FEATURES), "hidden": 16, "layers": 1, "dropout": 0.0,
            "bidirectional": False}  # fmt: skip
    meta = {"design": "condition", "k_max": K_MAX, "context_size": len(CONTEXT_FEATURES),
            "enc_hidden": 16, "embed": 8}  # fmt: skip
    model = HistoryHRModel(arch, meta, 145.0, 14.0)
    with torch.no_grad():
        model.spread.weight.normal_(0.0, 0.5)
    meta = {**meta, "context_features": list(CONTEXT_FEATURES),
            "summary_features": list(SUMMARY_FEATURES),
            "scaler": {"mean": [140.0] * len(CONTEXT_FEATURES),
                       "std": [10.0] * len(CONTEXT_FEATURES)}}  # fmt: skip
    scaler = {f: {"mean": 5.0, "std": 10.0} for f in FEATURES if f not in BINARY_FEATURES}
    ckpt = make_checkpoint(
        model, features=FEATURES, scaler=scaler, seq_len=150, best_epoch=1, val={"mae": 7.0},
        train_params={"lr": 0.001}, history=meta,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("rs") / "bundle"
    sampling = {"median_step_s": 8.0, "mean_step_s": 8.0}
    return write_test_bundle(out, ckpt, ckpt["state_dict"], sampling, {"source": "tests"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Five earlier runs (days 0, 1, 3, 6, 8), a later one (day 12) and, after it, a run with
    a wild HR (day 20) and one more (day 25)."""
    d = tmp_path_factory.mktemp("runs")
    levels = [0.0, 12.0, -8.0, 20.0, 5.0]
    past = [
        write_gpx(d / f"p{i}.gpx", runner_workout(40 + i, lv, day))
        for i, (lv, day) in enumerate(zip(levels, (0, 1, 3, 6, 8), strict=True))
    ]
    wild = runner_workout(50, 0.0, 20)
    noise = 40 * np.sin(np.arange(len(wild.timestamp)))  # far from any prediction
    wild = replace(wild, heart_rate=np.clip(wild.heart_rate + noise, 60, 200))
    return {
        "past": past,
        "later": write_gpx(d / "later.gpx", runner_workout(45, 8.0, 12)),
        "wild": write_gpx(d / "wild.gpx", wild),
        "after": write_gpx(d / "after.gpx", runner_workout(46, 8.0, 25)),
    }


@pytest.fixture(scope="module")
def profile(bundle_dir, runs) -> Profile:
    return build_profile(load_bundle(bundle_dir), runs["past"])[0]


def _ref(profile: Profile) -> float:
    """A reference score below the runner's: a factor clearly above 1."""
    return 0.6 * float(profile.scores().median())


def _start(path: Path) -> float:
    return float(read_activity(path).timestamp[0])


def hand_factor(content: dict, start: float, ref: float, k: int, shrink: float, hl: float):
    """The runner-scale factor written out with pandas from the stored score_sq and n: the k
    most recent runs that started before `start`, runs without a valid step left out,
    weights exp(-ln 2 days / half-life), 1 + sum w (score - ref) / (sum w + shrink) / ref."""
    table = pd.DataFrame(
        {
            "start": [r["start_time"] for r in content["runs"]],
            "sq": [r["residuals"]["personal"]["score_sq"] for r in content["runs"]],
            "n": [r["residuals"]["personal"]["n"] for r in content["runs"]],
        }
    )
    recent = table[table["start"] < start].sort_values("start", ascending=False).head(k)
    recent = recent[recent["n"] > 0]
    w = np.exp(-np.log(2.0) * (start - recent["start"]) / DAY_S / hl)
    dev = np.sqrt(recent["sq"] / recent["n"]) - ref
    return 1.0 + float((w * dev).sum() / (w.sum() + shrink)) / ref, len(recent)


def test_profile_stores_the_score_of_the_personalised_prediction(bundle_dir, profile, runs):
    """score_sq = sum over valid steps of ((recorded - predicted) / spread)^2, the network's
    prediction with the earlier runs as context, recomputed here on predict's grid."""
    bundle = load_bundle(bundle_dir)
    for i in (0, 3):  # no earlier run, and three
        act = read_activity(runs["past"][i])
        pred = predict_activity(bundle, act)  # the grid and features the profile reads
        ctx, used, _ = profile_context(profile, float(act.timestamp[0]), K_MAX)
        assert used == i
        hr, spread = bundle.predict_spread(pred.features, context=(ctx.values[0], ctx.mask[0]))
        rec = on_grid(act.timestamp, act.heart_rate, pred.grid.timestamp)
        ok = np.isfinite(rec) & (rec >= HR_MIN_BPM) & (rec <= HR_MAX_BPM) & ~pred.grid.paused
        z = (rec[ok] - np.asarray(hr, np.float64)[ok]) / np.asarray(spread, np.float64)[ok]
        stored = profile.runs[i]["residuals"]["personal"]
        assert stored["n"] == int(ok.sum()) > 100
        assert stored["score_sq"] == pytest.approx(float((z * z).sum()), rel=1e-9)
    scores = profile.scores()
    assert scores.index.tolist() == [1, 2, 3, 4, 5] and (scores > 0).all()


def test_factor_reads_only_earlier_runs(bundle_dir, profile, runs) -> None:
    bundle = load_bundle(bundle_dir)
    cal = calibration(_ref(profile))
    later, after = _start(runs["later"]), _start(runs["after"])
    more, _ = build_profile(bundle, [*runs["past"], runs["later"], runs["wild"], runs["after"]])
    assert more.content["n_runs"] == 8
    # the wild run (day 20) changes nothing before it: not the later run's, not an earlier one's
    for start in (later, _start(runs["past"][3])):
        assert profile_runner_factor(more, start, cal) == profile_runner_factor(profile, start, cal)
    # ... a run after it reads it (the test can fail)
    plain, _ = build_profile(bundle, [*runs["past"], runs["later"], runs["after"]])
    got, n = profile_runner_factor(more, after + 1.0, cal)
    assert n == 3 and got > profile_runner_factor(plain, after + 1.0, cal)[0] + 0.1
    # a run at the very start of the wild run does not read it either (strictly before)
    at = profile_runner_factor(more, _start(runs["wild"]), cal)
    assert at == profile_runner_factor(plain, _start(runs["wild"]), cal)


def test_factor_matches_a_hand_computation(profile, runs) -> None:
    ref = _ref(profile)
    later = _start(runs["later"])
    starts = [r["start_time"] for r in profile.runs]
    for start in (later, starts[2], starts[1] + 60.0, later + 200 * DAY_S):
        want, n_want = hand_factor(profile.content, start, ref, 3, 1.5, 20.0)
        got, n_got = profile_runner_factor(profile, start, calibration(ref))
        assert got == pytest.approx(want, rel=1e-12) and n_got == n_want
    assert profile_runner_factor(profile, later, calibration(ref))[0] > 1.1  # ref below scores
    # a run without a valid step has no score: of the 3 most recent, 2 are read
    content = json.loads(json.dumps(profile.content))
    content["runs"][4]["residuals"]["personal"].update(n=0, score_sq=0.0)
    holed = Profile(content)
    got, n = profile_runner_factor(holed, later, calibration(ref))
    assert n == 2 and got == pytest.approx(hand_factor(content, later, ref, 3, 1.5, 20.0)[0])
    # other rule constants are read from the calibration
    got, n = profile_runner_factor(profile, later, calibration(ref, k=10.0, shrink=0.0))
    assert n == 5
    assert got == pytest.approx(hand_factor(profile.content, later, ref, 10, 0.0, 20.0)[0])
    # factor 1: no earlier run, k = 0, no runner scale in the calibration
    assert profile_runner_factor(profile, starts[0], calibration(ref)) == (1.0, 0)
    assert profile_runner_factor(profile, later, calibration(ref, k=0.0)) == (1.0, 0)
    assert profile_runner_factor(profile, later, calibration(None)) == (1.0, 0)


def test_personal_band_is_the_factor_times_q_times_spread(
    bundle_dir, profile, runs, tmp_path, capsys
) -> None:
    ref = _ref(profile)
    banded = load_bundle(with_band(bundle_dir, tmp_path / "banded", calibration(ref)))
    old = load_bundle(with_band(bundle_dir, tmp_path / "old", calibration(None)))
    act = read_activity(runs["later"])
    factor, n_runs = profile_runner_factor(profile, float(act.timestamp[0]), calibration(ref))
    assert factor > 1.1 and n_runs == 3
    pred = predict_activity(banded, act, profile=profile)
    s, f = pred.summary, pred.frame
    assert s["headline"] == "personal" and s["personal"]["context_runs"] == 5
    mine = s["personal"]["band"]
    assert mine["history_runs"] == 5 and mine["runner_runs"] == 3
    assert mine["runner_factor"] == pytest.approx(factor, abs=1e-4)
    # the network with the 5 earlier runs as context + residual correction -/+ f q spread
    ctx, _, _ = profile_context(profile, float(act.timestamp[0]), K_MAX)
    net, spread = banded.predict_spread(pred.features, context=(ctx.values[0], ctx.mask[0]))
    center = np.asarray(net, np.float64) + s["personal"]["residual_bpm"]
    b = np.asarray(spread, np.float64)
    half = factor * STEP["3-9"] * b
    t, grid_t = act.timestamp, pred.grid.timestamp
    np.testing.assert_allclose(f["hr_p10"], np.interp(t, grid_t, center - half), atol=1e-3)
    np.testing.assert_allclose(f["hr_p90"], np.interp(t, grid_t, center + half), atol=1e-3)
    avg_half = factor * AVERAGE["3-9"] * b.mean()
    want = [center.mean() - avg_half, center.mean() + avg_half]
    assert mine["avg_hr"] == pytest.approx(want, abs=1e-3)
    # the population band: factor 1, the cold multiplier
    cold = s["band"]
    assert (cold["runner_factor"], cold["runner_runs"], cold["history_runs"]) == (1.0, 0, 0)
    # a bundle exported before the runner scale: the same band with factor 1
    before = predict_activity(old, act, profile=profile)
    assert before.summary["personal"]["band"]["runner_factor"] == 1.0
    w_new = (f["hr_p90"] - f["hr_p10"]).to_numpy()
    w_old = (before.frame["hr_p90"] - before.frame["hr_p10"]).to_numpy()
    np.testing.assert_allclose(w_new, factor * w_old, rtol=1e-5)
    assert before.summary["band"] == cold
    # the command line with the saved profile: the CSV holds the scaled band, the text says so
    me, out = tmp_path / "me.json", tmp_path / "p.csv"
    save_profile(profile, me)
    args = ["predict", str(runs["later"]), "--bundle", str(tmp_path / "banded")]
    assert main([*args, "--profile", str(me), "--out", str(out)]) == 0
    assert f"band x{factor:.2f} from 3 earlier runs" in capsys.readouterr().out
    table = pd.read_csv(out)
    for col in ("hr_p10", "hr_p50", "hr_p90"):
        np.testing.assert_allclose(table[col], f[col], atol=1e-3)


def test_old_profile_is_a_one_line_error(bundle_dir, profile, runs, tmp_path, capsys) -> None:
    content = json.loads(json.dumps(profile.content))
    content["format_version"] = 2
    for r in content["runs"]:
        del r["residuals"]["personal"]["score_sq"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(content))
    with pytest.raises(ProfileError, match="older than this hrpred.*rebuild it") as info:
        load_profile(old)
    assert "\n" not in str(info.value)
    args = ["predict", str(runs["later"]), "--bundle", str(bundle_dir), "--profile", str(old)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "rebuild it" in err and err.count("\n") == 1
    # the current version without the scores: the field named, one line
    content["format_version"] = profile.content["format_version"]
    old.write_text(json.dumps(content))
    with pytest.raises(
        ProfileError, match=r"runs\[0\]\.residuals\.personal\.score_sq is missing"
    ) as info:
        load_profile(old)
    assert "\n" not in str(info.value)
