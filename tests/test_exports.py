"""A runner's export as input (issue 29, item 1): Strava and Garmin layouts, zips and
folders, read member by member, non-runs and duplicates left out, hostile members refused
with one line each while the good ones are imported."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from hrpred.io import exports
from hrpred.io.exports import ExportError, is_export, open_export, read_index
from hrpred.serve.cli import main
from hrpred.serve.profile import build_profile, load_profile
from tests.export_fixtures import GARMIN_UPLOADS, garmin_zip, hostile_zip, strava_zip
from tests.profile_helpers import random_history_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from hrpred.bundle.runtime import load_bundle

    return load_bundle(random_history_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("exports")
    return {"strava": strava_zip(d / "s"), "garmin": garmin_zip(d / "g"), "dir": d}


def _names(export) -> list[str]:
    return [Path(s.name).name for s in export.sources]


def test_strava_index_reads_the_first_of_repeated_columns_and_the_sport() -> None:
    text = (
        "Activity ID,Activity Type,Distance,Filename,Distance,Activity Type\n"
        "1,Run,3.1,activities/1.fit.gz,3100,Ride\n"
        "2,Ride,20,activities/2.gpx.gz,20000,Run\n"
        "3,Walk,2,activities/3.gpx.gz,2000,Walk\n"
        "4,Run,5,,5000,Run\n"
    )
    index = read_index(text.encode(), "activities.csv")
    assert index.sports == {"activities/1.fit.gz": "running"}  # the first Activity Type
    assert dict(index.non_runs) == {"cycling": 1, "walking": 1}
    assert index.manual == 1
    with pytest.raises(ExportError, match="Filename"):
        read_index(b"a,b\n1,2\n", "activities.csv")


def test_strava_zip_lists_its_runs_only(made) -> None:
    with open_export(made["strava"]) as export:
        assert _names(export) == ["101.fit.gz", "102.gpx.gz", "103.tcx.gz", "104.gpx"]
        assert export.sources[0].name == "strava.zip/activities/101.fit.gz"
        notes = " | ".join(export.notes)
        assert "left out 1 non-run activities (cycling: 1)" in notes
        assert "1 manual entries" in notes
        assert export.problems == [
            "strava.zip/activities/107.fit.gz: listed in activities.csv but not in the export"
        ]
        assert export.sources[1].read().sport == "running"


def test_strava_profile_drops_the_duplicate_and_records_sources(made, bundle) -> None:
    with open_export(made["strava"]) as export:
        profile, warns = build_profile(bundle, export.sources)
    runs = profile.content["runs"]
    assert [r["source"] for r in runs] == [
        "strava.zip/activities/101.fit.gz",
        "strava.zip/activities/102.gpx.gz",
        "strava.zip/activities/103.tcx.gz",
    ]
    assert profile.content["skipped"] == [
        {"file": "104.gpx", "reason": "a duplicate of 101.fit.gz"}
    ]
    assert any("104.gpx: skipped (same start time as" in w for w in warns)


def test_extracted_strava_folder_gives_the_same_runs(made, tmp_path) -> None:
    folder = tmp_path / "export"
    with zipfile.ZipFile(made["strava"]) as z:
        z.extractall(folder)  # the test's own zip: safe to extract
    with open_export(folder) as export:
        assert _names(export) == ["101.fit.gz", "102.gpx.gz", "103.tcx.gz", "104.gpx"]
        assert any("not in the export" in p for p in export.problems)


def test_garmin_zip_keeps_activities_and_runs(made, bundle) -> None:
    with open_export(made["garmin"]) as export:
        assert _names(export) == [
            "me@x.org_1001.fit", "me@x.org_1002.fit", "me@x.org_1003.fit", "me@x.org_3001.fit",
        ]  # fmt: skip
        assert export.sources[0].name.startswith(f"garmin.zip/{GARMIN_UPLOADS}/UploadedFiles")
        assert export.notes == [
            "garmin.zip: left out 1 FIT files that are not activities (monitoring_b: 1)"
        ]
        assert export.problems == []
        profile, warns = build_profile(bundle, export.sources)
    assert profile.content["n_runs"] == 3
    assert [s["file"] for s in profile.content["skipped"]] == ["me@x.org_3001.fit"]
    assert "a cycling activity" in profile.content["skipped"][0]["reason"]
    assert len(warns) == 1 and "\n" not in warns[0]


def test_hostile_members_are_refused_one_line_each(tmp_path, bundle, monkeypatch) -> None:
    from hrpred.io import userfiles

    limit = 1 << 20  # the activity limit, made small so the bombs stay cheap to build
    monkeypatch.setattr(userfiles, "MAX_ACTIVITY_BYTES", limit)
    monkeypatch.setattr(userfiles.read_stream_bytes, "__defaults__", (limit,))
    path = hostile_zip(tmp_path / "h", bomb_bytes=4 * limit)
    with open_export(path) as export:
        problems = {p.split(": ")[0].removeprefix("hostile.zip/"): p for p in export.problems}
        assert set(problems) == {"../../etc/evil.gpx", "link.fit", "nested/deep.zip/deeper.zip"}
        assert "outside the archive" in problems["../../etc/evil.gpx"]
        assert "symbolic link" in problems["link.fit"]
        assert "nested too deep" in problems["nested/deep.zip/deeper.zip"]
        assert "monitoring_b: 1" in " ".join(export.notes)
        assert _names(export) == ["bomb.gpx", "bomb.tcx.gz", "corrupt.fit", "good.gpx"]
        profile, warns = build_profile(bundle, export.sources)
    assert [r["file"] for r in profile.content["runs"]] == ["good.gpx"]
    reasons = {s["file"]: s["reason"] for s in profile.content["skipped"]}
    assert "more than 1 MB" in reasons["bomb.gpx"]
    assert "once decompressed" in reasons["bomb.tcx.gz"]
    assert "not a FIT file" in reasons["corrupt.fit"]
    assert all("\n" not in w for w in warns + export.problems)


def test_absurd_member_counts_are_refused_before_parsing(made, monkeypatch) -> None:
    monkeypatch.setattr(exports, "MAX_EXPORT_MEMBERS", 3)
    with pytest.raises(ExportError, match=r"strava.zip: 7 entries, more than 3"):
        open_export(made["strava"])


def test_not_a_zip_and_a_cut_zip(tmp_path) -> None:
    cut = tmp_path / "cut.zip"
    with zipfile.ZipFile(cut, "w") as z:
        z.writestr("a.gpx", "<gpx/>" * 100)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert is_export(cut)
    with pytest.raises(ExportError, match="cut short"):
        open_export(cut)
    assert not is_export(tmp_path / "missing.zip")


def test_cli_profile_and_history_accept_exports(made, tmp_path, capsys) -> None:
    bdir = random_history_bundle(tmp_path / "b")
    out = tmp_path / "me.json"
    rc = main(["profile", str(made["strava"]), str(made["garmin"]), "-o", str(out),
               "--bundle", str(bdir), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    content = load_profile(out).content
    assert content["n_runs"] == 6  # 3 Strava + 3 Garmin runs
    assert all(r["source"].startswith(("strava.zip/", "garmin.zip/")) for r in content["runs"])
    assert "not in the export" in err and "monitoring_b" in err
    later = tmp_path / "later.gpx"
    from tests.predict_fixtures import runner_workout, write_gpx

    write_gpx(later, runner_workout(99, 10.0, 30, n=80))
    rc = main(["predict", str(later), "--bundle", str(bdir), "--history", str(made["garmin"])])
    res = capsys.readouterr()
    assert rc == 0, res.err
    assert "3 earlier run(s)" in res.out
    json.dumps(content)


def test_workers_give_the_same_profile_and_skips(made, tmp_path, bundle, monkeypatch) -> None:
    """Members read here and parsed in worker processes, plain paths opened by the workers:
    the profile (JSON) and the skipped files' reasons are those of a sequential build."""
    from hrpred.bundle.format import dumps_json
    from hrpred.io import userfiles

    limit = 1 << 20
    monkeypatch.setattr(userfiles, "MAX_ACTIVITY_BYTES", limit)
    monkeypatch.setattr(userfiles.read_stream_bytes, "__defaults__", (limit,))
    hostile = hostile_zip(tmp_path / "h", bomb_bytes=4 * limit)
    folder = tmp_path / "plain"
    with zipfile.ZipFile(made["strava"]) as z:
        z.extractall(folder)
    (folder / "empty.gpx").write_bytes(b"")
    paths = sorted(str(p) for p in (folder / "activities").iterdir()) + [str(folder / "empty.gpx")]
    built = []
    for workers in (1, 2, 3):
        with open_export(hostile) as h, open_export(made["strava"]) as s:
            profile, warns = build_profile(bundle, [*h.sources, *s.sources, *paths], None,
                                           workers=workers)  # fmt: skip
        built.append((dumps_json(profile.content), warns))
    assert built[1] == built[0] and built[2] == built[0]
    skipped = {s["file"]: s["reason"] for s in profile.content["skipped"]}
    assert "once decompressed" in skipped["bomb.tcx.gz"]  # read here: refused before a worker
    assert "not a FIT file" in skipped["corrupt.fit"]  # parsed by a worker
    assert skipped["empty.gpx"] == "empty file"  # opened by a worker
    assert profile.content["n_runs"] >= 4


def test_cli_workers_must_be_a_positive_count(made, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["profile", str(made["strava"]), "-o", str(tmp_path / "me.json"), "--workers", "0"])
    assert exc.value.code == 2
    assert "--workers: must be within 1-64, got 0" in capsys.readouterr().err
