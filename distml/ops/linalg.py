"""Matrix products (on BLAS through numpy / cuBLAS through cupy)."""
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import check_same_device, unbroadcast


class MatMul(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        return get_array_module(a).matmul(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        xp = get_array_module(grad)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            grad = xp.expand_dims(grad, -2)
        if b.ndim == 1:
            grad = xp.expand_dims(grad, -1)
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(xp.matmul(grad, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), grad), b2.shape).reshape(b.shape)
        return grad_a, grad_b


def _check_matmul(a, b):
    sa, sb = a.data.shape, b.data.shape
    if not sa or not sb:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {len(sa)}D and {len(sb)}D")
    inner_a = sa[-1]
    inner_b = sb[0] if len(sb) == 1 else sb[-2]
    if inner_a != inner_b:
        if len(sa) == 1 and len(sb) == 1:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{sa[0]}] and src [{sb[0]}] "
                               f"to have the same number of elements, but got {sa[0]} and {sb[0]} elements respectively")
        rows_a = "x".join(map(str, sa if len(sa) > 1 else (1,) + sa))
        rows_b = "x".join(map(str, sb if len(sb) > 1 else sb + (1,)))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows_a} and {rows_b})")
    if a.data.dtype != b.data.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != {b.dtype.name}")


def matmul(a, b):
    """Matrix product with numpy's broadcasting rules: `a @ b`."""
    check_same_device(a, b)
    _check_matmul(a, b)
    return MatMul.apply(a, b)


def mm(a, b):
    """2-D matrix product: `distml.mm(a, b)`."""
    if a.data.ndim != 2 or b.data.ndim != 2:
        raise RuntimeError(f"self must be a matrix" if a.data.ndim != 2 else "mat2 must be a matrix")
    return matmul(a, b)


def bmm(a, b):
    """Batched 3-D matrix product."""
    if a.data.ndim != 3 or b.data.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor" if a.data.ndim != 3 else "batch2 must be a 3D tensor")
    if a.data.shape[0] != b.data.shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got {a.data.shape[0]} and {b.data.shape[0]}")
    return matmul(a, b)
