"""What the front ends show of a plan (`hrpred.serve.planner.PlanOutcome`): the command
line's text (`format_plan`), the per-step table of `--out` and the app's download
(`plan_frame`), and the app's splits table (`splits_table`), so that `hrpred plan` and the
app's Plan tab present the same numbers the same way (zones and bands as `hrpred predict`'s,
`hrpred.serve.presentation`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from hrpred.serve.planner import PlanOutcome, format_clock
from hrpred.serve.presentation import (
    HEADLINE_NAMES,
    NO_BAND_NOTE,
    format_band,
    format_runner,
    format_zone_bands,
    format_zones,
)

LIMITED_BY = {
    "cap": "the cap sets the pace",
    "pace": "the pace plan already holds it",
    "speed": "every segment at the speed limit",
    "walk": "NOT HELD even walking every segment",
}


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(pair: list[float] | None, digits: int = 0) -> str:
    return "" if pair is None else f"{pair[0]:.{digits}f}-{pair[1]:.{digits}f}"


def format_load(load: dict[str, Any], level: float | None) -> str:
    """'TRIMP 96 (80% band 58-153; Banister, rest HR 60 (default: ...), max HR 190)'."""
    band = "" if load["band"] is None else f"{100 * level:.0f}% band {_span(load['band'])}; "
    rest = f"rest HR {load['rest_hr']:.0f}" + (
        "" if load["rest_given"] else " (default: pass --rest-hr)"
    )
    return (
        f"TRIMP {load['trimp']:.0f} ({band}Banister, {rest}, max HR {load['max_hr']:.0f}, "
        f"{load['weights']} weighting)"
    )


def format_splits(splits: list[dict[str, Any]], level: float | None) -> list[str]:
    """The per-km splits as lines: km, pace, grade, climb, stops and HR [band]."""
    band = "" if level is None else f" [{100 * level:.0f}% band]"
    lines = [f"    {'km':>5} {'pace':>6} {'grade':>7} {'climb':>6} {'stops':>6}  HR{band}"]
    for s in splits:
        km = (
            f"{s['km']}"
            if s["distance_m"] >= 999.5
            else f"{s['km'] - 1 + s['distance_m'] / 1000:.2f}"
        )
        hr = "" if s["hr"] is None else f"{s['hr']:.0f}"
        if s["hr_band"] is not None:
            hr += f" [{_span(s['hr_band'])}]"
        stops = format_clock(s["stopped_s"]) if s["stopped_s"] > 0 else ""
        lines.append(
            f"    {km:>5} {format_clock(s['pace_s_per_km']):>6} {s['grade_pct']:>+6.1f}% "
            f"{s['climb_m']:>5.0f}m {stops:>6}  {hr}"
        )
    return lines


def format_plan(name: str, outcome: PlanOutcome) -> str:
    """The text summary `hrpred plan` prints."""
    s = outcome.summary
    band = s["band"]
    level = None if band is None else float(band["level"])
    flat = "" if s["has_elevation"] else ", flat"
    lines = [
        f"{name}: {s['distance_km']:.2f} km, +{s['climb_m']:.0f} m / -{s['descent_m']:.0f} m"
        f"{flat}; plan: {s['pace']}",
        f"  finish {format_clock(s['finish_s'])} (moving {format_clock(s['moving_s'])}, "
        f"average pace {format_clock(s['pace_s_per_km'])} min/km"
        + (f", stops {format_clock(s['stopped_s'])}" if s["stopped_s"] > 0 else "")
        + f"); start {_date(s['start_time'])}",
    ]
    key = s["headline"]
    what = HEADLINE_NAMES.get(key, "population prediction")
    if s.get("history") is not None:
        lines.append(f"  personalised with {s['history']['earlier_runs']} earlier run(s)")
    if band is None:
        lines.append(f"  predicted HR ({what}): avg {s['avg_hr']:.0f}, max {s['max_hr']:.0f} BPM")
    else:
        lines.append(f"  predicted HR ({what}): {format_band(s)}{format_runner(s)}")
    cap = s.get("cap")
    if cap is not None:
        lines.append(
            f"  HR cap {cap['what']}: at or below it on {100 * cap['share']:.0f}% of the steps "
            f"after {format_clock(cap['warmup_s'])} ({LIMITED_BY[cap['limited_by']]}; "
            f"{cap['evaluations']} model runs)"
        )
    lines.append(f"  training load: {format_load(s['load'], level)}")
    lines.append(f"  time in zones ({s['zone_basis']}):")
    if band is None:
        lines.append(f"    {format_zones(s['zones'], s['zone_bounds_bpm'])}")
        lines.append(f"  {NO_BAND_NOTE}")
    else:
        lines += format_zone_bands([("predicted", s)], s["zone_bounds_bpm"])
    lines.append("  splits:")
    lines += format_splits(s["splits"], level)
    lines += [f"  warning: {w}" for w in outcome.warnings]
    return "\n".join(lines)


PREDICTION_COLUMNS = ("hr_pred", "hr_offset", "hr_personal")  # predict's curves, when present


def plan_frame(outcome: PlanOutcome) -> pd.DataFrame:
    """Per planned step: time, distance, elevation, grade, the speed the model saw and its
    pace, the headline HR (`hr`) and its band (`hr_p10`, `hr_p90`), and predict's curves."""
    run = outcome.run
    frame = run.prediction.frame
    edges = outcome.course.edges_m
    seg = np.clip(np.searchsorted(edges, run.distance_m, side="right") - 1, 0, edges.size - 2)
    speed = frame["speed_kmh"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore"):
        pace = np.where(speed > 0, 60.0 / np.where(speed > 0, speed, 1.0), np.nan)
    table = {
        "t_s": frame["t_s"].to_numpy(),
        "distance_km": run.distance_m / 1000.0,
        "altitude_m": frame["altitude_m"].to_numpy(),
        "grade_pct": 100.0 * outcome.course.grade[seg],
        "speed_kmh": speed,
        "pace_min_km": pace,
        "hr": run.hr,
    }
    if run.lo is not None and run.hi is not None:
        table.update(hr_p10=run.lo, hr_p90=run.hi)
    for column in PREDICTION_COLUMNS:
        if column in frame:
            table[column] = frame[column].to_numpy()
    return pd.DataFrame(table)


def splits_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The splits as the app's table: km, pace, grade, climb, stops, HR and its band."""
    rows = []
    for s in summary["splits"]:
        rows.append(
            {
                "km": round(s["km"] - 1 + s["distance_m"] / 1000.0, 2),
                "pace_min_km": format_clock(s["pace_s_per_km"]),
                "grade_%": round(s["grade_pct"], 1),
                "climb_m": round(s["climb_m"]),
                "stops": format_clock(s["stopped_s"]) if s["stopped_s"] > 0 else "",
                "hr": None if s["hr"] is None else round(s["hr"], 1),
                "hr_band": _span(s["hr_band"]),
            }
        )
    return pd.DataFrame(
        rows, columns=["km", "pace_min_km", "grade_%", "climb_m", "stops", "hr", "hr_band"]
    )
