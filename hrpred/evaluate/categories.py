"""Workout categories for reporting, assigned from the INPUTS only (speed, altitude, time).

`describe` and `assign` never see heart rate, so a category can be known before the workout is
predicted (unlike the reference, which labelled workouts from the recorded HR). Steps slower
than `stop_speed_kmh` (stops at traffic lights) are left out of the speed descriptors. Rules
are applied in order, the first that matches wins:

1. intervals: the smoothed speed alternates between "fast" (> median * (1 + h)) and "slow"
   (< median * (1 - h)) at least `intervals_min_switches` times (hysteresis, h =
   `intervals_rel_band`);
2. progressive: mean speed of the last third of the time minus the first third, relative to the
   mean, >= `progressive_rel_increase`;
3. hilly: smoothed climb per km >= `hilly_climb_m_per_km` (pacing structure wins over route);
4. easy (recovery/easy): mean moving speed <= `easy_max_rel_speed` x the user's median workout
   speed (`easy_reference: user`; other workouts' inputs, never HR), or <= `easy_max_speed_kmh`
   (`easy_reference: absolute`, or when no user reference is given);
5. steady: everything else.

`report_only_hr_band` bins the RECORDED HR: it exists only to break metrics down for the
report and must never feed a model or a category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from hrpred.params import ParamError

CATEGORIES = ("easy", "steady", "progressive", "intervals", "hilly")
EasyReference = Literal["user", "absolute"]
EASY_REFERENCES: tuple[str, ...] = get_args(EasyReference)


@dataclass(frozen=True)
class CategoryRules:
    """Thresholds of the input-only category rules (params/evaluate.yaml `categories`)."""

    smooth_steps: int  # moving-average window on speed/altitude (steps)
    stop_speed_kmh: float  # slower steps are stops, left out of the speed descriptors
    intervals_rel_band: float  # hysteresis band around the median speed (fraction)
    intervals_min_switches: int  # fast<->slow switches (7 = about four repetitions)
    progressive_rel_increase: float  # (last third - first third) / mean speed
    hilly_climb_m_per_km: float  # climb per km of distance to call a route hilly
    easy_reference: EasyReference  # user | absolute
    easy_max_rel_speed: float  # easy: mean speed <= this x the user's median speed
    easy_max_speed_kmh: float  # easy (absolute rule): mean moving speed (km/h)

    def __post_init__(self) -> None:
        if self.easy_reference not in EASY_REFERENCES:
            raise ParamError(
                f"evaluate.categories.easy_reference must be one of {EASY_REFERENCES}, "
                f"got {self.easy_reference!r}"
            )


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge replication (descriptive only, so non-causal is fine)."""
    if window <= 1 or len(x) < 2:
        return x.astype(np.float64)
    half = window // 2
    padded = np.pad(x.astype(np.float64), (half, window - 1 - half), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def _switches(speed: np.ndarray, band: float) -> int:
    """Number of fast<->slow state changes of the speed around its median (hysteresis)."""
    if len(speed) == 0:
        return 0
    med = float(np.median(speed))
    if med <= 0:
        return 0
    state = np.zeros(len(speed), dtype=np.int8)
    state[speed > med * (1 + band)] = 1
    state[speed < med * (1 - band)] = -1
    states = state[state != 0]
    return int(np.count_nonzero(np.diff(states))) if len(states) else 0


def describe(
    speed_kmh: np.ndarray, altitude_m: np.ndarray, elapsed_s: np.ndarray, rules: CategoryRules
) -> dict[str, float]:
    """Input descriptors the rules use (one workout, unpadded 1-D arrays)."""
    speed = np.nan_to_num(np.asarray(speed_kmh, dtype=np.float64))
    alt = np.nan_to_num(np.asarray(altitude_m, dtype=np.float64))
    t = np.asarray(elapsed_s, dtype=np.float64)
    moving = speed >= rules.stop_speed_kmh
    if not moving.any():
        return {"mean_speed": 0.0, "climb_m_per_km": 0.0, "switches": 0.0, "rel_increase": 0.0}
    dt = np.clip(np.diff(t, prepend=t[:1]), 0.0, None)
    dist_km = float(np.sum(speed * dt) / 3600.0)
    climb = float(np.clip(np.diff(_smooth(alt, rules.smooth_steps)), 0.0, None).sum())
    switches = _switches(_smooth(speed, rules.smooth_steps)[moving], rules.intervals_rel_band)
    sp, tm = speed[moving], t[moving] - t[0]
    duration = float(t[-1] - t[0])
    first = sp[tm <= duration / 3] if duration > 0 else sp
    last = sp[tm >= 2 * duration / 3] if duration > 0 else sp
    mean = float(sp.mean())
    if len(first) and len(last) and mean > 0:
        rel = (float(last.mean()) - float(first.mean())) / mean
    else:
        rel = 0.0
    return {
        "mean_speed": mean,
        "climb_m_per_km": climb / dist_km if dist_km > 0.05 else 0.0,
        "switches": float(switches),
        "rel_increase": rel,
    }


def assign(d: dict[str, float], rules: CategoryRules, ref_speed_kmh: float | None = None) -> str:
    """Category from the descriptors of `describe` (rules in the module docstring)."""
    if d["switches"] >= rules.intervals_min_switches:
        return "intervals"
    if d["rel_increase"] >= rules.progressive_rel_increase:
        return "progressive"
    if d["climb_m_per_km"] >= rules.hilly_climb_m_per_km:
        return "hilly"
    if rules.easy_reference == "user" and ref_speed_kmh is not None and ref_speed_kmh > 0:
        easy = d["mean_speed"] <= rules.easy_max_rel_speed * ref_speed_kmh
    else:
        easy = d["mean_speed"] <= rules.easy_max_speed_kmh
    return "easy" if easy else "steady"


def describe_rows(
    speed_kmh: np.ndarray,
    altitude_m: np.ndarray,
    elapsed_s: np.ndarray,
    lengths: Sequence[int],
    rules: CategoryRules,
) -> list[dict[str, float]]:
    """`describe` of each row of padded [N, T] inputs; `lengths` = real steps per row.

    Row by row, so the rows can be described chunk by chunk (bounded memory).
    """
    desc = []
    for i, n in enumerate(lengths):
        n = int(min(max(n, 0), speed_kmh.shape[1]))
        desc.append(describe(speed_kmh[i, :n], altitude_m[i, :n], elapsed_s[i, :n], rules))
    return desc


def assign_all(
    desc: Sequence[dict[str, float]],
    rules: CategoryRules,
    user_ids: Sequence[int] | None = None,
) -> list[str]:
    """Categories from the descriptors of `describe_rows`.

    With `user_ids`, the easy rule compares each workout with the median mean speed of the
    same user's workouts among these rows (inputs only).
    """
    refs: list[float | None] = [None] * len(desc)
    if user_ids is not None:
        users = np.asarray(user_ids)
        speeds = np.array([d["mean_speed"] for d in desc])
        for u in np.unique(users):
            sel = np.flatnonzero(users == u)
            moving = speeds[sel][speeds[sel] > 0]
            ref = float(np.median(moving)) if len(moving) else None
            for i in sel:
                refs[i] = ref
    return [assign(d, rules, r) for d, r in zip(desc, refs, strict=True)]


def report_only_hr_band(
    hr_true: np.ndarray, valid: np.ndarray, edges_bpm: Sequence[float]
) -> list[str]:
    """REPORTING ONLY: band of each workout's mean recorded HR (valid steps).

    Derived from the ground truth, so it must never be used as a model input or to choose
    examples; it only shows how error depends on intensity. Rows without valid steps: "none".
    """
    hr = np.asarray(hr_true, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    edges = sorted(float(e) for e in edges_bpm)
    if not edges:
        return ["all" if k else "none" for k in valid.sum(axis=1)]
    labels = (
        [f"hr_lt_{edges[0]:g}"]
        + [f"hr_{lo:g}_{hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        + [f"hr_ge_{edges[-1]:g}"]
    )
    n = valid.sum(axis=1)
    sums = np.where(valid, hr, 0.0).sum(axis=1)
    out = []
    for s, k in zip(sums, n, strict=True):
        if k == 0:
            out.append("none")
        else:
            out.append(labels[int(np.searchsorted(edges, s / k, side="right"))])
    return out
