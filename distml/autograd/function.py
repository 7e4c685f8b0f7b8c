"""Graph nodes. `Primitive` is the base of every op in distml/ops (forward and backward on
arrays); `Function` is PyTorch's public API for user-defined ops (forward and backward on
Tensors, with a ctx)."""
from distml import _backend, dtypes
from distml.autograd.grad_mode import _State, no_grad
from distml.tensor import Tensor

# The ONNX exporter's recorder, `tracer(cls, inputs, params, outputs)`: None except while
# distml.onnx.export runs a model (so the hot path below pays one global lookup). The profiler
# adds no check here: while it records, it replaces Primitive.apply by a timed wrapper of it.
tracer = None


class Node:
    """One recorded operation. `next_edges[i]` is where input i's gradient goes: the node
    that made it, the leaf Tensor that accumulates it, or None when it needs none;
    `next_slots[i]` is which output of that node input i was (None when all were output 0).

    A node with several outputs (`n_outputs` > 1) gets one gradient per output; `hooks`
    and `retained` are keyed by output number.
    """

    __slots__ = ("next_edges", "next_slots", "needs_input_grad", "saved_versions", "freed", "hooks", "retained",
                 "n_outputs", "__dict__", "__weakref__")

    def name(self):
        return type(self).__name__ + "Backward0"

    def __repr__(self):
        return f"<{self.name()}>"

    def connect(self, inputs):
        """Record edges to the inputs that require grad; return whether any does."""
        needs, edges, slots = [], [], []
        for t in inputs:
            need = isinstance(t, Tensor) and t.requires_grad
            needs.append(need)
            edges.append((t.grad_fn or t) if need else None)
            slots.append(t.output_nr if need else 0)
        self.needs_input_grad, self.next_edges = tuple(needs), tuple(edges)
        self.next_slots = tuple(slots) if any(slots) else None
        self.saved_versions = None
        self.freed = False
        self.hooks = None
        self.retained = None
        self.n_outputs = 1
        return True in needs

    def check_versions(self):
        for counter, version in self.saved_versions or ():
            if counter[0] != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: output of {self.name()} is at version {counter[0]}; expected "
                    f"version {version} instead.")

    def release(self):
        """Free what forward saved; a later backward through this node raises."""
        if self.__dict__:
            self.__dict__.clear()
            self.freed = True


class Primitive(Node):
    """A differentiable op on arrays: subclasses define `forward(*arrays, **params) -> array`
    and `backward(grad) -> one gradient array (or None) per positional input`.

    A forward that returns a tuple of arrays makes one Tensor per output (`values, indices =
    Op.apply(x)`); its backward then takes one gradient per output (zeros for outputs that
    got none; integer outputs never require grad).

    `saves_inputs` / `saves_output` say what backward reads, so in-place changes to those
    tensors are caught; `is_view` marks ops whose output may share the input's memory.
    """

    __slots__ = ()
    saves_inputs = True
    saves_output = False
    is_view = False

    @classmethod
    def apply(cls, *inputs, **params):
        # The hot path of every op: kept free of helper calls when nothing needs a gradient.
        node = cls()
        arrays, record = [], False
        for t in inputs:
            if isinstance(t, Tensor):
                arrays.append(t.array)
                record = record or t.requires_grad
            else:
                arrays.append(t)
        if _backend.cupy is not None and len(arrays) > 1:
            _check_same_device(inputs, arrays)
        out = node.forward(*arrays, **params)
        if type(out) is tuple:
            outputs = _make_outputs(node, inputs, out, record)
            if tracer is not None:
                tracer(cls, inputs, params, outputs)
            return outputs
        out = Tensor(out)
        if cls.is_view:
            _share_version_if_view(out, inputs[0])
        if record and _State.enabled:
            node.connect(inputs)
            if cls.saves_inputs:
                node.saved_versions = [(t._version, t._version[0]) for t in inputs if isinstance(t, Tensor)]
            if cls.saves_output:
                node.saved_versions = (node.saved_versions or []) + [(out._version, 0)]
            out.requires_grad = True
            out.grad_fn = node
        if tracer is not None:
            tracer(cls, inputs, params, (out,))
        return out


def _check_same_device(inputs, arrays):
    """PyTorch's error for an op whose tensor arguments live on different devices (the one place
    distml checks; only needed, and only run, where cupy is installed)."""
    first = None
    for t in inputs:
        if isinstance(t, Tensor):
            if first is None:
                first = t.device
            elif t.device is not first and t.device != first:  # cpu tensors share one device object
                _mixed_devices(inputs, arrays)
                return


def _mixed_devices(inputs, arrays):
    """As in PyTorch, a 0-d cpu tensor may join cuda tensors (its value is copied to their device, in
    `arrays`); distml asks that it need no gradient. Any other mix raises PyTorch's error, naming the
    expected device (the first cuda tensor's) and the first other one."""
    devices = [(i, t.device) for i, t in enumerate(inputs) if isinstance(t, Tensor)]
    cuda = [d for _, d in devices if d.type == "cuda"]
    expected = cuda[0] if cuda else devices[0][1]
    for i, d in devices:
        scalar = cuda and d.type == "cpu" and inputs[i].array.ndim == 0 and not inputs[i].requires_grad
        if d != expected and not scalar:
            raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                               f"{expected} and {d}!")
    with _backend.cupy.cuda.Device(expected.index):
        for i, d in devices:
            if d.type == "cpu":
                arrays[i] = _backend.cupy.asarray(arrays[i])


def _make_outputs(node, inputs, arrays, record):
    """The Tensors of a primitive with several outputs, each pointing at its slot of `node`."""
    outputs = tuple(Tensor(a) for a in arrays)
    if node.is_view:
        for out in outputs:
            _share_version_if_view(out, inputs[0])
    if record and _State.enabled:
        node.connect(inputs)
        if node.saves_inputs:
            node.saved_versions = tuple((t._version, t._version[0]) for t in inputs if isinstance(t, Tensor))
        node.n_outputs = len(outputs)
        node.output_specs = tuple((a.shape, a.dtype) for a in arrays)
        for number, out in enumerate(outputs):
            if dtypes.is_float(out.array.dtype):
                out.requires_grad, out.grad_fn, out.output_nr = True, node, number
    return outputs


def _share_version_if_view(out, source):
    base = out.array.base
    if base is not None and (base is source.array or base is source.array.base):
        out._version = source._version
        out._base = source._base if source._base is not None else source


class FunctionCtx:
    """What a custom Function's forward leaves for its backward."""

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable = tensors


class _CustomNode(Node):
    __slots__ = ()

    def name(self):
        return self.function.__name__ + "Backward"

    def backward(self, *grads):
        self.ctx.needs_input_grad = self.needs_input_grad
        with no_grad():
            grads = self.function.backward(self.ctx, *(Tensor(g) for g in grads))
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != len(self.needs_input_grad):
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                               f"(expected {len(self.needs_input_grad)}, got {len(grads)})")
        return tuple(g.array if isinstance(g, Tensor) else g for g in grads)


class Function:
    """A user-defined differentiable op, as in PyTorch:

        class Square(distml.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return 2 * x * grad

        y = Square.apply(x)
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("You must implement the backward function for custom autograd.Function.")

    @classmethod
    def apply(cls, *args):
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            out = cls.forward(ctx, *args)
        outputs = out if isinstance(out, tuple) else (out,)
        if not all(isinstance(t, Tensor) for t in outputs):
            raise TypeError(f"{cls.__name__}.forward must return a Tensor or a tuple of Tensors, "
                            f"got {type(out).__name__}")
        node = _CustomNode()
        if _State.enabled and node.connect(args):
            node.function, node.ctx = cls, ctx
            saved = getattr(ctx, "saved_tensors", ())
            node.saved_versions = tuple((t._version, t._version[0]) for t in saved if isinstance(t, Tensor))
            node.n_outputs = len(outputs)
            node.output_specs = tuple((t.array.shape, t.array.dtype) for t in outputs)
            outputs = tuple(t.detach() for t in outputs)
            frozen = getattr(ctx, "non_differentiable", ())
            for number, t in enumerate(outputs):
                if dtypes.is_float(t.array.dtype) and not any(t.array is f.array for f in frozen):
                    t.requires_grad, t.grad_fn, t.output_nr = True, node, number
        return outputs if isinstance(out, tuple) else outputs[0]
