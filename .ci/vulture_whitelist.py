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
recompute_test  # evaluate/saved.py: the headline figures from the saved files (tests/test_evaluate_*.py, issue 23)
_.speed_quantiles_kmh  # simulate/calibration.py CalibrationTargets fields: read through asdict
_.hr_by_speed_bpm
_.runner_speed_sd_kmh
_.runner_hr_sd_bpm
_.window_change_sd_bpm
_.window_change_over_10
_.as_dict  # personal/engine.py Curves.as_dict: the curves by name (tests/test_personal_engine.py)
