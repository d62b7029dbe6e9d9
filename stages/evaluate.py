"""evaluate: models/model.pt + data/features + data/split (with history) -> predictions, metrics, plots.

Writes data/eval/predictions.parquet, metrics/evaluate.json, models/calibration.json (the 80%
band's conformal constants, calibrated on val), plots/*.json, plots/figures/ and
plots/animations/ (see `hrpred.evaluate.evaluation`). The simulator truth (`clean.truth`) is
read for measurement only.
"""

from __future__ import annotations

import sys
from typing import Any

from hrpred.errors import stage_main
from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.evaluation import run_evaluate, summary_line
from hrpred.params import load_config, load_value
from hrpred.personal.config import PersonalConfig
from hrpred.store import Layout


def run() -> dict[str, Any]:
    cfg = load_config(EvalConfig, "evaluate")
    personal = load_config(PersonalConfig, "personal")
    truth = load_value("clean.truth", str | None)
    return run_evaluate(cfg, personal, truth, Layout())


def main() -> None:
    report = stage_main("evaluate", run)
    print(summary_line(report), file=sys.stderr)


if __name__ == "__main__":
    main()
