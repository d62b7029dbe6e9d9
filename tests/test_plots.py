"""Example choice (representative, seeded) and DVC plot records."""

from __future__ import annotations

import numpy as np
import pytest

from hrpred.evaluate.plots import (
    PlotSums,
    Trace,
    choose_examples,
    median_examples,
    plot_records,
)


def plot_data(y, p, v, el, workout_mae, examples, seed, n_scatter, min_steps_per_minute=20):
    """The records of whole [N, T] arrays: one PlotSums chunk and every example's trace."""
    sums = PlotSums(int(v.sum()), seed, n_scatter)
    sums.add(y, p, v, el)
    traces = {e.row: Trace(y[e.row], p[e.row], v[e.row], el[e.row]) for e in examples}
    return plot_records(
        sums, workout_mae, examples, traces, min_steps_per_minute=min_steps_per_minute
    )


def _maes(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    mae = rng.gamma(3.0, 3.0, n)
    cats = np.where(np.arange(n) % 2 == 0, "steady", "intervals")
    mae[cats == "intervals"] += 40.0  # a category where every prediction is bad
    return mae, cats.tolist(), np.arange(n) + 1000, np.full(n, 500)


def test_examples_sit_at_the_quantiles_and_bad_ones_are_kept():
    mae, cats, ids, steps = _maes()
    ex = choose_examples(mae, cats, ids, steps, [0.1, 0.5, 0.9], seed=1, window=0.05)
    assert len(ex) == 6
    for e in ex:
        pool = mae[np.asarray(cats) == e.category]
        rank = (pool < e.mae).sum() / (len(pool) - 1)  # rank as a fraction
        assert abs(rank - e.quantile) <= 0.05 + 1e-9, (e, rank)
        assert ids[e.row] == e.workout_id
    bad = [e for e in ex if e.category == "intervals"]
    assert len(bad) == 3 and min(e.mae for e in bad) > 40  # not filtered out
    assert [e.category for e in median_examples(ex)] == ["intervals", "steady"]


def test_examples_are_seeded():
    mae, cats, ids, steps = _maes()
    a = choose_examples(mae, cats, ids, steps, [0.1, 0.5, 0.9], seed=3)
    b = choose_examples(mae, cats, ids, steps, [0.1, 0.5, 0.9], seed=3)
    c = [choose_examples(mae, cats, ids, steps, [0.1, 0.5, 0.9], seed=s) for s in range(10)]
    assert a == b
    assert len({tuple(e.row for e in x) for x in c}) > 1


def test_short_workouts_only_used_when_nothing_else():
    mae, cats, ids, steps = _maes()
    steps = steps.copy()
    steps[::2] = 10  # every steady workout is short
    ex = choose_examples(mae, cats, ids, steps, [0.5], seed=0, min_steps=100)
    assert {e.category for e in ex} == {"steady", "intervals"}


def test_plot_data_records():
    rng = np.random.default_rng(0)
    y = rng.normal(150, 10, (5, 40))
    p = y + rng.normal(0, 5, (5, 40))
    v = rng.random((5, 40)) > 0.1
    el = np.cumsum(np.full((5, 40), 10.0), axis=1)
    wm = np.array([np.abs(p[i] - y[i])[v[i]].mean() for i in range(5)])
    mae, cats, ids, steps = _maes(5)
    ex = choose_examples(wm, cats, ids, steps, [0.5], seed=0, min_steps=1)
    d = plot_data(y, p, v, el, wm, ex, seed=0, n_scatter=50, min_steps_per_minute=1)
    assert len(d["scatter"]) == 50
    assert sum(r["count"] for r in d["error_hist"]) == v.sum()
    assert sum(r["count"] for r in d["workout_mae_hist"]) == 5
    assert {r["workout"] for r in d["traces"]} == {f"{e.category} #{e.workout_id}" for e in ex}
    minutes = [r["minute"] for r in d["traces"]]
    assert minutes == sorted(minutes)  # workouts laid out back to back
    first = d["mae_by_time"][0]
    m0 = (np.floor(el / 60) == first["minute"]) & v
    assert first["mae"] == np.round(np.abs(p - y)[m0].mean(), 4)
    assert plot_data(y, p, v, el, wm, ex, seed=0, n_scatter=50) == plot_data(
        y, p, v, el, wm, ex, seed=0, n_scatter=50
    )


def test_plot_sums_in_chunks_equal_whole_array_numpy():
    """Chunks of 3 rows give the records a whole-array numpy computation gives, exactly."""
    rng = np.random.default_rng(4)
    n, t = 11, 60
    y = rng.normal(150, 10, (n, t)).astype(np.float32)
    p = (y + rng.normal(0, 8, (n, t))).astype(np.float32)
    v = rng.random((n, t)) > 0.15
    v[4] = False
    el = np.cumsum(rng.uniform(4, 12, (n, t)), axis=1).astype(np.float32)
    sums = PlotSums(int(v.sum()), seed=7, n_scatter=40)
    for s in range(0, n, 3):
        sums.add(y[s : s + 3], p[s : s + 3], v[s : s + 3], el[s : s + 3])
    # whole-array reference (the formulas of the records, on one flat array)
    t_true, t_pred = y.astype(np.float64)[v], p.astype(np.float64)[v]
    err = t_pred - t_true
    pick = np.sort(np.random.default_rng(7).choice(len(t_true), size=40, replace=False))
    assert sums.scatter() == [
        {"hr_true": round(float(a), 1), "hr_pred": round(float(b), 1)}
        for a, b in zip(t_true[pick], t_pred[pick], strict=True)
    ]
    edges = np.arange(-50.0, 51.0, 2.0)
    counts, _ = np.histogram(np.clip(err, -50, 50), bins=edges)
    assert [r["count"] for r in sums.error_records()] == counts.tolist()
    minute = np.floor(el.astype(np.float64)[v] / 60.0).astype(np.int64)
    cnt = np.bincount(minute)
    tot = np.bincount(minute, weights=np.abs(err))
    expected = [
        {"minute": int(m), "mae": round(float(tot[m] / cnt[m]), 4)}
        for m in np.flatnonzero(cnt >= 20)
    ]
    assert sums.mae_by_time(20) == expected
    np.testing.assert_array_equal(sums.minute_sum, tot)  # same additions in the same order
    assert sums.fig_counts.tolist() == np.histogram(err, bins=60, range=(-60, 60))[0].tolist()
    assert sums.abs_sum == pytest.approx(np.abs(err).sum(), rel=1e-12)


def _write_later(path, delay_s):
    import time

    time.sleep(delay_s)
    path.write_text("drawn")


def _fail(message):
    raise ValueError(message)


def test_drawing_runs_beside_the_body_and_leaving_waits_for_it(tmp_path):
    import multiprocessing as mp

    from hrpred.evaluate.figures import drawn_beside

    paths = [tmp_path / f"{k}.txt" for k in range(3)]
    with drawn_beside([(_write_later, (p, 0.5), {}) for p in paths], workers=2):
        assert not any(p.exists() for p in paths)  # the body runs while the jobs draw
    assert all(p.read_text() == "drawn" for p in paths)
    assert not mp.active_children()


def test_a_drawing_error_reaches_the_caller_and_a_body_error_stops_the_drawing(tmp_path):
    import multiprocessing as mp

    from hrpred.evaluate.figures import drawn_beside

    jobs = [(_fail, ("figure broke",), {}), (_write_later, (tmp_path / "a.txt", 0.0), {})]
    with pytest.raises(ValueError, match="figure broke"):
        with drawn_beside(jobs, workers=2):
            pass
    with pytest.raises(RuntimeError, match="body broke"):
        with drawn_beside([(_write_later, (tmp_path / "b.txt", 30.0), {})] * 2, workers=2):
            raise RuntimeError("body broke")
    assert not mp.active_children()  # terminated, not waited for (30 s)
    assert not (tmp_path / "b.txt").exists()
    with drawn_beside([(_write_later, (tmp_path / "c.txt", 0.0), {})], workers=2):
        assert (tmp_path / "c.txt").exists()  # one job: drawn here, before the body
