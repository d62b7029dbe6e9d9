"""`hrpred profile` and `hrpred predict --profile/--history` (issue 13, item 6).

A tiny history model is trained on simulated runners with personal HR levels through
predict's own feature path (`predict_fixtures.make_history_bundle`); a NEW runner (never
trained on) writes earlier runs as GPX/FIT files, and the error on a later run must drop when
those earlier runs personalise it. Only runs that started strictly before are used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrpred.export.bundle import load_bundle
from hrpred.io.userfiles import read_activity
from hrpred.serve.cli import main
from hrpred.serve.predict import predict_activity
from hrpred.serve.profile import build_profile, load_profile, profile_context
from tests.predict_fixtures import make_bundle, runner_workout, write_fit, write_gpx

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
    return {"dir": d, "past": past, "files": files, "later": later, "future": future}


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


def test_profile_lowers_the_error_on_a_later_run(bundle_dir, runner, tmp_path) -> None:
    out = tmp_path / "me.json"
    args = [*map(str, runner["files"]), "-o", str(out), "--bundle", str(bundle_dir)]
    assert main(["profile", *args, "--quiet"]) == 0
    bundle, profile = load_bundle(bundle_dir), load_profile(out)
    pred = predict_activity(bundle, read_activity(runner["later"]), profile=profile)
    cold, warm = pred.summary["mae"], pred.summary["personal"]["mae"]
    assert pred.summary["personal"]["history_runs"] == 3
    assert warm < 0.6 * cold, (cold, warm)
    assert "hr_personal" in pred.frame and np.isfinite(pred.frame["hr_personal"]).all()
    # the same run without a profile is the population prediction, unchanged
    plain = predict_activity(bundle, read_activity(runner["later"]))
    assert plain.frame["hr_pred"].equals(pred.frame["hr_pred"]) and "personal" not in plain.summary


def test_only_runs_that_started_before_are_used(bundle_dir, runner) -> None:
    bundle = load_bundle(bundle_dir)
    profile, _ = build_profile(bundle, [*runner["files"], runner["future"], runner["later"]])
    later = read_activity(runner["later"])
    ctx, used, left_out = profile_context(profile, float(later.timestamp[0]), 10)
    assert (used, left_out) == (3, 2)  # the run itself and a later run are not history
    pred = predict_activity(bundle, later, profile=profile)
    assert any("did not start before" in w for w in pred.warnings)
    # changing the HR of the later runs (the predicted one included) changes nothing
    only_earlier, _ = build_profile(bundle, runner["files"])
    same = predict_activity(bundle, later, profile=only_earlier)
    assert np.array_equal(same.frame["hr_personal"], pred.frame["hr_personal"])
    # the oldest run predicted with the profile: no history, personalised = population
    first = predict_activity(bundle, read_activity(runner["files"][0]), profile=profile)
    assert first.summary["personal"]["history_runs"] == 0
    assert np.allclose(first.frame["hr_personal"], first.frame["hr_pred"], atol=1e-3)


def test_cli_prints_population_and_personalised_side_by_side(
    bundle_dir, runner, tmp_path, capsys
) -> None:
    out = tmp_path / "p.csv"
    args = ["predict", str(runner["later"]), "--bundle", str(bundle_dir)]
    assert main([*args, "--history", str(runner["past"]), "--out", str(out)]) == 0
    text = capsys.readouterr()
    assert "personalised with 3 earlier run(s)" in text.out
    assert "population" in text.out and "MAE vs recorded" in text.out
    assert "c.gpx: skipped" in text.err and "did not start before" in text.out
    head = out.read_text().splitlines()[0]
    assert head.endswith("hr_pred,hr_true,hr_personal")


def test_profile_errors_are_one_line(bundle_dir, runner, tmp_path, capsys) -> None:
    no_hr = [str(runner["files"][2])]
    assert main(["profile", *no_hr, "-o", str(tmp_path / "x.json"), "--bundle", str(bundle_dir)])
    assert "no run with heart rate" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something"}))
    args = ["predict", str(runner["later"]), "--bundle", str(bundle_dir), "--profile", str(bad)]
    assert main(args) == 2
    assert "not an hrpred profile" in capsys.readouterr().err


def test_population_bundle_predicts_without_personalisation(runner, tmp_path, capsys) -> None:
    pop = make_bundle(tmp_path / "pop")
    args = ["predict", str(runner["later"]), "--bundle", str(pop), "--history", str(runner["past"])]
    assert main(args) == 0
    text = capsys.readouterr()
    assert "population model" in text.err and "personalised" not in text.out
