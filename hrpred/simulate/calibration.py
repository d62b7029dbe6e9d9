"""How the simulated runners compare with real runners: the calibration figures.

Per run (fault-free runs of the simulation; every kept run of a real set), the mean HR and the
mean speed after the first 10 minutes (HR settled). From those, over a population of runners:
the speed distribution (quantiles), the mean HR per speed band (HR at a given pace), a
runner's run-to-run spread of speed and HR (runners with 10 or more runs), and how a runner's
level moves: the level of a run is its HR minus the population's linear fit on speed, and the
change between the means of consecutive windows of 10 runs has an sd and a share above 10 BPM.

The simulate stage reports these figures beside the real dev set's (params/simulate.yaml
`calibration`, measured by `benchmarks/sim_calibration.py` with the same function) in
metrics/simulate.json `realism.calibration`. Measurement only: nothing here generates data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SETTLED_S = 600.0  # a run's means are taken after its first 10 minutes
SPEED_EDGES_KMH = (8.0, 10.0, 12.0)  # speed bands: < 8, 8-10, 10-12, >= 12 km/h
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
WINDOW = 10  # runs per level window
MIN_RUNS = 10  # runners with fewer runs do not count for the per-runner figures


@dataclass(frozen=True)
class CalibrationTargets:
    """params/simulate.yaml `calibration`: the real dev set's figures (`calibration_stats`)."""

    speed_quantiles_kmh: tuple[float, float, float, float, float]
    hr_by_speed_bpm: tuple[float, float, float, float]
    runner_speed_sd_kmh: float
    runner_hr_sd_bpm: float
    window_change_sd_bpm: float
    window_change_over_10: float


def settled_means(timestamp: np.ndarray, hr: np.ndarray, speed: np.ndarray) -> tuple[float, float]:
    """(mean HR, mean speed) of a run after SETTLED_S (nan when nothing is left)."""
    t = np.asarray(timestamp, np.float64)
    h, v = np.asarray(hr, np.float64), np.asarray(speed, np.float64)
    ok = (t - t[0] >= SETTLED_S) & np.isfinite(h) & np.isfinite(v) if len(t) else np.zeros(0, bool)
    if not ok.any():
        return float("nan"), float("nan")
    return float(h[ok].mean()), float(v[ok].mean())


def calibration_stats(
    user: np.ndarray, start: np.ndarray, hr: np.ndarray, speed: np.ndarray
) -> dict[str, Any]:
    """The calibration figures (see the module doc) of runs given by their user, start time,
    settled mean HR and mean speed (runs with nan are left out)."""
    ok = np.isfinite(hr) & np.isfinite(speed)
    user, start, hr, speed = user[ok], start[ok], hr[ok], speed[ok]
    if len(hr) < 3:
        return {"runs": int(len(hr))}
    bands = np.searchsorted(SPEED_EDGES_KMH, speed, side="right")
    by_speed = [float(hr[bands == b].mean()) if (bands == b).any() else float("nan")
                for b in range(len(SPEED_EDGES_KMH) + 1)]  # fmt: skip
    level = hr - np.polyval(np.polyfit(speed, hr, 1), speed)
    order = np.lexsort((start, user))
    user, hr, speed, level = user[order], hr[order], speed[order], level[order]
    sd_v, sd_h, changes = [], [], []
    for u in np.unique(user):
        sel = user == u
        if sel.sum() < MIN_RUNS:
            continue
        sd_v.append(speed[sel].std())
        sd_h.append(hr[sel].std())
        k = int(sel.sum()) // WINDOW
        means = level[sel][: k * WINDOW].reshape(k, WINDOW).mean(axis=1)
        changes += list(np.diff(means))
    ch = np.asarray(changes)
    return {
        "runs": int(len(hr)),
        "runners": int(len(sd_v)),
        "speed_quantiles_kmh": [round(float(q), 3) for q in np.quantile(speed, QUANTILES)],
        "hr_by_speed_bpm": [round(x, 3) for x in by_speed],
        "runner_speed_sd_kmh": round(float(np.mean(sd_v)), 3) if sd_v else None,
        "runner_hr_sd_bpm": round(float(np.mean(sd_h)), 3) if sd_h else None,
        "window_change_sd_bpm": round(float(ch.std()), 3) if len(ch) else None,
        "window_change_over_10": round(float((np.abs(ch) > 10).mean()), 4) if len(ch) else None,
        "window_changes": int(len(ch)),
    }


def compare(stats: dict[str, Any], targets: CalibrationTargets) -> dict[str, Any]:
    """The simulation's figures beside the real dev set's."""
    return {"simulated": stats, "real_dev": asdict(targets),
            "speed_bands_kmh": list(SPEED_EDGES_KMH)}  # fmt: skip
