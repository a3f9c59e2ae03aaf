"""Exporting rnnkit models: to ONNX (`export_onnx`), read by ONNX Runtime and other engines.

    from rnnkit.export import export_onnx
    export_onnx(model, "model.onnx")      # or model.export("model.onnx")

`torch.export.export(model, (x,))` also works on rnnkit models (the inference path traces).
"""

from rnnkit.export.onnx_graph import export_onnx, onnx_model

__all__ = ["export_onnx", "onnx_model"]
