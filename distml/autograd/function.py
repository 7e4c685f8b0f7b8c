"""Graph nodes. `Primitive` is the base of every op in distml/ops (forward and backward on
arrays); `Function` is PyTorch's public API for user-defined ops (forward and backward on
Tensors, with a ctx)."""
from distml.autograd.grad_mode import _State, no_grad
from distml.tensor import Tensor


class Node:
    """One recorded operation. `next_edges[i]` is where input i's gradient goes: the node
    that made it, the leaf Tensor that accumulates it, or None when it needs none."""

    __slots__ = ("next_edges", "needs_input_grad", "saved_versions", "freed", "hooks", "retained",
                 "__dict__", "__weakref__")

    def name(self):
        return type(self).__name__ + "Backward0"

    def __repr__(self):
        return f"<{self.name()}>"

    def connect(self, inputs):
        """Record edges to the inputs that require grad; return whether any does."""
        self.needs_input_grad = needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        self.next_edges = tuple((t.grad_fn or t) if need else None for t, need in zip(inputs, needs))
        self.saved_versions = None
        self.freed = False
        self.hooks = None
        self.retained = None
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
        out = Tensor(node.forward(*arrays, **params))
        if cls.is_view:
            _share_version_if_view(out, inputs[0])
        if record and _State.enabled:
            node.connect(inputs)
            if cls.saves_inputs:
                node.saved_versions = tuple((t._version, t._version[0]) for t in inputs if isinstance(t, Tensor))
            if cls.saves_output:
                node.saved_versions = (node.saved_versions or ()) + ((out._version, 0),)
            out.requires_grad = True
            out.grad_fn = node
        return out


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

    def backward(self, grad):
        self.ctx.needs_input_grad = self.needs_input_grad
        with no_grad():
            grads = self.function.backward(self.ctx, Tensor(grad))
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
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return a single Tensor, got {type(out).__name__}")
        node = _CustomNode()
        if _State.enabled and node.connect(args):
            node.function, node.ctx = cls, ctx
            saved = getattr(ctx, "saved_tensors", ())
            node.saved_versions = tuple((t._version, t._version[0]) for t in saved if isinstance(t, Tensor))
            out = out.detach()
            out.requires_grad = True
            out.grad_fn = node
        return out
