"""Reverse-mode automatic differentiation: `backward`, `grad`, custom `Function`, `gradcheck`."""
from distml.autograd.engine import ones_like_output, run_backward
from distml.autograd.function import Function, FunctionCtx
from distml.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from distml.autograd.gradcheck import GradcheckError, gradcheck
from distml.tensor import Tensor


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _initial_grads(tensors, grad_tensors):
    grads = []
    for t, g in zip(tensors, grad_tensors):
        if g is None:
            grads.append(ones_like_output(t))
            continue
        g = g.array if isinstance(g, Tensor) else g
        if g.shape != t.array.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {tuple(g.shape)} and output[0] "
                               f"has a shape of {tuple(t.array.shape)}.")
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, inputs=None):
    """Accumulate gradients of `tensors` into the leaves' `.grad`."""
    tensors = _as_list(tensors)
    grad_tensors = _as_list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    if inputs is not None:
        inputs = _as_list(inputs)
        grads = run_backward(tensors, _initial_grads(tensors, grad_tensors), bool(retain_graph), inputs=inputs)
        for t, g in zip(inputs, grads):
            if g is not None:
                t.grad = Tensor(g.astype(t.array.dtype, copy=True)) if t.grad is None else t.grad + Tensor(g)
        return
    run_backward(tensors, _initial_grads(tensors, grad_tensors), bool(retain_graph))


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, returned (not accumulated into .grad)."""
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported by distml")
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    grad_outputs = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    grads = run_backward(outputs, _initial_grads(outputs, grad_outputs), bool(retain_graph), inputs=inputs)
    if not allow_unused and any(g is None for g in grads):
        raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                           "Set allow_unused=True if this is the desired behavior.")
    return tuple(None if g is None else Tensor(g) for g in grads)


__all__ = ["Function", "FunctionCtx", "GradcheckError", "backward", "grad", "gradcheck", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled"]
