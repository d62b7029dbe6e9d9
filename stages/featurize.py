"""featurize: data/clean/workouts.parquet -> data/features/ (on-disk arrays + index).

The work is `hrpred.features.pipeline.run_featurize`; this script only wires params and paths.
"""

from __future__ import annotations

from hrpred.errors import stage_main
from hrpred.features.config import FeaturizeConfig
from hrpred.features.pipeline import run_featurize
from hrpred.params import load_config
from hrpred.store import Layout


def main() -> None:
    layout = Layout()
    stage_main(
        "featurize",
        lambda: run_featurize(
            load_config(FeaturizeConfig, "featurize"), layout.clean_workouts, layout.features_dir
        ),
    )


if __name__ == "__main__":
    main()
