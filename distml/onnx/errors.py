"""The exporter's errors, as torch.onnx.errors names them."""


class OnnxExporterError(RuntimeError):
    """A model that distml.onnx.export cannot write as an ONNX graph."""


class UnsupportedOperatorError(OnnxExporterError):
    """A traced op that has no ONNX converter (at this opset)."""

    def __init__(self, op, opset, module="", detail=""):
        where = f" (in module '{module}')" if module else ""
        why = f": {detail}" if detail else ""
        super().__init__(f"Exporting the operator '{op}'{where} to ONNX opset version {opset} is not supported{why}.")
