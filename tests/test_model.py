"""hrpred.model and hrpred.train.losses against hand computations (numpy) on tiny inputs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from hrpred.features.scaler import apply_scaler, scaler_arrays
from hrpred.model import (
    HRLSTM,
    HistoryHRModel,
    count_parameters,
    load_checkpoint,
    make_checkpoint,
    predict,
    save_checkpoint,
)
from hrpred.threads import predict_parts, torch_threads
from hrpred.train.losses import ErrorSums, masked_loss


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(3, 7, generator=g) * 10 + 150
    target = torch.randn(3, 7, generator=g) * 10 + 150
    mask = torch.rand(3, 7, generator=g) > 0.3
    mask[0, -3:] = False  # padding-like tail
    return pred, target, mask


def _reference_loss(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray, kind: str, delta: float
):
    e = (pred - target)[mask].astype(np.float64)
    if kind == "mse":
        per = e**2
    elif kind == "mae":
        per = np.abs(e)
    else:
        a = np.abs(e)
        per = np.where(a <= delta, 0.5 * e**2, delta * (a - 0.5 * delta))
    return per.sum() / mask.sum()


@pytest.mark.parametrize("kind", ["mse", "mae", "huber"])
def test_masked_loss_matches_hand_computation(kind: str) -> None:
    pred, target, mask = _batch()
    got = masked_loss(pred, target, mask, kind, huber_delta=4.0).item()
    want = _reference_loss(pred.numpy(), target.numpy(), mask.numpy(), kind, 4.0)
    assert got == pytest.approx(want, rel=1e-5)


def test_masked_loss_small_example_by_hand() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([[0.0, 4.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    # valid errors 1 and -2: MSE (1 + 4) / 2, MAE (1 + 2) / 2
    assert masked_loss(pred, target, mask, "mse").item() == pytest.approx(2.5)
    assert masked_loss(pred, target, mask, "mae").item() == pytest.approx(1.5)
    # huber delta 1: 0.5*1^2 and 1*(2 - 0.5)
    assert masked_loss(pred, target, mask, "huber", 1.0).item() == pytest.approx((0.5 + 1.5) / 2)
    assert masked_loss(pred, target, torch.zeros_like(mask), "mse").item() == 0.0


@pytest.mark.parametrize("kind", ["mse", "mae", "huber"])
def test_invalid_steps_change_neither_loss_nor_gradients(kind: str) -> None:
    torch.manual_seed(0)
    model = HRLSTM(3, hidden=8, layers=2, dropout=0.0, target_mean=150.0, target_std=10.0)
    x = torch.randn(2, 6, 3)
    target = torch.full((2, 6), 150.0) + torch.randn(2, 6) * 5
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 4:] = False  # padding
    mask[1, 2] = False  # invalid HR inside a workout

    def loss_and_grads(t: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss = masked_loss(model(x), t, mask, kind, 3.0)
        loss.backward()
        central = [p for n, p in model.named_parameters() if not n.startswith("spread.")]
        return loss.item(), [p.grad.clone() for p in central]

    base_loss, base_grads = loss_and_grads(target)
    for fill in (0.0, 1e6, float("nan"), float("inf")):
        changed = target.clone()
        changed[~mask] = fill
        loss, grads = loss_and_grads(changed)
        assert loss == base_loss
        for a, b in zip(grads, base_grads, strict=True):
            assert torch.equal(a, b)
    # and a valid step does matter (the test can fail)
    changed = target.clone()
    changed[1, 0] += 30
    assert loss_and_grads(changed)[0] != base_loss


def test_error_sums_give_global_metrics_not_batch_means() -> None:
    pred_a, target_a = torch.zeros(1, 4), torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    pred_b, target_b = torch.zeros(1, 4), torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    mask_a = torch.ones(1, 4, dtype=torch.bool)
    mask_b = torch.tensor([[True, False, False, False]])
    sums = ErrorSums()
    sums.update(pred_a, target_a, mask_a)
    sums.update(pred_b, target_b, mask_b)
    res = sums.result()
    errors = np.array([1, 1, 1, 1, 10], dtype=np.float64)
    assert res["mae"] == pytest.approx(np.abs(errors).mean())
    assert res["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert res["steps"] == 5
    mean_of_batch_rmse = (1.0 + 10.0) / 2
    assert res["rmse"] != pytest.approx(mean_of_batch_rmse)


def test_parameter_count_matches_reference_architecture() -> None:
    # layer 1: 4*128*(14+128) + 2*4*128; layer 2: 4*128*256 + 2*4*128; head 129
    want = 4 * 128 * (14 + 128) + 2 * 4 * 128 + 4 * 128 * 256 + 2 * 4 * 128 + 129
    # + the spread head (issue 14): one more linear head on the LSTM output
    model = HRLSTM(14, 128, 2, 0.3, False)
    assert count_parameters(model) - count_parameters(model.spread) == want == 205_953
    assert count_parameters(model.spread) == 129
    bi = HRLSTM(14, 8, 1, 0.0, True)
    assert count_parameters(bi) == 2 * (4 * 8 * (14 + 8) + 2 * 4 * 8) + 17 + 17


def test_fresh_model_starts_near_target_mean() -> None:
    torch.manual_seed(0)
    model = HRLSTM(5, hidden=32, layers=2, dropout=0.0, target_mean=150.0, target_std=12.0)
    x = torch.randn(4, 20, 5)
    out = model(x)
    z = model(x, standardized=True)
    assert out.shape == (4, 20)
    assert torch.allclose(out, z * 12.0 + 150.0)
    assert (out - 150.0).abs().max().item() < 12.0  # within one std of the mean at epoch 0
    assert model.head.bias.item() == 0.0


def _scaler(names: list[str]) -> dict[str, dict[str, float]]:
    return {
        n: {"mean": 2.0 + i, "std": 0.5 * (i + 1)} for i, n in enumerate(names) if n != "gender"
    }


def _saved_model(tmp_path, names: list[str]):
    torch.manual_seed(3)
    model = HRLSTM(len(names), hidden=8, layers=1, dropout=0.0, target_mean=140.0, target_std=9.0)
    ckpt = make_checkpoint(
        model,
        features=names,
        scaler=_scaler(names),
        seq_len=12,
        best_epoch=3,
        val={"mae": 5.0, "rmse": 7.0},
        train_params={"lr": 1e-3, "loss": "mse", "nested": {"a": np.float32(1.5)}},
    )
    path = tmp_path / "model.pt"
    save_checkpoint(ckpt, path)
    return model, path


def test_checkpoint_round_trip_weights_only(tmp_path) -> None:
    names = ["speed", "altitude", "gender"]
    model, path = _saved_model(tmp_path, names)
    raw = torch.load(path, weights_only=True)
    assert raw["features"] == names
    assert raw["config"] == {
        "input_size": 3,
        "hidden": 8,
        "layers": 1,
        "dropout": 0.0,
        "bidirectional": False,
    }
    assert raw["target_mean"] == 140.0 and raw["target_std"] == 9.0
    assert raw["seq_len"] == 12 and raw["best_epoch"] == 3 and raw["val"]["mae"] == 5.0
    assert raw["train_params"]["nested"]["a"] == 1.5
    loaded, ckpt = load_checkpoint(path)
    assert not loaded.training
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b)
    # same object -> same bytes
    again = tmp_path / "again.pt"
    save_checkpoint(ckpt, again)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()


def test_predict_applies_scaler_like_numpy(tmp_path) -> None:
    names = ["speed", "gender", "altitude"]
    model, path = _saved_model(tmp_path, names)
    loaded, ckpt = load_checkpoint(path)
    rng = np.random.default_rng(0)
    feats = rng.normal(5, 2, size=(5, 12, 3)).astype(np.float32)
    feats[:, :, 1] = rng.integers(0, 2, size=(5, 1))
    feats[2, 9:, :] = np.nan  # padding written as NaN must not poison earlier steps
    # independent scaling: z = (x - mean)/std for scaled features, binary passes through
    mean = np.array([2.0, 0.0, 4.0], dtype=np.float32)
    std = np.array([0.5, 1.0, 1.5], dtype=np.float32)
    scaled = np.nan_to_num((feats - mean) / std, nan=0.0)
    with torch.no_grad():
        want = model(torch.from_numpy(scaled)).numpy()
    got = predict(loaded, ckpt, feats, batch_size=2)
    assert got.shape == (5, 12) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(predict(loaded, ckpt, feats[1]), got[1], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="expects 3"):
        predict(loaded, ckpt, feats[:, :, :2])


def test_scaler_arrays_guard_zero_std() -> None:
    mean, std = scaler_arrays(
        ["a", "b", "c"], {"a": {"mean": 1.0, "std": 0.0}, "c": {"mean": 3, "std": 2}}
    )
    np.testing.assert_array_equal(mean, [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(std, [1.0, 1.0, 2.0])
    x = torch.tensor([[[2.0, 5.0, float("nan")]]])
    out = apply_scaler(x, torch.from_numpy(mean), torch.from_numpy(std))
    assert out.tolist() == [[[1.0, 5.0, 0.0]]]


def test_apply_scaler_numpy_equals_torch_bit_for_bit() -> None:
    """One scaler for the baselines (numpy) and the model (torch): same float32 bits."""
    rng = np.random.default_rng(0)
    x = rng.normal(50, 30, (4, 9, 3)).astype(np.float32)
    x[0, :2] = np.nan
    x[1, 3, 1] = np.inf
    mean, std = scaler_arrays(
        ["a", "b", "c"], {"a": {"mean": 41.3, "std": 7.1}, "c": {"mean": -3, "std": 0.3}}
    )
    got = apply_scaler(x, mean, std)
    want = apply_scaler(torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(std))
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(apply_scaler(x.astype(np.float64), mean, std), got)


def test_batches_predicted_in_parts_give_the_batch_values() -> None:
    """predict_parts(n) runs each batch as n contiguous parts in n threads: the same HR and
    spread as the whole batch on one thread (rows are independent): byte for byte without a
    history context, within a float32 rounding of 150 BPM with one (the context encoder's
    matrix products round by batch size); a single workout runs whole."""
    torch.manual_seed(0)
    arch = {"input_size": 14, "hidden": 16, "layers": 2, "dropout": 0.0, "bidirectional": False}
    meta = {"design": "condition", "k_max": 3, "context_size": 5, "enc_hidden": 8, "embed": 4}
    model = HistoryHRModel(arch, meta, 145.0, 14.0)
    names = [f"f{i}" for i in range(14)]
    history = {**meta, "context_features": [f"c{i}" for i in range(5)],
               "scaler": {"mean": [0.0] * 5, "std": [1.0] * 5}}  # fmt: skip
    ckpt = make_checkpoint(
        model, features=names, scaler={f: {"mean": 0.0, "std": 1.0} for f in names},
        seq_len=40, best_epoch=1, val={"mae": 7.0}, train_params={}, history=history,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 40, 14)).astype(np.float32)
    ctx = (rng.normal(size=(70, 3, 5)).astype(np.float32), rng.random((70, 3)) < 0.7)
    with torch_threads(1):
        whole = predict(model, ckpt, x, batch_size=32, context=ctx, with_spread=True)
        cold = predict(model, ckpt, x, batch_size=32, with_spread=True)
        with predict_parts(3):
            parts = predict(model, ckpt, x, batch_size=32, context=ctx, with_spread=True)
            cold_parts = predict(model, ckpt, x, batch_size=32, with_spread=True)
            one = predict(model, ckpt, x[0], context=(ctx[0][0], ctx[1][0]))
    assert np.array_equal(cold[0], cold_parts[0]) and np.array_equal(cold[1], cold_parts[1])
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=3e-5)
    np.testing.assert_allclose(one, whole[0][0], rtol=0, atol=1e-3)
