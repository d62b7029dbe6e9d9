"""Masked losses and masked error sums (only steps with mask=True count).

Invalid steps are removed with `torch.where` *before* any arithmetic touches their target, so a
NaN or absurd target on a padded/invalid step changes neither the loss nor any gradient
(multiplying by the mask would turn NaN * 0 into NaN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hrpred.model import spread_scale

LOSSES = ("mse", "mae", "huber")


def masked_diff(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred - target on valid steps, exactly 0 (and gradient 0) elsewhere."""
    mask = mask.bool()
    pred = pred.float()
    safe_target = torch.where(mask, target.float(), torch.zeros_like(pred))
    return torch.where(mask, pred - safe_target, torch.zeros_like(pred))


def masked_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    kind: str = "mse",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """Mean per-step loss over valid steps (sum / count); 0 when no step is valid."""
    diff = masked_diff(pred, target, mask)
    if kind == "mse":
        per_step = diff.square()
    elif kind == "mae":
        per_step = diff.abs()
    elif kind == "huber":
        per_step = F.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=huber_delta)
    else:
        raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    count = mask.bool().sum().clamp(min=1)
    return per_step.sum() / count


class ErrorSums:
    """Running sums for global metrics over many batches, kept on the device (no sync per batch).

    Slots: sum |e|, sum e^2, number of valid steps, sum of (batch loss x batch valid steps).
    MAE = sum|e| / n and RMSE = sqrt(sum e^2 / n) over all steps, not means of batch metrics.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)

    def update(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        loss: torch.Tensor | None = None,
    ) -> None:
        diff = masked_diff(pred.detach(), target, mask).double()
        count = mask.bool().sum().double()
        loss_term = loss.detach().double() * count if loss is not None else torch.zeros_like(count)
        self.sums += torch.stack([diff.abs().sum(), diff.square().sum(), count, loss_term])

    def load(self, values: torch.Tensor) -> None:
        self.sums.copy_(values.to(self.sums.device, torch.float64))

    def result(self) -> dict[str, float]:
        abs_sum, sq_sum, count, loss_sum = (float(v) for v in self.sums.cpu())
        if count == 0:
            return {"mae": float("nan"), "rmse": float("nan"), "loss": float("nan"), "steps": 0}
        return {
            "mae": abs_sum / count,
            "rmse": (sq_sum / count) ** 0.5,
            "loss": loss_sum / count,
            "steps": int(count),
        }


def spread_nll(
    raw: torch.Tensor, z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean Laplace NLL |target - z| / b + log b over valid steps (b = `spread_scale(raw)`),
    with z DETACHED: the central prediction never learns from it; standardised units."""
    b = spread_scale(raw.float())
    r = masked_diff(z.detach(), target, mask).abs()
    per_step = torch.where(mask.bool(), r / b + torch.log(b), torch.zeros_like(b))
    return per_step.sum() / mask.bool().sum().clamp(min=1)
