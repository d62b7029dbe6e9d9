"""Input-only categories: rules on constructed profiles, and no dependence on HR."""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import pytest

from hrpred.evaluate import categories as cat_mod
from hrpred.evaluate.categories import (
    CategoryRules,
    assign,
    assign_all,
    describe,
    describe_rows,
    report_only_hr_band,
)
from hrpred.evaluate.inputs import input_categories
from hrpred.params import ParamError
from hrpred.store import open_dataset


@pytest.fixture(scope="module")
def rules(config) -> CategoryRules:
    """The real params.yaml `evaluate.categories`."""
    return config(CategoryRules, "evaluate.categories")


def categorize(speed, alt, t, rules: CategoryRules, ref_speed_kmh=None) -> str:
    """One workout's category: the package's two steps (describe, then assign)."""
    return assign(describe(speed, alt, t, rules), rules, ref_speed_kmh)


def categorize_all(speed, alt, t, lengths, rules: CategoryRules, user_ids=None) -> list[str]:
    """Padded [N, T] rows' categories, the way input_categories computes them."""
    return assign_all(describe_rows(speed, alt, t, lengths, rules), rules, user_ids)


def _profile(kind: str, n: int = 300, dt: float = 8.0):
    t = np.arange(n) * dt
    alt = np.full(n, 100.0)
    if kind == "steady":
        speed = np.full(n, 12.0)
    elif kind == "easy":
        speed = np.full(n, 8.5)
    elif kind == "progressive":
        speed = np.linspace(10.0, 14.0, n)
    elif kind == "intervals":
        speed = np.where((np.arange(n) // 30) % 2 == 0, 16.0, 8.0)
    elif kind == "hilly":
        speed = np.full(n, 11.0)
        alt = 100 + 60 * np.sin(np.arange(n) / 20)  # ~40 m/km of climb
    else:
        raise ValueError(kind)
    noise = np.random.default_rng(0).normal(0, 0.2, n)
    return speed + noise, alt, t


@pytest.mark.parametrize("kind", ["steady", "easy", "progressive", "intervals", "hilly"])
def test_constructed_profiles(kind, rules):
    assert categorize(*_profile(kind), rules) == kind


def test_stops_are_not_intervals(rules):
    speed, alt, t = _profile("steady")
    speed[50:60] = 0.0  # two stops at traffic lights
    speed[200:215] = 0.0
    assert categorize(speed, alt, t, rules) == "steady"


def test_easy_relative_to_the_users_median_speed(rules):
    runs = [_profile("steady") for _ in range(3)]
    speed = np.stack([r[0] for r in runs]) + np.array([[-2.0], [0.0], [0.5]])  # 10, 12, 12.5
    alt = np.stack([r[1] for r in runs])
    t = np.stack([r[2] for r in runs])
    lengths = [speed.shape[1]] * 3
    absolute = replace(rules, easy_reference="absolute")
    assert categorize_all(speed, alt, t, lengths, absolute, [7, 7, 7]) == ["steady"] * 3
    assert categorize_all(speed, alt, t, lengths, rules, [7, 7, 7]) == ["easy", "steady", "steady"]
    # a user of their own: the workout is its own reference, not easy
    assert categorize_all(speed, alt, t, lengths, rules, [7, 8, 7])[1] == "steady"
    with pytest.raises(ParamError, match="easy_reference"):
        replace(rules, easy_reference="hr")


def test_thresholds_are_params(rules):
    speed, alt, t = _profile("easy")
    absolute = replace(rules, easy_reference="absolute")
    assert categorize(speed, alt, t, absolute) == "easy"
    assert categorize(speed, alt, t, replace(absolute, easy_max_speed_kmh=8.0)) == "steady"
    speed, alt, t = _profile("hilly")
    assert categorize(speed, alt, t, rules) == "hilly"
    assert categorize(speed, alt, t, replace(rules, hilly_climb_m_per_km=100.0)) == "steady"


def test_padding_is_ignored(rules):
    speed, alt, t = _profile("intervals")
    pad = 100
    sp = np.concatenate([speed, np.zeros(pad)])[None]
    al = np.concatenate([alt, np.zeros(pad)])[None]
    el = np.concatenate([t, np.zeros(pad)])[None]
    assert categorize_all(sp, al, el, [len(speed)], rules) == ["intervals"]
    assert categorize(np.zeros(0), np.zeros(0), np.zeros(0), rules) in cat_mod.CATEGORIES


def test_signatures_take_no_hr():
    for fn in (cat_mod.describe, cat_mod.describe_rows, cat_mod.assign, cat_mod.assign_all):
        params = " ".join(inspect.signature(fn).parameters).lower()
        assert "hr" not in params and "heart" not in params


def test_changing_hr_leaves_categories_identical(tmp_path, make_tree, rules):
    make_tree(tmp_path)
    ds = open_dataset(tmp_path / "data/features", tmp_path / "data/split")
    data = ds.data
    rows = np.arange(data.n_rows)
    before = input_categories(ds, rows, rules)
    rng = np.random.default_rng(5)
    data.target = rng.uniform(40, 220, data.target.shape).astype(np.float32)
    data.mask = rng.random(data.mask.shape) > 0.5  # hr_valid is HR-derived too
    assert input_categories(ds, rows, rules) == before
    assert len(set(before)) >= 2  # the fake data is not all one category


def test_report_only_hr_band_matches_manual():
    hr = np.array([[120.0, 125.0, 0.0], [140.0, 160.0, 0.0], [175.0, 180.0, 0.0], [1, 2, 3]])
    valid = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    assert report_only_hr_band(hr, valid, [130, 150, 170]) == [
        "hr_lt_130",
        "hr_150_170",
        "hr_ge_170",
        "none",
    ]
    assert report_only_hr_band(hr, valid, []) == ["all", "all", "all", "none"]
