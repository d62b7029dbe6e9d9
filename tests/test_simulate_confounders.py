"""Simulator: the fault-free confounders (hrpred/simulate/confounders.py, issue 26).

Each confounder changes the physiology the way the real runs showed (a slow warm-up, a
tempo drift, HR following pace dips), only on the workouts the truth names, from its own
random streams (the rest of the file is unchanged), and the same in every chunking.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hrpred.simulate import SimConfig, simulate_dataset
from hrpred.simulate.confounders import CONFOUNDERS, add_confounders, runner_habits
from hrpred.simulate.plan import make_plan


@pytest.fixture(scope="module")
def base(config) -> SimConfig:
    cfg = config(SimConfig, "simulate")
    return dataclasses.replace(cfg, seed=5, n_users=20, n_workouts=240, chunk_size=60, workers=1)


def _truth(cfg: SimConfig, where: Path) -> tuple[bytes, object]:
    out, truth = where / "sim.json", where / "truth.parquet"
    simulate_dataset(cfg, out, truth, progress=False)
    return out.read_bytes(), pq.read_table(truth).to_pandas()


def _none(cfg: SimConfig) -> SimConfig:
    c = cfg.confounders
    off = dataclasses.replace(
        c,
        slow_warmup=dataclasses.replace(c.slow_warmup, runners=0.0),
        tempo_drift=dataclasses.replace(c.tempo_drift, rate=0.0),
        pace_dips=dataclasses.replace(c.pace_dips, rate=0.0),
    )
    return dataclasses.replace(cfg, confounders=off)


def test_confounders_change_only_the_workouts_they_name(base, tmp_path):
    """With and without confounders the physiology differs exactly on the named workouts, the
    file on the named fault-free ones at least; the truth's other columns stay."""
    lines, with_c = _truth(base, tmp_path / "a")
    lines0, without = _truth(_none(base), tmp_path / "b")
    assert set(with_c.confounder) <= {"none", *CONFOUNDERS}
    assert set(with_c.confounder) >= set(CONFOUNDERS)  # each drawn at these rates
    assert (without.confounder == "none").all()
    named = with_c.confounder != "none"
    for i in range(len(with_c)):
        same = np.array_equal(with_c.hr_physio[i], without.hr_physio[i])
        assert same != bool(named[i]), (i, with_c.confounder[i])
    for col in ("fault", "fault_start", "fault_end", "pause_step", "user_id", "level_bpm"):
        assert with_c[col].astype(str).tolist() == without[col].astype(str).tolist(), col
    a, b = lines.split(b"\n")[:-1], lines0.split(b"\n")[:-1]
    same = np.array([x == y for x, y in zip(a, b, strict=True)])
    assert same[~named.to_numpy()].all()  # a fault may overwrite a named one's HR: not both
    assert not same[named.to_numpy() & (with_c.fault == "none").to_numpy()].any()


def test_confounders_do_not_depend_on_the_chunking(base, tmp_path):
    _, one = _truth(base, tmp_path / "a")
    _, other = _truth(dataclasses.replace(base, chunk_size=37), tmp_path / "b")
    # chunks draw their own numbers; the runners' habits are the same in any chunking
    habits = runner_habits(base.seed, base.n_users, base.confounders.slow_warmup)
    slow_users = set(make_plan(base).users.user_id[habits.slow].astype(int).tolist())
    assert 0 < len(slow_users) < base.n_users
    for t in (one, other):
        slow = t[t.confounder == "slow_warmup"]
        assert set(slow.user_id.astype(int)) <= slow_users


def _batch(n: int = 300, b: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.tile(np.arange(n) * 8.0, (b, 1))
    speed = np.full((b, n), 11.0)
    speed[:, 150:160] = 7.0  # a dip in pace
    physio = np.full((b, n), 150.0)
    return t, speed, physio


def test_each_confounder_has_its_shape(base):
    """Slow warm-up: HR short at the start, back by the end; tempo drift: higher later,
    quieter; pace dips: lower in the dip, unchanged away from it."""
    t, speed, physio = _batch()
    sensor = physio + np.random.default_rng(0).normal(0, 2.5, physio.shape)
    c = base.confounders
    only = {
        "slow_warmup": dataclasses.replace(
            c,
            slow_warmup=dataclasses.replace(c.slow_warmup, runners=1.0, runs=1.0),
        ),
        "tempo_drift": dataclasses.replace(
            c,
            slow_warmup=dataclasses.replace(c.slow_warmup, runners=0.0),
            tempo_drift=dataclasses.replace(c.tempo_drift, rate=1.0),
            pace_dips=dataclasses.replace(c.pace_dips, rate=0.0),
        ),
        "pace_dips": dataclasses.replace(
            c,
            slow_warmup=dataclasses.replace(c.slow_warmup, runners=0.0),
            tempo_drift=dataclasses.replace(c.tempo_drift, rate=0.0),
            pace_dips=dataclasses.replace(c.pace_dips, rate=1.0),
        ),
    }
    users = np.arange(3)
    max_hr = np.full(3, 195.0)
    for kind, cfg in only.items():
        p, s, kinds = add_confounders(cfg, 1, 0, users, 3, t, speed, max_hr, physio, sensor)
        assert (kinds == kind).all()
        delta = p - physio
        assert np.allclose(s - sensor, delta, atol=1e-9) or kind == "tempo_drift"
        if kind == "slow_warmup":
            assert (delta[:, 0] < -5).all() and np.allclose(delta[:, -1], 0.0, atol=0.5)
        elif kind == "tempo_drift":
            assert np.allclose(delta[:, 0], 0.0) and (delta[:, -1] > 5).all()
            late = slice(-100, None)
            assert ((s - p)[:, late].std(axis=1) < (sensor - physio)[:, late].std(axis=1)).all()
        else:
            assert (delta[:, 152:160].mean(axis=1) < -3).all()
            assert np.allclose(delta[:, 100:140], 0.0) and np.allclose(delta[:, 250:], 0.0)
    assert np.array_equal(physio, np.full((3, 300), 150.0))  # inputs left alone
