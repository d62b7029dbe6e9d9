"""split: data/features/ -> data/split/{assignment.parquet,scaler.json}, metrics/split.json.

The work is `hrpred.split.pipeline.run_split`; this script only wires params and paths.
"""

from __future__ import annotations

from hrpred.errors import stage_main
from hrpred.params import load_config
from hrpred.split.config import SplitConfig
from hrpred.split.pipeline import run_split
from hrpred.store import Layout


def main() -> None:
    layout = Layout()
    stage_main(
        "split",
        lambda: run_split(
            load_config(SplitConfig, "split"),
            layout.features_dir,
            layout.split_dir,
            layout.metrics("split"),
        ),
    )


if __name__ == "__main__":
    main()
