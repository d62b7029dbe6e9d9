"""The `hrpred check` and `hrpred trend` commands (`hrpred.serve.cli` parses the command line
and calls them): a run against the runner's history (`hrpred.serve.check`) and the history's
trend (`hrpred.serve.trend`). Errors are one line on stderr and EXIT_ERROR."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from hrpred.bundle.runtime import load_bundle
from hrpred.errors import EXIT_ERROR, HrpredError, one_line
from hrpred.io.userfiles import read_activity
from hrpred.serve.check import check_activity, format_check
from hrpred.serve.commands import (
    TORCH_THREADS,
    build_with_progress,
    check_count,
    outputs_clash,
    profile_for,
    runs_of,
    write_atomic,
)
from hrpred.serve.trend import format_trend, save_trend_figure, trend_table


def check_file(args: argparse.Namespace) -> int:
    """`hrpred check`: the run against the profile's history (stdout), the filled HR (--out)."""
    clash = outputs_clash(args, [args.file, args.profile])
    if clash is not None:
        print(f"hrpred: {clash}", file=sys.stderr)
        return EXIT_ERROR
    try:
        bundle = load_bundle(Path(args.bundle), torch_threads=TORCH_THREADS)
        profile = profile_for(args.profile, bundle)
        activity = read_activity(args.file)
        check = check_activity(
            bundle, activity, profile, gender=args.gender, max_hr=args.max_hr,
            rest_hr=args.rest_hr, age=args.age,
        )  # fmt: skip
    except (HrpredError, ValueError, OSError) as exc:
        print(f"hrpred: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        stream = sys.stderr if args.out == "-" else sys.stdout
        print(format_check(Path(args.file).name, check), file=stream)
        for w in check.warnings:
            print(f"  note: {w}", file=stream)
    try:
        if args.out == "-":
            check.frame.to_csv(sys.stdout, index=False, float_format="%.3f")
        elif args.out:
            write_atomic(check.frame, Path(args.out))
    except OSError as exc:
        print(f"hrpred: cannot write {args.out}: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def trend_history(args: argparse.Namespace) -> int:
    """`hrpred trend`: the history's trend (stdout), its table (--out) and figure (--plot),
    from a profile or from runs (an export, a folder, files: profiled first)."""
    clash = outputs_clash(args, list(args.sources))
    if clash is not None:
        print(f"hrpred: {clash}", file=sys.stderr)
        return EXIT_ERROR
    try:
        bundle = load_bundle(Path(args.bundle), torch_threads=TORCH_THREADS)
        if len(args.sources) == 1 and args.sources[0].lower().endswith(".json"):
            profile = profile_for(args.sources[0], bundle)
            warns: list[str] = []
        else:
            with ExitStack() as stack:
                files, warns = runs_of(list(args.sources), stack, "trend")
                check_count(len(files), args.max_files, "trend")
                profile, more = build_with_progress(bundle, files, args)
            warns += more
        table = trend_table(profile, bundle, args.gender)  # 'unknown' as predict takes it
    except (HrpredError, ValueError, OSError) as exc:
        print(f"hrpred: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    for w in warns:
        print(f"hrpred: warning: {w}", file=sys.stderr)
    if table.empty:
        print("hrpred: no run with heart rate: no trend", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(format_trend(table), file=sys.stderr if args.out == "-" else sys.stdout)
    try:
        if args.out == "-":
            table.to_csv(sys.stdout, index=False, float_format="%.3f")
        elif args.out:
            write_atomic(table, Path(args.out))
        if args.plot:
            save_trend_figure(table, Path(args.plot), Path(args.sources[0]).name)
    except OSError as exc:
        print(f"hrpred: cannot write the trend's output: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return 0
