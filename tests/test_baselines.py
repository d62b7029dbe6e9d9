"""Baselines against independent closed forms and known synthetic parameters."""

from __future__ import annotations

import numpy as np
import pytest

from hrpred.evaluate.baselines import (
    climb_rate,
    fit_constant,
    fit_physio,
    fit_ridge,
    relax,
)
from hrpred.features.scaler import apply_scaler, scaler_arrays


def test_constant_is_mean_of_valid_steps():
    y = np.array([[100.0, 200.0, 0.0], [150.0, 0.0, 0.0]])
    v = np.array([[True, True, False], [True, False, False]])
    assert fit_constant(y, v).value == pytest.approx(150.0)
    assert fit_constant(y, v).predict((2, 3)).shape == (2, 3)


def test_scaler_on_numpy_skips_binary_and_constant():
    """The baselines' scaling (numpy) is the model's: binary passes, constant is centred."""
    x = np.array([[[2.0, 1.0, 5.0], [np.nan, 0.0, 7.0]]])
    mean, std = scaler_arrays(
        ["a", "g", "c"], {"a": {"mean": 1.0, "std": 2.0}, "c": {"mean": 5.0, "std": 0.0}}
    )
    out = apply_scaler(x, mean, std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[0.5, 1.0, 0.0], [0.0, 0.0, 2.0]])


@pytest.fixture
def regression():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 11, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 140 + rng.normal(0, 0.3, (9, 11))
    v = rng.random((9, 11)) > 0.25
    return x, y, v


def test_ridge_alpha0_equals_lstsq(regression):
    x, y, v = regression
    a = np.hstack([x[v], np.ones((v.sum(), 1))])
    w = np.linalg.lstsq(a, y[v], rcond=None)[0]
    r = fit_ridge(x, y, v, alpha=0.0, chunk_rows=2)
    np.testing.assert_allclose(r.coef, w[:-1], atol=1e-8)
    assert r.intercept == pytest.approx(w[-1])
    np.testing.assert_allclose(r.predict(x), x @ w[:-1] + w[-1], atol=1e-8)


def test_ridge_alpha_equals_solve_with_unpenalised_intercept(regression):
    x, y, v = regression
    alpha = 5.0
    a = np.hstack([x[v], np.ones((v.sum(), 1))])
    penalty = np.diag([alpha, alpha, alpha, 0.0])
    w = np.linalg.solve(a.T @ a + penalty, a.T @ y[v])
    for chunk in (1, 4, 100):  # chunking must not change the answer
        r = fit_ridge(x, y, v, alpha=alpha, chunk_rows=chunk)
        np.testing.assert_allclose(np.append(r.coef, r.intercept), w, atol=1e-8)


def test_ridge_large_alpha_shrinks_to_mean(regression):
    x, y, v = regression
    r = fit_ridge(x, y, v, alpha=1e9)
    assert np.abs(r.coef).max() < 1e-3
    assert r.intercept == pytest.approx(y[v].mean(), abs=0.05)


def test_relax_matches_analytic_step_response():
    dt, tau, u, x0 = 5.0, 40.0, 160.0, 90.0
    t = np.arange(50) * dt
    decay = np.exp(-np.diff(t, prepend=t[:1]) / tau)
    x = relax(np.full(50, u), decay, x0)
    np.testing.assert_allclose(x, u + (x0 - u) * np.exp(-t / tau), rtol=1e-12)


def test_climb_rate():
    alt = np.array([[100.0, 101.0, 101.0, 200.0]])
    t = np.array([[0.0, 6.0, 6.0, 12.0]])  # repeated timestamp: rate 0, then a 99 m jump
    np.testing.assert_allclose(climb_rate(alt, t, 30.0), [[0.0, 10.0, 0.0, 30.0]])


def _synthetic(tau, h0, a, b, c, noise, seed=0):
    rng = np.random.default_rng(seed)
    n, t = 30, 150
    dt = rng.uniform(3, 14, (n, t))
    dt[:, 0] = 0
    el = np.cumsum(dt, axis=1)
    speed = rng.uniform(7, 16, (n, 1)) + np.cumsum(rng.normal(0, 0.4, (n, t)), axis=1)
    alt = 50 + np.cumsum(rng.normal(0, 1.5, (n, t)), axis=1)
    climb = climb_rate(alt, el, 30.0)
    hr = np.empty((n, t))
    state = np.full(n, h0)
    for k in range(t):  # independent simulation of dHR/dt = (u - HR) / tau, exact per step
        e = np.exp(-dt[:, k] / tau)
        state = e * state + (1 - e) * (a + b * speed[:, k] + c * climb[:, k])
        hr[:, k] = state
    hr += rng.normal(0, noise, hr.shape)
    valid = rng.random((n, t)) > 0.1
    return speed, alt, el, hr, valid


def test_physio_recovers_known_parameters_exactly():
    speed, alt, el, hr, valid = _synthetic(45.0, 95.0, 70.0, 6.0, 0.8, noise=0.0)
    m = fit_physio(speed, alt, el, hr, valid, [15, 30, 45, 60, 90], 30.0, chunk_rows=7)
    assert m.tau_s == 45.0
    assert (m.h0, m.a, m.b, m.c) == pytest.approx((95.0, 70.0, 6.0, 0.8), abs=1e-6)
    assert min(m.train_mse_by_tau, key=m.train_mse_by_tau.get) == 45.0
    np.testing.assert_allclose(m.predict(speed, alt, el), hr, atol=1e-6)


def test_physio_with_noise_is_close():
    speed, alt, el, hr, valid = _synthetic(60.0, 100.0, 65.0, 6.5, 0.5, noise=3.0, seed=2)
    m = fit_physio(speed, alt, el, hr, valid, [30, 60, 120], 30.0)
    assert m.tau_s == 60.0
    assert m.a == pytest.approx(65.0, abs=2.0)
    assert m.b == pytest.approx(6.5, abs=0.2)
    assert m.c == pytest.approx(0.5, abs=0.1)
    assert m.train_mse_by_tau[60.0] == pytest.approx(9.0, rel=0.1)  # the noise variance


def test_fit_subsample_is_seeded_ordered_and_capped():
    from hrpred.evaluate.inputs import fit_subsample

    rows = np.arange(100, 200)
    assert fit_subsample(rows, 0, 1) is rows
    assert fit_subsample(rows, 500, 1) is rows
    a = fit_subsample(rows, 10, 3)
    assert len(a) == 10 and np.all(np.diff(a) > 0) and set(a) <= set(rows)
    assert np.array_equal(a, fit_subsample(rows, 10, 3))
    assert not np.array_equal(a, fit_subsample(rows, 10, 4))
