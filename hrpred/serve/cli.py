"""`hrpred` command line: `hrpred predict FILE...`, `hrpred profile FILE... -o me.json` and
`hrpred app`.

Errors are one line on stderr with exit status 2, never a traceback. Heavy modules (pandas,
gradio) are imported only by the subcommand that needs them, so `--help` is instant and
`predict` does not pay for the web app; `predict` and `profile` import torch only when the
bundle has no model.onnx (or HRPRED_BACKEND=torch: see `hrpred.bundle.backends`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_BUNDLE = "models/bundle"
EXIT_ERROR = 2
# One sequence at a time is latency-bound: extra intra-op threads only add contention (the
# torch backend; ONNX Runtime runs one intra-op thread, `hrpred.bundle.backends.onnx_session`).
TORCH_THREADS = 1


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
        dest="command", metavar="{predict,profile,app}", parser_class=_Parser
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
        "hr_true; with --profile/--history also hr_offset and, for a history model, "
        "hr_personal; with a calibrated bundle hr_p10, hr_p50, hr_p90: the 80%% band of the "
        "most personal prediction, hr_p50 being that prediction) to this CSV; with several "
        "files a `file` column tells them apart; '-' = stdout",
    )
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
        help="personalise with your earlier runs with HR in DIR (.gpx .tcx .fit .csv[.gz])",
    )

    r = sub.add_parser(
        "profile",
        help="fit a personal profile from your own runs with HR",
        description="Summarise your own runs with heart rate (.gpx .tcx .fit .csv, each "
        "optionally .gz) into a profile for `hrpred predict --profile` with the same bundle: "
        "the runs used, their dates, per-run summaries and the model's errors on them, your "
        "estimated HR level and its change over time. Files without HR are skipped with a "
        "warning.",
    )
    r.add_argument("files", nargs="+", metavar="FILE", help="your earlier runs with HR")
    r.add_argument("-o", "--out", required=True, metavar="ME.json", help="profile file to write")
    r.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"model bundle dir ({DEFAULT_BUNDLE})")
    r.add_argument("--gender", choices=("male", "female", "unknown"), help="runner's gender")
    r.add_argument("--quiet", action="store_true", help="no summary, only warnings and errors")

    a = sub.add_parser("app", help="start the demo web app", add_help=False)
    a.add_argument("app_args", nargs=argparse.REMAINDER, help="--bundle, --host, --port")
    return parser


NO_BAND_NOTE = (
    "no uncertainty band: this bundle has no calibration (a population model, or exported "
    "before issue 14; re-export a history model with `dvc repro export`)"
)
HEADLINE_NAMES = {"personal": "learned personalised HR", "offset": "personalised HR (+ offset)"}
COLUMN_NAMES = {"personal": "learned", "offset": "+ offset"}  # as in format_personal's table


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


def format_personal(summary: dict[str, Any]) -> list[str]:
    """Population (cold start), offset-personalised and (history bundle) learned personalised
    predictions side by side; with a calibrated band, the avg and max bands of the curves that
    have one (population and the headline)."""
    hist, off = summary["history"], summary["offset"]
    learned = summary.get("personal")
    cols = [("population", summary), ("+ offset", off)]
    if learned is not None:
        cols.append(("learned", learned))
    used = f"offset: {off['runs']} most recent"
    if learned is not None:
        used += f"; learned: {learned['context_runs']} as context"
    lines = [
        f"  personalised with {hist['earlier_runs']} earlier run(s) ({used}):",
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
    lines.append(f"    {'correction':<18}" + "".join(fixes))
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first or type(exc).__name__


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def write_atomic(table: Any, out: Path) -> None:
    """Write `table` as CSV to `out` via a temporary file in the same directory and a rename,
    so a failed write leaves any previous `out` untouched."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            table.to_csv(handle, index=False, float_format="%.3f")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail(name: str, exc: BaseException, unexpected: bool = False) -> None:
    msg = _one_line(exc)
    if unexpected:
        msg = f"unexpected error ({type(exc).__name__}: {msg})"
    base = Path(name).name
    print(f"hrpred: {msg if msg.startswith(base) else f'{base}: {msg}'}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    from hrpred.errors import HrpredError
    from hrpred.io.userfiles import read_activity
    from hrpred.serve.predict import load_bundle, predict_activity

    out = None if args.out in (None, "-") else Path(args.out)
    if out is not None:
        clash = next((f for f in args.files if _same_file(Path(f), out)), None)
        if clash is not None:
            print(
                f"hrpred: --out {args.out} is the input file {clash}: refusing to overwrite it",
                file=sys.stderr,
            )
            return EXIT_ERROR
        if out.is_dir():
            print(f"hrpred: --out {args.out} is a directory", file=sys.stderr)
            return EXIT_ERROR
    try:
        bundle = load_bundle(Path(args.bundle), torch_threads=TORCH_THREADS)
        profile = _own_profile(args, bundle)
    except HrpredError as exc:
        print(f"hrpred: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
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
        import pandas as pd

        table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        try:
            if out is None:
                table.to_csv(sys.stdout, index=False, float_format="%.3f")
            else:
                write_atomic(table, out)
        except OSError as exc:
            print(f"hrpred: cannot write {args.out}: {_one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        if out is not None and not args.quiet:
            print(f"wrote {len(table)} rows to {args.out}")
    return EXIT_ERROR if failed else 0


def _history_files(folder: Path) -> list[Path]:
    from hrpred.errors import HrpredError
    from hrpred.io.userfiles import SUPPORTED

    if not folder.is_dir():
        raise HrpredError(f"--history {folder}: not a directory")
    files = sorted(
        f
        for f in folder.iterdir()
        if f.is_file() and f.name.lower().removesuffix(".gz").endswith(SUPPORTED)
    )
    if not files:
        raise HrpredError(f"--history {folder}: no .gpx/.tcx/.fit/.csv files")
    return files


def _own_profile(args: argparse.Namespace, bundle: Any) -> Any:
    """The profile of --profile, or one built from --history's files; None without either."""
    from hrpred.serve.profile import build_profile, check_compatible, load_profile

    if args.profile:
        profile = load_profile(args.profile)
        check_compatible(profile, bundle)
        return profile
    if args.history:
        profile, warns = build_profile(bundle, _history_files(Path(args.history)), args.gender)
        for w in warns:
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


def _profile(args: argparse.Namespace) -> int:
    from hrpred.errors import HrpredError
    from hrpred.serve.predict import load_bundle
    from hrpred.serve.profile import build_profile, save_profile

    out = Path(args.out)
    clash = next((f for f in args.files if _same_file(Path(f), out)), None)
    if clash is not None:
        print(f"hrpred: -o {args.out} is the input file {clash}: refusing", file=sys.stderr)
        return EXIT_ERROR
    try:
        bundle = load_bundle(Path(args.bundle), torch_threads=TORCH_THREADS)
        profile, warns = build_profile(bundle, args.files, args.gender)
    except HrpredError as exc:
        print(f"hrpred: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    for w in warns:
        print(f"hrpred: warning: {w}", file=sys.stderr)
    if not profile.content["n_runs"]:
        print("hrpred: no run with heart rate among the files: no profile written", file=sys.stderr)
        return EXIT_ERROR
    try:
        save_profile(profile, out)
    except OSError as exc:
        print(f"hrpred: cannot write {args.out}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(format_profile(profile.content))
        print(f"wrote {args.out}")
    return 0


def _app(argv: list[str]) -> int:
    try:
        from hrpred.serve.app import main as app_main
    except ImportError as exc:
        print(f"hrpred: the web app is unavailable ({_one_line(exc)})", file=sys.stderr)
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
                print(f"hrpred: {_one_line(SystemExit(exc.code))}", file=sys.stderr)
                return EXIT_ERROR
            return int(exc.code or 0)
        except KeyboardInterrupt:
            return 130
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    try:
        return _profile(args) if args.command == "profile" else _predict(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a command line user gets a line, not a traceback
        print(f"hrpred: unexpected error ({type(exc).__name__}: {_one_line(exc)})", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
