"""Stage `simulate`: write the default raw data (FitRec lines) and its ground truth."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hrpred.params import ParamError, load_params
from hrpred.simulate import SimConfig, simulate_dataset

METRICS = Path("metrics/simulate.json")


def main() -> None:
    try:
        p = load_params("simulate")
        cfg = SimConfig.from_params(p)
        out, truth = p.str("out"), p.str("truth")
    except ParamError as exc:
        raise SystemExit(str(exc)) from None
    began = time.perf_counter()
    metrics = simulate_dataset(cfg, out, truth)
    seconds = time.perf_counter() - began
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    # Timing goes to stderr only: the metrics file must be identical across runs.
    mb = metrics["bytes"] / 1e6
    print(
        f"simulate: {metrics['lines']} lines, {mb:.1f} MB in {seconds:.1f} s "
        f"({mb / seconds:.1f} MB/s) -> {out}, {truth}",
        file=sys.stderr,
    )
    bad = [k for k, ok in metrics["realism"].get("within_bands", {}).items() if not ok]
    if bad:
        print(f"simulate: warning: outside realism bands: {bad}", file=sys.stderr)


if __name__ == "__main__":
    main()
