"""Hostile but legitimate profiles, history folders and app calls (issue 25, its 11 cases):
each is one line naming the file, in bounded time, and no previous output is lost.

Case numbers follow the issue: 1 symlink loops, 2 atomic `profile -o`, 3 tampered profiles,
4 NaN/Infinity/1e308, 5 misleading messages, 6 the app's files, 7 history caps and early
checks, 8 FIFOs, 9 order independence, 10 the `--profile` size cap, 11 other sports.
(tests/test_profile_io.py checks the schema field by field.)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hrpred.serve import commands, page
from hrpred.serve.cli import main
from hrpred.serve.limits import MAX_PROFILE_BYTES, PROGRESS_MIN_FILES
from tests.predict_fixtures import (
    make_bundle,
    runner_workout,
    write_fit,
    write_gpx,
    write_tcx,
)
from tests.profile_helpers import hostile_paths, sparse_file, write_runs

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = os.environ.get("HRPRED_PUBLIC_CORPUS")  # a folder of others' test files (case 11)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("hostile")
    bundle = make_bundle(d / "bundle")
    runs = write_runs(d / "past", 4)
    later = write_gpx(d / "later.gpx", runner_workout(99, 8.0, 10, n=80))
    return {"dir": d, "bundle": str(bundle), "runs": [str(r) for r in runs], "later": str(later)}


def _lines(text: str) -> list[str]:
    return [ln for ln in text.strip().splitlines() if ln]


def _profile(env: dict, out: Path, *files: str, capsys=None) -> int:
    return main(["profile", *files, "-o", str(out), "--bundle", env["bundle"], "--quiet"])


def _cli(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hrpred", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=timeout, **kwargs,
    )  # fmt: skip


# --------------------------------------------------------------------------- 1, 8: links, FIFOs


def test_1_symlink_loop_and_devices_are_one_warning_each(env, tmp_path, capsys) -> None:
    bad = hostile_paths(tmp_path / "bad")
    out = tmp_path / "p.json"
    assert _profile(env, out, *env["runs"], *map(str, bad.values())) == 0
    err = _lines(capsys.readouterr().err)
    assert len(err) == 4, err
    for name, says in (
        ("loop.gpx", "symbolic link loop"),
        ("fifo.gpx", "named pipe"),
        ("zero.fit", "character device"),
        ("gone.gpx", "symbolic link to a missing file"),
    ):
        assert any(
            ln.startswith(f"hrpred: warning: {name}: skipped (") and says in ln for ln in err
        )
    assert json.loads(out.read_text())["n_runs"] == 4  # the good files are not lost
    # predict: each one line, the good file still written (was: RuntimeError, nothing written)
    csv = tmp_path / "o.csv"
    args = ["predict", env["later"], str(bad["loop"]), "--bundle", env["bundle"], "--quiet"]
    assert main([*args, "--out", str(csv)]) == 2
    err = _lines(capsys.readouterr().err)
    assert err == ["hrpred: loop.gpx: a symbolic link loop, not a file"]
    assert csv.is_file() and "later.gpx" in csv.read_text()
    assert main(args) == 2  # without --out: a loop, not "file not found"
    assert "symbolic link loop" in capsys.readouterr().err


def test_1_output_named_by_a_loop_is_not_a_crash(env, tmp_path, capsys) -> None:
    """The -o-is-not-an-input check resolved paths and raised RuntimeError on a loop; now a
    loop is no input, and the atomic rename replaces the link with the profile."""
    loop, looped = tmp_path / "loop.json", tmp_path / "in.gpx"
    os.symlink(loop.name, loop)
    os.symlink(looped.name, looped)
    assert _profile(env, loop, *env["runs"], str(looped)) == 0
    err = _lines(capsys.readouterr().err)
    assert err == ["hrpred: warning: in.gpx: skipped (a symbolic link loop, not a file)"]
    assert not loop.is_symlink() and json.loads(loop.read_text())["n_runs"] == 4


def test_8_fifo_on_the_command_line_does_not_hang(env, tmp_path) -> None:
    fifo = tmp_path / "pipe.gpx"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    res = _cli("profile", *env["runs"], str(fifo), "-o", str(tmp_path / "p.json"),
               "--bundle", env["bundle"], "--quiet", timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert _lines(res.stderr) == [
        "hrpred: warning: pipe.gpx: skipped (a named pipe (FIFO), not a regular file)"
    ]
    res = _cli("predict", str(fifo), "--bundle", env["bundle"], "--profile", str(fifo))
    assert res.returncode == 2 and _lines(res.stderr) == [
        "hrpred: pipe.gpx: a named pipe (FIFO), not a regular file"
    ]
    assert time.perf_counter() - t0 < 100


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to another user: needs root")
def test_1_unreadable_file_is_one_warning(env, tmp_path) -> None:
    """As a user who may not read one of the files (root reads everything, so the command
    runs as `nobody`)."""
    folder = tmp_path / "shared"
    folder.mkdir()
    files = [Path(f) for f in env["runs"][:2]]
    mine = [folder / f.name for f in files]
    for src, dst in zip(files, mine, strict=True):
        dst.write_bytes(src.read_bytes())
        dst.chmod(0o644)
    mine[1].chmod(0o600)
    for p in (tmp_path, folder):
        p.chmod(0o777)
    try:
        res = _cli("profile", *map(str, mine), "-o", str(folder / "p.json"),
                   "--bundle", env["bundle"], "--quiet", user=65534)  # fmt: skip
    except PermissionError:
        pytest.skip("`nobody` may not run this Python (test_1_unreadable_... below runs)")
    if "Permission denied" in res.stderr and "Traceback" in res.stderr:
        pytest.skip("`nobody` may not read this Python's files")
    assert res.returncode == 0, res.stderr
    assert _lines(res.stderr) == [
        f"hrpred: warning: {mine[1].name}: skipped (permission denied: cannot read it)"
    ]


def test_1_unreadable_path_is_one_warning_in_process(env, tmp_path, capsys, monkeypatch):
    """The same as a user without read permission (EACCES from stat, or access() false)."""
    import hrpred.io.userfiles as userfiles

    locked, inside = env["runs"][1], str(tmp_path / "locked" / "x.gpx")
    real_stat, real_access = os.stat, os.access

    def stat(path, *args, **kwargs):
        if str(path) == inside:
            raise PermissionError(13, "Permission denied")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(userfiles.os, "stat", stat)
    monkeypatch.setattr(userfiles.os, "access", lambda p, m: str(p) != locked and real_access(p, m))
    assert _profile(env, tmp_path / "p.json", *env["runs"], inside) == 0
    err = _lines(capsys.readouterr().err)
    assert sorted(err) == [
        f"hrpred: warning: {Path(locked).name}: skipped (permission denied: cannot read it)",
        "hrpred: warning: x.gpx: skipped (permission denied: cannot read it)",
    ]


# --------------------------------------------------------------------------- 2: atomic -o


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_2_failed_profile_write_keeps_the_previous_profile(env, tmp_path) -> None:
    """`ulimit -f 2` (2 KB): the write fails; the old profile stays, no temp file is left."""
    out = tmp_path / "me.json"
    res = _cli("profile", *env["runs"], "-o", str(out), "--bundle", env["bundle"], "--quiet")
    assert res.returncode == 0, res.stderr
    before = out.read_bytes()
    assert len(before) > 2048
    res = _cli("profile", *env["runs"][:3], "-o", str(out), "--bundle", env["bundle"],
               "--quiet", preexec_fn=_file_size_limit(2048))  # fmt: skip
    assert res.returncode == 2
    assert _lines(res.stderr) == [f"hrpred: cannot write {out}: [Errno 27] File too large"]
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.json"]


# --------------------------------------------------------------------------- 3, 4, 10: profiles


@pytest.fixture(scope="module")
def profile_json(env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prof") / "me.json"
    assert _profile(env, out, *env["runs"]) == 0
    return out


def _tampered(src: Path, dst: Path, edit) -> Path:
    content = json.loads(src.read_text())
    text = edit(content)
    dst.write_text(text if isinstance(text, str) else json.dumps(content))
    return dst


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda c: c["runs"][1]["summary"].update(hr_mean="abc"), "runs[1].summary.hr_mean"),
        (lambda c: c["bundle"].update(step_s=None), "bundle.step_s is not a number (null)"),
        (lambda c: c.update(summary_features=5), "summary_features is not a list"),
        (lambda c: json.dumps(c).replace('"n_runs": 4', '"n_runs": ' + "7" * 401), "n_runs"),
        (lambda c: c["runs"][0]["record"].update(n=10**30), "record.n"),
        (lambda c: json.dumps(c).replace('"n_runs": 4', '"n_runs": Infinity'), "n_runs"),
        (lambda c: '{"a": ' * 1000 + "1" + "}" * 1000, "nested more than"),
        (lambda c: json.dumps(c).replace('"valid": true', '"valid": NaN', 1), "runs[0].valid"),
        (lambda c: c["runs"][3]["record"].update(cold_sum=float("nan")), "not a finite"),
        (lambda c: c["runs"][3]["record"].update(cold_sum=float("inf")), "not a finite"),
        (lambda c: c["runs"][2]["summary"].update(hr_mean=1e308), "plausible"),
        (lambda c: c["runs"][2].update(start_time=1e308), "runs[2].start_time is 1e+308"),
    ],
)
def test_3_4_tampered_profile_is_one_line_naming_it(
    env, profile_json, tmp_path, capsys, edit, says
):
    me = _tampered(profile_json, tmp_path / "me.json", edit)
    args = ["predict", env["later"], "--bundle", env["bundle"], "--profile", str(me)]
    assert main(args) == 2
    out = capsys.readouterr()
    err = _lines(out.err)
    assert len(err) == 1 and err[0].startswith("hrpred: me.json: ") and says in err[0], err
    assert "unexpected" not in err[0] and "Warning" not in out.err and out.out == ""


def test_3_10_devices_and_giant_profiles_are_refused_fast(env, profile_json, tmp_path, capsys):
    giant = sparse_file(tmp_path / "giant.json", 568 * 1024**2, profile_json.read_bytes()[:-2])
    for path, says in (
        (giant, f"more than {MAX_PROFILE_BYTES >> 20} MB"),
        (Path("/dev/zero"), "a character device"),
    ):
        t0 = time.perf_counter()
        args = ["predict", env["later"], "--bundle", env["bundle"], "--profile", str(path)]
        assert main(args) == 2
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and f"{path.name}: " in err[0] and says in err[0], err
        assert time.perf_counter() - t0 < 5.0


# --------------------------------------------------------------------------- 5: messages


def test_5_features_differ_names_the_profile(env, profile_json, tmp_path, capsys) -> None:
    me = _tampered(profile_json, tmp_path / "old.json",
                   lambda c: c["bundle"].update(features=c["bundle"]["features"][:-1]))  # fmt: skip
    assert main(["predict", env["later"], "--bundle", env["bundle"], "--profile", str(me)]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("hrpred: old.json: ") and "features differ" in err[0]
    assert "grid step" not in err[0], err


def test_5_the_app_blames_the_profile_not_the_run(env, profile_json, tmp_path) -> None:
    from hrpred.bundle.runtime import load_bundle

    bundle = load_bundle(Path(env["bundle"]))
    cases = [
        (lambda c: c["runs"][3]["record"].update(cold_sum=float("nan")),
         "past runs: me.json: runs[3].record.cold_sum is not a finite number"),
        (lambda c: c["bundle"].update(features=c["bundle"]["features"][:-1]),
         "past runs: me.json: the profile was built with another bundle: its features differ"),
    ]  # fmt: skip
    for edit, says in cases:
        me = _tampered(profile_json, tmp_path / "me.json", edit)
        view = page.predict_file(bundle, env["later"], past=[str(me)], workdir=tmp_path)
        assert view.error is not None and view.error.startswith(says), view.error
        assert "later.gpx" not in view.error and "\n" not in view.error


# --------------------------------------------------------------------------- 6: the app's files


def test_6_app_outputs_are_deleted_without_a_browser(env, tmp_path) -> None:
    """API calls never trigger the browser's clean-up: the temp dir keeps at most
    MAX_KEPT_OUTPUTS + 1 prediction folders, none older than OUTPUT_MAX_AGE_S."""
    from hrpred.bundle.runtime import load_bundle

    bundle = load_bundle(Path(env["bundle"]))
    work = tmp_path / "work"
    work.mkdir()
    keep = work / "not-ours"
    keep.mkdir()
    views = [page.predict_file(bundle, env["later"], workdir=work) for _ in range(14)]
    assert all(v.error is None for v in views)
    ours = [p for p in work.iterdir() if p.name.startswith(page.OUTPUT_PREFIXES)]
    assert len(ours) == page.MAX_KEPT_OUTPUTS + 1 and keep.is_dir()
    assert Path(views[-1].csv_path).is_file() and not Path(views[0].csv_path).exists()
    old = time.time() - page.OUTPUT_MAX_AGE_S - 1
    for p in ours:
        os.utime(p, (old, old))
    assert page.prune_outputs(work) == len(ours)
    assert [p.name for p in work.iterdir()] == ["not-ours"]


# --------------------------------------------------------------------------- 7: caps, -o first


def test_7_history_cap_refuses_before_reading(env, tmp_path, capsys, monkeypatch) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(30):
        (folder / f"r{k:02d}.gpx").write_text("not read")

    def no_reading(*args, **kwargs):
        raise AssertionError("an input was read")

    monkeypatch.setattr(commands, "build_profile", no_reading)
    args = ["predict", env["later"], "--bundle", env["bundle"], "--history", str(folder)]
    assert main([*args, "--max-files", "20"]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "30 files, more than --max-files 20" in err[0], err
    assert "pass --max-files 30" in err[0]
    files = [str(p) for p in sorted(folder.iterdir())]
    out = tmp_path / "p.json"
    assert (
        main(["profile", *files, "-o", str(out), "--bundle", env["bundle"], "--max-files", "29"])
        == 2
    )
    assert "more than --max-files 29" in capsys.readouterr().err
    for target, flag in ((tmp_path / "nodir" / "x.json", "-o"), (tmp_path, "-o")):
        assert main(["profile", *files, flag, str(target), "--bundle", "/nonexistent"]) == 2
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and ("no such directory" in err[0] or "is a directory" in err[0])
    args = ["predict", env["later"], "--bundle", "/nonexistent", "--out"]
    assert main([*args, str(tmp_path / "nodir" / "o.csv")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_7_many_history_files_show_progress(env, tmp_path) -> None:
    n = PROGRESS_MIN_FILES + 2
    folder = tmp_path / "hist"
    write_runs(folder, n, first_day=-30)  # all before the predicted run (day 10)
    args = ["predict", env["later"], "--bundle", env["bundle"], "--history", str(folder)]
    res = _cli(*args, timeout=300)
    assert res.returncode == 0, res.stderr
    # not a terminal: one summary line instead of a bar
    err = _lines(res.stderr)
    assert len(err) == 1 and err[0].startswith(f"reading runs: {n} files in "), err
    assert f"personalised with {n} earlier run(s)" in res.stdout
    res = _cli(*args, "--quiet", timeout=300)  # --quiet: no line
    assert res.returncode == 0 and res.stderr == "", res.stderr


# --------------------------------------------------------------------------- 9: order


def test_9_same_files_in_any_order_give_the_same_profile(env, tmp_path, capsys) -> None:
    """Two runs with one name and one start time in two folders (another HR): the first
    path is kept whatever the order, the warning names both with their folders, and the
    profiles are byte-identical."""
    w = runner_workout(31, 8.0, 7, n=80)
    a = write_gpx((tmp_path / "a").mkdir() or tmp_path / "a" / "same.gpx", w)
    b = write_gpx(
        (tmp_path / "b").mkdir() or tmp_path / "b" / "same.gpx", runner_workout(31, 30.0, 7, n=80)
    )
    bad = tmp_path / "b" / "bad.gpx"
    bad.write_text("<gpx")
    files = [*env["runs"], str(b), str(bad), str(a)]
    outs = []
    for k, order in enumerate((files, files[::-1], sorted(files))):
        out = tmp_path / f"p{k}.json"
        assert _profile(env, out, *order) == 0
        outs.append(out.read_bytes())
        err = capsys.readouterr().err
        assert f"{b}: skipped (same start time as {a})" in err, err
    assert outs[0] == outs[1] == outs[2]
    content = json.loads(outs[0])
    assert [s["file"] for s in content["skipped"]] == ["bad.gpx", "same.gpx"]
    kept = next(r for r in content["runs"] if r["file"] == "same.gpx")
    assert kept["summary"]["hr_mean"] < 170  # a/same.gpx (~160 BPM), not b/same.gpx (~182)


# --------------------------------------------------------------------------- 11: sports


@pytest.fixture(scope="module")
def rides(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("rides")
    w = runner_workout(41, 8.0, 12, n=80)
    gpx = write_gpx(d / "ride.gpx", w)
    gpx.write_text(gpx.read_text().replace("<type>running</type>", "<type>cycling</type>"))
    tcx = write_tcx(d / "ride.tcx", w)
    tcx.write_text(tcx.read_text().replace('Sport="Running"', 'Sport="Biking"'))
    return {
        "fit": write_fit(d / "ride.fit", w, sport="CYCLING"),
        "gpx": gpx,
        "tcx": tcx,
        "swim": write_fit(d / "swim.fit", w, sport="SWIMMING"),
        "run": write_fit(d / "run.fit", w, sport="RUNNING"),
    }


def test_11_other_sports_are_named_not_misread(env, rides, tmp_path, capsys) -> None:
    names = [str(rides[k]) for k in ("fit", "gpx", "tcx", "swim", "run")]
    assert main(["predict", *names, "--bundle", env["bundle"], "--quiet"]) == 2
    err = _lines(capsys.readouterr().err)
    assert err == [
        "hrpred: ride.fit: a cycling activity: hrpred predicts running HR",
        "hrpred: ride.gpx: a cycling activity: hrpred predicts running HR",
        "hrpred: ride.tcx: a cycling activity: hrpred predicts running HR",
        "hrpred: swim.fit: a swimming activity: hrpred predicts running HR",
    ]  # the run with the same records is predicted
    out = tmp_path / "p.json"
    assert _profile(env, out, *env["runs"], *names) == 0
    err = _lines(capsys.readouterr().err)
    assert (
        "hrpred: warning: ride.tcx: skipped (a cycling activity: hrpred predicts running HR)" in err
    )
    assert len(err) == 4 and json.loads(out.read_text())["n_runs"] == 5


@pytest.mark.skipif(not PUBLIC, reason="HRPRED_PUBLIC_CORPUS (a folder of test files) not set")
def test_11_public_corpus_gives_no_gps_jump_for_a_known_sport(env) -> None:
    """Others' test files (python-fitparse's FIT, gpxpy's GPX: never committed here): each
    a prediction or one line; a file that says it is a ride or a swim says so."""
    from hrpred.io.userfiles import read_activity

    files = sorted(p for p in Path(PUBLIC).rglob("*") if p.suffix.lower() in (".fit", ".gpx"))
    res = _cli("predict", *map(str, files), "--bundle", env["bundle"], "--quiet", timeout=600)
    assert "Traceback" not in res.stderr and "unexpected error" not in res.stderr
    lines = _lines(res.stderr)
    assert len(lines) <= len(files)
    for f in files:
        try:
            sport = read_activity(f).sport
        except Exception:  # noqa: BLE001 - unreadable files are the reader's tests' business
            continue
        if sport not in (None, "running"):
            assert f"hrpred: {f.name}: a {sport} activity: hrpred predicts running HR" in lines
