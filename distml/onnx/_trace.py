"""Running a model once while recording every primitive it applies (through the slot
distml.autograd.function.tracer), each as a `Call`: its class, its inputs and params with the
tensors and arrays among them replaced by `Ref`s, its outputs, and the module it ran in."""
import threading

import numpy as np

from distml.autograd import function
from distml.autograd.grad_mode import no_grad
from distml.onnx.errors import OnnxExporterError
from distml.tensor import Tensor

_exporting = [False]


def is_in_onnx_export():
    """Whether a model is being traced by distml.onnx.export right now (as torch.onnx.is_in_onnx_export)."""
    return _exporting[0]


def host(array):
    """A NumPy array of `array`'s values (a copy of a CuPy array)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def _is_array(v):
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (np.generic, Tensor))


class Ref:
    """A value of the traced graph. `kind`: "input" (a graph input), "param" (a model parameter or
    buffer, named by its state_dict key), "value" (an op's output) or "const" (a tensor or array the
    trace did not make: a constant). `dynamic`: it depends on a graph input; `value` holds the array
    of everything that does not. `symbols[d]`: the dynamic axes that change dim d (set after tracing)."""
    __slots__ = ("kind", "name", "shape", "dtype", "value", "dynamic", "symbols")

    def __init__(self, kind, name, array, dynamic, value=None):
        self.kind, self.name, self.dynamic, self.value = kind, name, dynamic, value
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)
        self.symbols = tuple(frozenset() for _ in self.shape)

    def __eq__(self, other):
        """Values: the same name. Constants: the same values, or, for constants of one repeated value
        (`zeros(batch, n)`), the same value and rank (their shapes may follow dynamic axes)."""
        if not isinstance(other, Ref) or self.kind != other.kind:
            return False
        if self.kind != "const":
            return self.name == other.name
        if self.dtype != other.dtype or len(self.shape) != len(other.shape):
            return False
        if self.shape != other.shape:
            fill = self.fill()
            return fill is not None and fill == other.fill()
        return bool(np.array_equal(self.value, other.value, equal_nan=self.dtype.kind in "fc"))

    def fill(self):
        """The bytes of the one value a constant repeats (None when it holds several, or none)."""
        flat = self.value.reshape(-1)
        if not flat.size or not np.array_equal(flat, np.broadcast_to(flat[:1], flat.shape),
                                               equal_nan=self.dtype.kind in "fc"):
            return None
        return flat[:1].tobytes()

    __hash__ = None

    def __repr__(self):
        return f"<{self.kind} {self.name or ''}{list(self.shape)} {self.dtype}>"


class Call:
    """One primitive applied during the trace."""
    __slots__ = ("op", "inputs", "params", "outputs", "module")

    def __init__(self, op, inputs, params, outputs, module):
        self.op, self.inputs, self.params, self.outputs, self.module = op, inputs, params, outputs, module

    def refs(self):
        """Every Ref among the inputs and params."""
        return list(_refs((self.inputs, self.params)))


def _refs(v):
    if isinstance(v, Ref):
        yield v
    elif isinstance(v, (tuple, list)):
        for x in v:
            yield from _refs(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _refs(x)


class Tracer:
    def __init__(self):
        self.thread = threading.get_ident()
        self.calls = []
        self.bound = {}  # id(Tensor) -> (tensor, Ref, its version when bound)
        self.arrays = {}  # id(array) -> (array, Ref): arrays passed as params (masks, indices)
        self.modules = [""]

    def bind(self, tensor, ref):
        self.bound[id(tensor)] = (tensor, ref, tensor._version[0])
        self.arrays[id(tensor.array)] = (tensor.array, ref)

    def ref(self, t):
        entry = self.bound.get(id(t))
        if entry is None:
            return Ref("const", None, t.array, False, host(t.array).copy())
        _, ref, version = entry
        if t._version[0] != version:
            raise OnnxExporterError(
                f"a tensor used by the model (in module '{self.modules[-1]}') was written in place outside "
                "distml's traced ops (e.g. `x[i] = v` without autograd, or through a view) after the trace "
                "recorded it; distml.onnx.export cannot record such writes")
        return ref

    def resolve(self, v):
        if isinstance(v, Tensor):
            return self.ref(v)
        if _is_array(v):
            entry = self.arrays.get(id(v))
            return entry[1] if entry is not None else Ref("const", None, v, False, host(v).copy())
        if isinstance(v, (tuple, list)):
            resolved = [self.resolve(x) for x in v]
            return type(v)(*resolved) if hasattr(v, "_fields") else type(v)(resolved)  # namedtuples too
        return v

    def record(self, cls, inputs, params, outputs):
        if threading.get_ident() != self.thread:  # ops another thread runs meanwhile are not the model's
            return
        refs = [self.resolve(t) for t in inputs]
        params = {k: self.resolve(v) for k, v in params.items()}
        dynamic = any(r.dynamic for r in _refs((refs, params)))
        outs = []
        for t in outputs:
            ref = Ref("value", f"%{len(self.calls)}:{len(outs)}", t.array, dynamic,
                      None if dynamic else host(t.array).copy())
            self.bind(t, ref)
            outs.append(ref)
        self.calls.append(Call(cls, refs, params, outs, self.modules[-1]))

    def rebind_inplace(self, target, result):
        """After `target._inplace(result)`: target now holds result's value."""
        entry = self.bound.get(id(result))
        if entry is None:
            self.bound.pop(id(target), None)
            self.arrays.pop(id(target.array), None)
        else:
            self.bind(target, entry[1])


def _flatten(out, found):
    if isinstance(out, Tensor):
        found.append(out)
    elif isinstance(out, (tuple, list)):
        for x in out:
            _flatten(x, found)
    elif isinstance(out, dict):
        for x in out.values():
            _flatten(x, found)
    elif out is not None:
        raise OnnxExporterError(f"the model returned a {type(out).__name__}; only tensors (in tuples, lists or "
                                "dicts) can be graph outputs")
    return found


def trace(model, args, kwargs, inputs, params):
    """Run model(*args, **kwargs) once without autograd, recording its primitives.

    `inputs`: (tensor, Ref) of the graph inputs; `params`: (tensor, Ref) of its parameters and buffers.
    Returns (calls, output Refs)."""
    tracer = Tracer()
    for t, ref in params + inputs:
        tracer.bind(t, ref)
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(_enter(tracer, name)))
        handles.append(module.register_forward_hook(_leave(tracer)))
    inplace = Tensor._inplace

    def traced_inplace(self, result):
        out = inplace(self, result)
        tracer.rebind_inplace(self, result)
        return out

    Tensor._inplace = traced_inplace
    function.tracer = tracer.record
    _exporting[0] = True
    try:
        with no_grad():
            out = model(*args, **kwargs)
        outputs = [tracer.ref(t) for t in _flatten(out, [])]
    finally:
        function.tracer = None
        Tensor._inplace = inplace
        _exporting[0] = False
        for handle in handles:
            handle.remove()
    if not outputs:
        raise OnnxExporterError("the model returned no tensor to export")
    return tracer.calls, outputs


def _enter(tracer, name):
    def hook(module, args):
        tracer.modules.append(name)
    return hook


def _leave(tracer):
    def hook(module, args, output):
        tracer.modules.pop()
    return hook
