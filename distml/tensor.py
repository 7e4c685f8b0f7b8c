"""Tensor: an array (numpy on the CPU, cupy on the GPU) plus what autograd needs.

Math methods come from `distml.ops`, where each op is defined once and declares itself a
method (`@register(method=True)`); what is written here is what is Tensor's own.
"""
import collections.abc
import math
import numbers
import warnings
from copy import deepcopy

import numpy as np

from distml import _backend, dtypes
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


class _NamedConstant:
    """A singleton that distml exports by its name: prints as `distml.<name>`, pickles as itself
    (subclasses say `__module__ = "distml"`, where pickle looks the name up)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"distml.{self.name}"

    def __reduce__(self):
        return self.name


class layout(_NamedConstant):
    """How a tensor's elements are stored: `distml.strided` (a dense array with strides) is distml's layout."""

    __slots__ = ()
    __module__ = "distml"


class memory_format(_NamedConstant):
    """The order of a new tensor's elements in memory: `x.contiguous(memory_format=distml.channels_last)`.

    `preserve_format` keeps the input's order where the input is dense (else row-major),
    `contiguous_format` is row-major, `channels_last` / `channels_last_3d` store NCHW / NCDHW
    tensors with the channels innermost (as NHWC / NDHWC)."""

    __slots__ = ()
    __module__ = "distml"


strided = layout("strided")
preserve_format = memory_format("preserve_format")
contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
_NO_DATA = object()  # Tensor() without arguments: PyTorch's empty 1-D tensor


class Tensor:
    """An n-dimensional array with autograd: `distml.tensor([[1., 2.]], requires_grad=True)`.

    `t.array` is the numpy/cupy array underneath (distml's own handle; `t.data` is PyTorch's
    detached Tensor over the same memory). `Tensor(array)` wraps a numpy/cupy array without
    copying (distml's internal constructor; PyTorch would copy it into the default dtype).
    Otherwise `Tensor(...)` is PyTorch's legacy constructor: `Tensor(2, 3)` (uninitialised, default
    float dtype), `Tensor([1, 2])` (a copy in the default float dtype), `Tensor(other)` (other's
    data, any dtype), `Tensor()` (empty, shape (0,)). Its keyword forms `size=` and `device=` (only
    "cpu" there) are left to `FloatTensor(size=..., device=...)` & co., so that the internal
    `Tensor(array)` pays for no keyword arguments.
    """

    __slots__ = ("array", "requires_grad", "grad", "grad_fn", "output_nr", "_version", "_base", "_hooks", "_post_hooks",
                 "__weakref__")
    __array_priority__ = 1000  # numpy scalars defer to Tensor's reflected operators
    # What this class of tensor is not (a sparse tensor class says True): read-only, as in PyTorch.
    is_sparse = is_sparse_csr = is_quantized = is_meta = is_mkldnn = is_nested = is_xpu = is_mps = False

    def __init__(self, data=_NO_DATA, *sizes):
        # The hot path is the internal Tensor(ndarray): one type check before the fields.
        if type(data) is not np.ndarray or sizes:
            _construct(self, data, sizes)
            return
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
    def is_cpu(self):
        return isinstance(self.array, np.ndarray)

    @property
    def layout(self):
        return strided

    @property
    def ndim(self):
        return self.array.ndim

    def dim(self):
        return self.array.ndim

    def ndimension(self):
        return self.array.ndim

    def numel(self):
        return self.array.size

    def nelement(self):
        return self.array.size

    def element_size(self):
        return self.array.itemsize

    @property
    def itemsize(self):
        return self.array.itemsize

    @property
    def nbytes(self):
        """The bytes of this tensor's elements (not of the memory it views): numel * itemsize."""
        return self.array.size * self.array.itemsize

    def stride(self, dim=None):
        strides = tuple(s // self.array.itemsize for s in self.array.strides)
        return strides if dim is None else strides[_wrap_dim(dim, self.array.ndim)]

    def data_ptr(self):
        """The address of the first element."""
        return _address(self.array)

    def storage_offset(self):
        """How many elements past the start of the memory it views this tensor starts: `x[1].storage_offset()`."""
        return (_address(self.array) - _address(_root(self.array))) // self.array.itemsize

    def is_contiguous(self, *, memory_format=contiguous_format):
        """Whether the elements lie in row-major order (or in `memory_format`'s order) without gaps."""
        _check_memory_format(memory_format, "is_contiguous")
        if memory_format in (contiguous_format, preserve_format):
            return self.array.flags.c_contiguous
        order = _CHANNELS_LAST.get((memory_format, self.array.ndim))
        return order is not None and _laid_out_in(self.array, order)

    def is_floating_point(self):
        return dtypes.is_float(self.array.dtype)

    def is_complex(self):
        return self.array.dtype.kind == "c"

    def is_signed(self):
        return self.dtype.is_signed

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

    def __format__(self, format_spec):
        """A 0-d tensor formats as its number (`f"{loss:.4f}"`); others as `object` does (only "")."""
        if self.array.ndim == 0 and type(self) is Tensor:
            return self.array.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __hash__(self):
        return id(self)  # PyTorch's: hash(t) == id(t)

    def __bool__(self):
        if self.array.size != 1:
            amount = "no values" if self.array.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {amount} is ambiguous")
        return bool(self.array)

    def __iter__(self):
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.array.shape[0]))

    def __reversed__(self):
        """self flipped along dim 0 (a 0-d tensor is itself), as PyTorch's `reversed(t)`."""
        return self if self.array.ndim == 0 else ops.flip(self, 0)

    def __contains__(self, element):
        """`3 in t`, `row in t`: whether any element of `element == self` is true."""
        if not isinstance(element, (Tensor, numbers.Number)):
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                               f"{type(element)}.")
        return bool((element == self).array.any())

    def __float__(self):
        if self.requires_grad:
            warnings.warn("Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior.\n"
                          "Consider using tensor.detach() first.", UserWarning, stacklevel=2)
        return float(self._scalar())

    def __int__(self):
        return int(self._scalar())

    def __complex__(self):
        return complex(self._scalar())

    def __index__(self):
        if self.array.dtype.kind not in "iub" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        """NumPy's view of a CPU tensor (`np.asarray(t)` shares memory); NumPy 2's `copy`: True always
        copies, False raises when a copy is needed (a dtype change), None copies only then."""
        array = self.numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            if copy is False:
                raise ValueError(f"Unable to avoid copy while creating an array as requested: the tensor is "
                                 f"{array.dtype}, not {np.dtype(dtype)}.")
            return array.astype(dtype)
        return array.copy() if copy else array

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self.array, self.requires_grad))

    def __deepcopy__(self, memo):
        """A leaf copy with its own memory (views of one tensor stay views of one copy), requires_grad and grad."""
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment.  If you were attempting to deepcopy a module, this may be "
                               "because of a torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        new = type(self).__new__(type(self))
        Tensor.__init__(new, _deepcopy_array(self.array, memo))
        new.requires_grad = self.requires_grad
        memo[id(self)] = new
        if self.grad is not None:
            new.grad = deepcopy(self.grad, memo)
        return new

    # ---- conversion ----
    def item(self):
        if self.array.size != 1:
            raise RuntimeError(f"a Tensor with {self.array.size} elements cannot be converted to Scalar")
        return self.array.reshape(()).item() if isinstance(self.array, np.ndarray) else self.array.item()

    def _scalar(self):
        """The one element as a Python number, for int(t), float(t), complex(t)."""
        if self.array.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.item()

    def tolist(self):
        """Nested Python lists of the values (copied; works on grad-requiring and GPU tensors)."""
        return self.array.tolist()

    def numpy(self, *, force=False):
        """The data as a numpy array (shares memory on the CPU); `force=True` detaches and copies
        to the host first when needed."""
        if force:
            return self.detach().cpu().array
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if not isinstance(self.array, np.ndarray):
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy "
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

    def clone(self, *, memory_format=preserve_format):
        """A copy that autograd tracks; its elements keep self's order in memory where self is dense
        (`memory_format` chooses another: `x.clone(memory_format=distml.contiguous_format)`)."""
        if memory_format is None:
            memory_format = preserve_format
        _check_memory_format(memory_format, "clone")
        return _copy_in_order(self, _dim_order(self.array, memory_format))

    def contiguous(self, *, memory_format=contiguous_format):
        """self when its elements are already in row-major order (or `memory_format`'s), else a copy that is."""
        _check_memory_format(memory_format, "contiguous")
        if self.is_contiguous(memory_format=memory_format):
            return self
        if memory_format is preserve_format:
            raise RuntimeError("preserve memory format is unsupported by the contiguous operator")
        return _copy_in_order(self, _dim_order(self.array, memory_format))

    def to(self, *args, **kwargs):
        """PyTorch's three forms: `x.to(distml.float64)`, `x.to("cuda", distml.float16)` / `x.to(device=...)`,
        `x.to(other)` (other's dtype and device); each also takes non_blocking, copy and (by keyword) memory_format.
        Returns self when nothing changes, unless copy=True."""
        device, dtype, non_blocking, copy, memory_format = _to_arguments(args, kwargs)
        out = self
        if device is not None:
            out = ops.convert.to_device(out, Device(device), non_blocking=non_blocking)
        if dtype is not None and dtype.np != out.array.dtype:
            out = ops.convert.cast(out, dtype)
        if memory_format is not preserve_format:
            out = out.contiguous(memory_format=memory_format)
        if copy and out is self:
            out = self.clone(memory_format=memory_format)
        return out

    def type(self, dtype=None, non_blocking=False):
        """`x.type()` is PyTorch's type string, 'torch.FloatTensor' ('torch.cuda.FloatTensor' on a GPU), the
        string PyTorch programs compare with. `x.type(distml.LongTensor)`, `x.type('torch.LongTensor')`
        (or 'distml.LongTensor') and `x.type(distml.int64)` convert (self when nothing changes)."""
        on_cuda = not isinstance(self.array, np.ndarray)
        if dtype is None:
            return _type_name(self.dtype, on_cuda)
        target, cuda = _legacy_type_of(dtype)
        device = None if cuda is None or cuda == on_cuda else ("cuda" if cuda else "cpu")
        if device is None and target.np == self.array.dtype:
            return self
        return self.to(device=device, dtype=target, non_blocking=non_blocking)

    def type_as(self, other):
        """self in other's dtype (and legacy type): `x.type_as(y)`."""
        if not isinstance(other, Tensor):
            raise TypeError(f"type_as(): argument 'other' (position 1) must be Tensor, not {type(other).__name__}")
        return self.type(other.type())

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
        """A copy in page-locked host memory, so `.to("cuda", non_blocking=True)` copies asynchronously;
        needs a usable CUDA device (without one this raises as PyTorch does): `x.pin_memory()`."""
        return ops.convert.pin_memory(self)

    def is_pinned(self):
        """Whether the values are in page-locked host memory (False while no CUDA device is usable)."""
        if _backend.cuda_unavailable_reason() is not None:
            return False
        return ops.convert.is_pinned(self.array)

    def share_memory_(self):
        """Move the values into shared memory (in place), so processes started later share them."""
        from distml.multiprocessing.reductions import share_memory_
        return share_memory_(self)

    def is_shared(self):
        from distml.multiprocessing.reductions import is_shared
        return is_shared(self)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A copy of data with self's dtype and device unless given: `x.new_tensor([1, 2])`."""
        from distml.creation import _copy_data
        if isinstance(data, Tensor):
            warnings.warn("To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone() "
                          "or sourceTensor.detach().clone().requires_grad_(True), rather than "
                          "tensor.new_tensor(sourceTensor).", UserWarning, stacklevel=2)
        return _copy_data(data, dtype or self.dtype, device or self.device, requires_grad)

    def new_zeros(self, *args, size=None, dtype=None, layout=strided, device=None, pin_memory=False,
                  requires_grad=False):
        """Zeros of the given size (ints, a tuple or `size=`) with self's dtype and device unless given."""
        from distml.creation import zeros
        return zeros(*args, size=size, dtype=dtype or self.dtype, layout=layout, device=device or self.device,
                     pin_memory=pin_memory, requires_grad=requires_grad)

    def new_ones(self, *args, size=None, dtype=None, layout=strided, device=None, pin_memory=False,
                 requires_grad=False):
        from distml.creation import ones
        return ones(*args, size=size, dtype=dtype or self.dtype, layout=layout, device=device or self.device,
                    pin_memory=pin_memory, requires_grad=requires_grad)

    def new_empty(self, *args, size=None, dtype=None, layout=strided, device=None, pin_memory=False,
                  requires_grad=False):
        from distml.creation import empty
        return empty(*args, size=size, dtype=dtype or self.dtype, layout=layout, device=device or self.device,
                     pin_memory=pin_memory, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, layout=strided, device=None, pin_memory=False,
                 requires_grad=False):
        from distml.creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, layout=layout, device=device or self.device,
                    pin_memory=pin_memory, requires_grad=requires_grad)

    # ---- autograd ----
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not (dtypes.is_float(self.array.dtype) or self.array.dtype.kind == "c"):
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
        """The dims reversed (the transpose of a matrix); PyTorch warns for other than 2-D tensors."""
        if self.array.ndim != 2:
            warnings.warn(_T_ON_0D if self.array.ndim == 0 else _T_NOT_2D, UserWarning, stacklevel=2)
        return ops.permute(self, tuple(range(self.array.ndim - 1, -1, -1)))

    @property
    def mT(self):
        """The last two dims swapped: the transpose of each matrix in a batch."""
        if self.array.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got "
                               f"{self.array.ndim}-D tensor.")
        return ops.transpose(self, -2, -1)

    @property
    def H(self):
        """The conjugate transpose of a matrix (a 0-d tensor is itself, with T's warning)."""
        if self.array.ndim == 0:
            return self.T
        if self.array.ndim != 2:
            hint = " For batches of matrices, consider using tensor.mH" if self.array.ndim > 2 else ""
            raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got {self.array.ndim}-D "
                               f"tensor.{hint}")
        return self.mH

    @property
    def real(self):
        """The real part (for real tensors, the tensor itself)."""
        return ops.complex_parts.real(self)

    @property
    def imag(self):
        """The imaginary part of a complex tensor (real tensors raise, as PyTorch)."""
        return ops.complex_parts.imag(self)

    @property
    def mH(self):
        """The conjugate transpose of each matrix in a batch."""
        if self.array.ndim < 2:
            raise RuntimeError(f"tensor.mH is only supported on matrices or batches of matrices. Got "
                               f"{self.array.ndim}-D tensor.")
        out = ops.transpose(self, -2, -1)
        return out.conj() if self.array.dtype.kind == "c" else out


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


_T_NOT_2D = ("The use of `x.T` on tensors of dimension other than 2 to reverse their shape is deprecated and it will "
             "throw an error in a future release. Consider `x.mT` to transpose batches of matrices or "
             "`x.permute(*torch.arange(x.ndim - 1, -1, -1))` to reverse the dimensions of a tensor.")
_T_ON_0D = "Tensor.T is deprecated on 0-D tensors. This function is the identity in these cases."


# ---- constructing: Tensor(...), the legacy types FloatTensor & co. ----

def _construct(tensor, data, sizes):
    """Tensor.__init__ beyond wrapping a numpy array: cupy arrays and numpy scalars are wrapped too
    (distml's internal use); the rest is PyTorch's legacy constructor."""
    if not sizes and (isinstance(data, (np.ndarray, np.generic)) or (cupy is not None and isinstance(data, cupy.ndarray))):
        Tensor.__init__(tensor, np.asarray(data) if isinstance(data, np.generic) else data)
        return
    args = () if data is _NO_DATA else (data,) + sizes
    array = _legacy_array(None, args, None, None)
    if not isinstance(data, Tensor):
        Tensor.__init__(tensor, array)
        return
    # Tensor(other) aliases other: same memory and version counter, and autograd sees through it.
    alias = data.view_as(data) if data.requires_grad else data.detach()
    Tensor.__init__(tensor, alias.array)
    tensor.requires_grad, tensor.grad_fn, tensor._version, tensor._base = (alias.requires_grad, alias.grad_fn,
                                                                         alias._version, alias._base)


_LEGACY_SIGNATURES = ("\n * (*, distml.device device = None)\n * (Tensor other)\n"
                      " * (tuple of ints size, *, distml.device device = None)\n"
                      " * (object data, *, distml.device device = None)\n")


def _legacy_array(dtype, args, device, size):
    """The array of PyTorch's legacy constructors `Tensor(*args)` / `FloatTensor(*args)` (CPU tensors):
    no argument -> empty 1-D; ints or a Size (or `size=`) -> uninitialised of that shape; a Tensor -> its
    array (a typed constructor requires its dtype); a sequence -> a copy in dtype (Tensor: the default float)."""
    from distml.creation import _copy_data, empty
    if device is not None and Device(device).type != "cpu":
        raise RuntimeError(f"legacy constructor expects device type: cpu but device type: {Device(device).type} "
                           "was passed")
    if size is not None:
        if args:
            raise TypeError(f"new() received an invalid combination of arguments - got ({_labels(args)}, "
                            f"size={_label(size)}), but expected one of:{_LEGACY_SIGNATURES}")
        args = (Size(size),)
    target = dtype or dtypes.get_default_dtype()
    if len(args) == 1 and not isinstance(args[0], Size) and not _is_int(args[0]):
        data = args[0]
        if isinstance(data, Tensor):
            if device is not None:
                raise RuntimeError("Legacy tensor constructor of the form torch.Tensor(tensor, device=device) is "
                                   "not supported.  Use torch.tensor(...) or torch.as_tensor(...) instead.")
            if dtype is not None and data.array.dtype != dtype.np:
                raise TypeError(f"expected {_type_name(dtype, False)} (a {dtype} tensor), got a {data.dtype} tensor")
            return data.array
        if isinstance(data, str):
            raise TypeError("new(): invalid data type 'str'")
        if not _is_sequence(data):
            raise TypeError(f"new(): data must be a sequence (got {_label(data)})")
        return _copy_data(data, target, None, False).array
    sizes = args[0] if len(args) == 1 and isinstance(args[0], Size) else args or (0,)
    if args and not _is_int(args[0]) and not isinstance(args[0], Size):
        raise TypeError(f"new() received an invalid combination of arguments - got ({_labels(args)}), but expected "
                        f"one of:{_LEGACY_SIGNATURES}")
    for position, s in enumerate(sizes, 1):
        if not (_is_int(s) or isinstance(s, bool) or _is_int_tensor(s)):
            raise TypeError(f"new(): argument 'size' failed to unpack the object at pos {position} with error "
                            f"\"type must be tuple of ints,but got {_label(s)}\"")
    return empty(tuple(int(s) for s in sizes), dtype=target).array


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _is_int_tensor(x):
    return isinstance(x, Tensor) and x.array.dtype.kind in "iu" and x.array.size == 1


def _is_sequence(x):
    """What PyTorch accepts as data: a sequence (list, tuple, range, array) but not a mapping."""
    return isinstance(x, collections.abc.Sequence) or (
        hasattr(type(x), "__getitem__") and hasattr(type(x), "__len__") and not isinstance(x, collections.abc.Mapping))


def _label(x):
    """How PyTorch's argument errors name a value's type: Tensor, distml.dtype, int, numpy.ndarray, ..."""
    if isinstance(x, Tensor):
        return "Tensor"
    kind = type(x)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"


def _labels(args):
    return ", ".join(_label(a) for a in args)


class _LegacyTensorType(type):
    """The class of distml.FloatTensor & co., PyTorch's legacy tensor types: calling one makes a Tensor of
    its dtype (`distml.LongTensor([1, 2])`, `distml.FloatTensor(2, 3)`, as `Tensor(...)` does), and
    `isinstance(t, distml.FloatTensor)` asks whether t is a float32 tensor on the CPU (on CUDA for a type
    made with is_cuda=True, as torch.cuda.FloatTensor)."""

    def __instancecheck__(cls, obj):
        return (isinstance(obj, Tensor) and obj.array.dtype == cls.dtype.np
                and isinstance(obj.array, np.ndarray) != cls.is_cuda)

    def __call__(cls, *args, device=None, size=None):
        if not cls.is_cuda:
            return Tensor(_legacy_array(cls.dtype, args, device, size))
        return Tensor(_legacy_array(cls.dtype, args, None, size)).cuda(device)


def _legacy_type(dtype, is_cuda=False):
    """PyTorch's legacy tensor type of dtype: `_legacy_type(distml.float32)` is distml.FloatTensor."""
    return _LegacyTensorType(f"{dtype.legacy_name}Tensor", (), {
        "dtype": dtype, "is_cuda": is_cuda, "is_sparse": False, "layout": strided,
        "__module__": "distml.cuda" if is_cuda else "distml",
        "__doc__": f"{dtype} tensors{' on CUDA' if is_cuda else ''}: `{dtype.legacy_name}Tensor([1, 2])`, "
                   f"`{dtype.legacy_name}Tensor(2, 3)`, `isinstance(t, {dtype.legacy_name}Tensor)`."})


HalfTensor = _legacy_type(dtypes.float16)
BFloat16Tensor = _legacy_type(dtypes.bfloat16)
FloatTensor = _legacy_type(dtypes.float32)
DoubleTensor = _legacy_type(dtypes.float64)
CharTensor = _legacy_type(dtypes.int8)
ShortTensor = _legacy_type(dtypes.int16)
IntTensor = _legacy_type(dtypes.int32)
LongTensor = _legacy_type(dtypes.int64)
ByteTensor = _legacy_type(dtypes.uint8)
BoolTensor = _legacy_type(dtypes.bool)


def _type_name(dtype, cuda):
    """PyTorch's type string of a dtype: 'torch.FloatTensor', 'torch.cuda.LongTensor'."""
    return f"torch.{'cuda.' if cuda else ''}{dtype.legacy_name}Tensor"


def _legacy_type_of(arg):
    """(dtype, whether on CUDA or None for "where it is") of x.type(arg)'s argument: a dtype, a legacy type,
    Tensor (the default type), or a type string ('torch.LongTensor', 'distml.cuda.FloatTensor')."""
    if isinstance(arg, dtypes.dtype):
        return arg, None
    if isinstance(arg, _LegacyTensorType):
        return arg.dtype, arg.is_cuda
    if arg is Tensor:
        return dtypes.get_default_dtype(), False
    if isinstance(arg, str):
        prefix, _, name = arg.partition(".")
        cuda = name.startswith("cuda.")
        name = name[len("cuda."):] if cuda else name
        for d in dtypes.ALL:
            if prefix in ("torch", "distml") and name == f"{d.legacy_name}Tensor":
                return d, cuda
    raise ValueError(f"invalid type: '{arg if isinstance(arg, str) else getattr(arg, '__name__', arg)}'")


def set_default_tensor_type(t):
    """Deprecated in PyTorch 2.1 (use set_default_dtype): `set_default_tensor_type(distml.DoubleTensor)`
    or `('torch.DoubleTensor')` makes float64 the default dtype."""
    warnings.warn("torch.set_default_tensor_type() is deprecated as of PyTorch 2.1, please use "
                  "torch.set_default_dtype() and torch.set_default_device() as alternatives.", UserWarning,
                  stacklevel=2)
    if not isinstance(t, (str, _LegacyTensorType)):
        raise TypeError("invalid type object: only floating-point types are supported as the default type")
    dtype, cuda = _legacy_type_of(t)
    if cuda:
        raise TypeError(f"type {_type_name(dtype, True)} not available: distml makes new tensors on the CPU")
    if not dtype.is_floating_point:
        raise TypeError("only floating-point types are supported as the default type")
    dtypes.set_default_dtype(dtype)


# ---- dtype and memory-format arguments ----

_PYTHON_DTYPES = {float: dtypes.float64, int: dtypes.int64, bool: dtypes.bool}


def _as_dtype(d, function):
    """A `dtype=` argument as a distml dtype (None stays None): distml dtypes; Python's float, int, bool
    as PyTorch reads them (float64, int64, bool); NumPy dtypes too (distml's own convenience)."""
    if d is None or isinstance(d, dtypes.dtype):
        return d
    if _is_dtype_like(d):
        return _PYTHON_DTYPES[d]
    if isinstance(d, np.dtype) or (isinstance(d, type) and issubclass(d, np.generic)):
        return dtypes.from_numpy(np.dtype(d))
    raise TypeError(f"{function}(): argument 'dtype' must be distml.dtype, not {_label(d)}")


def _is_dtype_like(x):
    """A distml dtype or one of the Python types PyTorch takes for a dtype."""
    return isinstance(x, dtypes.dtype) or (isinstance(x, type) and x in _PYTHON_DTYPES)


_TO_SIGNATURES = (
    "\n * (distml.device device = None, distml.dtype dtype = None, bool non_blocking = False, bool copy = False, *, "
    "distml.memory_format memory_format = None)"
    "\n * (distml.dtype dtype, bool non_blocking = False, bool copy = False, *, "
    "distml.memory_format memory_format = None)"
    "\n * (Tensor tensor, bool non_blocking = False, bool copy = False, *, distml.memory_format memory_format = None)\n")


def _to_arguments(args, kwargs):
    """(device, dtype, non_blocking, copy, memory_format) of Tensor.to's three signatures, or PyTorch's TypeError."""
    if args and _is_dtype_like(args[0]):
        names = ("dtype", "non_blocking", "copy")
    elif args and isinstance(args[0], Tensor):
        names = ("tensor", "non_blocking", "copy")
    else:
        names = ("device", "dtype", "non_blocking", "copy")
    bound = dict(zip(names, args))
    valid = len(args) <= len(names) and all(k in names + ("memory_format",) and k not in bound for k in kwargs)
    bound.update(kwargs)
    device, dtype = bound.get("device"), bound.get("dtype")
    if "tensor" in bound:
        valid = valid and isinstance(bound["tensor"], Tensor)
        device, dtype = bound["tensor"].device, bound["tensor"].dtype
    memory_format_ = bound.get("memory_format") or preserve_format
    valid = (valid and (dtype is None or _is_dtype_like(dtype))
             and (device is None or isinstance(device, (str, Device)) or _is_int(device))
             and all(isinstance(bound.get(k, False), bool) for k in ("non_blocking", "copy"))
             and isinstance(memory_format_, memory_format))
    if not valid:
        got = ", ".join([_label(a) for a in args] + [f"{k}={_label(v)}" for k, v in kwargs.items()])
        raise TypeError(f"to() received an invalid combination of arguments - got ({got}), but expected one "
                        f"of:{_TO_SIGNATURES}")
    return (device, _as_dtype(dtype, "to"), bound.get("non_blocking", False), bound.get("copy", False),
            memory_format_)


_CHANNELS_LAST = {(channels_last, 4): (0, 2, 3, 1), (channels_last_3d, 5): (0, 2, 3, 4, 1)}
_FORMAT_RANK = {channels_last: 4, channels_last_3d: 5}


def _check_memory_format(fmt, function):
    if not isinstance(fmt, memory_format):
        raise TypeError(f"{function}(): argument 'memory_format' must be distml.memory_format, not {_label(fmt)}")


def _dim_order(array, fmt):
    """The dims, outermost first, in which a new array shaped like `array` lays out its elements for
    memory format fmt (preserve_format: array's own order where array is dense); None for row-major."""
    if fmt is not preserve_format:
        return _format_order(fmt, array.ndim)
    if array.flags.c_contiguous:
        return None
    order = tuple(sorted(range(array.ndim), key=lambda d: -array.strides[d]))
    return order if _laid_out_in(array, order) else None


def _format_order(fmt, ndim):
    """The dims, outermost first, of memory format fmt (other than preserve_format) for ndim dims;
    None for row-major."""
    if fmt is contiguous_format:
        return None
    order = _CHANNELS_LAST.get((fmt, ndim))
    if order is None:
        raise RuntimeError(f"required rank {_FORMAT_RANK[fmt]} tensor to use {fmt.name} format")
    return order


def _laid_out_in(array, order):
    """Whether array's elements lie without gaps with dims `order` from outermost to innermost
    (size-1 dims may have any stride, as in PyTorch)."""
    expected = array.itemsize
    for d in reversed(order):
        if array.shape[d] != 1:
            if array.strides[d] != expected:
                return False
            expected *= array.shape[d]
    return True


def _copy_in_order(x, order):
    """A tracked copy of x whose memory holds its dims in `order`, outermost first (row-major for None)."""
    if order is None:
        return ops.clone(x)
    inverse = tuple(int(d) for d in np.argsort(order))
    out = ops.permute(ops.clone(ops.permute(x, order)), inverse)
    out._base = None  # out views only the private copy, not a tensor anyone holds
    return out


# ---- memory ----

def _address(array):
    return array.__array_interface__["data"][0] if isinstance(array, np.ndarray) else array.data.ptr


def _root(array):
    """The array owning the memory that `array` views (array itself when it owns its memory)."""
    kind = get_array_module(array).ndarray
    while isinstance(array.base, kind):
        array = array.base
    return array


def _deepcopy_array(array, memo):
    """A copy of array for copy.deepcopy: within one deepcopy, views of one numpy array become views
    of one copy of it (as PyTorch keeps views of one storage)."""
    root = _root(array)
    root_copy = memo.get(id(root))
    if root_copy is None:
        root_copy = memo[id(root)] = root.copy(order="K")
    if root is array:
        return root_copy
    if isinstance(array, np.ndarray) and array.size and root.flags.c_contiguous and root_copy.flags.c_contiguous:
        return np.ndarray(array.shape, array.dtype, buffer=root_copy, offset=_address(array) - _address(root),
                          strides=array.strides)
    return array.copy(order="K")


# ---- out= ----

def write_out(result, out, function, warn_resize=True):
    """PyTorch's `out=` argument: result's values written into out, which is returned. out is resized when
    the shapes differ (warning, as PyTorch's ops do but its factories do not, when it had elements); its
    dtype must be one result casts to; ops recorded for autograd cannot write to out. Ops call it as
    `return write_out(result, out, "clamp")`."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{function}(): argument 'out' must be Tensor, not {_label(out)}")
    from distml.autograd.grad_mode import is_grad_enabled
    if is_grad_enabled() and (result.requires_grad or out.requires_grad):
        raise RuntimeError(f"{function}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    if result.device != out.device:
        raise RuntimeError(f"Expected out tensor to have device {result.device}, but got {out.device} instead")
    if not dtypes.can_cast(result.dtype, out.dtype):
        raise RuntimeError(f"result type {result.dtype.legacy_name} can't be cast to the desired output type "
                           f"{out.dtype.legacy_name}")
    if out.array.shape != result.array.shape:
        if out.array.size and warn_resize:
            warnings.warn(f"An output with one or more elements was resized since it had shape "
                          f"{list(out.array.shape)}, which does not match the required output shape "
                          f"{list(result.array.shape)}. This behavior is deprecated, and in a future PyTorch release "
                          "outputs will not be resized unless they have zero elements. You can explicitly reuse an "
                          "out tensor t by resizing it, inplace, to zero elements with t.resize_(0).",
                          UserWarning, stacklevel=3)
        out.array = get_array_module(out.array).empty(result.array.shape, dtype=out.array.dtype)
    out.array[...] = result.array
    out._version[0] += 1
    return out


# ---- top-level questions about tensors ----

def _require_tensor(x, function):
    if not isinstance(x, Tensor):
        raise TypeError(f"{function}(): argument 'input' (position 1) must be Tensor, not {_label(x)}")


def is_tensor(obj):
    """Whether obj is a distml Tensor (a Parameter is one): `distml.is_tensor(x)`."""
    return isinstance(obj, Tensor)


def is_floating_point(input):
    """Whether input's dtype is a floating-point one: `distml.is_floating_point(x)`."""
    _require_tensor(input, "is_floating_point")
    return input.is_floating_point()


def is_complex(input):
    """Whether input's dtype is a complex one: `distml.is_complex(x)`."""
    _require_tensor(input, "is_complex")
    return input.is_complex()


def is_nonzero(input):
    """The truth of a one-element tensor (PyTorch's errors for more or fewer elements)."""
    _require_tensor(input, "is_nonzero")
    return bool(input)


def numel(input):
    """How many elements input has: `distml.numel(x)`."""
    _require_tensor(input, "numel")
    return input.array.size


def result_type(tensor, other):
    """The dtype PyTorch's type promotion gives an op on tensor and other (tensors or Python numbers):
    `distml.result_type(distml.tensor([1]), 1.0)` is distml.float32."""
    if not all(isinstance(x, (Tensor, numbers.Number)) for x in (tensor, other)):
        raise TypeError(f"result_type() received an invalid combination of arguments - got ({_label(tensor)}, "
                        f"{_label(other)}), but expected one of:\n * (Tensor tensor, Tensor other)\n"
                        " * (Tensor tensor, Number other)\n * (Number scalar, Tensor tensor)\n"
                        " * (Number scalar1, Number scalar2)\n")
    return dtypes.from_numpy(dtypes.result_type(*(x.array if isinstance(x, Tensor) else x for x in (tensor, other))))


# ---- printing: PyTorch's format, on the numpy values ----

_PRINT_OPTIONS = dict(precision=4, threshold=1000, edgeitems=3, linewidth=80, sci_mode=None)
_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=float("inf"), edgeitems=3, linewidth=80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """How tensors print, as PyTorch's options: digits of precision, the element count above which
    printing summarises (threshold) with edgeitems per end, the line width, a profile ("default",
    "short", "full") and sci_mode (True/False forces scientific notation on/off; None chooses).
    `distml.set_printoptions(precision=2)`."""
    if profile is not None:
        _PRINT_OPTIONS.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            _PRINT_OPTIONS[name] = value
    _PRINT_OPTIONS["sci_mode"] = sci_mode


def get_printoptions():
    """The print options, as keywords for set_printoptions."""
    return dict(_PRINT_OPTIONS)


class _Formatter:
    """PyTorch's element formatter: one width for all elements; floats in integer ("1."), fixed or
    scientific notation, chosen from the nonzero finite values (or forced by sci_mode)."""

    def __init__(self, values):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        if not self.floating:
            self.width = max((len(str(v)) for v in values.reshape(-1).tolist()), default=1)
            return
        finite = values[np.isfinite(values) & (values != 0)]
        if finite.size == 0:
            return
        magnitude = np.abs(finite)
        low, high = magnitude.min(), magnitude.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        sci_mode = _PRINT_OPTIONS["sci_mode"]
        self.sci_mode = (high / low > 1000.0 or high > 1.0e8 or low < 1.0e-4) if sci_mode is None else sci_mode
        precision = _PRINT_OPTIONS["precision"]
        for v in finite.tolist():
            if self.sci_mode:
                text = f"{v:.{precision}e}"
            else:
                text = f"{v:.0f}." if self.int_mode else f"{v:.{precision}f}"
            self.width = max(self.width, len(text))

    def format(self, value):
        precision = _PRINT_OPTIONS["precision"]
        if not self.floating:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.width}.{precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{precision}f}"
        return (self.width - len(text)) * " " + text


def _element_text(value, real, imag):
    if imag is None:
        return real.format(value)
    imag_text = (imag.format(value.imag) + "j").lstrip()
    return real.format(value.real) + ("" if imag_text[0] in "+-" else "+") + imag_text


def _summarized(array):
    """The elements printing shows: edgeitems from each end of every long dimension."""
    edge = _PRINT_OPTIONS["edgeitems"]
    if array.ndim == 0:
        return array
    if array.ndim == 1:
        return np.concatenate([array[:edge], array[-edge:]]) if array.shape[0] > 2 * edge else array
    if not edge:
        return array[(slice(0, 0),) * array.ndim]
    rows = range(array.shape[0])
    if array.shape[0] > 2 * edge:
        rows = list(range(edge)) + list(range(array.shape[0] - edge, array.shape[0]))
    return np.stack([_summarized(array[i]) for i in rows])


def _array_text(array, indent, summarize, real, imag):
    edge = _PRINT_OPTIONS["edgeitems"]
    if array.ndim == 0:
        return _element_text(array.item(), real, imag)
    if array.ndim == 1:
        element_length = real.width + 2 + (0 if imag is None else imag.width + 1)
        per_line = max(1, math.floor((_PRINT_OPTIONS["linewidth"] - indent) / element_length))
        values = array.tolist()
        if summarize and not edge:
            data = ["..."]
        elif summarize and len(values) > 2 * edge:
            data = ([_element_text(v, real, imag) for v in values[:edge]] + [" ..."]
                    + [_element_text(v, real, imag) for v in values[-edge:]])
        else:
            data = [_element_text(v, real, imag) for v in values]
        lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(array.shape[0])
    if summarize and array.shape[0] > 2 * edge:
        rows = list(range(edge)) + [None] + list(range(array.shape[0] - edge, array.shape[0]))
    slices = ["..." if i is None else _array_text(array[i], indent + 1, summarize, real, imag) for i in rows]
    return "[" + ("," + "\n" * (array.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _values_text(array, indent):
    """PyTorch's text for an array's values (`[[1., 2.], [3., 4.]]`), summarised above threshold."""
    if array.size == 0:
        return "[]"
    if dtypes.is_float(array.dtype):
        array = array.astype(np.float64)  # formats as PyTorch formats each element's Python float
    summarize = array.size > _PRINT_OPTIONS["threshold"]
    shown = _summarized(array) if summarize else array
    if array.dtype.kind == "c":
        real, imag = _Formatter(shown.real), _Formatter(shown.imag)
    else:
        real, imag = _Formatter(shown), None
    return _array_text(array, indent, summarize, real, imag)


def _with_suffixes(text, suffixes, indent):
    """text + ", suffix"... + ")", starting a new line where one would pass the line width."""
    parts, last_line = [text], len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > _PRINT_OPTIONS["linewidth"]:
            parts.append(",\n" + " " * indent + suffix)
            last_line = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line += len(suffix) + 2
    return "".join(parts) + ")"


def _format(t):
    """repr(t) as PyTorch prints it: `tensor([1., 2.], dtype=distml.float64, requires_grad=True)`."""
    prefix = "tensor("
    array = t.array if isinstance(t.array, np.ndarray) else t.array.get()
    suffixes = [f"device='{t.device}'"] if t.is_cuda else []
    default_float = dtypes.get_default_dtype().np
    implied = (default_float, np.int64, np.bool_, dtypes.complex_of(default_float))  # PyTorch leaves these unsaid
    if array.size == 0:
        if array.ndim != 1:
            suffixes.append(f"size={tuple(array.shape)}")
        if array.dtype != default_float:
            suffixes.append(f"dtype={t.dtype!r}")
    else:
        if not _PRINT_OPTIONS["edgeitems"]:
            suffixes.append(f"size={tuple(array.shape)}")
        if array.dtype not in implied:
            suffixes.append(f"dtype={t.dtype!r}")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn={t.grad_fn!r}")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + _values_text(array, len(prefix)), suffixes, len(prefix))


from distml import ops  # noqa: E402  (ops are built on Tensor; distml/__init__.py attaches their methods)
