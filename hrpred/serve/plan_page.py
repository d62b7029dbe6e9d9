"""One request of the app's Plan tab (`hrpred.serve.plan_app`), without Gradio: read the
uploaded route, personalise with the uploaded earlier runs or profile (as the Predict tab,
`hrpred.serve.page.own_profile`), plan it with `hrpred.serve.planner.plan_route` exactly like
`hrpred plan`, and build what the tab shows (`PlanView`: numbers, the splits and zone tables,
the figure, the per-step CSV). Every failure becomes a one-line message.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hrpred.errors import HrpredError
from hrpred.serve.page import file_stem, finite_number, gender_choice, one_line, own_profile
from hrpred.serve.plan import Stop
from hrpred.serve.plan_args import MAX_WARMUP_MIN, clock_seconds, parse_stops
from hrpred.serve.plan_figure import make_plan_figure
from hrpred.serve.plan_presentation import LIMITED_BY, format_load, plan_frame, splits_table
from hrpred.serve.planner import WARMUP_S, PlanOutcome, PlanRequest, format_clock, plan_route
from hrpred.serve.presentation import HEADLINE_LABELS, band_pair, zone_band_note, zones_table
from hrpred.serve.route import load_route

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanView:
    """What one plan shows in the tab; `error` set means nothing else is."""

    error: str | None = None
    status: str = ""
    figure: Figure | None = None
    finish: str = ""
    avg_hr: float | None = None
    max_hr: float | None = None
    avg_band: tuple[float, float] | None = None
    max_band: tuple[float, float] | None = None
    load: str = ""
    splits: pd.DataFrame | None = None
    zones: pd.DataFrame | None = None
    zone_basis: str = ""
    warnings: tuple[str, ...] = ()
    csv_path: str | None = None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def plan_request(
    pace: Any = None,
    finish: Any = None,
    hr_cap: Any = None,
    zone: Any = None,
    warmup_min: Any = None,
    stops: Any = None,
    replan: bool = False,
) -> PlanRequest:
    """The tab's text and number inputs as a `PlanRequest` (ValueError, one line, for text
    that is not a pace, time or stop list)."""
    zone_text = _text(zone).removeprefix("Z")
    warmup = None if _text(warmup_min) == "" else float(warmup_min)
    if warmup is not None and not 0 <= warmup <= MAX_WARMUP_MIN:
        raise ValueError(f"warm-up must be 0-{MAX_WARMUP_MIN:g} min, got {warmup_min}")
    return PlanRequest(
        pace_s_per_km=clock_seconds(_text(pace)) if _text(pace) else None,
        finish_s=clock_seconds(_text(finish)) if _text(finish) else None,
        hr_cap=finite_number(hr_cap),
        zone=int(zone_text) if zone_text.isdigit() else None,
        warmup_s=WARMUP_S if warmup is None else 60.0 * warmup,
        stops=tuple(Stop(km * 1000.0, s) for km, s in parse_stops(_text(stops))),
        replan=bool(replan),
    )


def plan_file(
    bundle: Any,
    path: str | None,
    *,
    request: PlanRequest,
    gender: str | None = None,
    max_hr: Any = None,
    age: Any = None,
    rest_hr: Any = None,
    past: Any = None,
    workdir: str | Path | None = None,
) -> PlanView:
    """Read a route (or recorded activity), plan it as `request` asks and build the view.
    Every failure becomes a one-line `error`; the server log keeps unexpected tracebacks."""
    if not path:
        return PlanView(status="Upload a route (.gpx, .tcx) or a recorded run.")
    name = Path(path).name
    try:
        gender_arg = gender_choice(gender)
        route = load_route(str(path), bundle.step_s, bundle.speed)
        extra: list[str] = []
        profile = own_profile(bundle, past, gender_arg, extra)
        outcome = plan_route(
            bundle, route, request, gender=gender_arg, max_hr=finite_number(max_hr),
            rest_hr=finite_number(rest_hr), age=finite_number(age), profile=profile,
        )  # fmt: skip
        return _view(outcome, name, workdir, tuple(extra))
    except (HrpredError, ValueError, OSError) as exc:
        message = one_line(exc)
        if message.startswith("past runs: "):
            return PlanView(error=message)
        return PlanView(error=message if message.startswith(name) else f"{name}: {message}")
    except Exception as exc:
        log.exception("planning failed for %s", path)
        return PlanView(error=f"{name}: could not plan ({type(exc).__name__}: {one_line(exc)})")


def _view(
    outcome: PlanOutcome, name: str, workdir: str | Path | None, extra: tuple[str, ...]
) -> PlanView:
    """The tab's content for one plan; writes the CSV download."""
    s = outcome.summary
    out_dir = Path(tempfile.mkdtemp(prefix="hrpred-plan-", dir=workdir))
    csv_path = out_dir / f"{file_stem(name)}_plan.csv"
    plan_frame(outcome).to_csv(csv_path, index=False, float_format="%.3f")
    band = s.get("band")
    status = (
        f"Planned {s['distance_km']:.2f} km from {name}: {s['pace']}; finish "
        f"{format_clock(s['finish_s'])}."
    )
    if s.get("history") is not None:
        status += f" Personalised with {s['history']['earlier_runs']} earlier run(s)"
        status += f"; the numbers are {HEADLINE_LABELS.get(s['headline'], 'the prediction')}."
    cap = s.get("cap")
    if cap is not None:
        status += (
            f" HR at or below {cap['cap_bpm']:.0f} on {100 * cap['share']:.0f}% of the steps "
            f"after the warm-up ({LIMITED_BY[cap['limited_by']]})."
        )
    level = None if band is None else float(band["level"])
    return PlanView(
        status=status,
        figure=make_plan_figure(outcome, name),
        finish=format_clock(s["finish_s"]),
        avg_hr=s["avg_hr"],
        max_hr=s["max_hr"],
        avg_band=band_pair(s, "avg_hr"),
        max_band=band_pair(s, "max_hr"),
        load=format_load(s["load"], level),
        splits=splits_table(s),
        zones=zones_table(s["zones"], None if band is None else band["zones"]),
        zone_basis=str(s["zone_basis"]) + zone_band_note(band),
        warnings=tuple(one_line(w) for w in (*extra, *outcome.warnings)),
        csv_path=str(csv_path),
    )
