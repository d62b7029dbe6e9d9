"""A loaded model bundle (`load_bundle` -> `Bundle`): predictions on either backend, and the
calibrated 80% band. What serving imports; the files and names are `hrpred.bundle.format`'s.

The 80% band (issue 14): config.json `band` holds the split-conformal constants of
`hrpred.uncertainty.Calibration` (models/calibration.json; null when the model has none).
`Bundle.predict_band` gives HR -/+ q * spread, q the step multiplier of the row's history bucket
(the number of context entries used; 0 = cold start or a population model). model.onnx has the
same band as outputs `hr_p10`, `hr_p90` beside `spread_bpm` (the multipliers are constants in the
graph), and only `hr_bpm`, `spread_bpm` when the bundle has no band. Both are the band WITHOUT
the runner scale (factor 1): a personalised prediction's spread is multiplied by a factor from
the scores of the runner's earlier runs (`hrpred.personal.engine`, `Calibration.runner_ref`),
which neither the graph nor `predict_band` sees; predict passes the factor and the plan's
history bucket to `Bundle.band` (`hrpred.uncertainty.band_of`, the one band function).

A history-conditioned model (`hrpred.model.HistoryHRModel`, personalisation) adds a `history`
section to config.json (the checkpoint's: architecture, context features, context scaler) and
its ONNX graph takes two more inputs: `context` [batch, K, C] (UNSCALED context values,
`hrpred.personal.context.CONTEXT_FEATURES`) and `context_mask` [batch, K] (float32, 1 = a real
earlier workout, 0 = padding; all 0 = cold start). A population bundle is unchanged.

Backends (`hrpred.bundle.backends`): `load_bundle` runs predictions with ONNX Runtime
(model.onnx, CPU, one intra-op thread) when the bundle has model.onnx and `onnxruntime` imports,
so predicting never imports torch; otherwise (no model.onnx, `onnxruntime` missing, or
HRPRED_BACKEND=torch in the environment) with the PyTorch model, as before. Export checks that
both agree within its parity tolerance on every output. The PyTorch model (`Bundle.model`) is
built on first access either way, so callers that need it (export, tests) keep it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hrpred.bundle.backends import (
    backend_choice,
    file_weight_records,
    graph_k,
    load_model,
    onnx_backend,
    weights_readable,
)
from hrpred.bundle.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CONFIG,
    ONNX_CONTEXT,
    ONNX_CONTEXT_MASK,
    ONNX_INPUT,
    ONNX_OUTPUT,
    ONNX_SPREAD,
    WEIGHTS,
    BundleError,
    speed_config,
)
from hrpred.features.registry import REGISTRY
from hrpred.features.scaler import batch_of_rows
from hrpred.params import ParamError, from_mapping
from hrpred.personal.config import PersonalConfig
from hrpred.timeseries import SpeedConfig
from hrpred.uncertainty import Band, Calibration, CalibrationError, band_of

if TYPE_CHECKING:
    import onnxruntime
    import torch

PREDICT_BATCH = 256  # workouts per forward pass (as `hrpred.model.predict`)


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
            self._model = load_model(self.config, self.path / WEIGHTS, self.torch_threads)
        return self._model

    def weight_records(self) -> list[tuple[str, str, tuple[int, ...], bytes]]:
        """(name, torch dtype name, shape, raw bytes) of every tensor of the model's state dict,
        sorted by name. Read from model.safetensors without torch while the model is not built
        (the same bytes `load_state_dict` copies); from the model's state dict once it is."""
        if self._model is None and self.path is not None:
            records = file_weight_records(self.path / WEIGHTS)
            if records is not None:
                return records
        import torch  # defers torch: only when the records come from the PyTorch model

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

    @property
    def personal(self) -> PersonalConfig:
        """params personal as exported: how earlier runs personalise a prediction
        (`hrpred.personal.engine`); BundleError for an older or damaged bundle."""
        try:
            return from_mapping(PersonalConfig, self.config.get("personal"), "personal", CONFIG)
        except ParamError as exc:
            raise BundleError(
                f"bundle has no valid personal rules ({exc}): re-export it with `dvc repro export`"
            ) from None

    @property
    def history_runs(self) -> int:
        """The most earlier runs a personalised prediction reads (params split.max_history)."""
        value = self.config.get("history_runs")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BundleError(
                f"{CONFIG}: history_runs must be an integer >= 0; re-export with `dvc repro export`"
            )
        return value

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
        from hrpred.model import predict  # the torch backend: torch only here

        return predict(self.model, self.checkpoint_view(), features_unscaled, context=context)

    def _onnx_fits(self, context: tuple[np.ndarray, np.ndarray] | None) -> bool:
        """The ONNX session can run this call: a session, and a context (if any, for a
        history model) of the graph's length K."""
        if self.session is None:
            return False
        if context is None or self.history is None:
            return True
        return np.shape(context[1])[-1] == graph_k(self.session)

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
            k, c = graph_k(self.session), len(self.history["context_features"])
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
        from hrpred.model import predict  # the torch backend: torch only here

        hr, spread = predict(
            self.model, self.checkpoint_view(), features_unscaled, context=context,
            with_spread=True,
        )  # fmt: skip
        return hr, spread

    def band(
        self,
        hr: np.ndarray,
        spread: np.ndarray,
        used: np.ndarray | int,
        factor: np.ndarray | float = 1.0,
        valid: np.ndarray | None = None,
    ) -> Band:
        """The calibrated band of curves `hr` ([T] or [N, T]) with the network's `spread`, the
        earlier runs each curve's plan `used` (its history bucket) and the runner scale
        `factor` (`hrpred.uncertainty.band_of`: per step and for the workout average).
        BundleError without a band."""
        return band_of(self.require_calibration(), hr, spread, used, factor, valid)

    def predict_band(
        self,
        features_unscaled: np.ndarray,
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(HR, lower, upper) in BPM, float32, the shapes of `predict` ([T, F] -> [T],
        [N, T, F] -> [N, T]): the central curve and its calibrated band (history bucket = the
        context mask's count, 0 = cold start), without the runner scale (factor 1, as the
        ONNX outputs). BundleError without a band."""
        self.require_calibration()
        hr, spread = self.predict_spread(features_unscaled, context)
        counts = self.context_counts(context, 1 if hr.ndim == 1 else len(hr))
        b = self.band(hr, spread, counts if hr.ndim > 1 else int(counts[0]))
        return hr, b.lower.astype(np.float32), b.upper.astype(np.float32)


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
    unknown = [f for f in config["features"] if f not in REGISTRY]
    if unknown:
        raise BundleError(f"{cfg_path}: features {unknown} are unknown to this hrpred version")
    speed_config(config)
    session = onnx_backend(directory, config, backend_choice(backend))
    bundle = Bundle(config, path=directory, session=session, torch_threads=torch_threads)
    if session is None:
        bundle.model  # noqa: B018 - the torch backend loads (and checks) the weights now
    elif not weights_readable(weights):
        raise BundleError(f"{weights}: cannot load the weights (not a safetensors file)")
    return bundle
