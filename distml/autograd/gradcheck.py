"""Compare a function's autograd gradients with central finite differences."""
import numpy as np

from distml.autograd.engine import run_backward
from distml.autograd.grad_mode import no_grad
from distml.tensor import Tensor


class GradcheckError(RuntimeError):
    """Raised by gradcheck when the analytical and numerical Jacobians differ."""


def _outputs(func, inputs):
    out = func(*inputs)
    return [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(o, Tensor)]


def _numerical_jacobian(func, inputs, x, eps):
    """d(outputs)/d(x) by central differences: one (x.numel, out.numel) matrix per output."""
    def evaluate():
        with no_grad():
            return [o.array.astype(np.float64).reshape(-1) for o in _outputs(func, inputs)]

    flat = x.array.reshape(-1)  # x is contiguous here, so this writes into x
    sizes = [o.size for o in evaluate()]
    jacobians = [np.zeros((flat.size, n)) for n in sizes]
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = evaluate()
        flat[i] = original - eps
        minus = evaluate()
        flat[i] = original
        for jacobian, p, m in zip(jacobians, plus, minus):
            jacobian[i] = (p - m) / (2 * eps)
    return jacobians


def _analytical_jacobian(outputs, inputs):
    """d(outputs)/d(input) by one backward per output element."""
    jacobians = [[np.zeros((x.array.size, o.array.size)) for o in outputs] for x in inputs]
    for k, out in enumerate(outputs):
        if not out.requires_grad:
            continue
        for j in range(out.array.size):
            seed = np.zeros(out.array.size, dtype=out.array.dtype)
            seed[j] = 1
            grads = run_backward([out], [seed.reshape(out.array.shape)], retain_graph=True, inputs=inputs)
            for i, g in enumerate(grads):
                if g is not None:
                    jacobians[i][k][:, j] = np.asarray(g, dtype=np.float64).reshape(-1)
    return jacobians


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """True when autograd's gradients of `func` at `inputs` match finite differences.

        x = distml.randn(3, dtype=distml.float64, requires_grad=True)
        distml.autograd.gradcheck(lambda x: (x * x).sum(), (x,))

    Inputs that require grad should be float64. On a mismatch, raises GradcheckError
    (or returns False with raise_exception=False).
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of the them "
                         "have requires_grad=True.")
    for x in checked:
        if x.array.dtype != np.float64:
            import warnings
            warnings.warn(f"Input #{inputs.index(x)} requires gradient and is not a double precision floating point. "
                          "This check will likely fail if all the inputs are not of double precision floating point.")
    outputs = _outputs(func, inputs)
    analytical = _analytical_jacobian(outputs, checked)
    for i, x in enumerate(checked):
        if not x.array.flags.c_contiguous:
            raise ValueError(f"gradcheck: input {inputs.index(x)} must be contiguous")
        numerical = _numerical_jacobian(func, inputs, x, eps)
        for k, (a, n) in enumerate(zip(analytical[i], numerical)):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(f"Jacobian mismatch for output {k} with respect to input {inputs.index(x)},\n"
                                     f"numerical:{n}\nanalytical:{a}\n")
    return True
