"""`hrpred check` (issue 29, item 3): a run against what the runner's history predicts, the
clean stage's detector on the file, and hr_filled where the sensor failed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hrpred.bundle.runtime import load_bundle
from hrpred.io.userfiles import read_activity
from hrpred.serve.check import CHECK_Z, check_activity, usual_spread
from hrpred.serve.cli import main
from hrpred.serve.profile import build_profile, save_profile
from tests.export_fixtures import physio_workout
from tests.predict_fixtures import write_gpx
from tests.profile_helpers import random_history_bundle

EARLIER = 12


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("check")
    bdir = random_history_bundle(d / "bundle")
    bundle = load_bundle(bdir)
    files = [
        write_gpx(d / f"r{k:02d}.gpx", physio_workout(100 + k, 0.0, k)) for k in range(EARLIER)
    ]
    profile, warns = build_profile(bundle, files)
    assert not warns and profile.content["n_runs"] == EARLIER
    save_profile(profile, d / "me.json")
    return {"dir": d, "bundle": bundle, "bundle_dir": bdir, "profile": profile}


def _run(runner, name: str, seed: int, level: float, **changes):
    w = physio_workout(seed, level, EARLIER + 5)
    w = replace(w, **changes)
    return read_activity(write_gpx(runner["dir"] / name, w))


def test_usual_spread_pools_the_earlier_runs_errors(runner) -> None:
    profile, cfg = runner["profile"], runner["bundle"].personal.change
    usual, n = usual_spread(profile, 2e9, cfg)
    assert n == EARLIER - 1  # the first run had no expectation
    errors = [r["record"]["cold_sum"] / r["record"]["n"] - r["plan"]["offset_bpm"]
              for r in profile.runs[1:]]  # fmt: skip
    ref = np.sqrt((cfg.noise_prior_runs * cfg.noise_bpm**2 + np.sum(np.square(errors)))
                  / (cfg.noise_prior_runs + len(errors)))  # fmt: skip
    assert usual == pytest.approx(ref)
    assert usual_spread(profile, 0.0, cfg) == (cfg.noise_bpm, 0)  # nothing before


@pytest.mark.parametrize("seed", [500, 501])
def test_a_run_10_bpm_high_is_above_expectation_and_an_ordinary_one_is_not(runner, seed) -> None:
    bundle, profile = runner["bundle"], runner["profile"]
    ordinary = check_activity(bundle, _run(runner, "o.gpx", seed, 0.0), profile)
    high = check_activity(bundle, _run(runner, "h.gpx", seed, 10.0), profile)
    for c in (ordinary, high):
        assert c.summary["detector"]["ran"] and c.summary["detector"]["spans"] == []
        assert c.summary["filled_share"] == 0.0
    assert ordinary.summary["verdict"] == "as_expected", ordinary.summary["text"]
    assert high.summary["verdict"] == "above", high.summary["text"]
    gap = high.summary["deviation_bpm"] - ordinary.summary["deviation_bpm"]
    assert gap == pytest.approx(10.0, abs=1.5)  # the same route and pace, HR 10 BPM higher
    assert high.summary["deviation_bpm"] > CHECK_Z * high.summary["usual_bpm"]
    assert "BPM above what your earlier runs predict" in high.summary["text"]


def test_hr_filled_is_the_prediction_where_the_strap_dropped_out(runner) -> None:
    w = physio_workout(600, 0.0, EARLIER + 5)
    hr = w.heart_rate.copy()
    hr[80:140] = 0  # a dropout: the reader reads no HR there
    check = check_activity(runner["bundle"], _run(runner, "d.gpx", 600, 0.0, heart_rate=hr),
                           runner["profile"])  # fmt: skip
    f = check.frame
    gap = np.zeros(len(f), dtype=bool)
    gap[80:140] = True
    assert f["filled"].to_numpy()[gap].all()
    head = f["hr_personal"].to_numpy()
    np.testing.assert_allclose(f["hr_filled"].to_numpy()[gap], head[gap])
    kept = ~f["filled"].to_numpy()
    assert kept.sum() > 100
    np.testing.assert_array_equal(f["hr_filled"].to_numpy()[kept], f["hr_true"].to_numpy()[kept])
    assert check.summary["load_trimp"] > 0


def test_cli_check_prints_the_verdict_and_writes_hr_filled(runner, capsys) -> None:
    path = write_gpx(runner["dir"] / "cli.gpx", physio_workout(700, 12.0, EARLIER + 5))
    out = runner["dir"] / "filled.csv"
    rc = main(["check", str(path), "--profile", str(runner["dir"] / "me.json"),
               "--bundle", str(runner["bundle_dir"]), "--out", str(out)])  # fmt: skip
    res = capsys.readouterr()
    assert rc == 0, res.err
    assert "cli.gpx: HR" in res.out and "above what your earlier runs predict" in res.out
    table = pd.read_csv(out)
    assert {"hr_filled", "filled", "flagged", "hr_personal"} <= set(table.columns)
    rc = main(["check", str(path), "--profile", str(path), "--bundle", str(runner["bundle_dir"])])
    assert rc == 2 and "cli.gpx: unreadable profile" in capsys.readouterr().err
