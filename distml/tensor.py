"""Tensor: an array (numpy on the CPU, cupy on the GPU) plus what autograd needs.

Math methods come from `distml.ops`, where each op is defined once and declares itself a
method (`@register(method=True)`); what is written here is what is Tensor's own.
"""
import numpy as np

from distml import dtypes
from distml._backend import cupy, get_array_module
from distml.device import CPU, device as Device


class Size(tuple):
    """A tensor's shape: a tuple that prints as `distml.Size([2, 3])`."""

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"distml.Size({list(self)})"


class Tensor:
    """An n-dimensional array with autograd: `distml.tensor([[1., 2.]], requires_grad=True)`.

    `t.array` is the numpy/cupy array underneath (distml's own handle; `t.data` is PyTorch's
    detached Tensor over the same memory). `Tensor(array)` wraps an array without copying;
    use `distml.tensor` to copy.
    """

    __slots__ = ("array", "requires_grad", "grad", "grad_fn", "output_nr", "_version", "_base", "_hooks", "_post_hooks",
                 "__weakref__")
    __array_priority__ = 1000  # numpy scalars defer to Tensor's reflected operators

    def __init__(self, data):
        if type(data) is not np.ndarray:
            if isinstance(data, np.generic):  # numpy ufuncs return scalars for 0-d inputs
                data = np.asarray(data)
            elif not isinstance(data, np.ndarray) and (cupy is None or not isinstance(data, cupy.ndarray)):
                data = np.asarray(data, dtype=dtypes.default_float_np())
        self.array = data
        self.requires_grad = False
        self.grad = None
        self.grad_fn = None
        self.output_nr = 0  # which output of grad_fn this is
        self._version = [0]
        self._base = None
        self._hooks = None
        self._post_hooks = None

    @property
    def data(self):
        """This tensor's values as a new leaf that shares memory and is not tracked by autograd:
        `p.data.add_(p.grad, alpha=-lr)` changes p without recording an op (PyTorch's `.data`)."""
        return Tensor(self.array)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, not {type(value).__name__}")
        if type(value.array) is not type(self.array):
            raise RuntimeError("Attempted to call `variable.set_data(tensor)`, but `variable` and `tensor` have "
                               f"incompatible tensor type ({value.device} and {self.device}).")
        self.array = value.array

    # ---- metadata ----
    @property
    def shape(self):
        return Size(self.array.shape)

    def size(self, dim=None):
        return Size(self.array.shape) if dim is None else self.array.shape[_wrap_dim(dim, self.array.ndim)]

    @property
    def dtype(self):
        return dtypes.from_numpy(self.array.dtype)

    @property
    def device(self):
        if isinstance(self.array, np.ndarray):
            return CPU
        return Device("cuda", self.array.device.id)

    @property
    def is_cuda(self):
        return not isinstance(self.array, np.ndarray)

    @property
    def ndim(self):
        return self.array.ndim

    def dim(self):
        return self.array.ndim

    def numel(self):
        return self.array.size

    def element_size(self):
        return self.array.itemsize

    def stride(self, dim=None):
        strides = tuple(s // self.array.itemsize for s in self.array.strides)
        return strides if dim is None else strides[_wrap_dim(dim, self.array.ndim)]

    def is_contiguous(self):
        return self.array.flags.c_contiguous

    def is_floating_point(self):
        return dtypes.is_float(self.array.dtype)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def _version_number(self):
        return self._version[0]

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __repr__(self):
        return _format(self)

    def __hash__(self):
        return id(self)

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.array)

    def __iter__(self):
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.array.shape[0]))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.array.dtype.kind not in "iub" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        return self.numpy() if dtype is None else self.numpy().astype(dtype)

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self.numpy(), self.requires_grad))

    # ---- conversion ----
    def item(self):
        if self.array.size != 1:
            raise RuntimeError(f"a Tensor with {self.array.size} elements cannot be converted to Scalar")
        return self.array.reshape(()).item() if isinstance(self.array, np.ndarray) else self.array.item()

    def tolist(self):
        """Nested Python lists of the values (copied; works on grad-requiring and GPU tensors)."""
        return self.array.tolist()

    def numpy(self):
        """The data as a numpy array (shares memory on the CPU)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if not isinstance(self.array, np.ndarray):
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy "
                            "the tensor to host memory first.")
        return self.array

    def detach(self):
        out = Tensor(self.array)
        out._version = self._version
        return out

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def clone(self):
        return ops.clone(self)

    def contiguous(self):
        return self if self.array.flags.c_contiguous else ops.clone(self)

    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False):
        """`x.to(distml.float64)`, `x.to("cuda")`, `x.to(other)`, `x.to("cuda", distml.float16)`."""
        for arg in args:
            if isinstance(arg, dtypes.dtype):
                dtype = arg
            elif isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            else:
                device = arg
        out = self
        if device is not None:
            out = ops.convert.to_device(out, Device(device), non_blocking=non_blocking)
        if dtype is not None and dtype != out.dtype:
            out = ops.convert.cast(out, dtype)
        if copy and out is self:
            out = ops.clone(self)
        return out

    def type(self, dtype=None):
        if dtype is None:
            return f"distml.{_TYPE_NAMES[self.array.dtype.name]}"
        return self.to(dtype)

    def cuda(self, device=None, non_blocking=False):
        return self.to(Device("cuda", device) if isinstance(device, int) else (device or "cuda"),
                       non_blocking=non_blocking)

    def cpu(self):
        return self.to(CPU)

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def short(self):
        return self.to(dtypes.int16)

    def char(self):
        return self.to(dtypes.int8)

    def byte(self):
        return self.to(dtypes.uint8)

    def bool(self):
        return self.to(dtypes.bool)

    def pin_memory(self):
        """Page-locked host memory needs a GPU; without one this raises as PyTorch does."""
        raise RuntimeError("Cannot access accelerator device when none is available.")

    def is_pinned(self):
        return False

    def new_tensor(self, data, dtype=None, requires_grad=False):
        from distml.creation import tensor
        return tensor(data, dtype=dtype or self.dtype, device=self.device, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None):
        from distml.creation import zeros
        return zeros(*size, dtype=dtype or self.dtype, device=self.device)

    def new_ones(self, *size, dtype=None):
        from distml.creation import ones
        return ones(*size, dtype=dtype or self.dtype, device=self.device)

    def new_full(self, size, fill_value, dtype=None):
        from distml.creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, device=self.device)

    def new_empty(self, *size, dtype=None):
        from distml.creation import empty
        return empty(*size, dtype=dtype or self.dtype, device=self.device)

    # ---- autograd ----
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not dtypes.is_float(self.array.dtype):
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                               "a computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`: `loss.backward()`."""
        from distml.autograd import backward
        backward(self, gradient, retain_graph=retain_graph, inputs=inputs)

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            self._hooks = self._hooks or []
            hooks = self._hooks
        else:
            self.grad_fn.hooks = self.grad_fn.hooks or {}
            hooks = self.grad_fn.hooks.setdefault(self.output_nr, [])
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call `hook(tensor)` after backward accumulates into this leaf's `.grad` (DDP uses it)."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        self._post_hooks = self._post_hooks or []
        self._post_hooks.append(hook)
        return _RemovableHandle(self._post_hooks, hook)

    def retain_grad(self):
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            import weakref
            self.grad_fn.retained = self.grad_fn.retained or {}
            self.grad_fn.retained[self.output_nr] = weakref.ref(self)

    @property
    def retains_grad(self):
        return self.grad_fn is not None and self.output_nr in (self.grad_fn.retained or {})

    def _inplace_input(self, *args):
        """self as the input of an in-place op: when the op is recorded, a copy that keeps self's
        history, so that backward reads the values from before the write (PyTorch saves them too)."""
        from distml.autograd.grad_mode import _State
        if not _State.enabled or not (self.requires_grad or any(isinstance(a, Tensor) and a.requires_grad
                                                                for a in args)):
            return self
        before = Tensor(self.array.copy())
        before.requires_grad, before.grad_fn, before.output_nr = self.requires_grad, self.grad_fn, self.output_nr
        return before

    def _inplace(self, result):
        """Make `result` (computed out of place from self) the new value of self."""
        from distml.autograd.grad_mode import is_grad_enabled
        if self.requires_grad and self.grad_fn is None and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if result.requires_grad and self._base is not None and self._base.requires_grad:
            raise RuntimeError("in-place operations on a view of a tensor that requires grad are not supported "
                               "by distml; use the out-of-place form")
        if result.array.dtype != self.array.dtype and not np.can_cast(result.array.dtype, self.array.dtype, "same_kind"):
            raise RuntimeError(f"result type {dtypes.from_numpy(result.array.dtype).legacy_name} can't be "
                               f"cast to the desired output type {self.dtype.legacy_name}")
        if result.array.shape != self.array.shape:
            raise RuntimeError(f"output with shape {list(self.array.shape)} doesn't match the broadcast shape "
                               f"{list(result.array.shape)}")
        self.array[...] = result.array
        self._version[0] += 1
        if result.requires_grad:
            self.grad_fn, self.output_nr = result.grad_fn, result.output_nr
            self.requires_grad = True
        return self

    # ---- arithmetic ----
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.floor_divide(other, self)

    def __mod__(self, other):
        return ops.remainder(self, other)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __invert__(self):
        return ops.logical_not(self) if self.array.dtype == np.bool_ else ops.bitwise_not(self)

    def __and__(self, other):
        return ops.logical_and(self, other) if self.array.dtype == np.bool_ else ops.bitwise_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other) if self.array.dtype == np.bool_ else ops.bitwise_or(self, other)

    def __xor__(self, other):
        return ops.logical_xor(self, other) if self.array.dtype == np.bool_ else ops.bitwise_xor(self, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __iadd__(self, other):
        return self._inplace(ops.add(self, other))

    def __isub__(self, other):
        return self._inplace(ops.sub(self, other))

    def __imul__(self, other):
        return self._inplace(ops.mul(self._inplace_input(other), other))

    def __itruediv__(self, other):
        return self._inplace(ops.div(self._inplace_input(other), other))

    def __getitem__(self, index):
        return ops.index.getitem(self, index)

    def __setitem__(self, index, value):
        ops.index.setitem(self, index, value)

    def add_(self, other, alpha=1):
        return self._inplace(ops.add(self, other, alpha=alpha))

    def sub_(self, other, alpha=1):
        return self._inplace(ops.sub(self, other, alpha=alpha))

    def mul_(self, other):
        return self._inplace(ops.mul(self._inplace_input(other), other))

    def div_(self, other, rounding_mode=None):
        return self._inplace(ops.div(self._inplace_input(other), other, rounding_mode=rounding_mode))

    def pow_(self, exponent):
        return self._inplace(ops.pow(self._inplace_input(exponent), exponent))

    def addcmul_(self, tensor1, tensor2, value=1):
        return self._inplace(ops.add(self, ops.mul(tensor1, tensor2), alpha=value))

    def addcdiv_(self, tensor1, tensor2, value=1):
        return self._inplace(ops.add(self, ops.div(tensor1, tensor2), alpha=value))

    def lerp_(self, end, weight):
        return self._inplace(ops.add(self, ops.mul(ops.sub(end, self), weight)))

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        return self._inplace(ops.convert.full_like_value(self, value))

    def copy_(self, source, non_blocking=False):
        return self._inplace(ops.convert.expand_as_copy(source, self))

    def where(self, condition, other):
        return ops.where(condition, self, other)

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from distml.random import uniform_
        return uniform_(self, a, b, generator)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from distml.random import normal_
        return normal_(self, mean, std, generator)

    def bernoulli_(self, p=0.5, generator=None):
        from distml.random import bernoulli_
        return bernoulli_(self, p, generator)

    def random_(self, low=0, high=None, generator=None):
        from distml.random import random_
        return random_(self, low, high, generator)

    def exponential_(self, lambd=1.0, generator=None):
        from distml.random import exponential_
        return exponential_(self, lambd, generator)

    @property
    def T(self):
        return ops.permute(self, tuple(range(self.array.ndim - 1, -1, -1)))

    @property
    def mT(self):
        return ops.transpose(self, -2, -1)


class _RemovableHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _wrap_dim(dim, ndim):
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {dim})")
    return dim % rank


def _rebuild(array, requires_grad):
    t = Tensor(array)
    t.requires_grad = requires_grad
    return t


_TYPE_NAMES = {"float16": "HalfTensor", "float32": "FloatTensor", "float64": "DoubleTensor",
               "int8": "CharTensor", "int16": "ShortTensor", "int32": "IntTensor", "int64": "LongTensor",
               "uint8": "ByteTensor", "bool": "BoolTensor"}


def _format(t):
    array = t.array if isinstance(t.array, np.ndarray) else t.array.get()
    if dtypes.is_float(array.dtype) and array.size:
        finite = array[np.isfinite(array)].astype(np.float64)
        integral = finite.size == 0 or bool(np.all(finite == np.round(finite)))
        big = finite.size and (np.abs(finite).max() >= 1e8 or (0 < np.abs(finite[finite != 0]).min(initial=1) < 1e-4))
        options = dict(floatmode="maxprec" if integral else "fixed", precision=4, suppress_small=not big)
    else:
        options = {}
    body = np.array2string(array, separator=", ", prefix="tensor(", threshold=1000, **options)
    if array.size == 0:
        body = "[]" if array.ndim == 1 else body
    extras = []
    default_float = dtypes.get_default_dtype().np
    if array.dtype not in (default_float, np.int64, np.bool_) or (array.size == 0 and array.dtype != default_float):
        extras.append(f"dtype={t.dtype!r}")
    if array.size == 0 and array.ndim != 1:
        extras.append(f"size={tuple(array.shape)}")
    if t.is_cuda:
        extras.append(f"device='{t.device}'")
    if t.grad_fn is not None:
        extras.append(f"grad_fn={t.grad_fn!r}")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


from distml import ops  # noqa: E402  (ops are built on Tensor; distml/__init__.py attaches their methods)
