"""A run's aerobic decoupling, two ways, as `hrpred profile` stores it per run (`drift`):

- `model_bpm`: model-based: the mean of recorded minus the population prediction over the
  second half of the run (by time) minus the same over the first half. The prediction already
  answers the route and the pace (hills, surges, the warm-up), so what is left is the heart's
  drift at the same predicted cost: heat, fatigue, dehydration;
- `pa_hr_pct`: the classic Pa:HR ratio of the training tools: efficiency (mean speed / mean
  HR) of the first half minus that of the second, in % of the first's: blind to the terrain
  and to pace changes between the halves.
Both over the run's valid grid steps (recorded HR in range, not paused); None when a half has
fewer than MIN_HALF_STEPS of them.
"""

from __future__ import annotations

import numpy as np

MIN_HALF_STEPS = 10  # valid steps each half needs for a decoupling


def decoupling(
    t: np.ndarray, hr: np.ndarray, ok: np.ndarray, population: np.ndarray, speed: np.ndarray
) -> dict[str, float | None]:
    """{model_bpm, pa_hr_pct} of one run on its grid (times `t`, recorded `hr`, valid `ok`,
    the population prediction and the speed, km/h)."""
    t = np.asarray(t, dtype=np.float64)
    mid = 0.5 * (t[0] + t[-1]) if t.size else 0.0
    first, second = ok & (t < mid), ok & (t >= mid)
    if first.sum() < MIN_HALF_STEPS or second.sum() < MIN_HALF_STEPS:
        return {"model_bpm": None, "pa_hr_pct": None}
    res = np.asarray(hr, np.float64) - np.asarray(population, np.float64)
    model = float(res[second].mean() - res[first].mean())
    ef1 = float(np.mean(speed[first]) / np.mean(hr[first]))
    ef2 = float(np.mean(speed[second]) / np.mean(hr[second]))
    pa_hr = 100.0 * (ef1 - ef2) / ef1 if ef1 > 0 else None
    return {"model_bpm": round(model, 4), "pa_hr_pct": None if pa_hr is None else round(pa_hr, 4)}
