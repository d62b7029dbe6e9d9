"""`python -m hrpred predict` as a user runs it: exit codes, output, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.predict_fixtures import make_bundle, simulated_workout, write_csv, write_fit, write_gpx

ROOT = Path(__file__).resolve().parents[1]


def hrpred(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hrpred", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        timeout=120,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    make_bundle(d / "bundle", step_s=8.0, onnx=True)  # as export writes it: model.onnx too
    w = simulated_workout(n=300, step_s=4.0, seed=11)
    good = {
        "gpx": write_gpx(d / "run.gpx", w, speed=True),
        "csv": write_csv(d / "run.csv", w),
        "fit": write_fit(d / "run.fit", w),
    }
    bad = {
        "empty": d / "empty.gpx",
        "text": d / "notes.txt",
        "trunc": d / "trunc.gpx",
        "still": d / "still.csv",
    }
    bad["empty"].write_text("")
    bad["text"].write_text("hello")
    bad["trunc"].write_text(good["gpx"].read_text()[:5000])
    bad["still"].write_text(
        "timestamp,speed\n" + "\n".join(f"{1000 + i},0" for i in range(300)) + "\n"
    )
    return d, good, bad


def _no_traceback(res: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout


HEAVY = ("torch", "gradio", "matplotlib", "onnx")  # never imported by predict/profile


def run_main(argvs: list[list[str]], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`hrpred.serve.cli.main` on each argv in one fresh interpreter (stops at the first
    failure); stderr ends with the line `modules [...]`: which of HEAVY were imported."""
    code = (
        "import sys; from hrpred.serve.cli import main; "
        f"rc = next((rc for argv in {argvs!r} if (rc := main(argv))), 0); "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
        "print('modules', heavy, file=sys.stderr); sys.exit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
    )  # fmt: skip


def test_predict_good_files_without_torch_web_or_onnx_imports(files):
    """Three formats of one workout; the predict path must not import torch (the bundle has
    model.onnx: ONNX Runtime predicts), gradio, matplotlib or the `onnx` package."""
    d, good, _ = files
    argv = [
        "predict", str(good["gpx"]), str(good["csv"]), str(good["fit"]),
        "--bundle", str(d / "bundle"), "--out", str(d / "out.csv"), "--age", "40",
        "--gender", "female",
    ]  # fmt: skip
    res = run_main([argv], d)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "modules []"
    out = pd.read_csv(d / "out.csv")
    assert list(out.columns) == [
        "t_s", "timestamp", "speed_kmh", "altitude_m", "hr_pred", "hr_true", "file",
    ]  # fmt: skip
    assert out.groupby("file").size().to_dict() == {"run.csv": 300, "run.fit": 300, "run.gpx": 300}
    for name in ("run.gpx", "run.csv", "run.fit"):
        assert f"{name}: " in res.stdout
    assert res.stdout.count("predicted HR: avg") == 3
    assert res.stdout.count("MAE") == 3 and "208 - 0.7 x age 40" in res.stdout
    # the same workout in three formats gives the same predictions (to the CSV's 3 decimals;
    # FIT rounds speed to mm/s and altitude to 0.2 m)
    by_file = {k: g["hr_pred"].to_numpy() for k, g in out.groupby("file")}
    assert abs(by_file["run.gpx"] - by_file["run.csv"]).max() <= 0.002
    assert abs(by_file["run.fit"] - by_file["run.csv"]).max() < 0.1


def test_bad_files_one_line_each_and_exit_2(files):
    """`python -m hrpred`: each bad file one line on stderr, the good one still predicted."""
    d, good, bad = files
    args = [str(p) for p in bad.values()] + [str(d / "missing.fit"), str(good["csv"])]
    res = hrpred("predict", *args, "--bundle", str(d / "bundle"), cwd=d)
    assert res.returncode == 2
    _no_traceback(res)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 5, res.stderr
    assert all(line.startswith("hrpred: ") for line in lines)
    text = res.stderr
    assert "empty.gpx: empty file" in text
    assert "notes.txt: unsupported file type" in text
    assert "trunc.gpx: not a valid GPX file" in text
    assert "still.csv: no movement" in text
    assert "missing.fit: file not found" in text
    assert "run.csv: " in res.stdout  # the good file is still predicted


def test_usage_and_bundle_errors_are_one_line(files, tmp_path):
    d, good, _ = files
    for args in (
        ["predict", str(good["gpx"]), "--bundle", str(tmp_path / "nope")],
        ["predict", str(good["gpx"]), "--bundle", str(d / "bundle"), "--max-hr", "400"],
        ["predict"],
        ["fly"],
        ["app", "--bundle", str(tmp_path / "nope")],
    ):
        res = hrpred(*args, cwd=d)
        assert res.returncode == 2, (args, res.stderr)
        _no_traceback(res)
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)


# --------------------------------------------------------------------------- issue 16: batches


def test_out_equal_to_an_input_is_refused(files, tmp_path):
    d, good, _ = files
    target = tmp_path / "run.csv"
    target.write_bytes(good["csv"].read_bytes())
    before = target.read_bytes()
    res = hrpred("predict", str(target), "--bundle", str(d / "bundle"), "--out", str(target), cwd=d)
    assert res.returncode == 2 and "refusing to overwrite" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert target.read_bytes() == before  # was: the recording overwritten, exit 0


def test_failed_write_leaves_the_previous_out_intact(files, tmp_path, monkeypatch, capsys):
    from hrpred.serve import cli

    d, good, _ = files
    out = tmp_path / "pred.csv"
    out.write_text("previous predictions\n")

    def full_disk(self, target, *args, **kwargs):
        half = "t_s,timestamp\n1,"  # half a file, then the disk is full
        if isinstance(target, str | Path):
            Path(target).write_text(half)
        else:
            target.write(half)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    argv = ["predict", str(good["csv"]), "--bundle", str(d / "bundle"), "--out", str(out)]
    assert cli.main(argv) == 2
    assert "cannot write" in capsys.readouterr().err
    assert out.read_text() == "previous predictions\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]  # no temp file left


def test_batch_with_a_corrupt_file_writes_the_good_ones(files, tmp_path, monkeypatch, capsys):
    """An unexpected exception on one file used to abort the batch without its name."""
    import hrpred.io.userfiles as userfiles
    from hrpred.serve import cli, commands

    d, good, _ = files
    real = userfiles.read_activity
    broken = tmp_path / "broken.fit"
    broken.write_bytes(good["fit"].read_bytes()[:200])

    def read(path):
        if Path(path).name == "weird.fit":
            raise KeyError(111)  # as fitdecode did on an unknown base type
        return real(path)

    monkeypatch.setattr(commands, "read_activity", read)
    weird = tmp_path / "weird.fit"
    weird.write_bytes(b"x")
    out = tmp_path / "pred.csv"
    argv = [str(good["gpx"]), str(weird), str(broken), str(good["csv"])]
    assert cli.main(["predict", *argv, "--bundle", str(d / "bundle"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "hrpred: weird.fit: unexpected error (KeyError: 111)"
    assert err[1].startswith("hrpred: broken.fit: ") and len(err) == 2
    table = pd.read_csv(out)
    assert sorted(set(table["file"])) == ["run.csv", "run.gpx"]


# --------------------------------------------------------------------------- issue 14: the band

BAND = re.compile(
    r"avg (\d+) BPM, 80% band (\d+)-(\d+); max (\d+) BPM \(80% band (\d+)-(\d+)\)"
)  # fmt: skip
ZONE_ROW = re.compile(r"^\s+(Z\d) \S+\s+([\d.]+) \[([\d.]+)-([\d.]+)\]")


def test_band_is_printed_and_written(files, tmp_path, capsys):
    """A bundle with a calibrated band: the printed ranges hold the central values, the CSV
    gets hr_p10 <= hr_p50 = hr_pred <= hr_p90; without a band, one line says so."""
    from hrpred.serve import cli
    from tests.test_predict import with_band

    d, good, _ = files
    banded = with_band(d / "bundle", tmp_path / "banded")
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(good["gpx"]), "--bundle", str(banded), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    avg, avg_lo, avg_hi, top, top_lo, top_hi = map(int, BAND.search(text).groups())
    assert avg_lo <= avg <= avg_hi and top_lo <= top <= top_hi and avg_lo < avg_hi
    rows = [m.groups() for m in map(ZONE_ROW.match, text.splitlines()) if m]
    assert [r[0] for r in rows] == ["Z1", "Z2", "Z3", "Z4", "Z5"]
    assert all(float(lo) <= float(c) <= float(hi) for _, c, lo, hi in rows), rows
    assert "no uncertainty band" not in text
    table = pd.read_csv(out)
    assert list(table.columns)[-3:] == ["hr_p10", "hr_p50", "hr_p90"]
    assert (table["hr_p10"] <= table["hr_p50"]).all() and (table["hr_p50"] <= table["hr_p90"]).all()
    assert (table["hr_p90"] - table["hr_p10"]).min() > 0
    pd.testing.assert_series_equal(table["hr_p50"], table["hr_pred"], check_names=False)
    # the same file with the band-less bundle: a one-line note, no band columns
    assert cli.main(["predict", str(good["gpx"]), "--bundle", str(d / "bundle")]) == 0
    plain = capsys.readouterr().out
    assert plain.count("no uncertainty band") == 1 and "80% band" not in plain
    assert "predicted HR: avg" in plain and "zones (max HR" in plain


# --------------------------------------------------------------------------- the ONNX backend


def test_profile_and_predict_on_onnx_runtime_match_torch(tmp_path):
    """A history bundle with model.onnx: `hrpred profile` and `predict --profile` never import
    torch, and give what HRPRED_BACKEND=torch gives (export's parity tolerance, 1e-3 BPM, plus
    the CSV's rounding to 3 decimals)."""
    import json

    from tests.predict_fixtures import runner_workout
    from tests.test_export_band import CAL, write_random_bundle

    bundle = write_random_bundle(tmp_path / "bundle", history=True, band=CAL)
    past = [write_gpx(tmp_path / f"past_{i}.gpx", runner_workout(40 + i, 8.0, i)) for i in range(3)]
    later = write_gpx(tmp_path / "later.gpx", runner_workout(50, 8.0, 9))
    out = {}
    for backend in ("auto", "torch"):
        me, csv = tmp_path / f"me_{backend}.json", tmp_path / f"pred_{backend}.csv"
        argvs = [
            ["profile", *map(str, past), "-o", str(me), "--bundle", str(bundle), "--quiet"],
            ["predict", str(later), "--bundle", str(bundle), "--profile", str(me),
             "--out", str(csv), "--quiet"],
        ]  # fmt: skip
        res = run_main(argvs, tmp_path, HRPRED_BACKEND=backend)
        assert res.returncode == 0, res.stderr
        out[backend] = json.loads(me.read_text()), pd.read_csv(csv)
        imported = res.stderr.strip().splitlines()[-1]
        assert imported == ("modules []" if backend == "auto" else "modules ['torch']")
    (prof, table), (prof_t, table_t) = out["auto"], out["torch"]
    assert prof["bundle"] == prof_t["bundle"]  # the same fingerprint on either backend
    for run, run_t in zip(prof["runs"], prof_t["runs"], strict=True):
        got, want = run["record"], run_t["record"]
        assert got["n"] == want["n"] > 0
        for key in ("cold_sum", "learned_sum"):
            assert abs(got[key] - want[key]) / got["n"] <= 1e-3, key  # mean residual
        for p, v in got["abs_sum"].items():
            assert abs(v - want["abs_sum"][p]) / got["n"] <= 1e-3, p  # MAE
    assert list(table.columns) == list(table_t.columns)
    cols = {"hr_pred", "hr_offset", "hr_learned", "hr_personal", "hr_p10", "hr_p90"}
    assert cols <= set(table.columns)
    diff = (table - table_t).abs().max()
    assert diff.max() <= 2e-3, diff


# --------------------------------------------------------------------------- issue 28: plan


def test_plan_prints_writes_and_plots_without_torch_or_web(files):
    """`hrpred plan` on a GPX route: the summary, the per-step CSV and the figure; the plan
    path imports neither torch nor gradio (matplotlib only for --plot)."""
    from tests.plan_fixtures import write_sample_route

    d, _, _ = files
    route = write_sample_route(d / "hills.gpx")
    base = ["plan", str(route), "--bundle", str(d / "bundle"), "--start", "2024-05-01T08:00"]
    res = run_main([[*base, "--pace", "5:30", "--stops", "5@1:30", "--out", str(d / "p.csv")]], d)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "modules []"
    assert "hills.gpx: 10.00 km, +" in res.stdout
    assert "plan: 5:30 min/km on average, spread by grade" in res.stdout
    assert "finish 56:30 (moving 55:00, average pace 5:30 min/km, stops 1:30)" in res.stdout
    assert "start 2024-05-01 08:00 UTC" in res.stdout and "training load: TRIMP" in res.stdout
    assert res.stdout.count("\n  warning:") == 2  # gender not given; the stop is a pause
    splits = [
        line
        for line in res.stdout.splitlines()
        if re.match(r"^\s+(\d+|\d+\.\d+)\s+\d+:\d\d ", line)
    ]
    assert len(splits) == 10
    table = pd.read_csv(d / "p.csv")
    assert list(table.columns) == [
        "t_s", "distance_km", "altitude_m", "grade_pct", "speed_kmh", "pace_min_km", "hr",
        "hr_pred",
    ]  # fmt: skip
    assert table["distance_km"].iloc[-1] == pytest.approx(10.0, abs=0.03)
    assert (table["hr"] == table["hr_pred"]).all()  # no profile: the population prediction
    png = d / "plan.png"
    res = hrpred(*base, "--hr-cap", "150", "--plot", str(png), "--quiet", cwd=d)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_errors_are_one_line(files, tmp_path):
    from tests.plan_fixtures import write_sample_route

    d, good, _ = files
    route = write_sample_route(tmp_path / "hills.gpx")
    bundle = ["--bundle", str(d / "bundle")]
    cases = {
        "pass --replan": ["plan", str(good["gpx"]), "--pace", "5:00", *bundle],
        "give a pace": ["plan", str(route), *bundle],
        "a stop is KM@M:SS": ["plan", str(route), "--pace", "5:00", "--stops", "5", *bundle],
        "invalid choice: 5": ["plan", str(route), "--zone", "5", *bundle],
        "not allowed with argument --pace": [
            "plan",
            str(route),
            "--pace",
            "5:00",
            "--time",
            "1:00:00",
            *bundle,
        ],  # fmt: skip
        "missing.gpx: file not found": [
            "plan",
            str(tmp_path / "missing.gpx"),
            "--pace",
            "5:00",
            *bundle,
        ],  # fmt: skip
        "is the input file": ["plan", str(route), "--pace", "5:00", "--out", str(route), *bundle],
        "outside what the route allows": ["plan", str(route), "--time", "2:00", *bundle],
    }
    for says, args in cases.items():
        res = hrpred(*args, cwd=d)
        assert res.returncode == 2, (args, res.stderr)
        _no_traceback(res)
        assert len(res.stderr.strip().splitlines()) == 1 and says in res.stderr, (says, res.stderr)
    # a recording is planned at its own pace, or anew with --replan
    res = hrpred("plan", str(good["fit"]), *bundle, "--quiet", cwd=d)
    assert res.returncode == 0, res.stderr
    res = hrpred("plan", str(good["fit"]), "--replan", "--time", "20:00", *bundle, cwd=d)
    assert res.returncode == 0 and "finish 20:00" in res.stdout, res.stderr
