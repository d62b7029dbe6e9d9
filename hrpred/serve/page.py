"""One request of the demo app (`hrpred.serve.app`), without Gradio: read the uploaded file,
personalise with the uploaded earlier runs or profile, predict through `hrpred.serve.predict`
exactly like `hrpred predict`, and build what the page shows (`PredictionView`: numbers,
tables from `hrpred.serve.presentation`, the figure, the CSV download). Every failure becomes
a one-line message.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hrpred.errors import HrpredError
from hrpred.io.userfiles import read_activity as read_user_file
from hrpred.serve.figure import make_figure
from hrpred.serve.predict import predict_activity as predict_user_activity
from hrpred.serve.presentation import (
    HEADLINE_LABELS,
    NO_BAND_STATUS,
    band_pair,
    finite,
    personal_table,
    zone_band_note,
    zones_table,
)
from hrpred.serve.profile import ProfileError, build_profile, check_compatible, load_profile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

# Limits (README "Limits and bad files"; the app's others are in `hrpred.serve.app`)
MAX_PAST_FILES = 20  # earlier runs per request (the personalisers read the 10 most recent)
PROFILE_SUFFIX = ".json"  # a past-runs upload with this suffix is a profile (hrpred profile)
# The app's temp dir keeps at most MAX_KEPT_OUTPUTS prediction CSVs (and generated samples),
# none older than OUTPUT_MAX_AGE_S, whether or not a browser fetched them: Gradio copies a
# CSV into its own cache when it sends the response, so ours is not needed after that.
MAX_KEPT_OUTPUTS = 8
OUTPUT_MAX_AGE_S = 600.0
OUTPUT_PREFIXES = ("hrpred-app-", "sample-")  # the folders the app writes in its temp dir


@dataclass(frozen=True)
class PredictionView:
    """What one prediction shows in the page; `error` set means nothing else is."""

    error: str | None = None
    status: str = ""
    figure: Figure | None = None
    avg_hr: float | None = None
    max_hr: float | None = None
    avg_band: tuple[float, float] | None = None  # the headline's calibrated band (BPM)
    max_band: tuple[float, float] | None = None
    mae: float | None = None
    drift_bpm: float | None = None
    zones: pd.DataFrame | None = None
    zone_basis: str = ""
    warnings: tuple[str, ...] = ()
    csv_path: str | None = None
    personal: pd.DataFrame | None = None  # population vs personalised (with earlier runs)


def one_line(message: object) -> str:
    """First non-empty line of a message, so the page never shows a multi-line trace."""
    text = str(message).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or "unknown error"


def finite_number(value: Any) -> float | None:
    """Optional numeric input from the page: None for blank, NaN or non-positive."""
    if value is None or value == "":
        return None
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        return None
    return number


def file_stem(path: str | Path) -> str:
    """File name without workout extensions (`run.fit.gz` -> `run`), safe for a download name."""
    name = Path(path).name
    name = re.sub(r"(\.(gpx|tcx|fit|csv))?(\.gz)?$", "", name, flags=re.IGNORECASE) or "workout"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _past_paths(past: Any) -> list[str]:
    """The past-runs upload as a list of paths (Gradio gives a list, a path or None)."""
    if not past:
        return []
    items = [past] if isinstance(past, (str, Path)) else list(past)
    return [str(getattr(p, "name", p)) for p in items if p]


def gender_choice(value: Any) -> str | None:
    """The app's gender field as the library takes it: None when not given or 'unknown'."""
    return None if value in (None, "", "unknown") else str(value)


def own_profile(bundle: Any, past: Any, gender: str | None, warnings: list[str]) -> Any:
    """The profile of the past-runs upload: one profile JSON, or built from earlier run files
    (files without HR skipped with a warning); None when none was uploaded or no run had HR.
    HrpredError (one line, prefixed "past runs:") for a bad upload."""
    paths = _past_paths(past)
    if not paths:
        return None
    if len(paths) > MAX_PAST_FILES:
        raise ProfileError(
            f"past runs: {len(paths)} files, at most {MAX_PAST_FILES} (the personalisers read "
            "the 10 most recent)"
        )
    profiles = [p for p in paths if p.lower().endswith(PROFILE_SUFFIX)]
    if profiles and len(paths) > 1:
        raise ProfileError("past runs: upload either one profile .json or run files, not both")
    try:
        if profiles:
            profile = load_profile(profiles[0])
            try:
                check_compatible(profile, bundle)
            except ProfileError as exc:
                raise ProfileError(f"{Path(profiles[0]).name}: {exc}") from None
            return profile
        profile, warns = build_profile(bundle, paths, gender)
    except ProfileError as exc:
        raise ProfileError(f"past runs: {one_line(exc)}") from None
    for p in paths:  # the uploads' temp folders mean nothing to the runner: their names only
        warns = [w.replace(p, Path(p).name) for w in warns]
    warnings += [f"past runs: {w}" for w in warns]
    if not profile.content["n_runs"]:
        warnings.append("past runs: no run with heart rate: population prediction only")
        return None
    return profile


def predict_file(
    bundle: Any,
    path: str | None,
    *,
    gender: str | None = None,
    max_hr: Any = None,
    age: Any = None,
    rest_hr: Any = None,
    past: Any = None,
    workdir: str | Path | None = None,
    read_activity: Callable[[str], Any] | None = None,
    predict_activity: Callable[..., Any] | None = None,
) -> PredictionView:
    """Read a workout file, predict its HR curve and build everything the page shows.

    `past`: the runner's earlier runs with HR (paths), or one profile JSON: personalises the
    prediction (only runs that started before this one). Every failure becomes a one-line
    `error`; the server log keeps the traceback of unexpected ones.
    `read_activity`/`predict_activity` default to the real `hrpred` API.
    """
    if not path:
        return PredictionView(status="Upload a workout file or pick a sample.")
    if read_activity is None:
        read_activity = read_user_file
    if predict_activity is None:
        predict_activity = predict_user_activity
    name = Path(path).name
    try:
        gender_arg = gender_choice(gender)
        activity = read_activity(str(path))
        extra: list[str] = []
        profile = own_profile(bundle, past, gender_arg, extra)
        prediction = predict_activity(
            bundle,
            activity,
            gender=gender_arg,
            max_hr=finite_number(max_hr),
            rest_hr=finite_number(rest_hr),
            age=finite_number(age),
            **({"profile": profile} if profile is not None else {}),
        )
        return _view(prediction, activity, name, workdir, tuple(extra))
    except ProfileError as exc:  # the uploaded profile's fault (or the runs'), not this file's
        message = one_line(exc)
        return PredictionView(
            error=message if message.startswith("past runs: ") else f"past runs: {message}"
        )
    except (HrpredError, ValueError, OSError) as exc:  # ActivityError, BundleError, ...
        message = one_line(exc)
        if message.startswith("past runs: "):
            return PredictionView(error=message)
        # readers usually name the file already; the page must say which file failed once
        return PredictionView(error=message if message.startswith(name) else f"{name}: {message}")
    except Exception as exc:
        log.exception("prediction failed for %s", path)
        return PredictionView(
            error=f"{name}: could not predict ({type(exc).__name__}: {one_line(exc)})"
        )


def _view(
    prediction: Any,
    activity: Any,
    name: str,
    workdir: str | Path | None,
    extra: tuple[str, ...] = (),
) -> PredictionView:
    """The page's content for one prediction; writes the CSV download."""
    frame = prediction.frame
    summary = dict(prediction.summary)
    if workdir is not None:
        prune_outputs(workdir)
    out_dir = Path(tempfile.mkdtemp(prefix=OUTPUT_PREFIXES[0], dir=workdir))
    csv_path = out_dir / f"{file_stem(name)}_hr_pred.csv"
    frame.to_csv(csv_path, index=False)
    shown = (*extra, *(getattr(prediction, "warnings", ()) or ()))
    warnings = tuple(one_line(w) for w in shown)
    history = summary.get("history")
    # the numbers shown: the headline (most personal) prediction, with its band if any
    key = summary.get("headline", "population")
    head = summary if key == "population" else summary[key]
    band = head.get("band")
    status = f"Predicted {len(frame)} points ({frame['t_s'].iloc[-1] / 60.0:.1f} min) from {name}."
    if history is not None:
        status += f" Personalised with {history['earlier_runs']} earlier run(s)"
        status += f"; the numbers, zones and band are {HEADLINE_LABELS[key]}."
    if summary.get("band", False) is None:
        status += NO_BAND_STATUS
    return PredictionView(
        status=status,
        figure=make_figure(
            frame,
            name,
            getattr(activity, "latitude", None),
            getattr(activity, "longitude", None),
            band_level=None if band is None else float(band["level"]),
        ),
        avg_hr=finite(head.get("avg_hr")),
        max_hr=finite(head.get("max_hr")),
        avg_band=band_pair(head, "avg_hr"),
        max_band=band_pair(head, "max_hr"),
        mae=finite(head.get("mae")),
        drift_bpm=finite(head.get("drift_bpm")),
        zones=zones_table(head.get("zones"), None if band is None else band["zones"]),
        zone_basis=str(summary.get("zone_basis") or "") + zone_band_note(band),
        warnings=warnings,
        csv_path=str(csv_path),
        personal=personal_table(summary),
    )


def discard_output(csv_path: str | None, workdir: str | Path) -> bool:
    """Delete a prediction's CSV directory once Gradio has served (copied) it; only a
    directory inside the app's temp `workdir` is ever deleted. True if one was."""
    if not csv_path:
        return False
    out_dir = Path(csv_path).resolve().parent
    root = Path(workdir).resolve()
    if out_dir == root or root not in out_dir.parents:
        return False
    shutil.rmtree(out_dir, ignore_errors=True)
    return True


def prune_outputs(
    workdir: str | Path,
    keep: int = MAX_KEPT_OUTPUTS,
    max_age_s: float = OUTPUT_MAX_AGE_S,
    now: float | None = None,
) -> int:
    """Delete the app's output folders in `workdir` (OUTPUT_PREFIXES: prediction CSVs,
    samples) older than `max_age_s` or beyond the `keep` newest; the number deleted. Called
    before each new one is written, so the temp dir holds at most keep + 1 of them."""
    now = time.time() if now is None else now
    found = []
    for entry in Path(workdir).iterdir():
        if not entry.name.startswith(OUTPUT_PREFIXES) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            found.append((entry.stat().st_mtime, entry.name, entry))
        except OSError:  # gone meanwhile (another request pruned it)
            continue
    found.sort(reverse=True)
    deleted = 0
    for rank, (mtime, _, entry) in enumerate(found):
        if rank >= keep or now - mtime > max_age_s:
            shutil.rmtree(entry, ignore_errors=True)
            deleted += 1
    return deleted


MAX_WARNINGS_SHOWN = 50  # a tab lists at most this many warnings (then "... and N more")


def error_update(error: str | None) -> Any:
    """A tab's error Markdown: the one-line message when there is one, hidden otherwise."""
    import gradio as gr  # deferred: gradio only when the page is built

    bad = error is not None
    return gr.update(value=f"**Error:** {error}" if bad else "", visible=bad)


def warnings_update(warnings: Sequence[str]) -> Any:
    """A tab's warnings Markdown: a bullet per warning (at most MAX_WARNINGS_SHOWN), hidden
    without any."""
    import gradio as gr  # deferred: gradio only when the page is built

    shown = list(warnings)[:MAX_WARNINGS_SHOWN]
    lines = [f"- {w}" for w in shown]
    if len(warnings) > len(shown):
        lines.append(f"- ... and {len(warnings) - len(shown)} more")
    return gr.update(value="\n".join(lines), visible=bool(warnings))
