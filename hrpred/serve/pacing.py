"""Pacing physics for `hrpred plan`, in one place: how fast a runner goes on a slope for the
same effort as on the flat (grade-adjusted pace).

The energy cost of running on a slope is Minetti et al.'s polynomial (Minetti AE, Moia C, Roi
GS, Susta D, Ferretti G. Energy cost of walking and running at extreme uphill and downhill
slopes. J Appl Physiol 93: 1039-1046, 2002), measured on a treadmill for gradients i from -0.45
to +0.45 (rise / run):

    Cr(i) = 155.4 i^5 - 30.4 i^4 - 43.3 i^3 + 46.3 i^2 + 19.5 i + 3.6   (J / kg / m)

Equal metabolic power (cost x speed) gives the speed on a slope as the flat speed times
Cr(0) / Cr(i): uphill that is the measured physics (10% up: 0.60x). Downhill the same rule
would have a runner go about twice as fast at -20%, which nobody does (braking, footing,
eccentric load): the downhill gain is capped at DOWNHILL_MAX_FACTOR; beyond about -38% the
polynomial's own factor falls below the cap again and applies.
"""

from __future__ import annotations

import numpy as np

# Minetti et al. 2002, Cr(i) for running: coefficients of i^5 .. i^0 (J / kg / m)
MINETTI_COEFFS = (155.4, -30.4, -43.3, 46.3, 19.5, 3.6)
GRADE_LIMIT = 0.45  # |grade| measured by Minetti et al.: steeper grades are clipped to it
DOWNHILL_MAX_FACTOR = 1.15  # downhill speed at most this x the flat speed (see the module doc)


def running_cost(grade: np.ndarray | float) -> np.ndarray:
    """Energy cost of running (J / kg / m) at `grade` (rise / run), clipped to +-GRADE_LIMIT."""
    i = np.clip(np.asarray(grade, dtype=np.float64), -GRADE_LIMIT, GRADE_LIMIT)
    return np.polyval(MINETTI_COEFFS, i)


def grade_speed_factor(grade: np.ndarray | float) -> np.ndarray:
    """Speed on `grade` for the effort of speed 1 on the flat: Cr(0) / Cr(grade), downhill
    capped at DOWNHILL_MAX_FACTOR (module doc)."""
    factor = MINETTI_COEFFS[-1] / running_cost(grade)
    return np.minimum(factor, np.where(np.asarray(grade) < 0, DOWNHILL_MAX_FACTOR, np.inf))
