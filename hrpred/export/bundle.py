"""The exported model bundle (`models/bundle/`): write it, read it, describe it.

A bundle is self-contained: `model.safetensors` (weights, no pickle), `config.json`
(architecture, feature list, scaler, target scale, sampling step, training params, metrics),
`model.onnx` (scaler included: unscaled features [batch, time, F] -> HR in BPM [batch, time])
and `README.md`, a model card rendered from config.json. `load_bundle` needs only these files
and the `hrpred` package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

BUNDLE_FORMAT = "hrpred-bundle"
BUNDLE_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ONNX = "model.onnx"
CARD = "README.md"
ONNX_INPUT = "features"
ONNX_OUTPUT = "hr_bpm"

# Metric keys shown in the model card tables, in this order, when present.
CARD_METRICS = (
    "mae",
    "rmse",
    "mae_after_2min",
    "workout_mae_mean",
    "workout_mae_median",
    "bias",
    "n_workouts",
    "n_steps",
)


class BundleError(ValueError):
    """A bundle directory that cannot be loaded; the message is one line."""


# --------------------------------------------------------------------------- sampling


STEP_STATISTICS = ("median", "mean", "mean_active")


def sampling_stats(
    elapsed: np.ndarray, lengths: np.ndarray, pause_s: float = 60.0
) -> dict[str, float]:
    """Step statistics (s) of the rows the model trained on.

    `elapsed` is [N, T] seconds since start, `lengths` the real steps of each row (the rest is
    padding). Only positive steps count (a repeated time is not a step). `mean_active_step_s`
    leaves out steps longer than `pause_s` (recording pauses), so it is the time a step spans
    while running: lags and rolling windows count steps, and this is what they span on average.
    """
    steps = [np.diff(elapsed[i, : int(n)].astype(np.float64)) for i, n in enumerate(lengths)]
    d = np.concatenate(steps) if steps else np.zeros(0)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        raise ValueError("no positive time steps in the training rows: cannot infer sampling")
    active = d[d <= pause_s]
    return {
        "median_step_s": float(np.median(d)),
        "mean_step_s": float(d.mean()),
        "mean_active_step_s": float(active.mean()) if active.size else float(np.median(d)),
        "pause_s": float(pause_s),
        "p10_step_s": float(np.percentile(d, 10)),
        "p90_step_s": float(np.percentile(d, 90)),
        "n_steps": int(d.size),
    }


# --------------------------------------------------------------------------- config


def _plain(value: Any) -> Any:
    """JSON-safe plain types; non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_config(
    ckpt: Mapping[str, Any],
    metrics: Mapping[str, Any],
    sampling: Mapping[str, float],
    step_statistic: str,
    data: Mapping[str, Any],
    binary_features: Sequence[str],
) -> dict[str, Any]:
    """config.json content from the training checkpoint, evaluate metrics and data facts."""
    if step_statistic not in STEP_STATISTICS:
        raise ValueError(f"step_statistic must be one of {STEP_STATISTICS}, got {step_statistic!r}")
    features = [str(f) for f in ckpt["features"]]
    step_s = float(sampling[f"{step_statistic}_step_s"])
    return _plain(
        {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "model": {
                "class": "HRLSTM",
                "config": dict(ckpt["config"]),
                "n_params": ckpt.get("n_params"),
                "output": "heart rate (BPM) at every step",
            },
            "features": features,
            "binary_features": [f for f in features if f in set(binary_features)],
            "scaler": {k: dict(v) for k, v in ckpt["scaler"].items()},
            "target": {
                "name": "heart_rate",
                "unit": "BPM",
                "mean": float(ckpt["target_mean"]),
                "std": float(ckpt["target_std"]),
            },
            "seq_len": int(ckpt["seq_len"]),
            "sampling": {
                "step_s": step_s,
                "step_statistic": step_statistic,
                **dict(sampling),
                "note": "inputs are resampled to a uniform grid of step_s seconds: every "
                "lag/rolling feature counts steps of the training data",
            },
            "training": {
                "best_epoch": ckpt.get("best_epoch"),
                "val": dict(ckpt.get("val", {})),
                "params": dict(ckpt.get("train_params", {})),
            },
            "data": dict(data),
            "metrics": dict(metrics),
            "files": {"weights": WEIGHTS, "onnx": None, "card": CARD},
        }
    )


def dumps_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, trailing newline)."""
    return json.dumps(_plain(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- bundle object


@dataclass
class Bundle:
    """A loaded bundle: the eval-mode model plus everything needed to feed it."""

    config: dict[str, Any]
    model: torch.nn.Module
    path: Path | None = None

    @property
    def features(self) -> list[str]:
        return list(self.config["features"])

    @property
    def scaler(self) -> dict[str, dict[str, float]]:
        return self.config["scaler"]

    @property
    def step_s(self) -> float:
        return float(self.config["sampling"]["step_s"])

    @property
    def seq_len(self) -> int:
        return int(self.config["seq_len"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.config.get("metrics", {})

    def checkpoint_view(self) -> dict[str, Any]:
        """The checkpoint keys `hrpred.model.predict` reads (features, scaler)."""
        return {"features": self.features, "scaler": self.scaler}

    def predict(self, features_unscaled: np.ndarray) -> np.ndarray:
        """HR (BPM) for unscaled features [T, F] -> [T] or [N, T, F] -> [N, T]."""
        from hrpred.model import predict

        return predict(self.model, self.checkpoint_view(), features_unscaled)


def model_from_config(config: Mapping[str, Any]) -> torch.nn.Module:
    """A fresh HRLSTM with the bundle's architecture and target scale."""
    from hrpred.model import build_model

    target = config["target"]
    return build_model(config["model"]["config"], float(target["mean"]), float(target["std"]))


def load_bundle(directory: str | Path) -> Bundle:
    """Load `model.safetensors` + `config.json` from a bundle directory (no pickle)."""
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG, directory / WEIGHTS
    if not directory.is_dir():
        raise BundleError(
            f"no model bundle at {directory}: run `dvc repro export` or pass --bundle"
        )
    for p in (cfg_path, weights):
        if not p.exists():
            raise BundleError(f"{directory} is not a complete model bundle: {p.name} missing")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{cfg_path}: unreadable ({exc})") from None
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{cfg_path}: not an hrpred bundle config")
    if int(config.get("format_version", 0)) > BUNDLE_VERSION:
        raise BundleError(
            f"{cfg_path}: bundle format {config.get('format_version')} is newer than this "
            f"hrpred ({BUNDLE_VERSION}); upgrade hrpred"
        )
    from safetensors.torch import load_file

    from hrpred.features.registry import REGISTRY

    unknown = [f for f in config["features"] if f not in REGISTRY]
    if unknown:
        raise BundleError(f"{cfg_path}: features {unknown} are unknown to this hrpred version")
    try:
        model = model_from_config(config)
        model.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{weights}: cannot load the weights ({first})") from None
    model.eval()
    return Bundle(config=config, model=model, path=directory)


# --------------------------------------------------------------------------- writing


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": BUNDLE_FORMAT})


def onnx_module(bundle: Bundle) -> torch.nn.Module:
    """The model with the scaler in front: unscaled features -> BPM (what model.onnx holds)."""
    import torch

    from hrpred.model import apply_scaler, scaler_arrays

    mean, std = scaler_arrays(bundle.features, bundle.scaler)

    class Scaled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(apply_scaler(x, self.mean, self.std))

    return Scaled(bundle.model).eval()


def export_onnx(bundle: Bundle, path: Path, opset: int) -> str:
    """Write model.onnx with dynamic batch and time axes; returns the exporter used."""
    import io
    import warnings

    import torch

    module = onnx_module(bundle)
    example = torch.zeros(2, 7, len(bundle.features), dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LSTM batch-size tracer warnings are expected
        try:
            torch.onnx.export(
                module,
                (example,),
                buf,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={
                    ONNX_INPUT: {0: "batch", 1: "time"},
                    ONNX_OUTPUT: {0: "batch", 1: "time"},
                },
                opset_version=opset,
                dynamo=False,
            )
            exporter = "torchscript"
        except (TypeError, RuntimeError, ImportError):
            buf = io.BytesIO()
            batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_shapes={"x": {0: batch, 1: time}},
                opset_version=opset,
                dynamo=True,
            )
            program.save(buf)
            exporter = "dynamo"
    path.write_bytes(buf.getvalue())
    return exporter


def write_bundle(
    out_dir: Path,
    state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    onnx: bool,
    opset: int = 17,
    check_features: np.ndarray | None = None,
    tolerance_bpm: float = 1e-3,
) -> Bundle:
    """Write weights, (optionally) ONNX, config.json and the model card; return the bundle.

    With `check_features` (unscaled [N, T, F]), the ONNX model is run with ONNX Runtime on
    them and must agree with PyTorch within `tolerance_bpm`; the difference is recorded.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (WEIGHTS, CONFIG, ONNX, CARD):
        (out_dir / stale).unlink(missing_ok=True)
    save_weights(state_dict, out_dir / WEIGHTS)
    model = model_from_config(config)
    model.load_state_dict(dict(state_dict), strict=True)
    model.eval()
    bundle = Bundle(config=config, model=model, path=out_dir)
    if onnx:
        exporter = export_onnx(bundle, out_dir / ONNX, opset)
        config["files"]["onnx"] = ONNX
        config["onnx"] = {
            "file": ONNX,
            "input": ONNX_INPUT,
            "output": ONNX_OUTPUT,
            "opset": int(opset),
            "exporter": exporter,
            "includes_scaler": True,
            "input_shape": ["batch", "time", len(config["features"])],
            "output_shape": ["batch", "time"],
        }
        if check_features is not None and len(check_features):
            diff = onnx_parity(bundle, out_dir / ONNX, check_features)
            if not diff <= tolerance_bpm:
                raise ValueError(
                    f"ONNX and PyTorch disagree by {diff:.2e} BPM (> {tolerance_bpm:g})"
                )
            config["onnx"]["parity"] = {
                "workouts": int(len(check_features)),
                "max_abs_diff_bpm": float(f"{diff:.1e}"),
                "tolerance_bpm": tolerance_bpm,
            }
    text = dumps_json(config)
    (out_dir / CONFIG).write_text(text)
    # the card is rendered from the file's content (sorted keys), as a reader would see it
    (out_dir / CARD).write_text(render_model_card(json.loads(text)))
    return bundle


def onnx_parity(bundle: Bundle, onnx_path: Path, features: np.ndarray) -> float:
    """Largest |ONNX Runtime - PyTorch| prediction (BPM) over unscaled features [N, T, F]."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(features, dtype=np.float32)
    got = session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]
    want = bundle.predict(x)
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


# --------------------------------------------------------------------------- model card


def fmt_metric(value: Any) -> str:
    """How the card prints a metric: ints as is, floats with 2 decimals, missing as n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def metric_rows(tree: Any, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every dict with an `mae` entry in a (nested) metrics dict, as (path, dict)."""
    rows: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(tree, Mapping):
        return rows
    if "mae" in tree:
        rows.append((prefix, dict(tree)))
    for key, value in tree.items():
        if isinstance(value, Mapping):
            rows.extend(metric_rows(value, f"{prefix}.{key}" if prefix else str(key)))
    return rows


def metrics_table(rows: Sequence[tuple[str, Mapping[str, Any]]], label: str) -> list[str]:
    """A markdown table: one row per metrics dict, columns = CARD_METRICS present."""
    cols = [c for c in CARD_METRICS if any(c in r for _, r in rows)]
    if not rows or not cols:
        return ["(no metrics available)"]
    lines = [
        f"| {label} | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(fmt_metric(row.get(c)) for c in cols) + " |")
    return lines


def _card_yaml(config: Mapping[str, Any]) -> list[str]:
    test = config.get("metrics", {}).get("test", {})
    unseen = str(config.get("data", {}).get("protocol", "")).startswith("user-disjoint")
    test_name = "hrpred test split" + (" (unseen users)" if unseen else "")
    lines = [
        "---",
        "license: other",
        "library_name: pytorch",
        "pipeline_tag: time-series-forecasting",
        "tags: [heart-rate, running, lstm, onnx, safetensors, hrpred]",
        "metrics: [mae, rmse]",
    ]
    if isinstance(test, Mapping) and "mae" in test:
        lines += [
            "model-index:",
            "- name: hrpred-lstm",
            "  results:",
            "  - task: {type: time-series-forecasting, name: heart-rate curve from speed and altitude}",
            f"    dataset: {{type: hrpred, name: {test_name}}}",
            "    metrics:",
        ]
        for key in ("mae", "rmse"):
            if key in test and test[key] is not None:
                lines.append(
                    f"    - {{type: {key}, value: {fmt_metric(test[key])}, name: test {key} (BPM)}}"
                )
    lines.append("---")
    return lines


def _category_lines(metrics: Mapping[str, Any]) -> list[str]:
    """Test metrics per input-only workout category (from speed/altitude, never HR)."""
    cats = metrics.get("categories", {})
    rows = metric_rows(cats.get("input_only", {})) if isinstance(cats, Mapping) else []
    if not rows:
        return []
    return [
        "### Test metrics by workout type (categories from speed and altitude only)",
        "",
        *metrics_table(rows, "category"),
        "",
    ]


def _noise_floor_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The simulator's noise floor, when evaluate could measure it (simulated data only)."""
    floor = metrics.get("noise_floor", {})
    if not isinstance(floor, Mapping) or not floor.get("available"):
        return []
    return [
        "### Noise floor (simulated data)",
        "",
        "On the same test steps, the simulator's noise-free physiology scores MAE "
        f"{fmt_metric(floor.get('target_vs_physio_mae'))} BPM against the recorded target "
        f"(sensor noise and faults); the model scores {fmt_metric(floor.get('model_mae_same_steps'))}"
        f" BPM, and {fmt_metric(floor.get('model_vs_physio_mae'))} BPM against the noise-free "
        "physiology. No predictor from speed and altitude alone can go below the floor.",
        "",
    ]


def render_model_card(config: Mapping[str, Any]) -> str:
    """README.md of the bundle; every number comes from config.json (its metrics = evaluate)."""
    metrics = config.get("metrics", {})
    data = config.get("data", {})
    model_cfg = config["model"]["config"]
    sampling = config["sampling"]
    training = config.get("training", {})
    params = training.get("params", {})
    counts = data.get("splits", {})
    protocol = data.get("protocol", "unknown")

    main_rows = [
        (name, metrics[name]) for name in ("test", "val") if isinstance(metrics.get(name), Mapping)
    ]
    base_rows = metric_rows(metrics.get("baselines", {}))
    out = _card_yaml(config)
    out += [
        "",
        "# hrpred LSTM: heart-rate curve from speed and altitude",
        "",
        "Predicts a runner's heart rate (BPM) at every step of a run from speed, altitude, "
        "their recent history and gender. It never sees heart rate as an input. Generated by "
        "the `export` stage of the hrpred pipeline from `metrics/evaluate.json` and the "
        "training checkpoint; do not edit by hand.",
        "",
        "## Intended use",
        "",
        "- Estimating the heart-rate response of a planned or recorded run (time in zones, "
        "drift), comparing it with the recorded HR, and teaching/reproducing HR-modelling "
        "experiments.",
        "- `hrpred predict FILE` (GPX/TCX/FIT/CSV) or `hrpred app` use this bundle directly.",
        "- Not for medical use, diagnosis or safety decisions. Individual fitness, resting and "
        "maximum HR are not known to the model, so its level can be off by 10+ BPM for a "
        "given person (see limitations).",
        "",
        "## Data",
        "",
        f"- Source: `{data.get('source', 'unknown')}`.",
    ]
    if counts:
        out += [
            "",
            "| split | workouts | users |",
            "|---|---:|---:|",
        ]
        for split in ("train", "val", "test"):
            if split in counts:
                c = counts[split]
                out.append(f"| {split} | {c.get('workouts', 'n/a')} | {c.get('users', 'n/a')} |")
    out += [
        "",
        f"- Inputs: {len(config['features'])} features computed by `hrpred.features.registry` "
        f"(`{'`, `'.join(config['features'])}`); non-binary ones are standardised with the "
        "train-split scaler stored in `config.json`.",
        f"- Sampling: the training data has a median step of {sampling['median_step_s']:.2f} s "
        f"(mean {sampling['mean_step_s']:.2f} s). Lags and rolling windows count steps, so "
        f"user files are resampled to a uniform {sampling['step_s']:.2f} s grid (the "
        f"{sampling.get('step_statistic', 'median').replace('_', ' ')} step) before "
        f"featurisation. Training rows hold up to {config['seq_len']} steps "
        f"(~{config['seq_len'] * sampling['step_s'] / 60:.0f} min).",
        "",
        "## Evaluation protocol",
        "",
        f"- Split: {protocol}.",
        "- Metrics are computed against the recorded (cleaned) heart rate on valid steps; MAE "
        "and RMSE are pooled over all valid steps of the split (RMSE is global, not a mean of "
        "per-batch values); `workout_mae_*` are over per-workout MAEs.",
        "- Training stopped early on the validation MAE, so `val` helped choose the model; "
        "test workouts took no part in training or model selection.",
        "- Baselines are fitted on the train split and scored on the same valid steps.",
        "",
        "### Model",
        "",
        *metrics_table(main_rows, "split"),
        "",
        "### Baselines (same split, same steps)",
        "",
        *metrics_table(base_rows, "baseline"),
        "",
        *_category_lines(metrics),
        *_noise_floor_lines(metrics),
        "## Model",
        "",
        f"- `HRLSTM`: LSTM, {model_cfg.get('layers')} layers x {model_cfg.get('hidden')} units, "
        f"dropout {model_cfg.get('dropout')}, bidirectional {model_cfg.get('bidirectional')}, "
        "then a linear head per step; "
        f"{config['model'].get('n_params', 'n/a')} parameters. The head predicts standardised HR "
        f"(train mean {config['target']['mean']:.2f}, std {config['target']['std']:.2f} BPM).",
        f"- Best epoch: {training.get('best_epoch', 'n/a')}.",
    ]
    if params:
        keys = ", ".join(
            f"{k}={params[k]}" for k in sorted(params) if not isinstance(params[k], dict)
        )
        out.append(f"- Training parameters: {keys}.")
    onnx = config.get("onnx")
    out += [
        "",
        "## Files and usage",
        "",
        "- `model.safetensors`: weights; `config.json`: architecture, features, scaler, "
        "sampling, training parameters and metrics.",
    ]
    if onnx:
        out.append(
            f"- `model.onnx` (opset {onnx['opset']}): input `{onnx['input']}` float32 "
            f"[batch, time, {len(config['features'])}] of UNSCALED features (the scaler is inside "
            f"the graph), output `{onnx['output']}` [batch, time] in BPM."
        )
    out += [
        "",
        "```python",
        "from hrpred.serve.predict import load_bundle, predict_activity",
        "from hrpred.io.userfiles import read_activity",
        "",
        'bundle = load_bundle("models/bundle")',
        'pred = predict_activity(bundle, read_activity("run.gpx"), max_hr=190)',
        "print(pred.summary)",
        "```",
        "",
        "## Limitations",
        "",
        "- Population model: no resting/maximum HR or fitness input, so per-person level bias "
        "is the largest error term; pass `--max-hr`/`--age` only to set the zones.",
        "- Trained on running; other sports, treadmill files without speed and very long "
        f"runs (beyond ~{config['seq_len'] * sampling['step_s'] / 60:.0f} min, the training "
        "length) are outside what it has seen.",
        "- Speed from GPS is noisy; files sampled much faster or slower than the training "
        "step are resampled, which smooths short surges.",
        "- Heat, fatigue, illness, caffeine and terrain surface are not inputs.",
        "",
    ]
    return "\n".join(out)
