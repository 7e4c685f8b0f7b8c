"""ONNX export, as torch.onnx's TorchScript exporter: `distml.onnx.export(model, (x,), "model.onnx")`.

The model is traced by running it once: every primitive it applies (distml/autograd/function.py's
Primitive.apply) is recorded and mapped to ONNX nodes by one table (distml/onnx/_ops.py).
The onnx package is imported only when export runs.
"""
from distml.onnx import errors
from distml.onnx._export import export
from distml.onnx._trace import is_in_onnx_export
from distml.onnx.errors import OnnxExporterError

__all__ = ["errors", "export", "is_in_onnx_export", "OnnxExporterError"]
