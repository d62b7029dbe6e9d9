"""The app's figure: predicted (population and personalised) and recorded HR above speed and
altitude, and the route."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# personalised prediction columns (predict's frame), in order: (label, colour, line style)
PERSONAL_CURVES = {
    "hr_offset": ("personalised HR (+ offset)", "tab:orange", "--"),
    "hr_learned": ("personalised HR (learned)", "tab:green", ":"),
    "hr_personal": ("personalised HR (headline)", "tab:purple", "-"),
}


POPULATION_COLOR = "tab:red"
BAND_COLUMNS = ("hr_p10", "hr_p90")  # the band of the most personal prediction (predict)


def make_figure(
    frame: pd.DataFrame,
    title: str,
    latitude: np.ndarray | None = None,
    longitude: np.ndarray | None = None,
    band_level: float | None = None,
) -> Figure:
    """Predicted (and recorded) HR over time above speed and altitude, sharing the time axis,
    and, when the file has positions, the route coloured by predicted HR. With personalised
    columns (`hr_offset`, `hr_learned`, `hr_personal`: the headline) their curves are drawn beside the population one and
    the route is coloured by the most personal of them. With the band's columns (`hr_p10`,
    `hr_p90`) the band is shaded around that most personal curve, in its colour, labelled
    with `band_level` (e.g. 0.8: "80% band")."""
    from matplotlib.figure import Figure  # no pyplot: no global state across requests

    route = _route_xy(latitude, longitude, len(frame))
    fig = Figure(figsize=(13 if route else 10, 6.5), dpi=90, layout="constrained")
    grid = fig.add_gridspec(
        3,
        2 if route else 1,
        height_ratios=[2.2, 1, 1],
        **({"width_ratios": [2.4, 1]} if route else {}),
    )
    ax_hr = fig.add_subplot(grid[0, 0])
    ax_speed = fig.add_subplot(grid[1, 0], sharex=ax_hr)
    ax_alt = fig.add_subplot(grid[2, 0], sharex=ax_hr)
    minutes = frame["t_s"].to_numpy(dtype=float) / 60.0
    if "hr_true" in frame and frame["hr_true"].notna().any():
        ax_hr.plot(minutes, frame["hr_true"], color="0.55", lw=1.0, label="recorded HR")
    personal = [c for c in PERSONAL_CURVES if c in frame]
    if all(c in frame for c in BAND_COLUMNS):
        color = PERSONAL_CURVES[personal[-1]][1] if personal else POPULATION_COLOR
        level = "" if band_level is None else f"{100 * band_level:.0f}% "
        ax_hr.fill_between(
            minutes, frame["hr_p10"], frame["hr_p90"], color=color, alpha=0.18, lw=0,
            label=f"{level}band", zorder=1,
        )  # fmt: skip
    population = "population prediction" if personal else "predicted HR"
    ax_hr.plot(minutes, frame["hr_pred"], color=POPULATION_COLOR, lw=1.6, label=population)
    for column in personal:
        label, color, style = PERSONAL_CURVES[column]
        ax_hr.plot(minutes, frame[column], color=color, lw=1.6, ls=style, label=label)
    ax_hr.set_ylabel("HR (bpm)")
    ax_hr.legend(loc="lower right")
    ax_hr.set_title(title)
    ax_hr.grid(alpha=0.3)
    ax_hr.tick_params(labelbottom=False)
    ax_speed.tick_params(labelbottom=False)
    for ax, column, label, color in (
        (ax_speed, "speed_kmh", "speed (km/h)", "tab:blue"),
        (ax_alt, "altitude_m", "altitude (m)", "tab:green"),
    ):
        values = frame[column] if column in frame else None
        if values is not None and values.notna().any():
            ax.plot(minutes, values, color=color, lw=1.0)
        else:
            ax.text(0.5, 0.5, "not in file", transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_alt.set_xlabel("time (min)")
    if route:
        x, y = route
        ax_route = fig.add_subplot(grid[:, 1])
        shown = personal[-1] if personal else "hr_pred"  # the most personal prediction
        points = ax_route.scatter(x, y, c=frame[shown], s=4, cmap="inferno", lw=0)
        ax_route.plot(x[:1], y[:1], "o", color="tab:green", ms=7, label="start")
        ax_route.set_aspect("equal", adjustable="datalim")
        what = PERSONAL_CURVES[shown][0] if personal else "predicted HR"
        ax_route.set_title(f"route, coloured by {what}")
        ax_route.set_xlabel("east (km)")
        ax_route.set_ylabel("north (km)")
        ax_route.legend(loc="best")
        fig.colorbar(points, ax=ax_route, label=f"{what} (bpm)", shrink=0.6)
    return fig


def _route_xy(
    latitude: np.ndarray | None, longitude: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions as km east/north of the start (equirectangular: fine at a run's scale)."""
    if latitude is None or longitude is None or len(latitude) != n or len(longitude) != n:
        return None
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon)
    if ok.sum() < 2:
        return None
    lat0, lon0 = lat[ok][0], lon[ok][0]
    km_per_deg = 6371.0 * math.pi / 180.0
    x = (lon - lon0) * km_per_deg * math.cos(math.radians(lat0))
    y = (lat - lat0) * km_per_deg
    return x, y
