"""Stage `clean`: rule checks, deterministic anomaly detector, corrections, GPS speed.

Reads `${data.raw}` (any reader format), writes data/clean/{workouts,rejects,report}.parquet
and metrics/clean.json. When `clean.truth` exists and matches the input's workout ids,
detection quality against the simulator's ground truth goes into the metrics too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hrpred.clean.config import clean_config
from hrpred.clean.detection import detection_metrics, truth_matches
from hrpred.clean.pipeline import CleanPaths, run_clean
from hrpred.io.raw import RawFormatError
from hrpred.params import ParamError, load_params

OUT_DIR = Path("data/clean")
METRICS = Path("metrics/clean.json")


def main() -> None:
    try:
        raw = load_params("data").str("raw")
        p = load_params("clean")
        cfg = clean_config(p)
        truth = p.optional_str("truth")
    except ParamError as exc:
        raise SystemExit(str(exc)) from None
    paths = CleanPaths(
        workouts=OUT_DIR / "workouts.parquet",
        rejects=OUT_DIR / "rejects.parquet",
        report=OUT_DIR / "report.parquet",
    )
    began = time.perf_counter()
    try:
        metrics = run_clean(raw, paths, cfg, progress=True)
    except (FileNotFoundError, RawFormatError) as exc:
        raise SystemExit(f"clean: {exc}") from None
    seconds = time.perf_counter() - began
    if truth and Path(truth).is_file():
        ok, why = truth_matches(truth, paths.report)
        if ok:
            metrics["detection"] = detection_metrics(
                truth, paths.report, paths.workouts, cfg.sports
            )
        else:
            print(
                f"clean: truth {truth} does not match the input ({why}); no detection metrics",
                file=sys.stderr,
            )
    else:
        print(f"clean: no truth file ({truth}); no detection metrics (real data)", file=sys.stderr)
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    # Timing only on stderr: the metrics file must not change between identical runs.
    mb = Path(raw).stat().st_size / 1e6
    print(
        f"clean: {metrics['workouts_kept']}/{metrics['workouts_read']} workouts kept, "
        f"{metrics['lines_unparseable']} unparseable lines; {mb:.1f} MB in {seconds:.1f} s "
        f"({mb / max(seconds, 1e-9):.1f} MB/s)",
        file=sys.stderr,
    )
    if not metrics["accounting"]["ok"]:
        raise SystemExit("clean: accounting does not add up (see metrics/clean.json)")


if __name__ == "__main__":
    main()
