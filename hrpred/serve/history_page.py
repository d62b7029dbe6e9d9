"""One request of the app's History tab (`hrpred.serve.history_app`), without Gradio: the
uploaded export (a Strava or Garmin .zip), run files or profile -> the runner's profile and
trend (`hrpred.serve.trend`: table, figure, CSV), and a run checked against it
(`hrpred.serve.check`). Every failure becomes a one-line message.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hrpred.errors import HrpredError
from hrpred.io.userfiles import read_activity
from hrpred.serve.check import check_activity, format_check
from hrpred.serve.commands import runs_of, write_atomic
from hrpred.serve.page import PROFILE_SUFFIX, _past_paths, gender_choice, one_line
from hrpred.serve.profile import Profile, build_profile, check_compatible, load_profile
from hrpred.serve.trend import format_trend, trend_figure, trend_table

log = logging.getLogger(__name__)

# The app builds a profile within one request: at most this many runs (~0.3 s each); a larger
# history is profiled once with `hrpred profile` and its me.json uploaded instead.
MAX_APP_HISTORY_RUNS = 300
TABLE_COLUMNS = ("run", "date", "file", "level_bpm", "expected_bpm", "flag", "change_bpm",
                 "decoupling_model_bpm", "decoupling_pa_hr_pct")  # fmt: skip


@dataclass(frozen=True)
class HistoryView:
    """What the History tab shows; `error` set means nothing else is."""

    error: str | None = None
    status: str = ""
    figure: Any = None
    table: pd.DataFrame | None = None
    csv_path: str | None = None
    warnings: tuple[str, ...] = ()
    profile: Profile | None = None  # kept by the page to check a run against


def history_profile(bundle: Any, uploads: Any, gender: str | None) -> tuple[Profile, list[str]]:
    """The profile of the upload: one profile .json, or built from an export or run files."""
    paths = _past_paths(uploads)
    if not paths:
        raise HrpredError("upload an export (.zip), your run files or a profile (.json)")
    if len(paths) == 1 and paths[0].lower().endswith(PROFILE_SUFFIX):
        profile = load_profile(paths[0])
        check_compatible(profile, bundle)
        return profile, []
    with ExitStack() as stack:
        items, warns = runs_of(paths, stack, "history")
        if len(items) > MAX_APP_HISTORY_RUNS:
            raise HrpredError(
                f"{len(items)} runs, more than the app's {MAX_APP_HISTORY_RUNS}: make a profile "
                "with `hrpred profile EXPORT.zip -o me.json` and upload me.json"
            )
        profile, more = build_profile(bundle, items, gender)
    warns += more
    for p in paths:  # the uploads' temp folders mean nothing to the runner
        warns = [w.replace(str(Path(p).parent) + "/", "") for w in warns]
    return profile, warns


def history_request(
    bundle: Any, uploads: Any, gender: str | None = None, workdir: str | Path | None = None
) -> HistoryView:
    """The trend of the uploaded history (one-line `error` on failure)."""
    try:
        gender_arg = gender_choice(gender)
        profile, warns = history_profile(bundle, uploads, gender_arg)
        table = trend_table(profile, bundle, gender_arg)
        if table.empty:
            return HistoryView(error="no run with heart rate in the upload", warnings=tuple(warns))
        out = Path(tempfile.mkdtemp(prefix="hrpred-app-", dir=workdir)) / "trend.csv"
        write_atomic(table, out)
        return HistoryView(
            status=format_trend(table, last=0).split("\n  run")[0],
            figure=trend_figure(table, "your history"),
            table=table[list(TABLE_COLUMNS)].round(1),
            csv_path=str(out),
            warnings=tuple(warns),
            profile=profile,
        )
    except (HrpredError, ValueError, OSError) as exc:
        return HistoryView(error=one_line(exc))
    except Exception as exc:
        log.exception("history request failed")
        return HistoryView(error=f"unexpected error ({type(exc).__name__}: {one_line(exc)})")


def check_request(bundle: Any, profile: Profile | None, path: str | None) -> str:
    """A run checked against the history's profile, as the command prints it (one line on
    failure)."""
    if profile is None:
        return "Load your history first."
    if not path:
        return "Upload a run to check."
    try:
        check = check_activity(bundle, read_activity(path), profile)
        return format_check(Path(path).name, check)
    except (HrpredError, ValueError, OSError) as exc:
        return f"Error: {one_line(exc)}"
