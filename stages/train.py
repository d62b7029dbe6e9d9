"""Stage `train`: data/features + data/split (incl. history.parquet) -> models/model.pt, models/checkpoint.pt,
dvclive/train/, metrics/train.json.

Multi-GPU / multi-node: `torchrun --nproc_per_node=2 -m stages.train` (rank 0 writes outputs).
The work is `hrpred.train.pipeline.run_train`; this script only wires params and paths.
"""

from __future__ import annotations

from hrpred.errors import stage_main
from hrpred.params import load_config
from hrpred.personal.config import LearnedConfig
from hrpred.store import Layout
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.pipeline import run_train


def main() -> None:
    layout = Layout()
    paths = TrainPaths(model=layout.model, checkpoint=layout.checkpoint, live_dir=layout.live_dir)
    stage_main(
        "train",
        lambda: run_train(
            load_config(TrainConfig, "train"),
            layout.features_dir,
            layout.split_dir,
            paths,
            layout.metrics("train"),
            load_config(LearnedConfig, "personal.learned"),
        ),
    )


if __name__ == "__main__":
    main()
