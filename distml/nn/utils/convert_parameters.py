from distml.autograd.grad_mode import no_grad
from distml.tensor import Tensor


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D tensor (a copy, differentiable)."""
    from distml.ops import cat
    parameters = list(parameters)
    device = None
    for p in parameters:
        if device is not None and p.device != device:
            raise TypeError("Found two parameters on different devices, this is currently not supported.")
        device = p.device
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D tensor vec into the parameters, in place."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected distml.Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.array = vec.array[offset:offset + n].reshape(p.array.shape).astype(p.array.dtype, copy=True)
            offset += n
