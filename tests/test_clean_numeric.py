"""hrpred.clean.numeric against the numpy calls it stands in for: the same bits."""

from __future__ import annotations

import numpy as np
import pytest

from hrpred.clean import numeric


def _arrays(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for n in [*range(1, 12), 99, 100, 301, 600]:
        out.append(rng.normal(150.0, 20.0, n))
        out.append(np.round(rng.normal(150.0, 5.0, n)))  # HR-like ties
        out.append(rng.integers(40, 200, n))  # integer dtype
        out.append(np.full(n, 137.0))
    return out


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_median_is_numpys(seed: int) -> None:
    for x in _arrays(seed):
        assert _same(numeric.median(x), float(np.median(x))), x


def test_median_of_nan_and_empty() -> None:
    x = np.array([1.0, np.nan, 3.0, 4.0])
    assert np.isnan(numeric.median(x)) and np.isnan(np.median(x))
    assert np.isnan(numeric.median(np.zeros(0)))
    assert np.array_equal(x, [1.0, np.nan, 3.0, 4.0], equal_nan=True)  # input untouched


@pytest.mark.parametrize("q", [0.0, 5.0, 50.0, 90.0, 95.0, 97.5, 99.0, 100.0])
def test_percentile_is_numpys(q: float) -> None:
    for seed in (0, 1):
        for x in _arrays(seed):
            x = x.astype(np.float64)
            assert numeric.percentile(x, q) == float(np.percentile(x, q)), (q, x)


@pytest.mark.parametrize("seed", [0, 1])
def test_var_and_std_are_numpys(seed: int) -> None:
    for x in _arrays(seed):
        for v in (x, x[::2], x * 1e-3 + 1e6):
            assert numeric.var(v) == float(v.var()) and numeric.std(v) == float(v.std()), v


def test_median3_is_numpys() -> None:
    rng = np.random.default_rng(3)
    a, b, c = np.round(rng.normal(150.0, 3.0, (3, 500)))  # many ties
    assert np.array_equal(numeric.median3(a, b, c), np.median(np.stack([a, b, c]), axis=0))


@pytest.mark.parametrize("shape", [(3, 1), (20, 3), (500, 5), (40, 2)])
def test_lstsq_is_numpys(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    X = rng.normal(size=shape)
    X[:, 0] = 1.0
    y = rng.normal(150.0, 10.0, shape[0])
    assert np.array_equal(numeric.lstsq(X, y), np.linalg.lstsq(X, y, rcond=None)[0])
    X[:, -1] = X[:, 0]  # rank-deficient: the same minimum-norm answer
    assert np.array_equal(numeric.lstsq(X, y), np.linalg.lstsq(X, y, rcond=None)[0])


def test_lstsq_with_nan_is_an_error_or_nan_as_in_numpy() -> None:
    X = np.ones((10, 2))
    X[3, 1] = np.nan
    y = np.arange(10.0)
    try:
        ref = np.linalg.lstsq(X, y, rcond=None)[0]
    except np.linalg.LinAlgError:
        with pytest.raises(np.linalg.LinAlgError):
            numeric.lstsq(X, y)
    else:
        assert np.array_equal(numeric.lstsq(X, y), ref, equal_nan=True)


def test_inv_is_numpys_and_raises_on_a_singular_matrix() -> None:
    rng = np.random.default_rng(5)
    for k in (1, 2, 5):
        X = rng.normal(size=(50, k))
        a = X.T @ X
        assert np.array_equal(numeric.inv(a), np.linalg.inv(a))
    with pytest.raises(np.linalg.LinAlgError):
        numeric.inv(np.ones((3, 3)))
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.inv(np.ones((3, 3)))
