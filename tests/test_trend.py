"""`hrpred trend` (issue 29, item 2): per run the level, what the earlier runs expected, the
level changes the detector finds, flagged runs and both decouplings."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrpred.bundle.runtime import load_bundle
from hrpred.errors import EXIT_ERROR
from hrpred.serve.cli import main
from hrpred.serve.drift import decoupling
from hrpred.serve.profile import build_profile, save_profile
from hrpred.serve.trend import trend_table
from tests.export_fixtures import physio_workout
from tests.predict_fixtures import write_fit, write_gpx
from tests.profile_helpers import random_history_bundle

BEFORE, AFTER, JUMP = 10, 6, 12.0  # runs at the first level, runs after a +12 BPM change


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("trend")
    bdir = random_history_bundle(d / "bundle")
    bundle = load_bundle(bdir)
    levels = [0.0] * BEFORE + [JUMP] * AFTER
    runs = d / "runs"
    runs.mkdir()
    files = [
        write_gpx(runs / f"r{k:02d}.gpx", physio_workout(300 + k, lv, k))
        for k, lv in enumerate(levels)
    ]
    profile, warns = build_profile(bundle, files)
    assert not warns
    save_profile(profile, d / "me.json")
    return {"dir": d, "bundle": bundle, "bundle_dir": bdir, "profile": profile, "runs": runs,
            "levels": np.array(levels)}  # fmt: skip


def test_decoupling_model_vs_pa_hr_on_a_hill() -> None:
    """A run slowing on a climb at the same effort: Pa:HR sees a 'decoupling' (less speed per
    beat), the model (whose prediction follows the climb) sees none; a heart drifting up by 5
    BPM at the same prediction is 5 BPM for the model."""
    n = 200
    t = np.arange(n) * 10.0
    ok = np.ones(n, dtype=bool)
    speed = np.where(t < t[-1] / 2, 12.0, 9.0)  # slower in the second half: a climb
    pop = np.full(n, 150.0)
    hr = pop.copy()
    d = decoupling(t, hr, ok, pop, speed)
    assert d["model_bpm"] == pytest.approx(0.0)
    assert d["pa_hr_pct"] == pytest.approx(25.0)
    drift = decoupling(t, hr + np.where(t >= t[-1] / 2, 5.0, 0.0), ok, pop, np.full(n, 10.0))
    assert drift["model_bpm"] == pytest.approx(5.0)
    assert drift["pa_hr_pct"] == pytest.approx(100 * (1 - 150 / 155), abs=1e-4)
    assert decoupling(t[:5], hr[:5], ok[:5], pop[:5], speed[:5])["model_bpm"] is None


def test_trend_follows_the_level_and_finds_the_change_within_3_runs(runner) -> None:
    table = trend_table(runner["profile"], runner["bundle"])
    assert list(table["run"]) == list(range(1, BEFORE + AFTER + 1))
    level = table["level_bpm"].to_numpy()
    # the level follows the true level: the random model's own bias is a constant
    bias = np.mean(level - runner["levels"])
    mae = np.mean(np.abs(level - bias - runner["levels"]))
    assert mae < 2.0, mae
    ch = table[table["change_bpm"].notna()]
    assert len(ch) == 1, ch
    first = int(ch["run"].iloc[0])
    assert first == BEFORE + 1  # the first run at the new level
    assert ch["change_bpm"].iloc[0] == pytest.approx(JUMP, abs=3.0)
    assert int(ch["change_found_at"].iloc[0]) - first <= 3
    assert table["decoupling_model_bpm"].notna().all()
    assert table["decoupling_pa_hr_pct"].notna().all()
    # before the change nothing is flagged; the first run after it is above expectation
    assert (table["flag"].iloc[1:BEFORE] == "").all()
    assert table["flag"].iloc[BEFORE] == "above"


def test_cli_trend_from_a_profile_and_from_an_export(runner, tmp_path, capsys) -> None:
    out, plot = tmp_path / "trend.csv", tmp_path / "trend.png"
    b = ["--bundle", str(runner["bundle_dir"])]
    rc = main(["trend", str(runner["dir"] / "me.json"), *b, "--out", str(out), "--plot", str(plot)])
    res = capsys.readouterr()
    assert rc == 0, res.err
    assert f"{BEFORE + AFTER} runs from" in res.out and "level change from run 11" in res.out
    table = pd.read_csv(out)
    assert len(table) == BEFORE + AFTER and plot.stat().st_size > 10_000
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as z:
        for f in sorted(runner["runs"].iterdir()):
            z.write(f, f"runs/{f.name}")
    rc = main(["trend", str(export), *b, "--out", str(tmp_path / "t2.csv"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    again = pd.read_csv(tmp_path / "t2.csv")
    assert list(again["source"]) == [f"export.zip/runs/r{k:02d}.gpx" for k in range(16)]
    pd.testing.assert_series_equal(again["level_bpm"], table["level_bpm"])
    # a profile of another model: one line that names the profile (a runner may keep several)
    content = json.loads((runner["dir"] / "me.json").read_text())
    content["bundle"]["fingerprint"] = "0" * 64
    other = tmp_path / "old_me.json"
    other.write_text(json.dumps(content))
    assert main(["trend", str(other), *b, "--quiet"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("hrpred: old_me.json: the profile was built with another model")
    assert "\n" not in err


def test_a_fit_run_in_the_trend_has_its_decoupling(runner, tmp_path) -> None:
    w = physio_workout(900, 0.0, 40)
    f = write_fit(tmp_path / "late.fit", replace(w))
    profile, _ = build_profile(runner["bundle"], [f])
    assert profile.runs[0]["drift"]["model_bpm"] is not None


def test_app_history_page_trend_and_check(runner, tmp_path) -> None:
    from hrpred.serve.history_page import check_request, history_request
    from tests.export_fixtures import strava_zip

    export = strava_zip(tmp_path / "s")
    view = history_request(runner["bundle"], [str(export)], "unknown", tmp_path)
    assert view.error is None, view.error
    assert len(view.table) == 3 and view.figure is not None and Path(view.csv_path).is_file()
    assert view.status.startswith("3 runs from")
    assert any("not in the export" in w for w in view.warnings)
    view = history_request(runner["bundle"], [str(runner["dir"] / "me.json")], None, tmp_path)
    assert view.error is None and len(view.table) == BEFORE + AFTER
    late = write_gpx(tmp_path / "late.gpx", physio_workout(901, JUMP + 10.0, 40))
    assert "above what your earlier runs predict" in check_request(
        runner["bundle"], view.profile, str(late)
    )
    assert history_request(runner["bundle"], None).error.startswith("upload an export")
    assert check_request(runner["bundle"], None, str(late)) == "Load your history first."


def test_reference_level_at_a_standard_effort(runner, tmp_path) -> None:
    """The level at the reference run (flat, 10 km/h) from the runs up to each one: flat
    before the change, up by about the jump after it; each run's value reads no later run;
    with a calibrated band the band surrounds it."""
    from tests.test_predict import with_band

    table = trend_table(runner["profile"], runner["bundle"])
    ref = table["reference_bpm"].to_numpy()
    assert np.ptp(ref[BEFORE // 2 : BEFORE]) < 1.0, ref  # settled at the first level
    assert ref[-1] - ref[BEFORE - 1] == pytest.approx(JUMP, abs=3.0), ref
    assert table["reference_lo_bpm"].isna().all()  # this bundle has no calibrated band
    # run k's value is the same without the runs after it
    files = sorted(runner["runs"].iterdir())[:BEFORE]
    first, _ = build_profile(runner["bundle"], files)
    np.testing.assert_array_equal(trend_table(first, runner["bundle"])["reference_bpm"],
                                  ref[:BEFORE])  # fmt: skip
    banded = load_bundle(with_band(runner["bundle_dir"], tmp_path / "banded"))
    t2 = trend_table(runner["profile"], banded)
    lo, mid, hi = (t2[c].to_numpy() for c in ("reference_lo_bpm", "reference_bpm",
                                              "reference_hi_bpm"))  # fmt: skip
    assert np.isfinite(lo).all() and (lo < mid).all() and (mid < hi).all()
