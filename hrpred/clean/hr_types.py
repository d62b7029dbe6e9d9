"""The reference's HR-only workout-type rules (they read the target, heart rate).

Used by the clean stage's opt-in HR filters (`clean.hr_filters.drop_types`) and by the
labelled leaky feature `leaky_hr_type_onehot_*` (hrpred/features/registry.py): one
implementation, owned here so that cleaning does not depend on the feature code.
"""

from __future__ import annotations

import numpy as np


def hr_workout_type(hr: np.ndarray) -> str:
    """The reference's HR-only workout-type rules (target leakage by construction).

    Returns recovery | steady | intensive | intervals | unknown; NaN samples are ignored.
    """
    h = np.asarray(hr, dtype=np.float64)
    h = h[np.isfinite(h)]
    if len(h) < 50:
        return "unknown"
    m, s, mx = float(h.mean()), float(h.std()), float(h.max())
    hi = float(np.mean(h >= 170))
    lo = float(np.mean(h < 150))
    sw = float(np.mean(np.abs(np.diff(h)) > 15)) if len(h) > 1 else 0.0
    if m >= 170 and s < 12:
        return "intensive"
    if sw > 0.05 and s > 15 and hi > 0.2 and lo > 0.2:
        return "intervals"
    if 145 <= m < 170 and s < 15:
        return "steady"
    if m < 150 and mx < 170:
        return "recovery"
    if m >= 165:
        return "intensive"
    if m >= 150:
        return "steady"
    if m >= 130:
        return "recovery"
    return "unknown"
