"""The exported model bundle (`models/bundle/`): write it, read it, describe it.

A bundle is self-contained: `model.safetensors` (weights, no pickle), `config.json`
(architecture, feature list, scaler, target scale, sampling step, training params, metrics),
`model.onnx` (scaler included: unscaled features [batch, time, F] -> HR in BPM [batch, time])
and `README.md`, a model card rendered from config.json. `load_bundle` needs only these files
and the `hrpred` package.

The 80% band (issue 14): config.json `band` holds the split-conformal constants of
`hrpred.uncertainty.Calibration` (models/calibration.json; null when the model has none).
`Bundle.predict_band` gives HR -/+ q * spread, q the step multiplier of the row's history bucket
(the number of context entries used; 0 = cold start or a population model). model.onnx has the
same band as outputs `hr_p10`, `hr_p90` beside `spread_bpm` (the multipliers are constants in the
graph), and only `hr_bpm`, `spread_bpm` when the bundle has no band. Both are the band WITHOUT
the runner scale (factor 1): a calibration with one (`band.runner`, `Calibration.runner`)
multiplies a personalised prediction's spread by a factor from the scores of the runner's
earlier runs, which neither the graph nor `predict_band` sees; predict passes the scaled spread
to `step_band` and `average_band` (`hrpred.serve.profile.profile_runner_factor`). A bundle
exported before the runner scale has no `runner` in its band: factor 1.

A history-conditioned model (`hrpred.model.HistoryHRModel`, personalisation) adds a `history`
section to config.json (the checkpoint's: architecture, context features, context scaler) and
its ONNX graph takes two more inputs: `context` [batch, K, C] (UNSCALED context values,
`hrpred.personal.context.CONTEXT_FEATURES`) and `context_mask` [batch, K] (float32, 1 = a real
earlier workout, 0 = padding; all 0 = cold start). A population bundle is unchanged.

Backends: `load_bundle` runs predictions with ONNX Runtime (model.onnx, CPU, one intra-op
thread) when the bundle has model.onnx and `onnxruntime` imports, so predicting never imports
torch; otherwise (no model.onnx, `onnxruntime` missing, or HRPRED_BACKEND=torch in the
environment) with the PyTorch model, as before. Export checks that both agree within its parity
tolerance on every output. The PyTorch model (`Bundle.model`) is built on first access either
way, so callers that need it (export, tests) keep it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from hrpred.errors import HrpredError
from hrpred.export.cards import render_model_card
from hrpred.features.scaler import batch_of_rows
from hrpred.personal.config import OffsetConfig
from hrpred.store import json_ready
from hrpred.timeseries import SpeedConfig

if TYPE_CHECKING:
    import onnxruntime
    import torch

    from hrpred.uncertainty import Calibration

BUNDLE_FORMAT = "hrpred-bundle"
BUNDLE_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ONNX = "model.onnx"
CARD = "README.md"
ONNX_INPUT = "features"
ONNX_CONTEXT = "context"
ONNX_CONTEXT_MASK = "context_mask"
ONNX_OUTPUT = "hr_bpm"
ONNX_SPREAD = "spread_bpm"  # the per-step Laplace scale b (BPM)
ONNX_LOWER = "hr_p10"  # lower end of the calibrated band (hr_bpm - q * spread_bpm), factor 1
ONNX_UPPER = "hr_p90"  # upper end (hr_bpm + q * spread_bpm), without the runner scale
BACKEND_ENV = "HRPRED_BACKEND"  # "torch": never ONNX Runtime; "onnx": only it; unset/"auto"
BACKENDS = ("auto", "onnx", "torch")
PREDICT_BATCH = 256  # workouts per forward pass (as `hrpred.model.predict`)
# safetensors dtype -> torch's name of it (`Bundle.weight_records` without torch)
_TORCH_DTYPES = {
    "F64": "torch.float64", "F32": "torch.float32", "F16": "torch.float16",
    "I64": "torch.int64", "I32": "torch.int32", "I16": "torch.int16", "I8": "torch.int8",
    "U8": "torch.uint8", "BOOL": "torch.bool",
}  # fmt: skip


class BundleError(HrpredError, ValueError):
    """A bundle directory that cannot be loaded; the message is one line."""


class ExportError(HrpredError, ValueError):
    """The bundle or the dataset cannot be written from these inputs (one line)."""


# --------------------------------------------------------------------------- sampling


StepStatistic = Literal["median", "mean", "mean_active"]
STEP_STATISTICS: tuple[str, ...] = get_args(StepStatistic)
PERSONALISERS = ("offset", "residual")  # config.json "personal": params personal.<name>


def sampling_stats(elapsed: np.ndarray, lengths: np.ndarray, pause_s: float) -> dict[str, float]:
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
        raise ExportError("no positive time steps in the training rows: cannot infer sampling")
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


def build_config(
    ckpt: Mapping[str, Any],
    metrics: Mapping[str, Any],
    sampling: Mapping[str, float],
    step_statistic: str,
    data: Mapping[str, Any],
    binary_features: Sequence[str],
    *,
    speed: SpeedConfig,
    personal: Mapping[str, OffsetConfig],
    band: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """config.json content from the training checkpoint, evaluate metrics and data facts.

    `speed` is params.yaml clean.speed: `hrpred predict` derives speed with these rules.
    `personal` is {"offset": personal.offset, "residual": personal.residual}: the offset
    personaliser and the learned model's residual correction, as evaluate scored them.
    `band`: models/calibration.json (the 80% band's conformal constants; None: no band).
    """
    if set(personal) != set(PERSONALISERS):
        raise ExportError(f"personal must have exactly {PERSONALISERS}, got {sorted(personal)}")
    if step_statistic not in STEP_STATISTICS:
        raise ExportError(
            f"step_statistic must be one of {STEP_STATISTICS}, got {step_statistic!r}"
        )
    features = [str(f) for f in ckpt["features"]]
    step_s = float(sampling[f"{step_statistic}_step_s"])
    extra = {"history": dict(ckpt["history"])} if "history" in ckpt else {}
    return json_ready(
        {
            **extra,
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "model": {
                "class": "HistoryHRModel" if extra else "HRLSTM",
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
            "speed": asdict(speed),
            "personal": {k: asdict(v) for k, v in personal.items()},
            "band": dict(band) if band is not None else None,
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
    return json.dumps(json_ready(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- bundle object


class Bundle:
    """A loaded bundle: its config, the model (PyTorch, built on first access, and/or an ONNX
    Runtime session of model.onnx) and everything needed to feed it.

    `model` given: that eval-mode module; None: built from `path`/model.safetensors when first
    needed. `session` (ONNX Runtime over model.onnx, `load_bundle`): predictions run there
    (backend "onnx"), except for a context of another length than the graph's K; None: on
    the PyTorch model (backend "torch"). `torch_threads`: intra-op threads torch is set to
    when this bundle builds its model (None: torch's setting is left alone).
    """

    def __init__(
        self,
        config: dict[str, Any],
        model: torch.nn.Module | None = None,
        path: Path | None = None,
        *,
        session: onnxruntime.InferenceSession | None = None,
        torch_threads: int | None = None,
    ) -> None:
        self.config = config
        self.path = path
        self.session = session
        self.torch_threads = torch_threads
        self._model = model

    @property
    def backend(self) -> str:
        """`onnx` (predictions by ONNX Runtime) or `torch` (by the PyTorch model)."""
        return "torch" if self.session is None else "onnx"

    def on_torch(self) -> Bundle:
        """This bundle with the torch backend: itself when it has it, else a twin sharing its
        config, path and (built on first use) PyTorch model."""
        if self.session is None:
            return self
        return Bundle(self.config, self.model, self.path, torch_threads=self.torch_threads)

    @property
    def model(self) -> torch.nn.Module:
        """The eval-mode PyTorch model, loaded from model.safetensors on first access
        (BundleError when the weights do not fit the config)."""
        if self._model is None:
            if self.path is None:
                raise BundleError("bundle has neither a model nor a directory to load it from")
            self._model = _load_model(self.config, self.path / WEIGHTS, self.torch_threads)
        return self._model

    def weight_records(self) -> list[tuple[str, str, tuple[int, ...], bytes]]:
        """(name, torch dtype name, shape, raw bytes) of every tensor of the model's state dict,
        sorted by name. Read from model.safetensors without torch while the model is not built
        (the same bytes `load_state_dict` copies); from the model's state dict once it is."""
        if self._model is None and self.path is not None:
            records = _file_weight_records(self.path / WEIGHTS)
            if records is not None:
                return records
        import torch

        out = []
        for name, tensor in sorted(self.model.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
            out.append((name, str(t.dtype), tuple(t.shape), raw))
        return out

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
    def speed(self) -> SpeedConfig:
        """The clean stage's speed rules the model was trained with (params clean.speed)."""
        return speed_config(self.config)

    def personaliser(self, name: str) -> OffsetConfig:
        """params personal.<name> as exported (`offset`: the offset personaliser; `residual`:
        the learned model's residual correction); BundleError for an older bundle."""
        from hrpred.params import ParamError, from_mapping

        try:
            return from_mapping(
                OffsetConfig, self.config.get("personal", {}).get(name), f"personal.{name}", CONFIG
            )
        except (ParamError, AttributeError) as exc:
            raise BundleError(
                f"bundle has no valid personal.{name} ({exc}): re-export it with `dvc repro export`"
            ) from None

    @property
    def seq_len(self) -> int:
        return int(self.config["seq_len"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.config.get("metrics", {})

    @property
    def history(self) -> dict[str, Any] | None:
        """The history model's metadata (k_max, context features and scaler), None for a
        population model (which ignores any history)."""
        return self.config.get("history")

    def checkpoint_view(self) -> dict[str, Any]:
        """The checkpoint keys `hrpred.model.predict` reads (features, scaler, history)."""
        view: dict[str, Any] = {"features": self.features, "scaler": self.scaler}
        if self.history is not None:
            view["history"] = self.history
        return view

    def predict(
        self,
        features_unscaled: np.ndarray,
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """HR (BPM) for unscaled features [T, F] -> [T] or [N, T, F] -> [N, T]; `context` =
        (raw values [N, K, C], mask [N, K]) (or [K, C], [K]) for a history model, None = cold
        start (see `hrpred.model.predict`)."""
        if self._onnx_fits(context):
            return self._onnx_predict(features_unscaled, context, with_spread=False)[0]
        from hrpred.model import predict

        return predict(self.model, self.checkpoint_view(), features_unscaled, context=context)

    def _onnx_fits(self, context: tuple[np.ndarray, np.ndarray] | None) -> bool:
        """The ONNX session can run this call: a session, and a context (if any, for a
        history model) of the graph's length K."""
        if self.session is None:
            return False
        if context is None or self.history is None:
            return True
        return np.shape(context[1])[-1] == _graph_k(self.session)

    def _onnx_predict(
        self,
        features_unscaled: np.ndarray,
        context: tuple[np.ndarray, np.ndarray] | None,
        with_spread: bool,
    ) -> tuple[np.ndarray, ...]:
        """(HR[, spread]) float32 from the ONNX session, in the shapes and with the checks of
        `hrpred.model.predict`; the graph holds the feature and context scalers, so it is fed
        the unscaled features, the raw context values and the mask as float 0/1."""
        assert self.session is not None
        arr, single = batch_of_rows(features_unscaled, len(self.features))
        n = arr.shape[0]
        ctx = mask = None
        if self.history is not None:
            k, c = _graph_k(self.session), len(self.history["context_features"])
            if context is None:
                ctx, mask = np.zeros((n, k, c), np.float32), np.zeros((n, k), np.float32)
            else:
                ctx, mask = (np.asarray(v) for v in context)
                if single:
                    ctx, mask = ctx[None], mask[None]
                if ctx.shape[0] != n or ctx.shape[-1] != c:
                    raise ValueError(f"context has shape {ctx.shape}; expected [{n}, K, {c}]")
                mask = np.asarray(mask, bool).astype(np.float32)
        names = [ONNX_OUTPUT, ONNX_SPREAD] if with_spread else [ONNX_OUTPUT]
        outs = [np.empty(arr.shape[:2], dtype=np.float32) for _ in names]
        for start in range(0, n, PREDICT_BATCH):
            stop = start + PREDICT_BATCH
            feeds = {ONNX_INPUT: np.ascontiguousarray(arr[start:stop], dtype=np.float32)}
            if ctx is not None and mask is not None:
                feeds[ONNX_CONTEXT] = np.ascontiguousarray(ctx[start:stop], dtype=np.float32)
                feeds[ONNX_CONTEXT_MASK] = np.ascontiguousarray(mask[start:stop])
            for out, got in zip(outs, self.session.run(names, feeds), strict=True):
                out[start : start + len(feeds[ONNX_INPUT])] = got
        return tuple(o[0] for o in outs) if single else tuple(outs)

    # ------------------------------------------------------------------ the 80% band (issue 14)

    @property
    def calibration(self) -> Calibration | None:
        """The band's split-conformal constants (config.json `band`); None when the bundle has
        no band; BundleError when they are malformed."""
        from hrpred.uncertainty import Calibration, CalibrationError

        content = self.config.get("band")
        if content is None:
            return None
        try:
            cal = Calibration.from_json(content)
        except CalibrationError as exc:
            raise BundleError(f"{CONFIG}: band: {exc}; re-export with `dvc repro export`") from None
        values = [*cal.step.values(), *cal.average.values()]
        if not 0 < cal.level < 1 or not all(np.isfinite(v) and v > 0 for v in values):
            raise BundleError(
                f"{CONFIG}: band: level must be in (0, 1) and every multiplier finite and > 0; "
                "re-export with `dvc repro export`"
            )
        return cal

    def require_calibration(self) -> Calibration:
        """`calibration`, or a BundleError when the bundle has no band."""
        cal = self.calibration
        if cal is None:
            raise BundleError(
                "this bundle has no calibrated band (a population model, or exported before "
                "issue 14): re-export a history model with `dvc repro export`"
            )
        return cal

    def context_counts(
        self, context: tuple[np.ndarray, np.ndarray] | None, n_rows: int
    ) -> np.ndarray:
        """History entries each of `n_rows` rows is conditioned on (int64 [n_rows]): the count
        of its context mask for a history model; 0 without context and for a population model
        (which ignores any history)."""
        if context is None or self.history is None:
            return np.zeros(n_rows, dtype=np.int64)
        mask = np.asarray(context[1]).astype(bool).reshape(n_rows, -1)
        return mask.sum(axis=1).astype(np.int64)

    def predict_spread(
        self,
        features_unscaled: np.ndarray,
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(HR, spread) in BPM, float32, the shapes of `predict`: the network's central curve
        and its per-step Laplace scale b (uncalibrated)."""
        if self._onnx_fits(context):
            hr, spread = self._onnx_predict(features_unscaled, context, with_spread=True)
            return hr, spread
        from hrpred.model import predict

        hr, spread = predict(
            self.model, self.checkpoint_view(), features_unscaled, context=context,
            with_spread=True,
        )  # fmt: skip
        return hr, spread

    def step_band(
        self, hr: np.ndarray, spread: np.ndarray, n_context: np.ndarray | int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) float32 = hr -/+ q * spread, q the step multiplier of the history
        bucket of `n_context` (context entries used: an int for [T] curves, [N] for [N, T]).
        A center shifted by a constant (a residual correction) shifts its band by the same; the
        runner scale is the caller's: pass the spread times its factor (see the module doc)."""
        from hrpred.uncertainty import band

        q = self.require_calibration().multipliers(np.atleast_1d(n_context))
        lo, hi = band(hr, spread, q if np.ndim(hr) > 1 else q[0])
        return lo.astype(np.float32), hi.astype(np.float32)

    def predict_band(
        self,
        features_unscaled: np.ndarray,
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(HR, lower, upper) in BPM, float32, the shapes of `predict` ([T, F] -> [T],
        [N, T, F] -> [N, T]): the central curve and its calibrated band (`step_band`, history
        bucket = the context mask's count, 0 = cold start), without the runner scale (factor 1,
        as the ONNX outputs). BundleError without a band."""
        self.require_calibration()
        hr, spread = self.predict_spread(features_unscaled, context)
        counts = self.context_counts(context, 1 if hr.ndim == 1 else len(hr))
        lo, hi = self.step_band(hr, spread, counts if hr.ndim > 1 else int(counts[0]))
        return hr, lo, hi

    def average_band(
        self,
        hr: np.ndarray,
        spread: np.ndarray,
        n_context: np.ndarray | int,
        valid: np.ndarray | None = None,
    ) -> tuple[Any, Any, Any]:
        """The workout-average HR and its calibrated band (mean, lower, upper): half-width =
        the average multiplier of the history bucket * the mean spread over the valid steps
        (default: where hr and spread are finite; with the runner scale, the spread times its
        factor). Floats for a [T] curve, float64 [N] for [N, T] (`n_context` then [N]); nan
        for a row without a valid step."""
        q = self.require_calibration().multipliers(np.atleast_1d(n_context), "average")
        h, b = np.asarray(hr, np.float64), np.asarray(spread, np.float64)
        v = np.isfinite(h) & np.isfinite(b) if valid is None else np.asarray(valid, bool)
        n = v.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(v, h, 0.0).sum(axis=-1) / n
            half = (q if h.ndim > 1 else q[0]) * np.where(v, b, 0.0).sum(axis=-1) / n
        if h.ndim == 1:
            return float(mean), float(mean - half), float(mean + half)
        return mean, mean - half, mean + half


def speed_config(config: Mapping[str, Any]) -> SpeedConfig:
    """The bundle's speed rules; BundleError when absent or invalid (an older bundle)."""
    from hrpred.params import ParamError, from_mapping

    try:
        return from_mapping(SpeedConfig, config.get("speed"), "speed", CONFIG)
    except ParamError as exc:
        raise BundleError(
            f"bundle has no valid speed rules ({exc}): re-export it with `dvc repro export`"
        ) from None


def model_from_config(config: Mapping[str, Any]) -> torch.nn.Module:
    """A fresh HRLSTM (or HistoryHRModel, with a `history` section) with the bundle's
    architecture and target scale."""
    from hrpred.model import HistoryHRModel, build_model

    target = config["target"]
    mean, std = float(target["mean"]), float(target["std"])
    if "history" in config:
        return HistoryHRModel(config["model"]["config"], config["history"], mean, std)
    return build_model(config["model"]["config"], mean, std)


def load_bundle(
    directory: str | Path, *, backend: str | None = None, torch_threads: int | None = None
) -> Bundle:
    """Load a bundle directory (`model.safetensors` + `config.json`, no pickle) and pick its
    prediction backend: `backend` `onnx` (model.onnx with ONNX Runtime; BundleError when it
    cannot), `torch` (the PyTorch model) or `auto` (onnx when the bundle has model.onnx and
    onnxruntime imports, else torch); None reads HRPRED_BACKEND (unset: auto). The torch
    backend builds the model here (and imports torch); the onnx one checks that the weights
    file reads and leaves the model to its first use. `torch_threads`: see `Bundle`."""
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
    from hrpred.features.registry import REGISTRY

    unknown = [f for f in config["features"] if f not in REGISTRY]
    if unknown:
        raise BundleError(f"{cfg_path}: features {unknown} are unknown to this hrpred version")
    speed_config(config)
    session = _onnx_backend(directory, config, _backend_choice(backend))
    bundle = Bundle(config, path=directory, session=session, torch_threads=torch_threads)
    if session is None:
        bundle.model  # noqa: B018 - the torch backend loads (and checks) the weights now
    elif not _weights_readable(weights):
        raise BundleError(f"{weights}: cannot load the weights (not a safetensors file)")
    return bundle


def _backend_choice(backend: str | None) -> str:
    choice = (os.environ.get(BACKEND_ENV, "") if backend is None else backend).strip().lower()
    choice = choice or "auto"
    if choice not in BACKENDS:
        where = f"{BACKEND_ENV}={choice}" if backend is None else f"backend {choice!r}"
        raise BundleError(f"{where}: must be one of {', '.join(BACKENDS)}")
    return choice


def _onnx_backend(
    directory: Path, config: Mapping[str, Any], choice: str
) -> onnxruntime.InferenceSession | None:
    """The ONNX Runtime session of the bundle's model.onnx, or None for the torch backend:
    `choice` torch, or auto with no model.onnx, no onnxruntime or a graph without the inputs
    and outputs predictions need (an older bundle); BundleError when `choice` is onnx and it
    cannot be, or when model.onnx does not load."""
    if choice == "torch":
        return None
    name = (config.get("files") or {}).get("onnx")
    path = directory / str(name) if name else None
    why = None
    if path is None or not path.is_file():
        why = f"{directory} has no {ONNX}"
    else:
        try:
            import onnxruntime  # noqa: F401 - only whether it imports
        except ImportError:
            why = "onnxruntime is not installed"
    if why is None and path is not None:
        try:
            session = onnx_session(path)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(
                f"{path}: cannot load the ONNX graph ({first}); re-export it with "
                f"`dvc repro export` or set {BACKEND_ENV}=torch"
            ) from None
        why = _graph_mismatch(session, config)
        if why is None:
            return session
    if choice == "onnx":
        raise BundleError(f"{BACKEND_ENV}=onnx: {why}")
    return None


def _graph_mismatch(session: onnxruntime.InferenceSession, config: Mapping[str, Any]) -> str | None:
    """Why the graph cannot serve `Bundle.predict`/`predict_spread`, or None when it can."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    want = [ONNX_INPUT] + ([ONNX_CONTEXT, ONNX_CONTEXT_MASK] if "history" in config else [])
    missing = [n for n in want if n not in inputs] + [
        n for n in (ONNX_OUTPUT, ONNX_SPREAD) if n not in outputs
    ]
    if missing or len(inputs) != len(want):
        return (
            f"{ONNX} has inputs {sorted(inputs)} and outputs {sorted(outputs)} (missing {missing})"
        )
    if inputs[ONNX_INPUT][-1] != len(config["features"]):
        n = len(config["features"])
        return f"{ONNX} takes {inputs[ONNX_INPUT][-1]} features, config.json lists {n}"
    if "history" in config:
        k, c = inputs[ONNX_CONTEXT][1:]
        if not isinstance(k, int) or c != len(config["history"]["context_features"]):
            return f"{ONNX} context input {inputs[ONNX_CONTEXT]} does not fit config.json"
    return None


def _graph_k(session: onnxruntime.InferenceSession) -> int:
    """K, the number of context entries the graph's `context` input takes."""
    return int(next(i.shape[1] for i in session.get_inputs() if i.name == ONNX_CONTEXT))


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    """A single-threaded CPU ONNX Runtime session (deterministic, like the parity check; one
    sequence at a time is latency-bound, as `hrpred predict` runs torch)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _load_model(config: Mapping[str, Any], weights: Path, threads: int | None) -> torch.nn.Module:
    """The eval-mode PyTorch model of `config` with the weights of `weights` (BundleError)."""
    from safetensors.torch import load_file

    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    try:
        model = model_from_config(config)
        model.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{weights}: cannot load the weights ({first})") from None
    model.eval()
    return model


def _weights_readable(weights: Path) -> bool:
    """Whether `weights` reads as a safetensors file (without torch)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            f.keys()
    except Exception:  # noqa: BLE001 - safetensors raises its own types
        return False
    return True


def _file_weight_records(weights: Path) -> list[tuple[str, str, tuple[int, ...], bytes]] | None:
    """`Bundle.weight_records` read from a safetensors file without torch; None when the file
    does not read, or holds a dtype numpy cannot (the caller then uses torch)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            names = sorted(f.keys())
            dtypes = {n: f.get_slice(n).get_dtype() for n in names}
            if any(d not in _TORCH_DTYPES for d in dtypes.values()):
                return None
            out = []
            for n in names:
                arr = f.get_tensor(n)  # tobytes: C order, as torch's contiguous view
                out.append((n, _TORCH_DTYPES[dtypes[n]], tuple(arr.shape), arr.tobytes()))
            return out
    except Exception:  # noqa: BLE001 - safetensors raises its own types
        return None


# --------------------------------------------------------------------------- writing


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": BUNDLE_FORMAT})


def write_bundle(
    out_dir: Path,
    state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    onnx: bool,
    opset: int = 17,
    check_features: np.ndarray | None = None,
    tolerance_bpm: float = 1e-3,
    check_context: tuple[np.ndarray, np.ndarray] | None = None,
) -> Bundle:
    """Write weights, (optionally) ONNX, config.json and the model card; return the bundle.

    With `check_features` (unscaled [N, T, F]), the ONNX model is run with ONNX Runtime on
    them and must agree with PyTorch within `tolerance_bpm` on every output (HR, spread and,
    with a band, its ends); the differences are recorded. A history model is checked with
    `check_context` (raw values [N, K, C], mask [N, K]: the rows' real histories) and with
    empty contexts (cold start). A malformed `band` fails before anything is written.
    """
    model = model_from_config(config)
    model.load_state_dict(dict(state_dict), strict=True)
    model.eval()
    bundle = Bundle(config, model, out_dir)  # the torch backend: parity's reference
    try:
        bundle.calibration  # noqa: B018 - the property checks config["band"]
    except BundleError as exc:
        raise ExportError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (WEIGHTS, CONFIG, ONNX, CARD):
        (out_dir / stale).unlink(missing_ok=True)
    save_weights(state_dict, out_dir / WEIGHTS)
    if onnx:
        from hrpred.export.onnx_graph import write_onnx

        write_onnx(bundle, out_dir / ONNX, opset, check_features, tolerance_bpm, check_context)
    text = dumps_json(config)
    (out_dir / CONFIG).write_text(text)
    # the card is rendered from the file's content (sorted keys), as a reader would see it
    (out_dir / CARD).write_text(render_model_card(json.loads(text)))
    return bundle
