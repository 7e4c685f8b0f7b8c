"""Matrix products (on BLAS through numpy / cuBLAS through cupy)."""
from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import check_same_device, unbroadcast
from distml.ops.convert import cast
from distml.ops.registry import register


class MatMul(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        return get_array_module(a).matmul(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        xp = get_array_module(grad)
        if grad.dtype.kind == "c":  # PyTorch's convention: products with the conjugates
            a, b = a.conj(), b.conj()
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = grad[..., None]
        if a.ndim == 1:
            grad = grad[..., None, :]
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(xp.matmul(grad, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), grad), b2.shape).reshape(b.shape)
        if grad.dtype.kind == "c":  # real inputs get the real part
            grad_a = grad_a.real if grad_a is not None and self.a.dtype.kind != "c" else grad_a
            grad_b = grad_b.real if grad_b is not None and self.b.dtype.kind != "c" else grad_b
        return grad_a, grad_b


def _check_matmul(a, b):
    sa, sb = a.array.shape, b.array.shape
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
    if a.array.dtype != b.array.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != {b.dtype.name}")


@register(method=True)
@autocast_op(cpu="lower", cuda="lower")
def matmul(a, b):
    """Matrix product with numpy's broadcasting rules: `a @ b` (sparse operands go to distml.sparse)."""
    if a.is_sparse or b.is_sparse:
        from distml.sparse import matmul as sparse_matmul
        return sparse_matmul(a, b)
    check_same_device(a, b)
    _check_matmul(a, b)
    if a.array.dtype == dtypes.bfloat16.np:  # NumPy multiplies bfloat16 in float32 and returns float32
        return cast(MatMul.apply(cast(a, dtypes.float32), cast(b, dtypes.float32)), dtypes.bfloat16)
    return MatMul.apply(a, b)


@register(method=True)
@autocast_op(cpu="lower", cuda="lower")
def mm(a, b):
    """2-D matrix product: `distml.mm(a, b)` (sparse operands go to distml.sparse)."""
    if a.is_sparse or b.is_sparse:
        from distml.sparse import mm as sparse_mm
        return sparse_mm(a, b)
    if a.array.ndim != 2 or b.array.ndim != 2:
        raise RuntimeError(f"self must be a matrix" if a.array.ndim != 2 else "mat2 must be a matrix")
    return matmul(a, b)


@register(method=True)
@autocast_op(cpu="lower", cuda="lower")
def bmm(a, b):
    """Batched 3-D matrix product."""
    if a.array.ndim != 3 or b.array.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor" if a.array.ndim != 3 else "batch2 must be a 3D tensor")
    if a.array.shape[0] != b.array.shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got {a.array.shape[0]} and {b.array.shape[0]}")
    return matmul(a, b)


class Einsum(Primitive):
    """numpy's einsum; each input's gradient is another einsum (broadcast over the letters
    that appear only in that input)."""

    def forward(self, *arrays, inputs, output):
        self.arrays, self.inputs, self.output = arrays, inputs, output
        return get_array_module(arrays[0]).asarray(
            get_array_module(arrays[0]).einsum(",".join(inputs) + "->" + output, *arrays))

    def backward(self, grad):
        xp = get_array_module(grad)
        grads = []
        for i, (letters, array) in enumerate(zip(self.inputs, self.arrays)):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [s for j, s in enumerate(self.inputs) if j != i]
            available = set(self.output).union(*others)
            kept = "".join(c for c in letters if c in available)
            spec = ",".join([self.output] + others) + "->" + kept
            partial = xp.einsum(spec, grad, *[a for j, a in enumerate(self.arrays) if j != i])
            shape = [array.shape[k] if c in available else 1 for k, c in enumerate(letters)]
            grads.append(xp.broadcast_to(partial.reshape(shape), array.shape))
        return tuple(grads)


def _parse_einsum(equation, arrays):
    """Explicit input and output letters (ellipses expanded) of an einsum equation."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(arrays):
        raise RuntimeError(f"einsum(): more operands were provided than specified in the equation"
                           if len(arrays) > len(inputs) else "einsum(): fewer operands were provided than specified "
                           "in the equation")
    used = set(c for c in equation if c.isalpha())
    spare = iter(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used)
    broadcast_ndim = max((a.ndim - len(s.replace("...", "")) for s, a in zip(inputs, arrays) if "..." in s), default=0)
    ellipsis = "".join(next(spare) for _ in range(broadcast_ndim))
    expanded = []
    for s, a in zip(inputs, arrays):
        n = a.ndim - len(s.replace("...", ""))
        expanded.append(s.replace("...", ellipsis[broadcast_ndim - n:]))
    for s in expanded:
        if len(set(s)) != len(s):
            raise NotImplementedError("einsum with a repeated letter in one operand (a diagonal) is not supported")
    if arrow:
        output = rhs.replace("...", ellipsis)
    else:
        counts = {}
        for s in expanded:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        output = ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ellipsis))
    return expanded, output


@register()
@autocast_op(cpu="lower", cuda="lower")  # PyTorch's einsum is bmm inside
def einsum(equation, *operands):
    """Sums of products named by letters: `distml.einsum("bij,bjk->bik", a, b)`."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    dtype = dtypes.result_type(*[t.array for t in operands])
    if dtype == dtypes.bfloat16.np:  # NumPy's einsum has no bfloat16 loop: compute in float32 as PyTorch's CPU does
        return cast(einsum(equation, *[cast(t, dtypes.float32) for t in operands]), dtypes.bfloat16)
    operands = [cast(t, dtype) for t in operands]
    for t in operands[1:]:
        check_same_device(operands[0], t)
    inputs, output = _parse_einsum(equation, [t.array for t in operands])
    return Einsum.apply(*operands, inputs=tuple(inputs), output=output)


@register(method=True)
@autocast_op(cpu="off", cuda="promote")
def dot(a, b):
    if a.array.ndim != 1 or b.array.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.array.ndim}D and {b.array.ndim}D tensors")
    return matmul(a, b)


@register(method=True)
def outer(a, b):
    """The outer product of two 1-D tensors."""
    from distml.ops.elementwise import mul
    from distml.ops.shape import unsqueeze
    return mul(unsqueeze(a, 1), unsqueeze(b, 0))
