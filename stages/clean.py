"""Stage `clean`: rule checks, deterministic anomaly detector, corrections, GPS speed.

Reads `${data.raw}` (any reader format), writes data/clean/{workouts,rejects,report}.parquet
and metrics/clean.json. When `clean.truth` exists and matches the input's workout ids,
detection quality against the simulator's ground truth goes into the metrics too.
"""

from __future__ import annotations

from hrpred.clean.config import CleanConfig
from hrpred.clean.pipeline import run_clean
from hrpred.errors import stage_main
from hrpred.params import load_config, load_value
from hrpred.store import Layout


def main() -> None:
    def run() -> None:
        cfg = load_config(CleanConfig, "clean")
        layout = Layout()
        run_clean(cfg, layout.resolve(load_value("data.raw", str)), layout)

    stage_main("clean", run)


if __name__ == "__main__":
    main()
