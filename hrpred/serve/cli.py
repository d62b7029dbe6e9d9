"""`hrpred` command line: `hrpred predict FILE...`, `hrpred plan ROUTE`, `hrpred profile
FILE|EXPORT... -o me.json`, `hrpred check RUN --profile me.json`, `hrpred trend
ME.json|EXPORT...` and `hrpred app`. This module parses the command line and dispatches: the
predict, plan and profile commands are `hrpred.serve.commands`, check and trend
`hrpred.serve.history_commands`, the web app `hrpred.serve.app`.

Errors are one line on stderr with exit status 2, never a traceback. Heavy modules (numpy and
pandas, ~0.7 s, which everything under `hrpred.serve` imports; gradio) are imported only by the
subcommand that needs them, so `--help` and usage errors are instant and `predict` does not pay
for the web app; `predict` and `profile` import torch only when the bundle has no model.onnx
(or HRPRED_BACKEND=torch: see `hrpred.bundle.backends`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hrpred.errors import EXIT_ERROR, one_line
from hrpred.serve.limits import MAX_HISTORY_FILES, MAX_PROFILE_RUNS, SECONDS_PER_FILE
from hrpred.serve.plan_args import MAX_WARMUP_MIN, clock_seconds, parse_start, parse_stops

DEFAULT_BUNDLE = "models/bundle"
DEFAULT_WORKERS = 2  # processes reading a profile's files (at most the CPUs)
MAX_WORKERS = 64


def _positive(kind: str, lo: float, hi: float) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, got {text!r}") from None
        if not (lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"{kind} must be within {lo:g}-{hi:g}, got {text}")
        return value

    return parse


def _whole(hi: int, what: str = "") -> Any:
    """An argparse type: a whole number within 1-`hi` (`what`: what the bound is)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not 1 <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be within 1-{hi}{what}, got {text}")
        return value

    return parse


def _max_files(parser: argparse.ArgumentParser, what: str) -> None:
    """--max-files and --workers: how many files are read, and by how many processes."""
    workers = min(DEFAULT_WORKERS, os.cpu_count() or 1)
    parser.add_argument(
        "--workers",
        type=_whole(MAX_WORKERS),
        default=workers,
        metavar="N",
        help=f"read the files in N processes (default {workers}: {DEFAULT_WORKERS} or the "
        "CPUs if fewer); the result is the same for any N",
    )
    parser.add_argument(
        "--max-files",
        type=_whole(MAX_PROFILE_RUNS, " (the runs a profile holds)"),
        default=MAX_HISTORY_FILES,
        metavar="N",
        help=f"read at most N {what} (default {MAX_HISTORY_FILES}; about {SECONDS_PER_FILE:g} s "
        "each); more are refused before any is read",
    )


def _checked(parse: Any, kind: str, lo: float | None = None, hi: float | None = None) -> Any:
    """An argparse type from a `hrpred.serve.plan_args` parser (ValueError -> usage error),
    with the value (seconds) within lo-hi when they are given."""

    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"{kind} must be within {lo / 60:g}-{hi / 60:g} min, got {text}"
            )
        return value

    return check


def _profile_options(p: argparse.ArgumentParser) -> None:
    """--gender, --max-hr, --rest-hr, --age and --profile | --history (predict and plan)."""
    p.add_argument("--gender", choices=("male", "female", "unknown"), help="runner's gender")
    p.add_argument("--max-hr", type=_positive("max HR", 100, 240), help="max HR (BPM) for zones")
    p.add_argument("--rest-hr", type=_positive("resting HR", 25, 120), help="resting HR (BPM)")
    p.add_argument("--age", type=_positive("age", 5, 100), help="age (years): max HR if not given")
    p.add_argument("--quiet", action="store_true", help="no summary, only errors")
    own = p.add_mutually_exclusive_group()
    own.add_argument(
        "--profile",
        metavar="ME.json",
        help="personalise with this profile (from `hrpred profile` with the same bundle): "
        "population, offset-personalised and (history model) learned personalised predictions "
        "side by side; only runs that started earlier are used",
    )
    own.add_argument(
        "--history",
        metavar="DIR",
        help="personalise with your earlier runs with HR in DIR (.gpx .tcx .fit .csv[.gz]) or "
        "in a Strava or Garmin export (the .zip, or the folder it unzips to)",
    )
    _max_files(p, "files from --history")


def _plan_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="predict the HR a route will cost at a planned pace, or pace it under an HR cap",
        description="Plan a run on a route (.gpx route or track without times, .tcx course, "
        "or a recorded activity: planned at its own recorded pace, or with --replan at a new "
        "one) and predict its heart rate: finish time, average and max HR with their bands, "
        "time in zones, per-km splits and the training load. The pace is spread over the "
        "route by grade (the same effort on every slope: Minetti's energy cost of running). "
        "With --hr-cap or --zone: the fastest plan whose predicted HR stays under the cap "
        "after the warm-up.",
    )
    p.add_argument("route", metavar="ROUTE", help="route or activity file")
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"model bundle dir ({DEFAULT_BUNDLE})")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--pace", type=_checked(clock_seconds, "pace", 120, 1800), metavar="M:SS",
        help="average moving pace (min/km), spread over the route by grade",
    )  # fmt: skip
    pace.add_argument(
        "--time", type=_checked(clock_seconds, "finish time", 60, 24 * 3600), metavar="H:MM:SS",
        help="finish time (stops included), spread over the route by grade",
    )  # fmt: skip
    pace.add_argument(
        "--pace-from", metavar="RUN",
        help="follow the pace profile (and stops) of a recorded run, by share of the distance",
    )  # fmt: skip
    cap = p.add_mutually_exclusive_group()
    cap.add_argument(
        "--hr-cap", type=_positive("HR cap", 80, 230), metavar="BPM",
        help="the fastest plan whose predicted HR stays at or below BPM (on 95%% of the steps "
        "after the warm-up); with --pace/--time, never faster than that plan",
    )  # fmt: skip
    cap.add_argument(
        "--zone", type=int, choices=(1, 2, 3, 4), help="cap the HR at the top of this zone"
    )
    p.add_argument(
        "--warmup", type=_positive("warm-up", 0, MAX_WARMUP_MIN), default=5.0, metavar="MIN",
        help="minutes at the start the cap does not apply to (5)",
    )  # fmt: skip
    p.add_argument(
        "--stops", type=_checked(parse_stops, "stops"), metavar="KM@M:SS,...",
        help="planned stops, e.g. 10@1:00,21@2:00 (at km 10 for 1 min, ...)",
    )  # fmt: skip
    p.add_argument(
        "--replan", action="store_true",
        help="plan a recorded activity's route at a new pace (its times are ignored)",
    )  # fmt: skip
    p.add_argument(
        "--start", type=_checked(parse_start, "start"), metavar="DATE",
        help="planned start (e.g. 2025-06-01T08:00, UTC): only profile runs before it are "
        "used; default: a recording's own start, else now",
    )  # fmt: skip
    p.add_argument(
        "--out", metavar="OUT.csv",
        help="write the plan per step (t_s, distance_km, altitude_m, grade_pct, speed_kmh, "
        "pace_min_km, hr: the headline predicted HR, hr_p10/hr_p90: its band, and predict's "
        "curves) to this CSV; '-' = stdout",
    )  # fmt: skip
    p.add_argument("--plot", metavar="PLAN.png", help="draw the plan (HR, pace, elevation)")
    _profile_options(p)


def _check_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="compare a run with what your history predicts, find sensor faults, fill them",
        description="Was this run's heart rate what your earlier runs predict for its route "
        "and pace? The mean of recorded minus the personalised prediction (from the profile's "
        "runs that started before it) against the usual size of that error on your earlier "
        "runs; the clean stage's detector on the file (suspect spans); and with --out the "
        "per-point HR with hr_filled: the recorded HR where it is valid, the prediction (and "
        "its band: hr_filled_p10/p90) where it is missing or flagged.",
    )
    p.add_argument("file", metavar="RUN", help="the run (.gpx .tcx .fit .csv, optionally .gz)")
    p.add_argument("--profile", required=True, metavar="ME.json", help="your profile")
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"model bundle dir ({DEFAULT_BUNDLE})")
    p.add_argument("--out", metavar="OUT.csv", help="per-point table with hr_filled; '-' = stdout")
    p.add_argument("--gender", choices=("male", "female", "unknown"), help="runner's gender")
    p.add_argument("--max-hr", type=_positive("max HR", 100, 240), help="max HR (BPM)")
    p.add_argument("--rest-hr", type=_positive("resting HR", 25, 120), help="resting HR (BPM)")
    p.add_argument("--age", type=_positive("age", 5, 100), help="age (years): max HR if not given")
    p.add_argument("--quiet", action="store_true", help="no summary, only errors")


def _trend_parser(sub: Any) -> None:
    p = sub.add_parser(
        "trend",
        help="your level, its changes and your runs' decoupling over time",
        description="Per run and over time: your level (how far your HR sat above or below "
        "the population model's at the same route and pace), what your earlier runs "
        "predicted for it, the level changes found (a new watch, a long break, a training "
        "block), the runs far from expectation, each run's decoupling (second half vs "
        "first: the model's, route and pace accounted for, beside the classic Pa:HR ratio), "
        "and your level at a standard effort (flat, 10 km/h) with its band. "
        "From a profile (ME.json), or from runs: a Strava or Garmin export (.zip or its "
        "folder), a folder or files, profiled first.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="ME.json, an export, or runs")
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"model bundle dir ({DEFAULT_BUNDLE})")
    p.add_argument("--out", metavar="TREND.csv", help="the per-run table; '-' = stdout")
    p.add_argument("--plot", metavar="TREND.png", help="draw the trend")
    p.add_argument("--gender", choices=("male", "female", "unknown"), help="runner's gender")
    p.add_argument("--quiet", action="store_true", help="no summary, only warnings and errors")
    _max_files(p, "runs")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hrpred",
        description="Predict a runner's heart-rate curve from speed and altitude.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{predict,plan,profile,check,trend,app}", parser_class=_Parser
    )
    sub.required = True

    p = sub.add_parser(
        "predict",
        help="predict HR for GPX/TCX/FIT/CSV files",
        description="Predict the heart-rate curve of activity files (.gpx .tcx .fit .csv, each "
        "optionally .gz) and print a summary per file. Per-point predictions go to --out.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="activity file(s)")
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"model bundle dir ({DEFAULT_BUNDLE})")
    p.add_argument(
        "--out",
        metavar="OUT.csv",
        help="write per-point predictions (t_s, timestamp, speed_kmh, altitude_m, hr_pred, "
        "hr_true; with --profile/--history also hr_offset, for a history model hr_learned, "
        "and hr_personal (the headline); with a calibrated bundle hr_p10, hr_p50, hr_p90: the 80%% band of the "
        "most personal prediction, hr_p50 being that prediction) to this CSV; with several "
        "files a `file` column tells them apart; '-' = stdout",
    )
    _profile_options(p)
    _plan_parser(sub)

    r = sub.add_parser(
        "profile",
        help="fit a personal profile from your own runs with HR",
        description="Summarise your own runs with heart rate (.gpx .tcx .fit .csv, each "
        "optionally .gz; or a whole Strava or Garmin export: its .zip or the folder it unzips "
        "to, runs only, read member by member) into a profile for `hrpred predict --profile` "
        "with the same bundle: "
        "the runs used, their dates, per-run summaries and the model's errors on them, your "
        "estimated HR level and its change over time. Files without HR are skipped with a "
        "warning.",
    )
    r.add_argument(
        "files", nargs="+", metavar="FILE", help="your earlier runs with HR, or exports (.zip)"
    )
    r.add_argument("-o", "--out", required=True, metavar="ME.json", help="profile file to write")
    r.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"model bundle dir ({DEFAULT_BUNDLE})")
    r.add_argument("--gender", choices=("male", "female", "unknown"), help="runner's gender")
    r.add_argument("--quiet", action="store_true", help="no summary, only warnings and errors")
    _max_files(r, "files")

    _check_parser(sub)
    _trend_parser(sub)
    a = sub.add_parser("app", help="start the demo web app", add_help=False)
    a.add_argument("app_args", nargs=argparse.REMAINDER, help="--bundle, --host, --port")
    return parser


def _app(argv: list[str]) -> int:
    try:
        from hrpred.serve.app import main as app_main  # deferred: gradio, pandas (module doc)
    except ImportError as exc:
        print(f"hrpred: the web app is unavailable ({one_line(exc)})", file=sys.stderr)
        return EXIT_ERROR
    app_main(argv)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hrpred` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "app":  # the app parses its own options (--bundle, --host, --port)
        try:
            return _app(argv[1:])
        except SystemExit as exc:
            if isinstance(exc.code, str):
                print(f"hrpred: {one_line(SystemExit(exc.code))}", file=sys.stderr)
                return EXIT_ERROR
            return int(exc.code or 0)
        except KeyboardInterrupt:
            return 130
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    try:
        # deferred: numpy, pandas and the rest of hrpred (module doc)
        from hrpred.serve.commands import plan_file, predict_files, write_profile
        from hrpred.serve.history_commands import check_file, trend_history

        commands = {"profile": write_profile, "plan": plan_file, "predict": predict_files,
                    "check": check_file, "trend": trend_history}  # fmt: skip
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a command line user gets a line, not a traceback
        print(f"hrpred: unexpected error ({type(exc).__name__}: {one_line(exc)})", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
