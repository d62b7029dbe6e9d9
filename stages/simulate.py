"""Stage `simulate`: write the default raw data (FitRec lines) and its ground truth.

Writes `${simulate.out}`, `${simulate.truth}` and metrics/simulate.json.
"""

from __future__ import annotations

from hrpred.errors import stage_main
from hrpred.params import load_config
from hrpred.simulate.config import SimConfig
from hrpred.simulate.dataset import run_simulate
from hrpred.store import Layout


def main() -> None:
    stage_main("simulate", lambda: run_simulate(load_config(SimConfig, "simulate"), Layout()))


if __name__ == "__main__":
    main()
