"""Feature registry: named, vectorised functions of speed, altitude, timestamps and gender.

One implementation shared by the featurize stage, `hrpred predict` and the app, so training
and serving compute identical inputs. Every function takes a `WorkoutInputs` and returns a
float64 array of length n; `compute_features` stacks the requested names into float32 [n, F].

No default feature reads heart rate: HR is not even a field of `WorkoutInputs`. The only
HR-derived features are the `leaky_hr_type_onehot_*` columns (the reference project's target
leak, kept so its effect can be measured); `compute_features` refuses them unless the HR array
is passed through its separate `hr=` argument.

Semantics (steps are samples, not seconds, unless the name says `s`):
- `x_lag_k`: x[t-k]; the first k values repeat x[0].
- `x_derivative`: x[t] - x[t-1]; d[0] = 0.
- `rolling_x_w`: trailing mean over the last <= w samples (pandas `rolling(w, min_periods=1)`).
  The reference replaced the whole column by the global mean when n < w; that quirk is NOT
  copied: short workouts get the same trailing mean as long ones.
- `cumulative_elevation_gain`: sum of positive altitude steps up to t (m), 0 at t=0.
- `gender`: male 1.0, female 0.0, unknown/other 0.5 (halfway, so "unknown" is not read as
  either sex); constant over the workout and never scaled.
- `elapsed_time`: seconds since the first timestamp.
- `since_pause`: seconds since the first sample after the last pause, or since the start. A
  pause is a step longer than `hrpred.clean.pauses.PAUSE_MIN_S` (60 s) between timestamps
  (the clean stage keeps pauses as such long steps and rejects clock jumps), or, for inputs
  whose samples cover the pause (a resampled grid), the `resume` marks given to
  `WorkoutInputs`. HR recovers while the runner stands, so it restarts lower after a pause.
- `speed_ema_{30,60,120}s`: exponential moving average with a time constant in seconds over
  irregular timestamps: y[0] = v[0], y[t] = y[t-1] + (1 - exp(-dt/tau)) (v[t] - y[t-1]);
  non-positive dt leaves y unchanged.
- `grade`: altitude change / distance covered in the step (distance = speed * dt), 0 when the
  step covers less than `GRADE_MIN_DISTANCE_M`, clipped to +-`GRADE_CLIP`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hrpred.clean.hr_types import hr_workout_type
from hrpred.clean.pauses import PAUSE_MIN_S, since_pause_s
from hrpred.timeseries import trailing_mean

GENDER_CODES: dict[str, float] = {"male": 1.0, "female": 0.0}
GENDER_UNKNOWN = 0.5  # unknown/other/missing gender: halfway between the two codes

GRADE_MIN_DISTANCE_M = 1.0  # steps shorter than this (m) have grade 0 (standing still)
GRADE_CLIP = 0.4  # |grade| cap (rise/run); steeper values are altitude noise when running

# Fixed-width blocks of the closed-form EMA: exp(+-EMA_BLOCK_TAU) stays far from overflow.
EMA_BLOCK_TAU = 40.0
# One step longer than this many time constants forgets the state completely (exp(-50) ~ 2e-22);
# capping it keeps the block exponentials finite across long recording gaps.
EMA_MAX_STEP_TAU = 50.0


@dataclass(frozen=True)
class WorkoutInputs:
    """The only inputs a (non-leaky) feature may read; equal-length 1-D arrays."""

    timestamp: np.ndarray  # s (Unix or relative), non-decreasing after cleaning
    speed_kmh: np.ndarray  # km/h
    altitude_m: np.ndarray  # m
    gender: str  # male | female | unknown
    # bool per sample: the first sample after a pause; None: pauses are the timestamps'
    # steps longer than PAUSE_MIN_S (see `since_pause`)
    resume: np.ndarray | None = None

    @classmethod
    def from_arrays(
        cls,
        timestamp: Sequence[float],
        speed_kmh: Sequence[float],
        altitude_m: Sequence[float],
        gender: str | None,
        resume: Sequence[bool] | None = None,
    ) -> WorkoutInputs:
        """Coerce lists/arrays to float64 numpy (`resume` to bool) and check the lengths
        agree."""
        ts = np.asarray(timestamp, dtype=np.float64)
        sp = np.asarray(speed_kmh, dtype=np.float64)
        al = np.asarray(altitude_m, dtype=np.float64)
        if not (ts.ndim == sp.ndim == al.ndim == 1) or not (len(ts) == len(sp) == len(al)):
            raise ValueError(
                f"timestamp, speed and altitude must be 1-D of equal length, got "
                f"{ts.shape}, {sp.shape}, {al.shape}"
            )
        marks = None if resume is None else np.asarray(resume, dtype=bool)
        if marks is not None and marks.shape != ts.shape:
            raise ValueError(
                f"resume must have the timestamps' shape {ts.shape}, got {marks.shape}"
            )
        return cls(ts, sp, al, gender or "unknown", marks)

    def __len__(self) -> int:
        return len(self.speed_kmh)


@dataclass(frozen=True)
class Feature:
    """A named feature column. `needs_hr` features get the HR array as a second argument."""

    name: str
    fn: Callable[..., np.ndarray]
    description: str
    binary: bool = False  # not standardised by the scaler
    needs_hr: bool = False  # target-derived: never in defaults, refused unless hr= is given


# ---------------------------------------------------------------- primitives (float64, length n)


def lag(x: np.ndarray, k: int) -> np.ndarray:
    """x[t-k], the first k values repeat x[0]."""
    n = len(x)
    if n == 0:
        return x.copy()
    return x[np.maximum(np.arange(n) - k, 0)]


def derivative(x: np.ndarray) -> np.ndarray:
    """x[t] - x[t-1], 0 at t=0."""
    return np.diff(x, prepend=x[:1]) if len(x) else x.copy()


def cumulative_gain(x: np.ndarray) -> np.ndarray:
    """Running sum of positive steps of x, 0 at t=0."""
    return np.cumsum(np.maximum(derivative(x), 0.0))


def time_ema(values: np.ndarray, timestamp: np.ndarray, tau_s: float) -> np.ndarray:
    """Time-constant EMA over irregular timestamps, vectorised.

    y[t] = exp(-(T_t - T_0)/tau) * (v0 + sum_{k=1..t} a_k v_k exp((T_k - T_0)/tau)) with
    a_k = 1 - exp(-dt_k/tau) and T the running time (non-positive steps count as 0). The
    exponentials are rebased per block of ~EMA_BLOCK_TAU time constants so they never overflow;
    the state carries over between blocks.
    """
    n = len(values)
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    step = np.minimum(
        np.maximum(np.diff(timestamp, prepend=timestamp[:1]), 0.0) / tau_s, EMA_MAX_STEP_TAU
    )  # step length in units of tau
    run = np.cumsum(step)
    alpha = -np.expm1(-step)
    block = np.floor(run / EMA_BLOCK_TAU).astype(np.int64)
    edges = np.flatnonzero(np.diff(block)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [n]))
    state = values[0]
    prev_time = run[0]
    for s, e in zip(starts, ends, strict=True):
        rel = run[s:e] - prev_time  # in [0, EMA_BLOCK_TAU + EMA_MAX_STEP_TAU]
        weights = np.exp(rel)
        w_alpha = alpha[s:e].copy()
        if s == 0:
            w_alpha[0] = 0.0  # y[0] = v[0]: the first sample sets the state
        acc = state + np.cumsum(w_alpha * values[s:e] * weights)
        out[s:e] = acc / weights
        state = out[e - 1]
        prev_time = run[e - 1]
    return out


def grade(inputs: WorkoutInputs) -> np.ndarray:
    """Rise over run per step, 0 for near-stationary steps, clipped."""
    dt = np.maximum(derivative(inputs.timestamp), 0.0)
    dist = inputs.speed_kmh / 3.6 * dt
    rise = derivative(inputs.altitude_m)
    out = np.zeros(len(inputs), dtype=np.float64)
    moving = dist >= GRADE_MIN_DISTANCE_M
    out[moving] = rise[moving] / dist[moving]
    return np.clip(out, -GRADE_CLIP, GRADE_CLIP)


def gender_code(gender: str | None) -> float:
    """male 1.0, female 0.0, anything else 0.5."""
    return GENDER_CODES.get((gender or "").strip().lower(), GENDER_UNKNOWN)


# ---------------------------------------------------------------- leaky (target-derived) feature

HR_TYPES = ("recovery", "steady", "intensive")


def _leaky_onehot(kind: str) -> Callable[[WorkoutInputs, np.ndarray], np.ndarray]:
    def fn(inputs: WorkoutInputs, hr: np.ndarray) -> np.ndarray:
        return np.full(len(inputs), float(hr_workout_type(hr) == kind))

    return fn


LEAKY_GROUP = "leaky_hr_type_onehot"  # params name that expands to the three one-hot columns


# ---------------------------------------------------------------- the registry

REGISTRY: dict[str, Feature] = {}


def _add(name: str, fn: Callable[..., np.ndarray], description: str, **kw: bool) -> None:
    REGISTRY[name] = Feature(name, fn, description, **kw)


_add("speed", lambda w: w.speed_kmh, "speed (km/h)")
_add("altitude", lambda w: w.altitude_m, "altitude (m)")
_add(
    "gender",
    lambda w: np.full(len(w), gender_code(w.gender)),
    "male 1, female 0, unknown 0.5",
    binary=True,
)
_add("speed_derivative", lambda w: derivative(w.speed_kmh), "speed step change (km/h per step)")
_add("altitude_derivative", lambda w: derivative(w.altitude_m), "altitude step change (m/step)")
_add(
    "cumulative_elevation_gain",
    lambda w: cumulative_gain(w.altitude_m),
    "running sum of positive altitude steps (m)",
)
_add(
    "elapsed_time",
    lambda w: w.timestamp - w.timestamp[0] if len(w) else w.timestamp.copy(),
    "seconds since the first sample",
)
_add("grade", grade, "altitude change / step distance, clipped")
_add(
    "since_pause",
    lambda w: since_pause_s(w.timestamp, w.resume, PAUSE_MIN_S),
    f"seconds since the last pause (a step over {PAUSE_MIN_S:.0f} s) or the start",
)

for _k in (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120):
    _add(f"speed_lag_{_k}", lambda w, k=_k: lag(w.speed_kmh, k), f"speed {_k} steps earlier")
    _add(f"altitude_lag_{_k}", lambda w, k=_k: lag(w.altitude_m, k), f"altitude {_k} steps earlier")
for _w in (3, 5, 10, 20, 30, 60, 120):
    _add(
        f"rolling_speed_{_w}",
        lambda w, n=_w: trailing_mean(w.speed_kmh, n),
        f"trailing mean speed over <= {_w} steps",
    )
    _add(
        f"rolling_altitude_{_w}",
        lambda w, n=_w: trailing_mean(w.altitude_m, n),
        f"trailing mean altitude over <= {_w} steps",
    )
for _tau in (30, 60, 120):
    _add(
        f"speed_ema_{_tau}s",
        lambda w, t=_tau: time_ema(w.speed_kmh, w.timestamp, float(t)),
        f"time-based EMA of speed, tau {_tau} s",
    )
for _kind in HR_TYPES:
    _add(
        f"{LEAKY_GROUP}_{_kind}",
        _leaky_onehot(_kind),
        f"LEAKY: 1 if the HR-derived workout type is {_kind}",
        binary=True,
        needs_hr=True,
    )

BINARY_FEATURES: frozenset[str] = frozenset(n for n, f in REGISTRY.items() if f.binary)
HR_FEATURES: frozenset[str] = frozenset(n for n, f in REGISTRY.items() if f.needs_hr)


def expand_names(names: Sequence[str]) -> list[str]:
    """Resolve params names to registry column names (the leaky group -> its three columns).

    Raises ValueError naming unknown or duplicate features.
    """
    out: list[str] = []
    for name in names:
        cols = [f"{LEAKY_GROUP}_{k}" for k in HR_TYPES] if name == LEAKY_GROUP else [name]
        for col in cols:
            if col not in REGISTRY:
                raise ValueError(
                    f"unknown feature '{col}'; known: {', '.join(sorted(REGISTRY))}, {LEAKY_GROUP}"
                )
            if col in out:
                raise ValueError(f"feature '{col}' listed twice")
            out.append(col)
    return out


def needs_hr(names: Sequence[str]) -> bool:
    """True when any of the (expanded) names is target-derived."""
    return any(n in HR_FEATURES for n in expand_names(names))


def compute_features(
    names: Sequence[str], inputs: WorkoutInputs, *, hr: np.ndarray | None = None
) -> np.ndarray:
    """Stack the named features into float32 [n, F] (F = len(expand_names(names))).

    `hr` is accepted only for the explicitly leaky features; asking for one without passing
    `hr` raises, so nothing target-derived can slip in by default.
    """
    cols = expand_names(names)
    leaky = [c for c in cols if c in HR_FEATURES]
    if leaky and hr is None:
        raise ValueError(
            f"features {leaky} are derived from the target HR (leaky); pass hr= explicitly"
        )
    out = np.empty((len(inputs), len(cols)), dtype=np.float32)
    for j, col in enumerate(cols):
        feat = REGISTRY[col]
        out[:, j] = feat.fn(inputs, hr) if feat.needs_hr else feat.fn(inputs)
    return out
