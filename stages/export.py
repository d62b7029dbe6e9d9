"""export: models/model.pt + metrics -> models/bundle/; clean workouts + split -> data/export/hf/.

The bundle (safetensors weights, config.json, model.onnx, model card) is all `hrpred predict`
and the app need; the dataset export uses exactly data/split's assignment
(see `hrpred.export.exporter`).
"""

from __future__ import annotations

import sys
from typing import Any

from hrpred.errors import stage_main
from hrpred.export.exporter import ExportConfig, run_export, summary_line
from hrpred.params import load_config, load_value
from hrpred.personal.config import PersonalConfig
from hrpred.store import Layout
from hrpred.timeseries import SpeedConfig


def run() -> tuple[dict[str, Any], ExportConfig]:
    cfg = load_config(ExportConfig, "export")
    source = load_value("data.raw", str)
    speed = load_config(SpeedConfig, "clean.speed")
    personal = load_config(PersonalConfig, "personal")
    history_runs = load_value("split.max_history", int)
    return run_export(cfg, source, speed, personal, history_runs, Layout()), cfg


def main() -> None:
    result, cfg = stage_main("export", run)
    print(summary_line(result, cfg), file=sys.stderr)


if __name__ == "__main__":
    main()
