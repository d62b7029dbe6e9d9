"""The figure of a plan (`hrpred plan --plot` and the app's Plan tab): the headline predicted
HR with its band and the cap over distance, above the planned pace and the elevation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrpred.serve.planner import PlanOutcome
from hrpred.serve.presentation import HEADLINE_NAMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SLOWEST_SHOWN_MIN_KM = 15.0  # the pace axis stops here (a walk up a wall is off the chart)
DPI = 90


def make_plan_figure(outcome: PlanOutcome, title: str) -> Figure:
    """Predicted HR (headline, band, cap) over distance above pace and elevation."""
    from matplotlib.figure import Figure  # deferred: matplotlib; no pyplot, no global state

    run, summary = outcome.run, outcome.summary
    fig = Figure(figsize=(10, 6.5), dpi=DPI, layout="constrained")
    ax_hr, ax_pace, ax_alt = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1]}
    )
    km = run.distance_m / 1000.0
    what = HEADLINE_NAMES.get(summary["headline"], "predicted HR")
    band = summary.get("band")
    if run.lo is not None and run.hi is not None and band is not None:
        ax_hr.fill_between(
            km, run.lo, run.hi, color="tab:red", alpha=0.18, lw=0,
            label=f"{100 * band['level']:.0f}% band",
        )  # fmt: skip
    ax_hr.plot(km, run.hr, color="tab:red", lw=1.6, label=what)
    cap = summary.get("cap")
    if cap is not None:
        ax_hr.axhline(cap["cap_bpm"], color="0.3", ls="--", lw=1.0, label="HR cap")
        warm = np.flatnonzero(run.t_s >= cap["warmup_s"])
        if warm.size:
            ax_hr.axvline(km[warm[0]], color="0.6", ls=":", lw=1.0, label="end of warm-up")
    ax_hr.set_ylabel("HR (bpm)")
    ax_hr.legend(loc="lower right")
    ax_hr.set_title(f"{title}: {summary['pace']}", fontsize=10)
    edges = outcome.course.edges_m / 1000.0
    pace = np.minimum(60.0 / run.plan.speed_kmh, SLOWEST_SHOWN_MIN_KM)
    ax_pace.stairs(pace, edges, baseline=None, color="tab:blue", lw=1.0)
    ax_pace.invert_yaxis()
    ax_pace.set_ylabel("pace (min/km)")
    route = outcome.route
    ax_alt.fill_between(route.distance_m / 1000.0, route.altitude_m, color="tab:green", alpha=0.3)
    ax_alt.plot(route.distance_m / 1000.0, route.altitude_m, color="tab:green", lw=1.0)
    lo, hi = float(np.min(route.altitude_m)), float(np.max(route.altitude_m))
    ax_alt.set_ylim(lo - 0.1 * (hi - lo) - 1.0, hi + 0.1 * (hi - lo) + 1.0)
    ax_alt.set_ylabel("elevation (m)")
    ax_alt.set_xlabel("distance (km)")
    for ax in (ax_hr, ax_pace, ax_alt):
        ax.grid(alpha=0.3)
    return fig


def save_plan_figure(outcome: PlanOutcome, title: str, path: Path) -> None:
    """The plan's figure as a PNG at `path`, via a temporary file and a rename."""
    fig = make_plan_figure(outcome, title)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
