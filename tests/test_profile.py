"""`hrpred profile` and `hrpred predict --profile/--history` (issue 13, item 6).

A tiny history model is trained on simulated runners with personal HR levels through
predict's own feature path (`predict_fixtures.make_history_bundle`); a NEW runner (never
trained on) writes earlier runs as GPX/FIT files, and the error on a later run must drop when
those earlier runs personalise it: offset (population + offset), learned (network with
context + residual correction) and the headline (their weighted mean), and with a population
bundle the offset alone. Each profile run's record is the engine's (`record_run`) of the run
personalised from the runs before it only; only runs that started strictly before are used;
the run's own HR is never read; a profile is bound to its bundle (fingerprint).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrpred.bundle.runtime import load_bundle
from hrpred.io.activity import HR_MAX_BPM, HR_MIN_BPM
from hrpred.io.userfiles import read_activity
from hrpred.personal.engine import PREDICTORS, record_run
from hrpred.serve.cli import main
from hrpred.serve.inputs import on_grid
from hrpred.serve.predict import predict_activity
from hrpred.serve.profile import (
    PROFILE_VERSION,
    ProfileError,
    build_profile,
    bundle_fingerprint,
    load_profile,
    record_json,
    save_profile,
)
from hrpred.uncertainty import band_of
from tests.predict_fixtures import make_bundle, runner_workout, write_fit, write_gpx

REAL = Path(__file__).resolve().parents[2] / "shared" / "samples" / "real"

LEVEL = 22.0  # the new runner's HR sits this far above the population's (BPM)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    from tests.predict_fixtures import make_history_bundle

    return make_history_bundle(tmp_path_factory.mktemp("hist"))


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> dict:
    """Four earlier runs (days 0..3: GPX, FIT, GPX without HR, FIT) and a later one (day 10)."""
    d = tmp_path_factory.mktemp("runner")
    past = d / "past"
    past.mkdir()
    files = [
        write_gpx(past / "a.gpx", runner_workout(11, LEVEL, 0)),
        write_fit(past / "b.fit", runner_workout(12, LEVEL, 1)),
        write_gpx(past / "c.gpx", runner_workout(13, LEVEL, 2), hr=False),
        write_fit(past / "d.fit", runner_workout(14, LEVEL, 3)),
    ]
    later = write_gpx(d / "later.gpx", runner_workout(15, LEVEL, 10))
    future = write_gpx(past / "z_future.gpx", runner_workout(16, LEVEL, 20))
    # the same later runs with another HR (same start times): must change no prediction
    other = d / "other"
    other.mkdir()
    later_hr = write_gpx(other / "later.gpx", runner_workout(15, LEVEL - 30, 10))
    future_hr = write_gpx(other / "z_future.gpx", runner_workout(16, LEVEL + 30, 20))
    # an earlier run with another HR: must change the personalised predictions
    early_hr = write_gpx(other / "a.gpx", runner_workout(11, LEVEL + 15, 0))
    return {
        "dir": d, "past": past, "files": files, "later": later, "future": future,
        "later_hr": later_hr, "future_hr": future_hr, "early_hr": early_hr,
    }  # fmt: skip


@pytest.fixture(scope="module")
def pop_dir(tmp_path_factory) -> Path:
    """A population bundle (random LSTM, no history input) on the same grid and features."""
    return make_bundle(tmp_path_factory.mktemp("pop"))


def test_profile_skips_files_without_hr_and_records_runs(bundle_dir, runner) -> None:
    bundle = load_bundle(bundle_dir)
    profile, warns = build_profile(bundle, runner["files"])
    c = profile.content
    assert c["n_runs"] == 3 and [r["file"] for r in c["runs"]] == ["a.gpx", "b.fit", "d.fit"]
    assert [s["file"] for s in c["skipped"]] == ["c.gpx"] and "heart rate" in warns[0]
    assert [r["date"][:10] for r in c["runs"]] == ["2020-09-13", "2020-09-14", "2020-09-16"]
    assert c["level"]["runs"] == 3 and c["level"]["trend_bpm_per_30_days"] is not None
    # the level (HR at 10 km/h) reflects the runner's offset over the simulated 100 + 5 x speed
    assert c["level"]["level_bpm"] == pytest.approx(150 + LEVEL, abs=4)
    # the summary is the model's: the same numbers the bundle's history section names
    assert list(c["runs"][0]["summary"]) == bundle.history["summary_features"]
    # bound to the bundle; per run the engine's record and the plan that personalised it
    assert c["format_version"] == PROFILE_VERSION == 4 and c["bundle"]["kind"] == "history"
    assert c["bundle"]["fingerprint"] == bundle_fingerprint(bundle)
    for i, r in enumerate(c["runs"]):
        assert set(r["record"]) == {"n", "cold_sum", "learned_sum", "score_sq", "abs_sum"}
        assert r["record"]["n"] > 100 and r["record"]["score_sq"] > 0
        assert list(r["record"]["abs_sum"]) == list(PREDICTORS)
        assert r["plan"]["earlier_runs"] == r["plan"]["used_runs"] == r["plan"]["context_runs"] == i
    # the oldest run has no earlier run: every predictor is the population one
    first = c["runs"][0]["record"]
    assert first["learned_sum"] == pytest.approx(first["cold_sum"], abs=0.5)
    assert len({round(v, 1) for v in first["abs_sum"].values()}) == 1
    assert c["runs"][0]["plan"]["offset_bpm"] == 0.0
    # the later runs are personalised: the runner sits LEVEL above the population
    assert c["runs"][2]["plan"]["offset_bpm"] > 0.5 * LEVEL


def _grid_hr(bundle, path: Path):
    """A file's unscaled grid features, recorded HR on the grid and valid steps, as predict
    reads the file (recorded HR interpolated onto the grid; paused or implausible left out)."""
    act = read_activity(path)
    pred = predict_activity(bundle, act)
    hr = on_grid(act.timestamp, act.heart_rate, pred.grid.timestamp)
    ok = np.isfinite(hr) & (hr >= HR_MIN_BPM) & (hr <= HR_MAX_BPM) & ~pred.grid.paused
    return float(act.timestamp[0]), pred.features, hr, ok


def test_each_record_is_the_run_personalised_from_the_earlier_runs_only(bundle_dir, runner):
    """Run i's record = record_run of the curves its plan gives from a profile of the files
    BEFORE it only (the later files left out entirely), on the grid predict reads."""
    bundle = load_bundle(bundle_dir)
    files = [runner["files"][i] for i in (0, 1, 3)]  # the runs with HR, in start order
    profile, _ = build_profile(bundle, [*files, runner["later"]])
    for i, path in enumerate([*files, runner["later"]]):
        start, feats, hr, ok = _grid_hr(bundle, path)
        before, _ = build_profile(bundle, files[:i])
        pop, pop_spread = bundle.predict_spread(feats)
        done, later = before.personalise(bundle, start, feats, np.asarray(pop, np.float64),
                                         pop_spread)  # fmt: skip
        assert later == 0 and done.plan.earlier == i
        rec = record_run(start, hr, ok, done.curves, done.network, done.spread)
        stored = profile.runs[i]["record"]
        want = record_json(rec)
        assert stored["n"] == want["n"] > 100
        for key in ("cold_sum", "learned_sum", "score_sq"):
            assert stored[key] == pytest.approx(want[key], rel=1e-9, abs=1e-6), (i, key)
        assert stored["abs_sum"] == pytest.approx(want["abs_sum"], rel=1e-9)
        # the earlier runs' records do not change with the runs after them
        assert before.records() == profile.records()[:i]


def test_profile_does_not_depend_on_the_order_of_its_files(bundle_dir, runner, tmp_path):
    bundle = load_bundle(bundle_dir)
    files = [*runner["files"], runner["later"]]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    save_profile(build_profile(bundle, files)[0], one)
    save_profile(build_profile(bundle, files[::-1])[0], two)
    assert one.read_bytes() == two.read_bytes()
    content = json.loads(one.read_text())
    starts = [r["start_time"] for r in content["runs"]]
    assert starts == sorted(starts) and len(starts) == 4


def _maes(pred) -> tuple[float, float, float, float]:
    s = pred.summary
    return s["mae"], s["offset"]["mae"], s["learned"]["mae"], s["personal"]["mae"]


def test_profile_lowers_the_error_on_a_later_run(bundle_dir, runner, tmp_path) -> None:
    out = tmp_path / "me.json"
    args = [*map(str, runner["files"]), "-o", str(out), "--bundle", str(bundle_dir)]
    assert main(["profile", *args, "--quiet"]) == 0
    bundle, profile = load_bundle(bundle_dir), load_profile(out)
    pred = predict_activity(bundle, read_activity(runner["later"]), profile=profile)
    cold, offset, learned, headline = _maes(pred)
    hist = pred.summary["history"]
    assert (hist["earlier_runs"], hist["later_runs_left_out"], hist["used_runs"]) == (3, 0, 3)
    assert not hist["change"]["found"] and "using them all" in hist["note"]
    assert pred.summary["learned"]["context_runs"] == 3 == pred.summary["offset"]["runs"]
    assert max(offset, learned, headline) < 0.6 * cold, (cold, offset, learned, headline)
    for col in ("hr_offset", "hr_learned", "hr_personal"):
        assert col in pred.frame and np.isfinite(pred.frame[col]).all()
    # offset = population + a constant, the one summary["offset"] reports
    f = pred.frame
    np.testing.assert_allclose(f["hr_offset"] - f["hr_pred"], pred.summary["offset"]["offset_bpm"])
    # the headline: the weighted mean of the three with the reported weights
    w = pred.summary["personal"]["weights"]
    assert w == hist["weights"] and sum(w.values()) == pytest.approx(1.0, abs=1e-5)
    assert w["population"] < w["offset"]  # the population prediction is LEVEL BPM off
    mix = (
        w["population"] * f["hr_pred"]
        + w["offset"] * f["hr_offset"]
        + w["learned"] * f["hr_learned"]
    )
    np.testing.assert_allclose(f["hr_personal"], mix, atol=1e-3)
    # the same run without a profile is the population prediction, unchanged
    plain = predict_activity(bundle, read_activity(runner["later"]))
    assert plain.frame["hr_pred"].equals(pred.frame["hr_pred"]) and "personal" not in plain.summary


def test_only_earlier_runs_are_read_never_the_runs_own_hr(bundle_dir, runner) -> None:
    bundle = load_bundle(bundle_dir)
    files = runner["files"]
    profile, _ = build_profile(bundle, [*files, runner["future"], runner["later"]])
    later = read_activity(runner["later"])
    pred = predict_activity(bundle, later, profile=profile)
    assert any("did not start before" in w for w in pred.warnings)
    hist = pred.summary["history"]
    assert (hist["earlier_runs"], hist["later_runs_left_out"]) == (3, 2)  # itself and a later
    cols = ["hr_pred", "hr_offset", "hr_learned", "hr_personal"]
    # another HR in the later runs, the predicted one included (in the file and the profile),
    # changes no prediction: byte-identical
    other, _ = build_profile(bundle, [*files, runner["future_hr"], runner["later_hr"]])
    for prof in (other, build_profile(bundle, files)[0]):
        for run in (runner["later"], runner["later_hr"]):
            same = predict_activity(bundle, read_activity(run), profile=prof)
            for c in cols:
                assert np.array_equal(same.frame[c], pred.frame[c]), (run, c)
    # another HR in an earlier run changes every personalised prediction
    early, _ = build_profile(bundle, [runner["early_hr"], *files[1:]])
    moved = predict_activity(bundle, later, profile=early)
    assert np.array_equal(moved.frame["hr_pred"], pred.frame["hr_pred"])
    for c in cols[1:]:
        assert np.abs(moved.frame[c] - pred.frame[c]).max() > 0.5, c
    # the oldest run predicted with the profile: no history, personalised = population
    first = predict_activity(bundle, read_activity(files[0]), profile=profile)
    assert first.summary["history"]["earlier_runs"] == 0
    assert np.array_equal(first.frame["hr_offset"], first.frame["hr_pred"])
    for c in ("hr_learned", "hr_personal"):
        np.testing.assert_allclose(first.frame[c], first.frame["hr_pred"], atol=1e-3)


def test_cli_prints_population_and_personalised_side_by_side(
    bundle_dir, runner, tmp_path, capsys
) -> None:
    out = tmp_path / "p.csv"
    args = ["predict", str(runner["later"]), "--bundle", str(bundle_dir)]
    assert main([*args, "--history", str(runner["past"]), "--out", str(out)]) == 0
    text = capsys.readouterr()
    assert "personalised with 3 earlier run(s)" in text.out
    assert "no level change in the 3 earlier run(s): using them all" in text.out
    head = next(ln for ln in text.out.splitlines() if "HR (BPM)" in ln).split()
    assert head[-5:] == ["population", "+", "offset", "learned", "headline"]
    rows = {ln.split("  ")[2].strip(): ln for ln in text.out.splitlines() if ln.startswith("    ")}
    for label in ("avg", "max", "MAE vs recorded", "bias vs recorded", "correction"):
        assert any(k.startswith(label) for k in rows), label
    mae = next(ln for ln in text.out.splitlines() if "MAE vs recorded" in ln).split()[-4:]
    assert len(mae) == 4 and all(float(x) > 0 for x in mae)  # a number in every column
    assert "headline = weighted by each one's error on the earlier runs" in text.out
    assert "c.gpx: skipped" in text.err and "did not start before" in text.out
    head = out.read_text().splitlines()[0]
    assert head.endswith("hr_pred,hr_true,hr_offset,hr_learned,hr_personal")


def test_profile_errors_are_one_line(bundle_dir, runner, tmp_path, capsys) -> None:
    no_hr = [str(runner["files"][2])]
    assert main(["profile", *no_hr, "-o", str(tmp_path / "x.json"), "--bundle", str(bundle_dir)])
    assert "no run with heart rate" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something"}))
    args = ["predict", str(runner["later"]), "--bundle", str(bundle_dir), "--profile", str(bad)]
    assert main(args) == 2
    assert "not an hrpred profile" in capsys.readouterr().err
    # a profile of an earlier format (1: no residuals; 3: residuals, no records) is refused
    for version in (1, 3):
        old = tmp_path / f"old{version}.json"
        old.write_text(json.dumps({"format": "hrpred-profile", "format_version": version,
                                   "runs": []}))  # fmt: skip
        args[-1] = str(old)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"profile format {version} is older" in err and "rebuild it" in err
        assert err.count("\n") == 1


def test_profile_of_another_bundle_is_refused(bundle_dir, pop_dir, runner, tmp_path, capsys):
    bundle, pop = load_bundle(bundle_dir), load_bundle(pop_dir)
    assert bundle_fingerprint(bundle) != bundle_fingerprint(pop)
    assert bundle_fingerprint(pop) == bundle_fingerprint(load_bundle(pop_dir))  # stable
    # same grid and features, other weights: its residuals are not this model's
    other = load_bundle(make_bundle(tmp_path / "other", seed=1))
    profile, _ = build_profile(pop, runner["files"])
    with pytest.raises(ProfileError, match="another model.*rebuild it"):
        predict_activity(other, read_activity(runner["later"]), profile=profile)
    me = tmp_path / "me.json"
    save_profile(profile, me)
    args = ["predict", str(runner["later"]), "--bundle", str(bundle_dir), "--profile", str(me)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "another model" in err and "rebuild it" in err and err.count("\n") == 1


def test_population_bundle_gives_offset_personalisation(pop_dir, runner, tmp_path, capsys):
    me = tmp_path / "me.json"
    args = [*map(str, runner["files"]), "-o", str(me), "--bundle", str(pop_dir)]
    assert main(["profile", *args]) == 0
    assert "population bundle (offset personalisation only)" in capsys.readouterr().out
    c = load_profile(me).content
    assert c["bundle"]["kind"] == "population" and c["n_runs"] == 3
    for r in c["runs"]:  # no network: its sums are the population's, its weight 0
        rec = r["record"]
        assert rec["learned_sum"] == rec["cold_sum"]
        assert rec["abs_sum"]["learned"] == rec["abs_sum"]["offset"]
        assert r["plan"]["weights"]["learned"] == 0.0 and r["plan"]["context_runs"] == 0
    pred = predict_activity(
        load_bundle(pop_dir), read_activity(runner["later"]), profile=load_profile(me)
    )
    s = pred.summary
    cold, offset, headline = s["mae"], s["offset"]["mae"], s["personal"]["mae"]
    assert offset < 0.6 * cold and headline < 0.6 * cold, (cold, offset, headline)
    assert "learned" not in s and s["personal"]["weights"]["learned"] == 0.0
    assert "hr_offset" in pred.frame and "hr_personal" in pred.frame
    assert "hr_learned" not in pred.frame
    w = s["personal"]["weights"]
    mix = w["population"] * pred.frame["hr_pred"] + w["offset"] * pred.frame["hr_offset"]
    np.testing.assert_allclose(pred.frame["hr_personal"], mix, atol=1e-3)
    out = tmp_path / "p.csv"
    args = ["predict", str(runner["later"]), "--bundle", str(pop_dir), "--out", str(out)]
    assert main([*args, "--profile", str(me)]) == 0
    text = capsys.readouterr().out
    assert "personalised with 3 earlier run(s)" in text and "offset personalisation only" in text
    head = next(ln for ln in text.splitlines() if "HR (BPM)" in ln).split()
    assert head[-4:] == ["population", "+", "offset", "headline"]
    assert out.read_text().splitlines()[0].endswith("hr_pred,hr_true,hr_offset,hr_personal")


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/samples/real not present")
@pytest.mark.parametrize("kind", ["history", "population"])
def test_real_files_profile_and_predict(bundle_dir, pop_dir, kind, tmp_path, capsys) -> None:
    files = sorted(str(f) for f in REAL.iterdir() if f.name != "README.md")
    assert len(files) == 4
    bdir = bundle_dir if kind == "history" else pop_dir
    me = tmp_path / "me.json"
    assert main(["profile", *files, "-o", str(me), "--bundle", str(bdir), "--quiet"]) == 0
    profile = load_profile(me)
    assert profile.content["n_runs"] == 4
    out = tmp_path / "p.csv"
    args = ["predict", *files, "--bundle", str(bdir), "--profile", str(me), "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    for n in range(4):  # each run is personalised with the runs before it, in date order
        assert f"personalised with {n} earlier run(s)" in text
    import pandas as pd

    table = pd.read_csv(out)
    cols = ["hr_pred", "hr_offset", "hr_personal"] + (["hr_learned"] if kind == "history" else [])
    assert np.isfinite(table[cols].to_numpy()).all()
    assert (kind == "history") == ("hr_learned" in table)


# --------------------------------------------------------------------------- issue 14: the band


def test_band_narrows_with_ten_earlier_runs(bundle_dir, tmp_path, capsys) -> None:
    """With a calibration whose 0-history multiplier is the largest (as on the default
    simulation), the headline's band of a runner with 10 earlier runs is narrower than the
    population band of the same run, and it is band_of of the headline curve with the
    network's spread (with the plan's context), the plan's history bucket (10+) and factor
    (1: this calibration has no runner scale): center -/+ q_10+ x spread by hand."""
    import pandas as pd

    from tests.test_cli import BAND
    from tests.test_predict import CAL, with_band

    banded = with_band(bundle_dir, tmp_path / "banded")
    bundle = load_bundle(banded)
    past = tmp_path / "past"
    past.mkdir()
    files = [write_gpx(past / f"r{k:02d}.gpx", runner_workout(60 + k, LEVEL, k)) for k in range(10)]
    later = write_gpx(tmp_path / "later.gpx", runner_workout(80, LEVEL, 12))
    profile, _ = build_profile(bundle, files)
    act = read_activity(later)
    pred = predict_activity(bundle, act, profile=profile)
    s, f = pred.summary, pred.frame
    assert s["headline"] == "personal" and s["learned"]["context_runs"] == 10
    mine, cold = s["personal"]["band"], s["band"]
    assert (mine["history_runs"], cold["history_runs"]) == (10, 0)
    assert (mine["runner_factor"], mine["runner_runs"]) == (1.0, 0)
    pop, pop_spread = bundle.predict_spread(pred.features)
    done, _ = profile.personalise(bundle, float(act.timestamp[0]), pred.features,
                                  np.asarray(pop, np.float64), pop_spread)  # fmt: skip
    assert (done.plan.used, done.plan.factor) == (10, 1.0)
    center = done.curves.headline
    np.testing.assert_allclose(
        np.interp(act.timestamp, pred.grid.timestamp, center), f["hr_personal"], atol=1e-6
    )
    half = CAL.step["10+"] * np.asarray(done.spread, np.float64)
    grid_t = pred.grid.timestamp
    np.testing.assert_allclose(
        f["hr_p10"], np.interp(act.timestamp, grid_t, center - half), atol=1e-3
    )
    np.testing.assert_allclose(
        f["hr_p90"], np.interp(act.timestamp, grid_t, center + half), atol=1e-3
    )
    b = band_of(CAL, center, done.spread, done.plan.used, done.plan.factor)
    avg_half = CAL.average["10+"] * np.asarray(done.spread, np.float64).mean()
    assert mine["avg_hr"] == pytest.approx([center.mean() - avg_half, center.mean() + avg_half])
    assert mine["avg_hr"] == pytest.approx([float(b.average_lower), float(b.average_upper)])
    np.testing.assert_array_equal(f["hr_p50"], f["hr_personal"])
    assert (f["hr_p10"] <= f["hr_p50"]).all() and (f["hr_p50"] <= f["hr_p90"]).all()
    assert mine["avg_hr"][0] < s["personal"]["avg_hr"] < mine["avg_hr"][1]
    # narrower than without the profile (the population band, also shown beside it)
    plain = predict_activity(bundle, act)
    width = (f["hr_p90"] - f["hr_p10"]).mean()
    width_plain = (plain.frame["hr_p90"] - plain.frame["hr_p10"]).mean()
    assert width < 0.8 * width_plain, (width, width_plain)
    assert np.diff(mine["avg_hr"])[0] < np.diff(cold["avg_hr"])[0]
    assert plain.summary["band"] == cold  # the population band is the same with a profile
    # the command line prints both bands and writes the headline's
    out = tmp_path / "p.csv"
    args = ["predict", str(later), "--bundle", str(banded), "--history", str(past)]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("  personalised HR (headline):"))
    avg, lo, hi = map(int, BAND.search(line).groups()[:3])
    assert lo <= avg <= hi and (lo, hi) == tuple(round(x) for x in mine["avg_hr"])
    assert "avg 80% band" in text and "max 80% band" in text
    table = pd.read_csv(out)
    assert list(table.columns)[-4:] == ["hr_personal", "hr_p10", "hr_p50", "hr_p90"]
    pd.testing.assert_series_equal(table["hr_p50"], table["hr_personal"], check_names=False)


def test_a_run_after_a_long_break_says_so_and_widens_its_band(bundle_dir, runner, tmp_path):
    """A run break_days (30) or more after the latest profile run: the history note says so
    and the headline band's runner factor is break_widen (this calibration has no runner
    scale, so 1 otherwise); the prediction itself is the one at the same gap minus a day."""
    from tests.test_predict import with_band

    bundle = load_bundle(with_band(bundle_dir, tmp_path / "banded"))
    cfg = bundle.personal.change
    profile, _ = build_profile(bundle, runner["files"])  # the latest starts on day 3
    notes, factors = [], []
    for day in (int(3 + cfg.break_days - 1), int(3 + cfg.break_days + 1)):
        path = write_gpx(tmp_path / f"day{day}.gpx", runner_workout(15, LEVEL, day))
        s = predict_activity(bundle, read_activity(path), profile=profile).summary
        notes.append(s["history"]["note"])
        assert s["history"]["days_since_latest_run"] == pytest.approx(day - 3, abs=1e-6)
        factors.append(s["personal"]["band"]["runner_factor"])
    assert "since your latest earlier run" not in notes[0] and factors[0] == 1.0
    assert f"{cfg.break_days + 1:.0f} days since your latest earlier run: band x" in notes[1]
    assert factors[1] == pytest.approx(cfg.break_widen) and cfg.break_widen > 1


def test_onnx_backend_profile_matches_torch(bundle_dir, runner, tmp_path) -> None:
    """The trained history bundle re-exported with model.onnx: the fingerprint is the same on
    either backend (read from model.safetensors without torch, or from the built model), and
    the profile's residuals and the personalised prediction match the PyTorch backend's
    within export's parity tolerance (1e-3 BPM per step)."""
    import copy

    from hrpred.export.writer import write_bundle

    ref = load_bundle(bundle_dir)
    onnx_dir = tmp_path / "onnx_bundle"
    write_bundle(onnx_dir, ref.model.state_dict(), copy.deepcopy(ref.config), onnx=True)
    ort = load_bundle(onnx_dir)
    assert (ort.backend, load_bundle(onnx_dir, backend="torch").backend) == ("onnx", "torch")
    fingerprint = bundle_fingerprint(ort)  # from the file: the model is not built yet
    assert fingerprint == bundle_fingerprint(ref)
    prof, _ = build_profile(ort, runner["files"])
    prof_t, _ = build_profile(ref, runner["files"])
    assert prof.content["bundle"] == prof_t.content["bundle"]
    for got, want in zip(prof.records(), prof_t.records(), strict=True):
        assert got.n == want.n > 0
        assert abs(got.cold_sum - want.cold_sum) <= 1e-3 * got.n
        assert abs(got.learned_sum - want.learned_sum) <= 1e-3 * got.n
        assert np.allclose(got.abs_sum, want.abs_sum, rtol=0, atol=1e-3 * got.n)
    act = read_activity(runner["later"])
    got, want = predict_activity(ort, act, profile=prof_t), predict_activity(ref, act, profile=prof)
    for col in ("hr_pred", "hr_offset", "hr_learned", "hr_personal"):
        np.testing.assert_allclose(got.frame[col], want.frame[col], rtol=0, atol=2e-3)
    assert got.summary["learned"]["context_runs"] == want.summary["learned"]["context_runs"] > 0
    assert sum(p.numel() for p in ort.model.parameters()) > 0  # built now: the same digest
    assert bundle_fingerprint(ort) == fingerprint
