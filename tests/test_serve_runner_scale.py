"""The band's runner scale on the serving side: `hrpred profile` stores per run the band score
of its headline prediction (`record.score_sq`), and `hrpred predict` with a profile widens or
narrows the headline's band by the plan's factor, 1 + rule(score - ref) / ref over the scores
of the runs that started strictly before the predicted one (params `personal.runner_scale`,
carried in the bundle; `ref`: the calibration's `runner_ref`), as evaluate scores it.

A small random history model (no training, randomised spread head) is enough: the factor is
checked against an independent pandas computation from the stored records, the band against
numpy on the network's spread, the calibration table and that factor.
"""

from __future__ import annotations

import json
import shutil
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
from hrpred.serve.profile import Profile, ProfileError, build_profile, load_profile, save_profile
from hrpred.uncertainty import Calibration
from tests.predict_fixtures import FEATURES, runner_workout, write_gpx, write_test_bundle

DAY_S = 86400.0
K_MAX = 10
STEP = {"all": 1.5, "0": 2.4, "3-9": 1.3, "10+": 1.2}  # "1-2": the pooled multiplier
AVERAGE = {"all": 1.1, "0": 1.9, "3-9": 0.9, "10+": 0.8}
COUNTS = {"all": 200, "0": 30, "1-2": 9, "3-9": 90, "10+": 71}
RULE = {"k": 3, "shrink": 1.5, "half_life_days": 20.0}  # k < the earlier runs: the cut counts


def calibration(ref: float | None) -> Calibration:
    """The band's table with the runner scale's reference score `ref` (None: no runner scale,
    as a bundle exported before it)."""
    return Calibration(0.8, STEP, AVERAGE, COUNTS, runner_ref=ref)


def with_rules(src: Path, dst: Path, cal: Calibration, **rule: float) -> Path:
    """A copy of bundle `src` carrying `cal` as its band, the runner-scale rule RULE (changed
    by `rule`) and no level-change detection (every earlier run describes the runner), as
    export would write them from params (the weights are the same)."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["band"] = cal.to_json()
    config["personal"]["runner_scale"] = {**RULE, **rule}
    config["personal"]["change"]["max_runs"] = 0
    (dst / "config.json").write_text(json.dumps(config))
    return dst


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


def scores(profile: Profile) -> pd.Series:
    """Each run's band score sqrt(score_sq / n), from the stored records."""
    recs = profile.records()
    return pd.Series([np.sqrt(r.score_sq / r.n) for r in recs], index=range(1, len(recs) + 1))


def _ref(profile: Profile) -> float:
    """A reference score below the runner's: a factor clearly above 1."""
    return 0.6 * float(scores(profile).median())


def _start(path: Path) -> float:
    return float(read_activity(path).timestamp[0])


def hand_factor(content: dict, start: float, ref: float, k: int, shrink: float, hl: float):
    """The runner-scale factor written out with pandas from the stored score_sq and n: the k
    most recent runs that started before `start`, runs without a valid step left out,
    weights exp(-ln 2 days / half-life), 1 + sum w (score - ref) / (sum w + shrink) / ref."""
    table = pd.DataFrame(
        {
            "start": [r["start_time"] for r in content["runs"]],
            "sq": [r["record"]["score_sq"] for r in content["runs"]],
            "n": [r["record"]["n"] for r in content["runs"]],
        }
    )
    recent = table[(table["start"] < start) & (table["n"] > 0)]
    recent = recent.sort_values("start", ascending=False).head(k)
    if recent.empty:
        return 1.0, 0
    w = np.exp(-np.log(2.0) * (start - recent["start"]) / DAY_S / hl)
    dev = np.sqrt(recent["sq"] / recent["n"]) - ref
    return max(1.0 + float((w * dev).sum() / (w.sum() + shrink)) / ref, 0.0), len(recent)


def plan_of(bundle, profile: Profile, path: Path):
    """The run of `path` personalised from the profile (its plan, curves and spread), with the
    bundle's calibration reference, and the grid predict reads."""
    act = read_activity(path)
    pred = predict_activity(bundle, act)
    pop, spread = bundle.predict_spread(pred.features)
    cal = bundle.calibration
    done, _ = profile.personalise(bundle, float(act.timestamp[0]), pred.features,
                                  np.asarray(pop, np.float64), spread,
                                  None if cal is None else cal.runner_ref)  # fmt: skip
    return done, act, pred


def test_profile_stores_the_score_of_the_headline(bundle_dir, runs):
    """score_sq = sum over valid steps of ((recorded - headline) / spread)^2, the headline and
    the network's spread of the run personalised from the runs before it, recomputed here on
    predict's grid."""
    bundle = load_bundle(bundle_dir)
    full = build_profile(bundle, runs["past"])[0]
    for i in (0, 3):  # no earlier run, and three
        before = build_profile(bundle, runs["past"][:i])[0]
        done, act, pred = plan_of(bundle, before, runs["past"][i])
        assert done.plan.earlier == i
        rec = on_grid(act.timestamp, act.heart_rate, pred.grid.timestamp)
        ok = np.isfinite(rec) & (rec >= HR_MIN_BPM) & (rec <= HR_MAX_BPM) & ~pred.grid.paused
        z = (rec[ok] - done.curves.headline[ok]) / np.asarray(done.spread, np.float64)[ok]
        stored = full.runs[i]["record"]
        assert stored["n"] == int(ok.sum()) > 100
        assert stored["score_sq"] == pytest.approx(float((z * z).sum()), rel=1e-9)
    s = scores(full)
    assert s.index.tolist() == [1, 2, 3, 4, 5] and (s > 0).all()


def test_factor_reads_only_earlier_runs(bundle_dir, profile, runs, tmp_path) -> None:
    bundle = load_bundle(with_rules(bundle_dir, tmp_path / "b", calibration(_ref(profile))))
    more, _ = build_profile(bundle, [*runs["past"], runs["later"], runs["wild"], runs["after"]])
    plain, _ = build_profile(bundle, [*runs["past"], runs["later"], runs["after"]])
    assert more.content["n_runs"] == 8

    def factor(prof: Profile, path: Path) -> tuple[float, int]:
        plan = plan_of(bundle, prof, path)[0].plan
        return plan.factor, plan.factor_runs

    # the wild run (day 20) changes nothing before it: not the later run's, not an earlier one's
    for path in (runs["later"], runs["past"][3]):
        assert factor(more, path) == factor(profile, path)
    # ... nor the wild run's own plan (strictly before) ...
    assert factor(more, runs["wild"]) == factor(plain, runs["wild"])
    # ... but a run after it reads it (the test can fail)
    got, n = factor(more, runs["after"])
    assert n == 3 and got > factor(plain, runs["after"])[0] + 0.1


def test_factor_matches_a_hand_computation(bundle_dir, profile, runs, tmp_path) -> None:
    ref = _ref(profile)
    bundle = load_bundle(with_rules(bundle_dir, tmp_path / "b3", calibration(ref)))
    for path in (runs["later"], runs["past"][2], runs["past"][1], runs["after"]):
        want, n_want = hand_factor(profile.content, _start(path), ref, 3, 1.5, 20.0)
        plan = plan_of(bundle, profile, path)[0].plan
        assert plan.factor == pytest.approx(want, rel=1e-12) and plan.factor_runs == n_want
    assert plan_of(bundle, profile, runs["later"])[0].plan.factor > 1.1  # ref below the scores
    # a run without a valid step has no score: skipped, the 3 most recent with one are read
    content = json.loads(json.dumps(profile.content))
    content["runs"][4]["record"].update(n=0, score_sq=0.0)
    holed = Profile(content)
    plan = plan_of(bundle, holed, runs["later"])[0].plan
    want, n_want = hand_factor(content, _start(runs["later"]), ref, 3, 1.5, 20.0)
    assert plan.factor_runs == n_want == 3 and plan.earlier == 4
    assert plan.factor == pytest.approx(want, rel=1e-12)
    assert plan.factor != pytest.approx(plan_of(bundle, profile, runs["later"])[0].plan.factor)
    # other rule constants are read from the bundle (params personal.runner_scale)
    wide = load_bundle(with_rules(bundle_dir, tmp_path / "b10", calibration(ref), k=10, shrink=0))
    plan = plan_of(wide, profile, runs["later"])[0].plan
    assert plan.factor_runs == 5
    assert plan.factor == pytest.approx(hand_factor(profile.content, _start(runs["later"]), ref,
                                                    10, 0.0, 20.0)[0])  # fmt: skip
    # factor 1: no earlier run, k = 0, no runner scale in the calibration
    assert plan_of(bundle, profile, runs["past"][0])[0].plan.factor == 1.0
    off = load_bundle(with_rules(bundle_dir, tmp_path / "k0", calibration(ref), k=0))
    assert plan_of(off, profile, runs["later"])[0].plan.factor == 1.0
    none = load_bundle(with_rules(bundle_dir, tmp_path / "none", calibration(None)))
    plan = plan_of(none, profile, runs["later"])[0].plan
    assert (plan.factor, plan.factor_runs) == (1.0, 0)


def test_personal_band_is_the_factor_times_q_times_spread(
    bundle_dir, profile, runs, tmp_path, capsys
) -> None:
    ref = _ref(profile)
    banded = load_bundle(with_rules(bundle_dir, tmp_path / "banded", calibration(ref)))
    old = load_bundle(with_rules(bundle_dir, tmp_path / "old", calibration(None)))
    act = read_activity(runs["later"])
    factor, n_runs = hand_factor(profile.content, float(act.timestamp[0]), ref, 3, 1.5, 20.0)
    assert factor > 1.1 and n_runs == 3
    pred = predict_activity(banded, act, profile=profile)
    s, f = pred.summary, pred.frame
    assert s["headline"] == "personal" and s["learned"]["context_runs"] == 5
    mine = s["personal"]["band"]
    assert mine["history_runs"] == 5 and mine["runner_runs"] == 3
    assert mine["runner_factor"] == pytest.approx(factor, abs=1e-4)
    # the headline (the run personalised from the 5 earlier runs) -/+ f q(3-9) spread
    done = plan_of(banded, profile, runs["later"])[0]
    center = done.curves.headline
    np.testing.assert_allclose(
        np.interp(act.timestamp, pred.grid.timestamp, center), f["hr_personal"], atol=1e-6
    )
    b = np.asarray(done.spread, np.float64)
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
    """A version 3 profile (per-run residuals, no records) is refused with one line; the
    current version with a record missing is malformed, one line."""
    content = json.loads(json.dumps(profile.content))
    content["format_version"] = 3
    for r in content["runs"]:
        r["residuals"] = {"cold": {"n": r["record"]["n"], "sum": r["record"]["cold_sum"]}}
        del r["record"], r["plan"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(content))
    with pytest.raises(
        ProfileError, match="format 3 is older than this hrpred.*rebuild it"
    ) as info:
        load_profile(old)
    assert "\n" not in str(info.value)
    args = ["predict", str(runs["later"]), "--bundle", str(bundle_dir), "--profile", str(old)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "rebuild it" in err and err.count("\n") == 1
    # the current version without the records: the field named, one line
    content["format_version"] = profile.content["format_version"]
    old.write_text(json.dumps(content))
    with pytest.raises(ProfileError, match=r"runs\[0\]\.record is missing") as info:
        load_profile(old)
    assert "\n" not in str(info.value) and "record" in str(info.value)
    # one record with a field missing: the same
    broken = json.loads(json.dumps(profile.content))
    del broken["runs"][2]["record"]["abs_sum"]["learned"]
    old.write_text(json.dumps(broken))
    with pytest.raises(
        ProfileError, match=r"runs\[2\]\.record\.abs_sum\.learned is missing"
    ) as info:
        load_profile(old)
    assert "\n" not in str(info.value)
