"""The exported model bundle (`models/bundle/`), as every user of it reads it.

- `format`: the files, config.json's sections, the ONNX graph's input and output names.
- `backends`: ONNX Runtime or PyTorch, chosen at load; weights read without torch.
- `runtime`: `load_bundle` -> `Bundle` (predictions, the calibrated band); what serving imports.

`hrpred.export` writes bundles (it imports this package; nothing here imports it).
"""
