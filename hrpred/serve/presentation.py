"""What the front ends show of a prediction's summary (`hrpred.serve.predict`): the command
line's text (`format_summary`, `format_profile`) and the app's tables and number boxes
(`zones_table`, `personal_table`, `format_range`, `format_number`), so that `hrpred predict`
and `hrpred app` present the same numbers the same way.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hrpred.serve.summary import ZONES

# --------------------------------------------------------------------------- command line text


NO_BAND_NOTE = (
    "no uncertainty band: this bundle has no calibration (a population model, or exported "
    "before issue 14; re-export a history model with `dvc repro export`)"
)
HEADLINE_NAMES = {"personal": "personalised HR (headline)"}
COLUMN_NAMES = {"personal": "headline"}  # as in format_personal's table


def _span(pair: list[float]) -> str:
    return f"{pair[0]:.0f}-{pair[1]:.0f}"


def format_band(curve: dict[str, Any]) -> str:
    """A curve's average and max HR with their bands: "avg 152 BPM, 80% band 146-158; max
    171 BPM (80% band 165-178)" (the curve's summary with its `band`)."""
    band = curve["band"]
    pct = f"{100 * band['level']:.0f}% band"
    return (
        f"avg {curve['avg_hr']:.0f} BPM, {pct} {_span(band['avg_hr'])}; "
        f"max {curve['max_hr']:.0f} BPM ({pct} {_span(band['max_hr'])})"
    )


def format_runner(curve: dict[str, Any]) -> str:
    """The band's runner scale when earlier runs set it: " (band x1.12 from 4 earlier runs'
    errors)"; "" otherwise (factor 1)."""
    band = curve["band"]
    if not band.get("runner_runs"):
        return ""
    return f" (band x{band['runner_factor']:.2f} from {band['runner_runs']} earlier runs' errors)"


def _zone_edges(bounds: list[float]) -> list[str]:
    return (
        ["<" + f"{bounds[0]:.0f}"]
        + [f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        + [">=" + f"{bounds[-1]:.0f}"]
    )


def format_zones(zones: dict[str, float], bounds: list[float]) -> str:
    """Time in each zone on one line: minutes and share of the workout."""
    total = sum(zones.values()) or 1.0
    return ", ".join(
        f"{z} {edge}: {zones[z] / 60:.1f} min ({100 * zones[z] / total:.0f}%)"
        for z, edge in zip(zones, _zone_edges(bounds), strict=True)
    )


def format_zone_bands(curves: list[tuple[str, dict[str, Any]]], bounds: list[float]) -> list[str]:
    """Time in each zone of the banded curves side by side (name, curve summary with `band`):
    minutes and, in brackets, the range over the band's lower, central and upper curves."""
    level = curves[0][1]["band"]["level"]
    lines = [f"    {'minutes [' + f'{100 * level:.0f}% band]':<18}"]
    lines[0] += "".join(f"{name:>20}" for name, _ in curves)
    for z, edge in zip(curves[0][1]["zones"], _zone_edges(bounds), strict=True):
        cells = []
        for _, c in curves:
            lo, hi = (s / 60 for s in c["band"]["zones"][z])
            cells.append(f"{c['zones'][z] / 60:.1f} [{lo:.1f}-{hi:.1f}]")
        lines.append(f"    {z + ' ' + edge:<18}" + "".join(f"{x:>20}" for x in cells))
    return lines


def format_pauses(pauses: list[dict[str, float]]) -> str:
    """'2 pauses: at 12.0 min for 3.5 min, at 40.2 min for 12.0 min' (the run is kept)."""
    parts = [f"at {p['start_s'] / 60:.1f} min for {p['duration_s'] / 60:.1f} min" for p in pauses]
    return f"{len(pauses)} pause(s): " + ", ".join(parts)


def format_summary(name: str, summary: dict[str, Any], warnings: list[str]) -> str:
    """The short text summary printed for one file: the population prediction and, with a
    profile, the personalised ones; with a calibrated band, the ranges of the population and
    of the headline (most personal) prediction, else a one-line note."""
    dur = summary["duration_s"] / 60.0
    band = summary.get("band")
    drift = f"drift (2nd half - 1st half) {summary['drift_bpm']:+.1f} BPM"
    if band is None:
        predicted = f"avg {summary['avg_hr']:.1f}, max {summary['max_hr']:.1f} BPM"
    else:
        predicted = format_band(summary)
    lines = [
        f"{name}: {dur:.1f} min, {summary['distance_km']:.2f} km "
        f"(speed from {summary['speed_source']}), {summary['n_steps']} steps of "
        f"{summary['step_s']:.2f} s",
        f"  predicted HR: {predicted}; {drift}",
    ]
    if summary.get("pauses"):
        lines.append(f"  {format_pauses(summary['pauses'])}")
    if "mae" in summary:
        lines.append(
            f"  recorded HR: avg {summary['recorded_avg_hr']:.1f} BPM; MAE {summary['mae']:.1f}, "
            f"RMSE {summary['rmse']:.1f}, bias {summary['bias']:+.1f} BPM ({summary['n_hr']} points)"
        )
    bounds = summary["zone_bounds_bpm"]
    if band is None:
        zones = format_zones(summary["zones"], bounds)
        lines.append(f"  zones ({summary['zone_basis']}): {zones}")
    if "offset" in summary:
        lines += format_personal(summary)
    if band is None:
        lines.append(f"  {NO_BAND_NOTE}")
    else:
        banded = [("population", summary)]
        key = summary["headline"]
        if key != "population":
            what = HEADLINE_NAMES[key]
            lines.append(f"  {what}: {format_band(summary[key])}{format_runner(summary[key])}")
            banded.append((COLUMN_NAMES[key], summary[key]))
        lines.append(f"  time in zones ({summary['zone_basis']}):")
        lines += format_zone_bands(banded, bounds)
    lines += [f"  warning: {w}" for w in warnings]
    return "\n".join(lines)


def personal_columns(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The side-by-side columns: population, + offset, learned (history bundle), headline."""
    cols = [("population", summary), ("+ offset", summary["offset"])]
    if "learned" in summary:
        cols.append(("learned", summary["learned"]))
    cols.append(("headline", summary["personal"]))
    return cols


def _weights(summary: dict[str, Any]) -> str:
    w = summary["history"]["weights"]
    names = {"population": "population", "offset": "+ offset", "learned": "learned"}
    return ", ".join(f"{names[k]} {v:.2f}" for k, v in w.items() if k in names and v > 0.005)


def format_personal(summary: dict[str, Any]) -> list[str]:
    """Population (cold start), offset-personalised, (history bundle) learned personalised
    and headline predictions side by side; with a calibrated band, the avg and max bands of
    the curves that have one (population and the headline)."""
    hist, off = summary["history"], summary["offset"]
    learned = summary.get("learned")
    cols = personal_columns(summary)
    used = f"offset: {off['runs']} most recent"
    if learned is not None:
        used += f"; learned: {learned['context_runs']} as context"
    lines = [
        f"  personalised with {hist['earlier_runs']} earlier run(s) ({used}); {hist['note']}",
        f"    {'HR (BPM)':<18}" + "".join(f"{name:>12}" for name, _ in cols),
    ]
    band = summary.get("band")
    rows = [("avg", "avg_hr"), ("max", "max_hr")]
    rows += [("MAE vs recorded", "mae"), ("bias vs recorded", "bias")] if "mae" in off else []
    for label, key in rows:
        lines.append(f"    {label:<18}" + "".join(f"{c[key]:>12.1f}" for _, c in cols))
        if band is not None and key in ("avg_hr", "max_hr"):
            spans = [_span(c["band"][key]) if c.get("band") else "" for _, c in cols]
            name = f"{label} {100 * band['level']:.0f}% band"
            lines.append(f"    {name:<18}" + "".join(f"{x:>12}" for x in spans))
    fixes = [f"{'':>12}", f"{off['offset_bpm']:>+12.1f}"]
    if learned is not None:
        fixes.append(f"{learned['residual_bpm']:>+12.1f}")
    fixes.append(f"{'':>12}")
    lines.append(f"    {'correction':<18}" + "".join(fixes))
    lines.append(
        f"    headline = weighted by each one's error on the earlier runs: {_weights(summary)}"
    )
    if learned is None:
        lines.append("    (this bundle's model does not read history: offset personalisation only)")
    return lines


def format_profile(content: dict[str, Any]) -> str:
    """The short text summary of a profile."""
    level = content["level"]
    kind = content["bundle"]["kind"]
    lines = [
        f"profile: {content['n_runs']} run(s) with HR used, {len(content['skipped'])} skipped; "
        f"for this {kind} bundle"
        + (" (offset personalisation only)" if kind == "population" else "")
    ]
    if content["n_runs"]:
        trend = level["trend_bpm_per_30_days"]
        lines.append(
            f"  runs from {level['first_date'][:10]} to {level['last_date'][:10]}; HR at 10 km/h "
            f"{level['level_bpm']:.1f} BPM (last {level['level_runs']} runs; all runs "
            f"{level['level_all_runs_bpm']:.1f})"
            + ("" if trend is None else f", change {trend:+.1f} BPM per 30 days")
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- app tables


def finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


BAND_ZONE_COLUMNS = ["band_low_min", "band_high_min"]


def zones_table(
    zones: dict[str, float] | None, band: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """Time in each HR zone as minutes and share of the workout; with the band's zone ranges
    (seconds, `predict`'s band summary `zones`), their ends in minutes."""
    columns = ["zone", "minutes", "share_%", *(BAND_ZONE_COLUMNS if band else [])]
    if not zones:
        return pd.DataFrame(columns=columns)
    seconds = [float(zones.get(z, 0.0) or 0.0) for z in ZONES]
    total = sum(seconds)
    rows = [
        [z, round(s / 60.0, 1), round(100.0 * s / total, 1) if total > 0 else 0.0]
        + ([round(float(b) / 60.0, 1) for b in band[z]] if band else [])
        for z, s in zip(ZONES, seconds, strict=True)
    ]
    return pd.DataFrame(rows, columns=columns)


PERSONAL_ROWS = (  # (label, summary key) of the population-vs-personalised table
    ("avg HR", "avg_hr"),
    ("max HR", "max_hr"),
    ("MAE vs recorded", "mae"),
    ("bias vs recorded", "bias"),
)


def personal_table(summary: dict[str, Any]) -> pd.DataFrame | None:
    """Population, + offset, (history model) learned and headline numbers side by side
    (BPM), None without personalisation."""
    if "offset" not in summary:
        return None
    cols = dict(personal_columns(summary))
    rows = []
    band = summary.get("band")
    for label, key in PERSONAL_ROWS:
        if key in summary["offset"]:
            rows.append([label, *(_rounded(c.get(key)) for c in cols.values())])
        if band is not None and key in ("avg_hr", "max_hr"):
            name = f"{label} {100 * band['level']:.0f}% band"
            rows.append([name, *(format_range(band_pair(c, key)) for c in cols.values())])
    fixes = [None, _rounded(summary["offset"]["offset_bpm"])]
    if "learned" in summary:
        fixes.append(_rounded(summary["learned"]["residual_bpm"]))
    rows.append(["correction", *fixes, None])
    return pd.DataFrame(rows, columns=["BPM", *cols])


def band_pair(curve: dict[str, Any], key: str) -> tuple[float, float] | None:
    """The band of `key` (avg_hr, max_hr) of a curve summary, None without one."""
    band = curve.get("band")
    return None if not band else (float(band[key][0]), float(band[key][1]))


def format_range(pair: tuple[float, float] | None) -> str:
    """A band's ends as text (e.g. 146.1-158.4); empty without a band."""
    return "" if pair is None else f"{pair[0]:.1f}-{pair[1]:.1f}"


HEADLINE_LABELS = {"personal": "the personalised (headline) prediction"}
NO_BAND_STATUS = " No uncertainty band: this model bundle has no calibration."


def _rounded(value: Any) -> float | None:
    number = finite(value)
    return None if number is None else round(number, 1)


def zone_band_note(band: dict[str, Any] | None) -> str:
    """What the zone table's band columns are (appended to the zone basis); "" without."""
    if band is None:
        return ""
    return (
        f"; band_low/high_min: the least and most minutes over the {100 * band['level']:.0f}% band"
    )


def format_number(value: float | None) -> str:
    """One decimal, or `n/a` (a blank number box would read as 0)."""
    return "n/a" if value is None else f"{value:.1f}"
