"""Exact, cheaper equivalents of the numpy reductions the detector calls per workout.

The clean stage makes a few hundred numpy calls per workout on arrays of a few hundred
samples, so its time is numpy's per-call overhead more than arithmetic (BENCHMARKS.md,
"Clean"). These give the same bits as the numpy calls they replace, with less of
that overhead; tests/test_clean_numeric.py checks them against numpy on random inputs:

- `median(x)`: `float(np.median(x))` of a 1-D array (one partition; NaN if x has a NaN).
- `percentile(x, q)`: `float(np.percentile(x, q))` of a 1-D array, numpy's default
  (linear) method, including its interpolation formula.
- `var(x)`, `std(x)`: `float(x.var())`, `float(x.std())` of a 1-D array (numpy's two passes:
  the mean, then the mean squared deviation, each summed the way numpy sums).
- `diff(x)`: `np.diff(x)` of a 1-D numeric (not bool) array: x[1:] - x[:-1].
- `median3(a, b, c)`: `np.median(np.stack([a, b, c]), axis=0)` elementwise (the middle
  value of three is one of them: no averaging to reproduce).
- `inv(a)`: `np.linalg.inv(a)` of a square float64 matrix (the same LAPACK gesv call),
  raising LinAlgError when it is singular as numpy does.
- `lstsq(X, y)`: the coefficients of `np.linalg.lstsq(X, y, rcond=None)` from the same
  LAPACK driver (gelsd through numpy's own gufunc), without the wrapper's bookkeeping.
"""

from __future__ import annotations

import numpy as np

try:  # numpy's LAPACK gufunc behind np.linalg.lstsq (the same call, same bits)
    from numpy.linalg import _umath_linalg

    _GELSD = _umath_linalg.lstsq
    _GESV_INV = _umath_linalg.inv
except (ImportError, AttributeError):  # pragma: no cover - another numpy layout
    _GELSD = _GESV_INV = None

_EPS = float(np.finfo(np.float64).eps)


def median(x: np.ndarray) -> float:
    """float(np.median(x)) of a 1-D float or int array (NaN when empty or with a NaN)."""
    n = x.size
    if n == 0:
        return float("nan")
    h = n // 2
    if n % 2:
        part = np.partition(x, [h, n - 1])
        mid = float(part[h])
    else:
        part = np.partition(x, [h - 1, h, n - 1])
        mid = (float(part[h - 1]) + float(part[h])) / 2.0  # np.mean of the two
    return float("nan") if part.dtype.kind == "f" and np.isnan(part[n - 1]) else mid


def percentile(x: np.ndarray, q: float) -> float:
    """float(np.percentile(x, q)) of a 1-D float array without NaN (method 'linear')."""
    n = x.size
    if n == 0:
        return float("nan")
    quant = q / 100.0
    virtual = (n - 1) * quant  # numpy's 'linear' virtual index
    lo = int(np.floor(virtual))
    lo = min(max(lo, 0), n - 1)
    hi = min(lo + 1, n - 1)
    part = np.partition(x, [lo, hi]) if hi != lo else np.partition(x, lo)
    a, b = float(part[lo]), float(part[hi])
    t = virtual - np.floor(virtual)
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def var(x: np.ndarray) -> float:
    """float(x.var()) of a 1-D array (NaN when empty)."""
    n = x.size
    if n == 0:
        return float("nan")
    d = x - x.sum() / n
    return float((d * d).sum() / n)


def std(x: np.ndarray) -> float:
    """float(x.std()) of a 1-D array (NaN when empty)."""
    return float(np.sqrt(var(x)))


def diff(x: np.ndarray) -> np.ndarray:
    """np.diff(x) of a 1-D int or float array (for bool, np.diff is `!=`)."""
    return x[1:] - x[:-1]


def median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The elementwise middle of three arrays (np.median over a stack of them)."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def inv(a: np.ndarray) -> np.ndarray:
    """np.linalg.inv(a) of a 2-D square float64 matrix; LinAlgError when singular."""
    if _GESV_INV is None or a.dtype != np.float64 or a.size == 0:
        return np.linalg.inv(a)
    try:
        with np.errstate(invalid="raise", over="ignore", divide="ignore", under="ignore"):
            return _GESV_INV(a, signature="d->d")
    except FloatingPointError as exc:
        raise np.linalg.LinAlgError("Singular matrix") from exc


def lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """np.linalg.lstsq(X, y, rcond=None)[0] for a 2-D float64 X and a 1-D y.

    LinAlgError when the solver does not converge, as numpy's."""
    m, k = X.shape
    if _GELSD is None or m == 0 or k == 0 or X.dtype != np.float64:
        return np.linalg.lstsq(X, y, rcond=None)[0]
    try:
        with np.errstate(invalid="raise", over="ignore", divide="ignore", under="ignore"):
            coef = _GELSD(X, np.asarray(y, dtype=np.float64)[:, None], _EPS * max(m, k),
                          signature="ddd->ddid")[0]  # fmt: skip
    except FloatingPointError as exc:
        raise np.linalg.LinAlgError("SVD did not converge in Linear Least Squares") from exc
    return coef[:, 0]
