"""The network a train config builds: the population LSTM, or with a history (issue 24's
`personal.learned.model: encoder`) the history-conditioned model."""

from __future__ import annotations

from collections.abc import Sequence

from hrpred.model import HRLSTM, HistoryHRModel
from hrpred.train.config import TrainConfig
from hrpred.train.history_data import HistoryData


def build_model(
    cfg: TrainConfig,
    feature_names: Sequence[str],
    history: HistoryData | None,
    target_mean: float,
    target_std: float,
) -> HRLSTM | HistoryHRModel:
    """A fresh model on the CPU; its initial weights are drawn from torch's global generator
    (seeded by the caller)."""
    if history is None:
        return HRLSTM(
            len(feature_names),
            cfg.hidden,
            cfg.layers,
            cfg.dropout,
            cfg.bidirectional,
            target_mean,
            target_std,
        )
    p = history.meta["personal_params"]
    arch = {
        "input_size": len(feature_names),
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "dropout": cfg.dropout,
        "bidirectional": cfg.bidirectional,
    }
    meta = {
        "design": p["design"],
        "k_max": p["k_max"],
        "context_size": len(history.meta["context_features"]),
        "enc_hidden": p["enc_hidden"],
        "embed": p["embed"],
    }
    return HistoryHRModel(arch, meta, target_mean, target_std)
