"""The ONNX graph being built: nodes, initializers, graph inputs, and the names of traced values;
`Context` is what one converter sees of it (its call, and the same call in the other traces)."""
import math

import numpy as np

from distml.onnx.errors import OnnxExporterError, UnsupportedOperatorError

UNAVAILABLE = object()  # the name of a traced output that its converter cannot produce


class Graph:
    def __init__(self, opset, fold):
        self.opset, self.fold = opset, fold
        self.nodes = []  # (op_type, inputs, outputs, name, attributes)
        self.initializers = {}  # name -> array
        self.inputs = []  # (name, Ref): the graph's inputs, in order
        self.names = {}  # id(Ref) -> ONNX name
        self.taken = set()
        self.symbols = {}  # dynamic axis name -> (Ref of the input that has it, axis)
        self.symbol_values = {}  # dynamic axis name -> ONNX name of its size, a 1-D int64 tensor

    def unique(self, base):
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def node(self, op_type, inputs, n_outputs=1, scope="", **attributes):
        name = self.unique(f"{scope}/{op_type}")
        outputs = [self.unique(f"{name}_output_{k}") for k in range(n_outputs)]
        self.nodes.append((op_type, list(inputs), outputs, name, attributes))
        return outputs

    def constant(self, array, hint="Constant"):
        name = self.unique(f"onnx::{hint}_{len(self.initializers)}")
        self.initializers[name] = np.asarray(array)
        return name

    def add_input(self, ref, name):
        self.taken.add(name)
        self.names[id(ref)] = name
        self.inputs.append((name, ref))

    def value(self, ref, op=""):
        """The ONNX name of a traced value; parameters and constants become initializers when first used."""
        name = self.names.get(id(ref))
        if name is UNAVAILABLE:
            raise UnsupportedOperatorError(op or "?", self.opset, detail=f"it reads an output that its producer's "
                                           "ONNX form does not have (e.g. the indices of max_pool2d)")
        if name is not None:
            return name
        if ref.kind == "param":
            if ref.dynamic:  # export_params=False: parameters are graph inputs
                self.add_input(ref, ref.name)
            else:
                self.taken.add(ref.name)
                self.initializers[ref.name] = ref.value
                self.names[id(ref)] = ref.name
            return ref.name
        if ref.kind == "const" and any(ref.symbols):  # one repeated value, in a shape that follows dynamic axes
            scalar = self.constant(ref.value.reshape(-1)[0])
            shape = self.shape_tensor([sorted(s) or size for size, s in zip(ref.shape, ref.symbols)], ref.shape)
            name = self.names[id(ref)] = self.node("Expand", [scalar, shape])[0]
            return name
        if ref.kind == "const" or (self.fold and not ref.dynamic):
            name = self.names[id(ref)] = self.constant(ref.value)
            return name
        raise OnnxExporterError(f"internal error: {ref} was used before the op that makes it was converted")

    def symbol_size(self, symbol):
        """The size a dynamic axis had in the example input."""
        ref, axis = self.symbols[symbol]
        return ref.shape[axis]

    def dim_value(self, size, symbols, what):
        """A dim of `size` in the example that scales with the dynamic axes `symbols`: their runtime
        sizes times size / (their example sizes), as a 1-D int64 tensor."""
        denominator = math.prod(self.symbol_size(s) for s in symbols)
        if not denominator or size % denominator:
            raise OnnxExporterError(f"{what} changes with dynamic axes {sorted(symbols)} in a way distml cannot "
                                    "express from the input shapes")
        out = None
        for s in sorted(symbols):
            value = self.symbol_value(s)
            out = value if out is None else self.node("Mul", [out, value])[0]
        if size != denominator:
            out = self.node("Mul", [out, self.constant(np.array([size // denominator], np.int64))])[0]
        return out

    def shape_tensor(self, dims, shape):
        """An int64 shape from dims that are ints (kept), ONNX names (used), or lists of dynamic axes
        (dim_value of that dim of `shape`)."""
        parts, run = [], []
        for d, dim in enumerate(dims):
            if isinstance(dim, (int, np.integer)):
                run.append(int(dim))
                continue
            if run:
                parts.append(self.constant(np.array(run, np.int64)))
                run = []
            parts.append(dim if isinstance(dim, str) else self.dim_value(shape[d], dim, f"dim {d} of {list(shape)}"))
        if run:
            parts.append(self.constant(np.array(run, np.int64)))
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)[0]

    def symbol_value(self, symbol):
        """The runtime size of a dynamic axis, as a 1-D int64 tensor of one element."""
        if symbol not in self.symbol_values:
            ref, axis = self.symbols[symbol]
            shape = self.node("Shape", [self.value(ref)])[0]
            start, end = self.constant(np.array([axis], np.int64)), self.constant(np.array([axis + 1], np.int64))
            self.symbol_values[symbol] = self.node("Slice", [shape, start, end])[0]
        return self.symbol_values[symbol]


class Context:
    """One call being converted: its inputs as ONNX names, its params, and the same call in the
    traces where one dynamic axis was doubled (`variants`, a list of (axis name, Call))."""

    def __init__(self, graph, call, variants):
        self.graph, self.call, self.variants = graph, call, variants
        self.params = call.params
        self.opset = graph.opset
        self.scope = "/" + call.module.replace(".", "/") if call.module else ""

    @property
    def op_name(self):
        return self.call.op.__name__

    def unsupported(self, detail):
        return UnsupportedOperatorError(self.op_name, self.opset, self.call.module, detail)

    def ref(self, i):
        return self.call.inputs[i]

    def shape(self, i):
        return self.call.inputs[i].shape

    @property
    def out_dtype(self):
        return self.call.outputs[0].dtype

    def input(self, i, dtype=None):
        """Positional input i as an ONNX name: "" when None, a constant (of `dtype`, by default the
        output's) when a Python number."""
        v = self.call.inputs[i]
        if v is None:
            return ""
        return self.value(v, dtype)

    def value(self, v, dtype=None):
        if hasattr(v, "kind"):
            return self.graph.value(v, self.op_name)
        return self.const(np.asarray(v, dtype=dtype or self.out_dtype))

    def cast_input(self, i, dtype=None):
        """Input i converted to `dtype` (the output's by default)."""
        dtype = np.dtype(dtype or self.out_dtype)
        v = self.call.inputs[i]
        name = self.input(i, dtype)
        return self.cast(name, dtype) if hasattr(v, "kind") and v.dtype != dtype else name

    def cast(self, name, dtype):
        from onnx import helper
        return self.node("Cast", name, to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def const(self, array):
        return self.graph.constant(np.asarray(array), self.op_name)

    def ints(self, values):
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1))

    def scalar(self, value, dtype=None):
        return self.const(np.asarray(value, dtype=dtype or self.out_dtype))

    def node(self, op_type, *inputs, outputs=1, **attributes):
        names = self.graph.node(op_type, inputs, outputs, self.scope, **attributes)
        return names[0] if outputs == 1 else names

    def reduce(self, op_type, x, axes, keepdims):
        """A Reduce* node over `axes` (None: all), with axes as an input where the opset wants one."""
        as_input = op_type == "ReduceSum" or self.opset >= 18
        if axes is None:
            return self.node(op_type, x, keepdims=int(keepdims))
        axes = [int(a) for a in axes]
        if as_input:
            return self.node(op_type, x, self.ints(axes), keepdims=int(keepdims))
        return self.node(op_type, x, axes=axes, keepdims=int(keepdims))
