"""A profile is untrusted input (issue 25): `hrpred.serve.profile_io` reads it with a size
cap, a nesting bound, every field against the schema, and writes it atomically.

The profiles mutated here are built by `build_profile` with a population bundle and a random
history bundle (tests/profile_helpers.py), so the schema is checked against what the code
writes (a field written but missing from the schema fails the round trip).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import stat
import time
from pathlib import Path

import pytest

from hrpred.bundle.runtime import load_bundle
from hrpred.io import jsonspec
from hrpred.io.jsonspec import Integer, ListOf, MapOf, Number, Record, Text, nesting_depth
from hrpred.serve.limits import MAX_PROFILE_BYTES, MAX_PROFILE_DEPTH, MAX_PROFILE_RUNS
from hrpred.serve.profile import (
    ProfileError,
    build_profile,
    check_compatible,
    load_profile,
    save_profile,
)
from hrpred.serve.profile_io import check_profile, read_profile, write_profile
from tests.predict_fixtures import make_bundle
from tests.profile_helpers import random_history_bundle, sparse_file, write_runs


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """Profiles of five runs (one without HR) built with a population and a history bundle."""
    d = tmp_path_factory.mktemp("pio")
    runs = write_runs(d / "runs", 5)
    pop = load_bundle(make_bundle(d / "pop"))
    hist = load_bundle(random_history_bundle(d / "hist"))
    out = {"dir": d, "pop_bundle": pop, "hist_bundle": hist}
    for kind, bundle in (("pop", pop), ("hist", hist)):
        profile, _ = build_profile(bundle, runs)
        path = d / f"{kind}.json"
        save_profile(profile, path)
        out[kind] = json.loads(path.read_text())
        out[f"{kind}_path"] = path
    return out


def _write(path: Path, content) -> Path:
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return path


def _refused(path: Path) -> str:
    with pytest.raises(ProfileError) as info:
        read_profile(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path.name}: "), msg
    return msg


def test_built_profiles_read_back_equal(made) -> None:
    for kind in ("pop", "hist"):
        assert read_profile(made[f"{kind}_path"]) == made[kind]
        profile = load_profile(made[f"{kind}_path"])
        check_compatible(profile, made[f"{kind}_bundle"])
    assert made["hist"]["bundle"]["kind"] == "history" and made["hist"]["n_runs"] == 5
    assert all("score_sq" in r["record"] and "plan" in r for r in made["hist"]["runs"])


def _set(path: list, value):
    def apply(c: dict) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


def _drop(path: list):
    def apply(c: dict) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return apply


# (mutation, the field named, what the message says)
CASES = [
    (_set(["runs", 1, "summary", "hr_mean"], "abc"), "runs[1].summary.hr_mean", "not a number"),
    (_set(["bundle", "step_s"], None), "bundle.step_s", "not a number (null)"),
    (_set(["bundle", "step_s"], [8.0]), "bundle.step_s", "not a number (a list)"),
    (_set(["summary_features"], 5), "summary_features", "not a list"),
    (_set(["runs", 0, "record", "n"], 10**30), "runs[0].record.n", "integer"),
    (_set(["runs", 0, "record", "n"], 12.5), "runs[0].record.n", "integer"),
    (_set(["runs", 0, "record", "n"], True), "runs[0].record.n", "integer"),
    (_set(["runs", 3, "record", "cold_sum"], 1e308), "runs[3].record.cold_sum", "1e+308"),
    (_set(["runs", 2, "start_time"], 5.0), "runs[2].start_time", "plausible"),
    (_set(["runs", 2, "duration_s"], -1.0), "runs[2].duration_s", "plausible"),
    (_set(["runs", 2, "summary", "frac_valid"], 7.0), "runs[2].summary.frac_valid", "plausible"),
    (_set(["runs", 2, "valid"], "yes"), "runs[2].valid", "true/false"),
    (_set(["runs", 2, "file"], "x" * 5000), "runs[2].file", "longer than"),
    (_set(["runs", 2, "date"], "yesterday"), "runs[2].date", "form"),
    (_set(["runs", 2, "extra"], {"a": [1]}), "runs[2].extra", "not a field"),
    (_set(["bundle", "kind"], "magic"), "bundle.kind", "not one of"),
    (_set(["bundle", "fingerprint"], "zz"), "bundle.fingerprint", "form"),
    (_set(["bundle", "features"], "speed"), "bundle.features", "not a list"),
    (_set(["level", "trend_bpm_per_30_days"], "up"), "level.trend_bpm_per_30_days", "number"),
    (_set(["skipped"], [{"file": "a"}]), "skipped[0].reason", "missing"),
    (_set(["n_runs"], 7), "n_runs", "but runs has 5"),
    (_drop(["runs", 1, "record"]), "runs[1].record", "missing"),
    (_drop(["runs", 1, "summary", "hr_std"]), "runs[1].summary", "summary_features"),
    (_drop(["runs", 4, "record", "score_sq"]), "score_sq", "missing"),
    (_set(["runs", 4, "record", "cold_sum"], 1e6), "runs[4].record.cold_sum", "BPM"),
    (_set(["runs", 4, "record", "score_sq"], 1e12), "score_sq", "implausible"),
    (lambda c: c["runs"].reverse(), "runs[1].start_time", "start order"),
    (_drop(["level"]), "level", "missing"),
    (_set(["runs"], {"0": {}}), "runs", "not a list"),
]


@pytest.mark.parametrize(("mutate", "field", "says"), CASES)
def test_tampered_field_is_one_line_naming_file_and_field(made, tmp_path, mutate, field, says):
    content = copy.deepcopy(made["hist"])
    mutate(content)
    msg = _refused(_write(tmp_path / "me.json", content))
    assert field in msg and says in msg and msg.endswith("rebuild it with hrpred profile"), msg


@pytest.mark.parametrize(
    ("literal", "field", "says"),
    [
        ("NaN", "runs[3].record.cold_sum", "not a finite number"),
        ("Infinity", "runs[3].record.cold_sum", "not a finite number"),
        ("-Infinity", "runs[3].record.cold_sum", "not a finite number"),
        ("1e400", "runs[3].record.cold_sum", "not a finite number"),
        ("1" + "0" * 400, "runs[3].record.cold_sum", "not a finite number"),
        ("1e308", "runs[3].record.cold_sum", "plausible"),
    ],
)
def test_non_finite_and_huge_literals_are_refused(made, tmp_path, literal, field, says):
    """Python's json reads NaN/Infinity and 10^400 ints; the schema refuses them by field."""
    content = copy.deepcopy(made["hist"])
    content["runs"][3]["record"]["cold_sum"] = "@@"
    text = json.dumps(content).replace('"@@"', literal)
    msg = _refused(_write(tmp_path / "me.json", text))
    assert field in msg and says in msg, msg


def test_huge_integer_where_an_int_goes(made, tmp_path) -> None:
    text = json.dumps(made["pop"]).replace('"n_runs": 5', '"n_runs": ' + "9" * 5000)
    msg = _refused(_write(tmp_path / "me.json", text))
    assert "n_runs is not an integer (inf)" in msg, msg


def test_format_and_version(made, tmp_path) -> None:
    cases = [
        ({"format": "something"}, "not an hrpred profile"),
        ([1, 2], "not an hrpred profile"),
        ({**made["pop"], "format_version": 2}, "format 2 is older than this hrpred's (4)"),
        ({**made["pop"], "format_version": 99}, "newer than this hrpred"),
        ({**made["pop"], "format_version": "4"}, "format_version is not an integer"),
        ("{not json", "unreadable profile"),
        ("", "unreadable profile"),
    ]
    for content, says in cases:
        msg = _refused(_write(tmp_path / "p.json", content))
        assert says in msg, msg
    (tmp_path / "u16.json").write_text(json.dumps(made["pop"]), encoding="utf-16")
    assert "not UTF-8" in _refused(tmp_path / "u16.json")


def test_nesting_is_bounded_before_parsing(tmp_path) -> None:
    for text in ('{"format": "hrpred-profile", "x": ' + "[" * 1000 + "]" * 1000 + "}",
                 "[" * 100_000, '{"a": {"b": ' * 20 + "1" + "}" * 40):  # fmt: skip
        msg = _refused(_write(tmp_path / "deep.json", text))
        assert f"nested more than {MAX_PROFILE_DEPTH} levels" in msg, msg
    # brackets inside strings are not nesting
    content = {"format": "x", "s": "[" * 1000 + '\\"{' * 50}
    assert nesting_depth(json.dumps(content).encode()) == 1


def _reference_depth(data: bytes) -> int:
    depth = deepest = slashes = 0
    inside = False
    for c in data.decode("latin-1"):
        if c == '"' and slashes % 2 == 0:
            inside = not inside
        elif not inside and c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif not inside and c in "]}":
            depth -= 1
        slashes = slashes + 1 if c == "\\" else 0
    return deepest


@pytest.mark.parametrize("chunk", [3, 7, 1 << 18])
def test_nesting_depth_matches_a_reference(monkeypatch, chunk) -> None:
    monkeypatch.setattr(jsonspec, "DEPTH_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(1500):
        data = bytes(rng.choice(b'[]{}"\\a,') for _ in range(rng.randrange(0, 60)))
        assert nesting_depth(data) == _reference_depth(data), data


def test_size_cap_refuses_giants_without_reading_them(made, tmp_path) -> None:
    """A 568 MB profile (sparse) is refused from its size, in well under a second."""
    giant = sparse_file(
        tmp_path / "giant.json", 568 * 1024**2, json.dumps(made["pop"])[:-1].encode()
    )
    t0 = time.perf_counter()
    msg = _refused(giant)
    assert time.perf_counter() - t0 < 1.0 and f"more than {MAX_PROFILE_BYTES >> 20} MB" in msg


def test_runs_are_capped(made, tmp_path) -> None:
    content = copy.deepcopy(made["pop"])
    run = content["runs"][0]
    content["runs"] = [
        dict(run, start_time=run["start_time"] + i) for i in range(MAX_PROFILE_RUNS + 1)
    ]
    content["n_runs"] = len(content["runs"])
    msg = _refused(_write(tmp_path / "many.json", content))
    assert f"n_runs is {MAX_PROFILE_RUNS + 1}, outside 0..{MAX_PROFILE_RUNS:,}" in msg, msg
    content["n_runs"] = MAX_PROFILE_RUNS
    msg = _refused(_write(tmp_path / "many.json", content))
    assert f"runs has {MAX_PROFILE_RUNS + 1:,} items, more than {MAX_PROFILE_RUNS:,}" in msg, msg


def test_specs_directly() -> None:
    spec = Record({"a": Number(0, 1), "b": ListOf(Integer(0, 3), 2)}, optional={"c": Text(3)})
    check_profile_like = spec.check
    check_profile_like({"a": 0.5, "b": [1, 2]}, "")
    check_profile_like({"a": 1, "b": [], "c": "abc"}, "")
    bad = [
        ({"a": math.nan, "b": []}, "a is not a finite number"),
        ({"a": 2, "b": []}, "a is 2, outside"),
        ({"a": 0, "b": [1, 2, 3]}, "b has 3 items, more than 2"),
        ({"a": 0, "b": [4]}, "b[0] is 4, outside"),
        ({"a": 0, "b": [], "c": "abcd"}, "c is longer than 3"),
        ({"a": 0}, "b is missing"),
        ({"a": 0, "b": [], "d": 1}, "d is not a field"),
    ]
    for value, says in bad:
        with pytest.raises(jsonspec.Invalid, match=re.escape(says)):
            check_profile_like(value, "")
    with pytest.raises(jsonspec.Invalid, match="x.k is not a number"):
        MapOf(Number(0, 1), 4).check({"k": "1"}, "x")


def test_write_is_atomic_and_checks_what_it_writes(made, tmp_path, monkeypatch) -> None:
    path = tmp_path / "me.json"
    path.write_text("previous profile\n")
    bad = copy.deepcopy(made["pop"])
    bad["runs"][0]["record"]["cold_sum"] = math.inf
    with pytest.raises(ProfileError, match="not written.*not a finite number"):
        write_profile(bad, path)
    assert path.read_text() == "previous profile\n"

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hrpred.io.atomic.os.fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_profile(made["pop"], path)
    assert path.read_text() == "previous profile\n"
    assert [p.name for p in tmp_path.iterdir()] == ["me.json"]  # no temp file left
    monkeypatch.undo()
    path.chmod(0o640)
    write_profile(made["pop"], path)
    assert json.loads(path.read_text()) == made["pop"] and (path.stat().st_mode & 0o777) == 0o640


def test_check_profile_names_the_given_name(made) -> None:
    content = copy.deepcopy(made["pop"])
    content["n_runs"] = -1
    with pytest.raises(ProfileError, match=r"^upload\.json: n_runs is -1"):
        check_profile(content, "upload.json")


def test_features_differ_is_said_so_and_equal_steps_are_equal(made, tmp_path) -> None:
    """Was: 'grid step 8.406241862230598 s, this one 8.40624 s' for equal steps."""
    profile = load_profile(made["pop_path"])
    bundle = made["pop_bundle"]
    content = copy.deepcopy(made["pop"])
    content["bundle"]["features"] = content["bundle"]["features"][:-1]
    other = load_profile(_write(tmp_path / "f.json", content))
    with pytest.raises(ProfileError, match="its features differ") as info:
        check_compatible(other, bundle)
    assert "grid step" not in str(info.value)
    content = copy.deepcopy(made["pop"])
    content["bundle"]["step_s"] = bundle.step_s * (1 + 1e-12)  # the same step, printed apart
    check_compatible(load_profile(_write(tmp_path / "s.json", content)), bundle)
    content["bundle"]["step_s"] = 8.406241862230598
    with pytest.raises(ProfileError, match=r"grid step 8.40624 s, this one 8 s"):
        check_compatible(load_profile(_write(tmp_path / "t.json", content)), bundle)
    check_compatible(profile, bundle)


def test_write_through_links_and_into_pipes(made, tmp_path) -> None:
    """A link to a profile: the file it points to is replaced, the link stays. A target that
    is not a regular file (a pipe here; /dev/null or /dev/stdout for a user) is written to,
    never renamed over (as root that would replace a device)."""
    import threading

    real = tmp_path / "real.json"
    real.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    write_profile(made["pop"], link)
    assert link.is_symlink() and json.loads(real.read_text()) == made["pop"]
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    write_profile(made["pop"], pipe)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and json.loads(got[0]) == made["pop"]
