"""The export stage's error (the bundle's writer, its ONNX graph and the dataset)."""

from __future__ import annotations

from hrpred.errors import HrpredError


class ExportError(HrpredError, ValueError):
    """The bundle or the dataset cannot be written from these inputs (one line)."""
