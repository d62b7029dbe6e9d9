"""The `hrpred predict`, `hrpred plan` and `hrpred profile` commands (`hrpred.serve.cli`
parses the command line and calls them): read each file, predict, plan or profile it with the
bundle, print the summaries (`hrpred.serve.presentation`, `hrpred.serve.plan_presentation`) and
write the outputs. One bad file is one line on stderr and never stops the others; the exit
status is then EXIT_ERROR.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from hrpred.bundle.runtime import load_bundle
from hrpred.errors import EXIT_ERROR, HrpredError, one_line
from hrpred.io.atomic import check_output_path
from hrpred.io.atomic import write_atomic as write_text_atomic
from hrpred.io.exports import is_export, open_export
from hrpred.io.userfiles import read_activity
from hrpred.progress import Bar
from hrpred.serve.limits import PROGRESS_MIN_FILES, SECONDS_PER_FILE
from hrpred.serve.plan import Stop
from hrpred.serve.plan_presentation import format_plan, plan_frame
from hrpred.serve.planner import PlanRequest, plan_route
from hrpred.serve.predict import predict_activity
from hrpred.serve.presentation import format_profile, format_summary
from hrpred.serve.profile import (
    ProfileError,
    build_profile,
    check_compatible,
    load_profile,
    save_profile,
)
from hrpred.serve.route import load_route

# One sequence at a time is latency-bound: extra intra-op threads only add contention (the
# torch backend; ONNX Runtime runs one intra-op thread, `hrpred.bundle.backends.onnx_session`).
TORCH_THREADS = 1


def _same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name the same file (links followed); False for a path that cannot
    be resolved (a symbolic link loop, a missing file): it is no file to overwrite."""
    try:
        return os.path.realpath(a) == os.path.realpath(b) or os.path.samefile(a, b)
    except (OSError, ValueError, RuntimeError):
        return False


def _output_problem(flag: str, out: Path, files: list[str]) -> str | None:
    """Why `out` may not be written (an input, a directory, no such folder), checked before
    any input is read; None when it may."""
    clash = next((f for f in files if _same_file(Path(f), out)), None)
    if clash is not None:
        return f"{flag} {out} is the input file {clash}: refusing to overwrite it"
    return check_output_path(out, flag)


def write_atomic(table: Any, out: Path) -> None:
    """Write `table` as CSV to `out` atomically (`hrpred.io.atomic`): a failed write leaves
    any previous `out` untouched."""
    write_text_atomic(
        out, lambda handle: table.to_csv(handle, index=False, float_format="%.3f"), newline=""
    )


def _fail(name: str, exc: BaseException, unexpected: bool = False) -> None:
    msg = one_line(exc)
    if unexpected:
        msg = f"unexpected error ({type(exc).__name__}: {msg})"
    base = Path(name).name
    print(f"hrpred: {msg if msg.startswith(base) else f'{base}: {msg}'}", file=sys.stderr)


def predict_files(args: argparse.Namespace) -> int:
    """`hrpred predict`: each file's summary (stdout) and per-point predictions (--out)."""
    out = None if args.out in (None, "-") else Path(args.out)
    problem = None if out is None else _output_problem("--out", out, args.files)
    if problem is not None:
        print(f"hrpred: {problem}", file=sys.stderr)
        return EXIT_ERROR
    loaded = _bundle_and_profile(args)
    if loaded is None:
        return EXIT_ERROR
    bundle, profile = loaded
    frames = []
    failed = 0
    for name in args.files:
        try:
            activity = read_activity(name)
            pred = predict_activity(
                bundle,
                activity,
                gender=args.gender,
                max_hr=args.max_hr,
                rest_hr=args.rest_hr,
                age=args.age,
                profile=profile,
            )
        except (HrpredError, ValueError, OSError) as exc:
            _fail(name, exc)
            failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not lose the batch's others
            _fail(name, exc, unexpected=True)
            failed += 1
            continue
        if not args.quiet:
            stream = sys.stderr if args.out == "-" else sys.stdout
            print(format_summary(Path(name).name, pred.summary, pred.warnings), file=stream)
        frame = pred.frame
        if len(args.files) > 1:
            frame = frame.assign(file=Path(name).name)
        frames.append(frame)
    if args.out and frames:
        table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        try:
            if out is None:
                table.to_csv(sys.stdout, index=False, float_format="%.3f")
            else:
                write_atomic(table, out)
        except OSError as exc:
            print(f"hrpred: cannot write {args.out}: {one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        if out is not None and not args.quiet:
            print(f"wrote {len(table)} rows to {args.out}")
    return EXIT_ERROR if failed else 0


def runs_of(paths: list[str], stack: ExitStack, what: str) -> tuple[list[Any], list[str]]:
    """The runs `paths` name: activity files as given, and each export (a Strava or Garmin
    zip, a folder: `hrpred.io.exports`) as its runs, listed without reading them (the
    exports stay open in `stack`); plus one warning per refused member and per kind of
    activity left out. HrpredError for an export that cannot be read at all."""
    items: list[Any] = []
    warns: list[str] = []
    for name in paths:
        if not is_export(name):
            items.append(name)
            continue
        export = stack.enter_context(open_export(name))
        if not export.sources:
            raise HrpredError(f"{what} {name}: no .gpx/.tcx/.fit/.csv runs in it")
        items += [s.name for s in export.sources] if export.plain else export.sources
        warns += export.problems + export.notes
    return items, warns


def _history_files(folder: Path, max_files: int, stack: ExitStack) -> tuple[list[Any], list[str]]:
    """The runs of --history: a folder of activity files, or an export (zip or folder)."""
    if not is_export(folder):
        raise HrpredError(f"--history {folder}: not a folder or an export zip")
    items, warns = runs_of([str(folder)], stack, "--history")
    check_count(len(items), max_files, f"--history {folder}")
    return items, warns


def check_count(n: int, max_files: int, what: str) -> None:
    """HrpredError when there are more files than --max-files allows (before reading any)."""
    if n > max_files:
        raise HrpredError(
            f"{what}: {n:,} files, more than --max-files {max_files:,}: pass --max-files {n} "
            f"to read them all (about {max(1, round(n * SECONDS_PER_FILE / 60))} min)"
        )


def build_with_progress(
    bundle: Any, files: list[Any], args: argparse.Namespace
) -> tuple[Any, list[str]]:
    """build_profile with a progress bar beyond PROGRESS_MIN_FILES files (`hrpred.progress`:
    drawn on a terminal, one summary line elsewhere; none with --quiet), read by --workers
    processes."""
    if len(files) <= PROGRESS_MIN_FILES:
        return build_profile(bundle, files, args.gender, workers=args.workers)
    with Bar("reading runs", "files", total=len(files), enabled=not args.quiet) as bar:
        return build_profile(bundle, files, args.gender, bar.update, args.workers)


def profile_for(path: str, bundle: Any) -> Any:
    """The profile file `path`, checked against `bundle` (a ProfileError names the file: the
    runner may keep several)."""
    profile = load_profile(path)
    try:
        check_compatible(profile, bundle)
    except ProfileError as exc:
        raise ProfileError(f"{Path(path).name}: {exc}") from None
    return profile


def _bundle_and_profile(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """The bundle of --bundle and the runner's own profile (`_own_profile`); None after
    printing the one-line error."""
    try:
        bundle = load_bundle(Path(args.bundle), torch_threads=TORCH_THREADS)
        return bundle, _own_profile(args, bundle)
    except HrpredError as exc:
        print(f"hrpred: {one_line(exc)}", file=sys.stderr)
        return None


def _own_profile(args: argparse.Namespace, bundle: Any) -> Any:
    """The profile of --profile, or one built from --history's files; None without either."""
    if args.profile:
        return profile_for(args.profile, bundle)
    if args.history:
        with ExitStack() as stack:
            files, listed = _history_files(Path(args.history), args.max_files, stack)
            profile, warns = build_with_progress(bundle, files, args)
        for w in listed + warns:
            print(f"hrpred: warning: {w}", file=sys.stderr)
        if not profile.content["n_runs"]:
            print(
                f"hrpred: warning: --history {args.history}: no run with heart rate: "
                "predicting without personalisation",
                file=sys.stderr,
            )
            return None
        return profile
    return None


def write_profile(args: argparse.Namespace) -> int:
    """`hrpred profile`: the runner's profile of their files (-o) and its summary. The output
    path and the number of files are checked before any file is read."""
    out = Path(args.out)
    problem = _output_problem("-o", out, args.files)
    if problem is not None:
        print(f"hrpred: {problem}", file=sys.stderr)
        return EXIT_ERROR
    try:
        with ExitStack() as stack:
            files, listed = runs_of(args.files, stack, "profile")
            check_count(len(files), args.max_files, "profile")
            bundle = load_bundle(Path(args.bundle), torch_threads=TORCH_THREADS)
            profile, warns = build_with_progress(bundle, files, args)
    except HrpredError as exc:
        print(f"hrpred: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    for w in listed + warns:
        print(f"hrpred: warning: {w}", file=sys.stderr)
    if not profile.content["n_runs"]:
        print("hrpred: no run with heart rate among the files: no profile written", file=sys.stderr)
        return EXIT_ERROR
    try:
        save_profile(profile, out)
    except (OSError, HrpredError) as exc:
        print(f"hrpred: cannot write {args.out}: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(format_profile(profile.content))
        print(f"wrote {args.out}")
    return 0


def outputs_clash(args: argparse.Namespace, inputs: list[str]) -> str | None:
    """Why --out/--plot cannot be written (the input file, a directory), None when they can."""
    for flag, value in (("--out", args.out), ("--plot", getattr(args, "plot", None))):
        if value in (None, "-"):
            continue
        path = Path(value)
        clash = next((f for f in inputs if _same_file(Path(f), path)), None)
        if clash is not None:
            return f"{flag} {value} is the input file {clash}: refusing to overwrite it"
        if path.is_dir():
            return f"{flag} {value} is a directory"
    return None


def plan_file(args: argparse.Namespace) -> int:
    """`hrpred plan`: the plan's summary (stdout), its per-step table (--out) and figure
    (--plot)."""
    clash = outputs_clash(args, [args.route])
    if clash is not None:
        print(f"hrpred: {clash}", file=sys.stderr)
        return EXIT_ERROR
    stops = tuple(Stop(km * 1000.0, s) for km, s in (args.stops or []))
    request = PlanRequest(
        pace_s_per_km=args.pace, finish_s=args.time, hr_cap=args.hr_cap, zone=args.zone,
        warmup_s=args.warmup * 60.0, stops=stops, replan=args.replan, start_time=args.start,
    )  # fmt: skip
    loaded = _bundle_and_profile(args)
    if loaded is None:
        return EXIT_ERROR
    bundle, profile = loaded
    try:
        route = load_route(args.route, bundle.step_s, bundle.speed)
        if args.pace_from:
            follow = load_route(args.pace_from, bundle.step_s, bundle.speed)
            if follow.recorded is None:
                raise ValueError(f"--pace-from {args.pace_from}: a route without times")
            request = replace(request, pace_from=follow)
        outcome = plan_route(
            bundle, route, request, gender=args.gender, max_hr=args.max_hr,
            rest_hr=args.rest_hr, age=args.age, profile=profile,
        )  # fmt: skip
    except (HrpredError, ValueError, OSError) as exc:
        _fail(args.route, exc)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - a command line user gets a line, not a traceback
        _fail(args.route, exc, unexpected=True)
        return EXIT_ERROR
    if not args.quiet:
        stream = sys.stderr if args.out == "-" else sys.stdout
        print(format_plan(Path(args.route).name, outcome), file=stream)
    try:
        if args.out == "-":
            plan_frame(outcome).to_csv(sys.stdout, index=False, float_format="%.3f")
        elif args.out:
            write_atomic(plan_frame(outcome), Path(args.out))
        if args.plot:
            from hrpred.serve.plan_figure import save_plan_figure  # deferred: matplotlib

            save_plan_figure(outcome, Path(args.route).name, Path(args.plot))
    except OSError as exc:
        print(f"hrpred: cannot write the plan's output: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet and args.out not in (None, "-"):
        print(f"wrote {len(outcome.run.hr)} steps to {args.out}")
    if not args.quiet and args.plot:
        print(f"wrote {args.plot}")
    return 0
