"""Names vulture reports as unused that are used by frameworks or kept on purpose.

Checked in CI: `vulture hrpred stages benchmarks .ci/vulture_whitelist.py --min-confidence 60`.
Everything else that is unused in the package (outside tests) is dead code: delete it.
"""

# ruff: noqa: B018, F821
_.forward  # torch.nn.Module.forward, called through __call__ (model.py, export/onnx_graph.py)
_.writeable  # numpy array flags set to make views read-only (clean/signal.py)
_.intra_op_num_threads  # onnxruntime SessionOptions attribute (bundle/backends.py)
_.required  # argparse subparsers attribute (serve/cli.py)
exc_type  # __exit__ signature (clean/parallel.py)
tb  # __exit__ signature (clean/parallel.py)
_.train_mse_by_tau  # fitted physio baseline's diagnostic, asserted by tests/test_baselines.py
CATEGORIES  # the category names of evaluate/categories.py (public constant)
_.duration_s  # Activity.duration_s, public property of a user's recording
convert_raw  # io/raw.py: writes the raw data in another reader format (used by pipeline tests)
_.readable  # io.RawIOBase protocol (io/limits.py BoundedGzipReader)
_.predict_band  # Bundle.predict_band: one-call (HR, lower, upper) for library users, tested (tests/test_export_band.py)
