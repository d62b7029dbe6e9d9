"""Reference predictors the LSTM must beat, fitted on the train split only.

- constant: the train-mean HR at every step;
- ridge: per-step linear regression on the same features, scaled by the train scaler
  (`hrpred.features.scaler`), closed form;
- physio: first-order relaxation of HR toward a + b*speed + c*climb_rate with a time
  constant tau on the irregular elapsed grid, starting from a fitted initial HR.

All take [N, T, ...] arrays and return predictions [N, T] (float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CHUNK_ROWS = 256  # workouts per chunk when accumulating normal equations (bounded memory)


@dataclass
class ConstantBaseline:
    """Predicts the train-mean HR everywhere."""

    value: float

    def predict(self, shape: tuple[int, int]) -> np.ndarray:
        return np.full(shape, self.value, dtype=np.float64)


def fit_constant(target: np.ndarray, valid: np.ndarray) -> ConstantBaseline:
    """Mean recorded HR over the valid train steps."""
    return ConstantBaseline(float(np.asarray(target, dtype=np.float64)[np.asarray(valid)].mean()))


@dataclass
class RidgeBaseline:
    """HR = X @ coef + intercept on every step (intercept not penalised)."""

    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = np.nan_to_num(np.asarray(features, dtype=np.float64))
        return x @ self.coef + self.intercept


def fit_ridge(
    features: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray,
    alpha: float,
    chunk_rows: int = CHUNK_ROWS,
) -> RidgeBaseline:
    """Closed-form ridge on valid steps: solve (A^T A + alpha*I') w = A^T y with A = [X, 1].

    A^T A is accumulated chunk by chunk so memory stays O(F^2) beyond one chunk.
    """
    n_feat = features.shape[-1]
    gram = np.zeros((n_feat + 1, n_feat + 1))
    rhs = np.zeros(n_feat + 1)
    for start in range(0, features.shape[0], chunk_rows):
        sl = slice(start, start + chunk_rows)
        m = np.asarray(valid[sl], dtype=bool)
        x = np.asarray(features[sl], dtype=np.float64)[m]
        a = np.hstack([np.nan_to_num(x), np.ones((x.shape[0], 1))])
        y = np.asarray(target[sl], dtype=np.float64)[m]
        gram += a.T @ a
        rhs += a.T @ y
    penalty = np.full(n_feat + 1, float(alpha))
    penalty[-1] = 0.0  # never shrink the intercept toward 0 BPM
    w = np.linalg.solve(gram + np.diag(penalty), rhs)
    return RidgeBaseline(coef=w[:-1], intercept=float(w[-1]), alpha=float(alpha))


def climb_rate(altitude: np.ndarray, elapsed: np.ndarray, clip_m_per_min: float) -> np.ndarray:
    """Vertical speed in m/min from the altitude derivative (0 at step 0 and where dt <= 0).

    Clipped to +-clip_m_per_min because GPS altitude jumps would otherwise dominate.
    """
    alt = np.asarray(altitude, dtype=np.float64)
    t = np.asarray(elapsed, dtype=np.float64)
    d_alt = np.diff(alt, axis=-1, prepend=alt[..., :1])
    dt = np.diff(t, axis=-1, prepend=t[..., :1])
    rate = np.divide(d_alt * 60.0, dt, out=np.zeros_like(d_alt), where=dt > 0)
    return np.clip(rate, -clip_m_per_min, clip_m_per_min)


def _decays(elapsed: np.ndarray, tau_s: float) -> np.ndarray:
    """exp(-dt/tau) per step; dt = 0 at step 0 (and for padding, which goes backwards)."""
    t = np.asarray(elapsed, dtype=np.float64)
    dt = np.clip(np.diff(t, axis=-1, prepend=t[..., :1]), 0.0, None)
    return np.exp(-dt / tau_s)


def relax(u: np.ndarray, decay: np.ndarray, x0: np.ndarray | float = 0.0) -> np.ndarray:
    """Exact first-order response: x_k = e_k x_{k-1} + (1 - e_k) u_k, x_{-1} = x0.

    Inputs are held constant over each step interval (zero-order hold on the step's value).
    """
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    state = np.broadcast_to(np.asarray(x0, dtype=np.float64), u.shape[:-1]).copy()
    for k in range(u.shape[-1]):
        e = decay[..., k]
        state = e * state + (1.0 - e) * u[..., k]
        out[..., k] = state
    return out


def _physio_design(speed: np.ndarray, climb: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """Columns whose combination [h0, a, b, c] gives the relaxation response [..., T, 4].

    The recursion is linear in the initial state and in the input, so for a fixed tau
    x = h0 * P + a * (1 - P) + b * F[speed] + c * F[climb] with P = cumulative decay.
    """
    p = np.cumprod(decay, axis=-1)
    return np.stack([p, 1.0 - p, relax(speed, decay), relax(climb, decay)], axis=-1)


@dataclass
class PhysioBaseline:
    """HR relaxes toward a + b*speed(km/h) + c*climb(m/min) with time constant tau_s."""

    tau_s: float
    h0: float
    a: float
    b: float
    c: float
    climb_clip: float
    train_mse_by_tau: dict[float, float] = field(default_factory=dict)

    def predict(self, speed: np.ndarray, altitude: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
        decay = _decays(elapsed, self.tau_s)
        climb = climb_rate(altitude, elapsed, self.climb_clip)
        target = self.a + self.b * np.asarray(speed, dtype=np.float64) + self.c * climb
        return relax(target, decay, self.h0)


def fit_physio(
    speed: np.ndarray,
    altitude: np.ndarray,
    elapsed: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray,
    taus_s: Sequence[float],
    climb_clip: float,
    chunk_rows: int = CHUNK_ROWS,
) -> PhysioBaseline:
    """Least squares for (h0, a, b, c) at each tau of the grid; keep the lowest train MSE."""
    if not taus_s:
        raise ValueError("physio baseline: empty tau grid")
    speed = np.nan_to_num(np.asarray(speed, dtype=np.float64))
    altitude = np.nan_to_num(np.asarray(altitude, dtype=np.float64))
    valid = np.asarray(valid, dtype=bool)
    climb = climb_rate(altitude, elapsed, climb_clip)
    y_all = np.asarray(target, dtype=np.float64)
    n = int(valid.sum())
    best: tuple[float, float, np.ndarray] | None = None
    mse_by_tau: dict[float, float] = {}
    for tau in taus_s:
        gram = np.zeros((4, 4))
        rhs = np.zeros(4)
        yy = 0.0
        for start in range(0, speed.shape[0], chunk_rows):
            sl = slice(start, start + chunk_rows)
            design = _physio_design(speed[sl], climb[sl], _decays(elapsed[sl], float(tau)))
            a = design[valid[sl]]
            y = y_all[sl][valid[sl]]
            gram += a.T @ a
            rhs += a.T @ y
            yy += float(y @ y)
        w = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        # residual sum of squares from the normal equations: y'y - 2w'A'y + w'A'Aw
        mse = max(yy - 2.0 * w @ rhs + w @ gram @ w, 0.0) / max(n, 1)
        mse_by_tau[float(tau)] = float(mse)
        if best is None or mse < best[1]:
            best = (float(tau), mse, w)
    tau, _, w = best
    return PhysioBaseline(
        tau_s=tau,
        h0=float(w[0]),
        a=float(w[1]),
        b=float(w[2]),
        c=float(w[3]),
        climb_clip=float(climb_clip),
        train_mse_by_tau=mse_by_tau,
    )
