"""Exporting rnnkit models: to ONNX (`export_onnx`), read by ONNX Runtime and other engines.

    from rnnkit.export import export_onnx
    export_onnx(model, "model.onnx")      # or model.export("model.onnx")

`torch.export.export(model, (x,))` also works on rnnkit models (the inference path traces).
"""

try:
    import onnx  # noqa: F401  (the builder; an optional extra)
except ModuleNotFoundError as err:
    raise ModuleNotFoundError(
        "ONNX export writes the graph with the onnx package, which is not installed: "
        "pip install 'rnnkit[export]' (onnx, and onnxruntime to run the file)."
    ) from err

from rnnkit.export.onnx_graph import export_onnx, onnx_model  # noqa: E402

__all__ = ["export_onnx", "onnx_model"]
