"""The personalisation engine (`hrpred.personal`): the averaging rule, the level-change
detector, the headline forecaster and plan -> curves -> record, each against an independent
reference written here (pandas, plain Python loops, numbers by hand), and honesty: a plan is
made from strictly earlier runs' records, so no run's own HR nor a later run's changes it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hrpred.params import ParamError
from hrpred.personal.change import latest_change
from hrpred.personal.config import (
    ChangeConfig,
    HeadlineConfig,
    PersonalConfig,
    RuleConfig,
)
from hrpred.personal.engine import (
    PREDICTORS,
    Curves,
    RunRecord,
    detect,
    headline_weights,
    personal_curves,
    plan_run,
    record_run,
    runner_factor,
)
from hrpred.personal.rules import shrunk_mean

DAY_S = 86400.0


@pytest.fixture(scope="module")
def pcfg(config) -> PersonalConfig:
    return config(PersonalConfig, "personal")


# --------------------------------------------------------------------------- the rule


def pandas_rule(k: int, shrink: float, hl: float, values, days) -> tuple[float, int]:
    """The rule written with pandas: drop runs without a value, keep the k most recent
    (the input is most recent first), weights 2^(-days / half-life)."""
    t = pd.DataFrame({"v": values, "d": days}).dropna(subset=["v"]).head(k)
    if t.empty:
        return 0.0, 0
    w = 0.5 ** (t["d"] / hl)
    return float((w * t["v"]).sum() / (w.sum() + shrink)), len(t)


def test_shrunk_mean_against_a_hand_computation() -> None:
    cfg = RuleConfig(k=2, shrink=1.0, half_life_days=10.0)
    values = np.array([np.nan, 4.0, -2.0, 100.0])  # most recent first; the first has no value
    days = np.array([5.0, 10.0, 20.0, 30.0])
    got, n = shrunk_mean(cfg, values, days)
    # the 2 most recent WITH a value: 4 (10 days, w 1/2) and -2 (20 days, w 1/4); 100 is the 3rd
    assert n == 2
    assert got == pytest.approx((0.5 * 4.0 + 0.25 * -2.0) / (0.5 + 0.25 + 1.0))
    # no decay (huge half-life): the plain mean shrunk by n / (n + shrink)
    flat = RuleConfig(k=10, shrink=1.0, half_life_days=1e12)
    assert shrunk_mean(flat, values, days) == pytest.approx(((4 - 2 + 100) / 3 * 3 / 4, 3))
    # nothing to read: 0 from 0 runs (k = 0 switches the rule off)
    assert shrunk_mean(cfg, np.array([np.nan]), np.array([1.0])) == (0.0, 0)
    assert shrunk_mean(cfg, np.zeros(0), np.zeros(0)) == (0.0, 0)
    assert shrunk_mean(replace(cfg, k=0), values, days) == (0.0, 0)


def test_shrunk_mean_equals_pandas_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(0, 15))
        values = rng.normal(0, 10, n)
        values[rng.random(n) < 0.2] = np.nan
        days = np.sort(rng.uniform(0, 200, n))
        k, shrink, hl = (
            int(rng.integers(0, 12)),
            float(rng.uniform(0, 8)),
            float(rng.uniform(5, 90)),
        )
        got = shrunk_mean(RuleConfig(k, shrink, hl), values, days)
        want = pandas_rule(k, shrink, hl, values, days)
        assert got[1] == want[1] and got[0] == pytest.approx(want[0], rel=1e-12, abs=1e-12)


def test_bad_personal_params_rejected(pcfg) -> None:
    for change in ({"k": -1}, {"shrink": -0.5}, {"half_life_days": 0.0}):
        with pytest.raises(ParamError, match="personal rule"):
            replace(pcfg.offset, **change)
    for change in ({"max_runs": -1}, {"noise_bpm": 0.0}, {"noise_prior_runs": -1.0},
                   {"break_days": 0.0}, {"break_widen": 0.9}):  # fmt: skip
        with pytest.raises(ParamError, match="personal.change"):
            replace(pcfg.change, **change)
    for change in ({"eta": -0.1}, {"decay": 0.0}, {"decay": 1.5}):
        with pytest.raises(ParamError, match="personal.headline"):
            replace(pcfg.headline, **change)


# --------------------------------------------------------------------------- level changes


def brute_change(cfg: ChangeConfig, residuals) -> tuple[bool, int, float, float]:
    """The two-segment mean-shift test written out with plain Python: (found, runs since,
    shift, z^2). s^2: the runner's run-to-run variance from the successive differences of the
    last 2 max_runs runs (each half squared difference capped at (3 sd_0)^2), pooled with the
    prior sd_0^2 worth `noise_prior_runs` runs. Every split with 1..max_runs runs after it and
    at least 2 (up to max_runs) before it is tried; the largest z^2 among those passing both
    thresholds wins."""
    r = [float(x) for x in residuals if math.isfinite(x)]
    n = len(r)
    if cfg.max_runs == 0 or n < 3:
        return False, n, 0.0, 0.0
    tail = r[-2 * cfg.max_runs :]
    halves = [
        min((b - a) ** 2 / 2, (3 * cfg.noise_bpm) ** 2)
        for a, b in zip(tail[:-1], tail[1:], strict=True)
    ]
    s2 = (cfg.noise_prior_runs * cfg.noise_bpm**2 + sum(halves)) / (
        cfg.noise_prior_runs + len(halves)
    )
    best = (False, n, 0.0, 0.0)
    for a in range(1, cfg.max_runs + 1):
        before = r[max(0, n - a - cfg.max_runs) : n - a]
        if len(before) < 2:
            break
        after = r[n - a :]
        shift = sum(after) / len(after) - sum(before) / len(before)
        z2 = shift**2 / (s2 * (1 / len(after) + 1 / len(before)))
        if z2 >= cfg.min_score and abs(shift) >= cfg.min_jump_bpm and z2 > best[3]:
            best = (True, a, shift, z2)
    return best


def _check_change(cfg: ChangeConfig, r: np.ndarray):
    got = latest_change(cfg, r)
    found, since, shift, z2 = brute_change(cfg, r)
    assert (got.found, got.runs_since) == (found, since)
    assert got.shift_bpm == pytest.approx(shift, abs=1e-9)
    assert got.score == pytest.approx(z2, rel=1e-9)
    return got


def test_no_change_is_found_in_noise(pcfg) -> None:
    for seed in range(20):
        r = np.random.default_rng(seed).normal(0.0, 3.0, 30)
        got = _check_change(pcfg.change, r)
        assert not got.found and got.runs_since == 30 and got.shift_bpm == 0.0


def test_a_15_bpm_step_is_found_after_two_or_three_runs(pcfg) -> None:
    cfg = pcfg.change
    found_at_two = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        before, after = rng.normal(0.0, 3.0, 20), rng.normal(15.0, 3.0, 5)
        for a in range(1, 6):
            got = _check_change(cfg, np.r_[before, after[:a]])
            if a >= 3:  # three runs at the new level: found, and the runs since are those
                assert got.found and got.runs_since == a, (seed, a, got)
                assert got.shift_bpm == pytest.approx(15.0, abs=5.0)
            if a == 2:
                found_at_two += got.found and got.runs_since == 2
    assert found_at_two >= 7  # most often already after two
    # nan runs (no valid step) are left out; max_runs 0 switches detection off
    r = np.r_[np.random.default_rng(0).normal(0, 3, 20), 15.0, np.nan, 16.0, 14.0]
    assert latest_change(cfg, r).runs_since == 3
    assert not latest_change(replace(cfg, max_runs=0), r).found
    assert not latest_change(cfg, np.array([0.0, 30.0])).found  # fewer than 3 runs


def test_a_single_outlier_run_is_not_taken_for_a_change(pcfg) -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        r = np.r_[rng.normal(0.0, 3.0, 20), 20.0, rng.normal(0.0, 3.0, 3)]
        for j in range(1, 4):  # one, two and three normal runs after the odd one
            got = _check_change(pcfg.change, r[: 21 + j])
            assert not got.found and got.runs_since == 21 + j, (seed, j, got)


# --------------------------------------------------------------------------- headline weights


def _record(start_day: float, maes, n: int = 10, cold: float = 0.0, learned: float = 0.0,
            score: float = 1.0) -> RunRecord:  # fmt: skip
    """A record of `n` valid steps with mean residuals `cold`/`learned`, the band score
    `score` and per-predictor MAEs `maes`."""
    return RunRecord(
        start_s=start_day * DAY_S, n=n, cold_sum=cold * n, learned_sum=learned * n,
        score_sq=score**2 * n, abs_sum=tuple(float(m) * n for m in maes),
    )  # fmt: skip


def test_headline_weights_against_a_hand_computation() -> None:
    cfg = HeadlineConfig(eta=0.5, decay=0.5)
    recs = [_record(0, (4, 2, 1)), _record(1, (2, 2, 4)), _record(2, (0, 0, 0), n=0),
            _record(3, (3, 1, 2))]  # fmt: skip
    # oldest first; the run without a valid step is left out; the most recent weighs 1
    loss = np.array([0.25 * 4 + 0.5 * 2 + 3, 0.25 * 2 + 0.5 * 2 + 1, 0.25 * 1 + 0.5 * 4 + 2])
    w = np.exp(-0.5 * loss)
    assert headline_weights(cfg, recs, True) == pytest.approx(tuple(w / w.sum()), rel=1e-12)
    # without a history network the learned predictor weighs 0
    w2 = np.exp(-0.5 * loss[:2])
    assert headline_weights(cfg, recs, False) == pytest.approx((*(w2 / w2.sum()), 0.0))
    # no history (or eta 0): equal weights
    assert headline_weights(cfg, [], True) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert headline_weights(cfg, [], False) == (0.5, 0.5, 0.0)
    assert headline_weights(replace(cfg, eta=0.0), recs, True) == pytest.approx((1 / 3,) * 3)


def test_a_predictor_consistently_3_bpm_worse_loses_weight(pcfg) -> None:
    rng = np.random.default_rng(1)
    recs, shares = [], []
    for day in range(8):
        pop = rng.uniform(6, 10)
        recs.append(_record(day, (pop, pop - 1.0, pop + 3.0)))
        shares.append(headline_weights(pcfg.headline, recs, True))
    for w in shares:
        assert w[2] < w[0] < w[1]  # learned (3 BPM worse) < population < offset (1 better)
    assert shares[-1][2] < shares[0][2] < 1 / 3  # and less so the more runs say it


# --------------------------------------------------------------------------- plans


def test_no_history_plan_gives_the_population_curve(pcfg) -> None:
    plan = plan_run(pcfg, [], 10 * DAY_S, runner_ref=1.3)
    assert (plan.earlier, plan.used, plan.change.found) == (0, 0, False)
    assert (plan.offset, plan.residual, plan.factor, plan.factor_runs) == (0.0, 0.0, 1.0, 0)
    assert plan.weights == pytest.approx((1 / 3,) * 3)
    pop = np.linspace(120, 160, 50)
    # without context the network's prediction is the population one (the headline: equal
    # weights of three equal curves, up to the last bit)
    for name, c in personal_curves(plan, pop, pop.copy()).as_dict().items():
        np.testing.assert_allclose(c, pop, rtol=1e-15 if name == "headline" else 0, atol=0)
    # a population bundle (no network): learned = offset, weight 0
    empty = plan_run(pcfg, [], 10 * DAY_S, learned=False)
    assert empty.weights == (0.5, 0.5, 0.0)
    for c in personal_curves(empty, pop).as_dict().values():
        np.testing.assert_allclose(c, pop, rtol=1e-15, atol=0)


def test_plan_against_a_hand_computation(pcfg) -> None:
    """Ten runs at the runner's old level, then three 15 BPM higher (a new watch): the plan
    uses the three since the change, the offset/residual/runner scale are the rule over them
    (pandas), the weights the forecaster over all runs."""
    cfg = replace(pcfg, runner_scale=RuleConfig(k=10, shrink=2.0, half_life_days=30.0))
    rng = np.random.default_rng(2)
    cold = np.r_[rng.normal(0, 2, 10), rng.normal(15, 2, 3)]
    learned = rng.normal(1, 1, 13)
    score = rng.uniform(0.8, 1.6, 13)
    days = np.arange(13) * 3.0
    recs = [_record(d, rng.uniform(3, 9, 3), n=50 + i, cold=c, learned=lr, score=s)
            for i, (d, c, lr, s) in enumerate(zip(days, cold, learned, score, strict=True))]  # fmt: skip
    start = 40 * DAY_S
    order = np.random.default_rng(3).permutation(13)  # any order
    shuffled = [recs[i] for i in order]
    plan = plan_run(cfg, shuffled, start, runner_ref=1.1)
    assert plan.change.found and plan.used == 3 and plan.earlier == 13
    since = pd.DataFrame({"cold": cold, "learned": learned, "score": score,
                          "days": 40 - days}).iloc[::-1].head(3)  # fmt: skip
    off = pandas_rule(cfg.offset.k, cfg.offset.shrink, cfg.offset.half_life_days,
                      since["cold"], since["days"])  # fmt: skip
    res = pandas_rule(cfg.residual.k, cfg.residual.shrink, cfg.residual.half_life_days,
                      since["learned"], since["days"])  # fmt: skip
    dev = pandas_rule(10, 2.0, 30.0, since["score"] - 1.1, since["days"])
    assert (plan.offset, plan.offset_runs) == (pytest.approx(off[0], rel=1e-9), 3)
    assert (plan.residual, plan.residual_runs) == (pytest.approx(res[0], rel=1e-9), 3)
    assert (plan.factor, plan.factor_runs) == (pytest.approx(1 + dev[0] / 1.1, rel=1e-9), 3)
    assert plan.weights == headline_weights(cfg.headline, recs, True)
    # the curves: population + offset, network + residual, weighted headline
    pop, net = np.linspace(120, 160, 40), np.linspace(125, 150, 40)
    c = personal_curves(plan, pop, net)
    np.testing.assert_allclose(c.offset, pop + off[0])
    np.testing.assert_allclose(c.learned, net + res[0])
    w = plan.weights
    np.testing.assert_allclose(c.headline, w[0] * pop + w[1] * c.offset + w[2] * c.learned)
    # runner_factor on its own: the same factor; without a reference score, factor 1
    again = runner_factor(cfg, replace(plan, factor=1.0, factor_runs=0), shuffled, start, 1.1)
    assert again == plan
    # the plan keeps the positions (in the list it was made from) of the runs it uses
    assert [order[i] for i in plan.positions] == [12, 11, 10]
    assert plan_run(cfg, recs, start).factor == 1.0
    # no change: every run is used (max_runs 0 switches detection off)
    flat = plan_run(replace(cfg, change=replace(cfg.change, max_runs=0)), recs, start)
    assert flat.used == 13 and not flat.change.found
    assert detect(cfg.change, recs)[1] == [12, 11, 10]  # most recent first


def test_a_long_break_widens_the_band_only_after_break_days(pcfg) -> None:
    """The runner scale times break_widen when the run starts break_days or more after the
    latest earlier run (the earlier runs' own order and scores do not matter), 1x before."""
    cfg = replace(pcfg, change=replace(pcfg.change, break_days=30.0, break_widen=1.5))
    rng = np.random.default_rng(5)
    recs = [_record(3.0 * i, rng.uniform(3, 9, 3), n=40, cold=rng.normal(0, 2),
                    learned=0.0, score=rng.uniform(0.8, 1.4)) for i in range(8)]  # fmt: skip
    last = 21 * DAY_S
    near = plan_run(cfg, recs, last + 29.9 * DAY_S, runner_ref=1.0)
    far = plan_run(cfg, recs[::-1], last + 30.0 * DAY_S, runner_ref=1.0)
    assert near.gap_days == pytest.approx(29.9) and far.gap_days == pytest.approx(30.0)
    plain = replace(cfg, change=replace(cfg.change, break_widen=1.0))
    base = plan_run(plain, recs, last + 30.0 * DAY_S, runner_ref=1.0)
    assert far.factor == pytest.approx(1.5 * base.factor, rel=1e-12)
    assert near.factor == pytest.approx(
        plan_run(plain, recs, last + 29.9 * DAY_S, runner_ref=1.0).factor, rel=1e-12
    )
    assert plan_run(cfg, [], last, runner_ref=1.0).gap_days is None
    # without a runner scale (no reference score) the band still widens after the break
    assert plan_run(cfg, recs, last + 30.0 * DAY_S).factor == 1.5
    assert plan_run(cfg, recs, last + 29.9 * DAY_S).factor == 1.0
    assert far.offset == base.offset and far.weights == base.weights  # only the band moves


def test_record_run_against_a_hand_computation() -> None:
    rng = np.random.default_rng(4)
    t = 60
    y = rng.normal(150, 10, t)
    y[[3, 7]] = np.nan  # no recorded HR: not valid whatever `valid` says
    valid = rng.random(t) > 0.2
    pop, net = rng.normal(145, 5, t), rng.normal(148, 5, t)
    spread = rng.uniform(2, 6, t)
    curves = Curves(pop, pop + 2.0, net + 1.0, 0.2 * pop + 0.3 * (pop + 2.0) + 0.5 * (net + 1.0))
    rec = record_run(5 * DAY_S, y, valid, curves, net, spread)
    ok = valid & np.isfinite(y)
    assert rec.n == ok.sum() and rec.start_s == 5 * DAY_S
    assert rec.cold_sum == pytest.approx((y - pop)[ok].sum())
    assert rec.learned_sum == pytest.approx((y - net)[ok].sum())
    assert rec.score_sq == pytest.approx((((y - curves.headline) / spread)[ok] ** 2).sum())
    for i, p in enumerate(PREDICTORS):
        assert rec.abs_sum[i] == pytest.approx(np.abs(y - getattr(curves, p))[ok].sum())
    assert rec.mean("cold") == pytest.approx((y - pop)[ok].mean())
    assert rec.score == pytest.approx(np.sqrt((((y - curves.headline) / spread)[ok] ** 2).mean()))
    # without a network or spread: learned sums are the population's, no band score
    bare = record_run(0.0, y, valid, curves)
    assert (bare.learned_sum, bare.score_sq) == (pytest.approx(rec.cold_sum), 0.0)
    none = record_run(0.0, y, np.zeros(t, bool), curves)
    assert none.n == 0 and math.isnan(none.mean("cold")) and np.isnan(none.maes()).all()


# --------------------------------------------------------------------------- honesty


def _runner(seed: int = 5, runs: int = 14, t: int = 80) -> dict:
    """A runner's runs: recorded HR with a level that steps by 15 BPM at run 8, population and
    network curves, spreads, start times (one run every 2 days)."""
    rng = np.random.default_rng(seed)
    level = np.where(np.arange(runs) < 8, 0.0, 15.0) + rng.normal(0, 2, runs)
    pop = rng.normal(145, 6, (runs, t))
    return {
        "start": np.arange(runs) * 2 * DAY_S,
        "pop": pop,
        "net": pop + rng.normal(3, 2, (runs, t)),
        "spread": rng.uniform(2, 5, (runs, t)),
        "hr": pop + level[:, None] + rng.normal(0, 4, (runs, t)),
        "valid": rng.random((runs, t)) > 0.1,
    }


def _serve(cfg: PersonalConfig, r: dict) -> tuple[list, list]:
    """Every run personalised in start order from the records of the runs before it, as
    evaluate and `hrpred profile` drive the engine: (plans, curves)."""
    records, plans, curves = [], [], []
    for i, start in enumerate(r["start"]):
        plan = plan_run(cfg, records[:i], float(start), runner_ref=1.2)
        c = personal_curves(plan, r["pop"][i], r["net"][i])
        records.append(record_run(start, r["hr"][i], r["valid"][i], c, r["net"][i], r["spread"][i]))
        plans.append(plan)
        curves.append(c)
    return plans, curves


def test_no_plan_reads_its_own_or_a_later_runs_hr(pcfg) -> None:
    r = _runner()
    plans, curves = _serve(pcfg, r)
    assert any(p.change.found for p in plans)  # the step is seen: used != earlier
    assert any(p.used < p.earlier for p in plans)
    for j in (3, 9, 13):
        moved = {**r, "hr": r["hr"].copy()}
        moved["hr"][j:] += np.linspace(-40, 40, r["hr"].shape[1])  # run j and every later one
        plans2, curves2 = _serve(pcfg, moved)
        for i in range(j + 1):  # run j itself and every earlier run: the same plan, same bytes
            assert plans2[i] == plans[i], (j, i)
            for name, c in curves[i].as_dict().items():
                assert c.tobytes() == curves2[i].as_dict()[name].tobytes(), (j, i, name)
        if j + 1 < len(plans):  # the next run reads it (the check above could fail)
            assert plans2[j + 1] != plans[j + 1]
