"""distml dtypes (PyTorch's names) over NumPy dtypes, and PyTorch's type promotion."""
import builtins

import ml_dtypes
import numpy as np

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def is_float(np_dtype):
    """Whether a NumPy dtype is floating point: kind 'f', or ml_dtypes' bfloat16 (whose kind is 'V')."""
    return np_dtype.kind == "f" or np_dtype == _BFLOAT16


def is_inexact(np_dtype):
    """Whether a NumPy dtype is floating point or complex: what division and float math keep."""
    return np_dtype.kind == "c" or is_float(np_dtype)


class dtype:
    """A tensor element type: `distml.float32`, with `.is_floating_point` and `.itemsize`."""

    __slots__ = ("name", "legacy_name", "np", "is_floating_point", "is_complex", "is_signed", "itemsize")

    def __init__(self, name, np_dtype, legacy_name):
        self.name = name
        self.legacy_name = legacy_name  # what PyTorch's error messages call it: Float, Long, ...
        self.np = np.dtype(np_dtype)
        self.is_floating_point = is_float(self.np)
        self.is_complex = self.np.kind == "c"
        self.is_signed = self.is_floating_point or self.np.kind in "ic"
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"distml.{self.name}"

    def __reduce__(self):
        return (_dtype_from_name, (self.name,))


float16 = half = dtype("float16", np.float16, "Half")
float32 = float = dtype("float32", np.float32, "Float")
float64 = double = dtype("float64", np.float64, "Double")
int8 = dtype("int8", np.int8, "Char")
int16 = short = dtype("int16", np.int16, "Short")
int32 = int = dtype("int32", np.int32, "Int")
int64 = long = dtype("int64", np.int64, "Long")
uint8 = dtype("uint8", np.uint8, "Byte")
bool = dtype("bool", np.bool_, "Bool")
bfloat16 = dtype("bfloat16", _BFLOAT16, "BFloat16")
complex64 = cfloat = dtype("complex64", np.complex64, "ComplexFloat")
complex128 = cdouble = dtype("complex128", np.complex128, "ComplexDouble")

ALL = (float16, float32, float64, bfloat16, int8, int16, int32, int64, uint8, bool, complex64, complex128)
_BY_NUMPY = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_default_float = float32


def _dtype_from_name(name):
    return _BY_NAME[name]


def from_numpy(np_dtype):
    """The distml dtype of a NumPy dtype; TypeError for ones distml does not support."""
    try:
        return _BY_NUMPY[np_dtype]
    except KeyError:
        pass
    try:
        return _BY_NUMPY[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"can't convert np.ndarray of type {np_dtype}. The only supported types are: "
                        + ", ".join(d.name for d in ALL)) from None


def to_numpy(d):
    """NumPy dtype for a distml dtype, a NumPy dtype, or a Python type (float, int, bool)."""
    if d is None:
        return None
    if isinstance(d, dtype):
        return d.np
    if d is builtins.float:
        return _default_float.np
    return from_numpy(d).np


def set_default_dtype(d):
    """Set the dtype of float tensors made from Python floats: `distml.set_default_dtype(distml.float64)`."""
    global _default_float
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def get_default_dtype():
    return _default_float


def default_float_np():
    return _default_float.np


def complex_of(np_dtype):
    """The complex dtype with np_dtype's precision: float32 -> complex64, float64 -> complex128."""
    return np.dtype(np.complex64 if np.dtype(np_dtype).itemsize <= 4 else np.complex128)


def _category(np_dtype):
    return 2 if np_dtype == _BFLOAT16 else {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[np_dtype.kind]


def result_type(*operands):
    """PyTorch's promotion for tensors (NumPy arrays) and Python scalars.

    The highest category (bool < integer < float) wins; within it, dimensioned tensors
    decide before zero-dim tensors, which decide before Python scalars.
    """
    tiers = ([], [], [])
    for x in operands:
        if isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__"):
            tiers[0 if x.ndim else 1].append(x.dtype)
        elif isinstance(x, builtins.bool):
            tiers[2].append(np.dtype(np.bool_))
        elif isinstance(x, (builtins.int, np.integer)):
            tiers[2].append(np.dtype(np.int64))
        elif isinstance(x, builtins.complex):
            tiers[2].append(complex_of(_default_float.np))
        else:
            tiers[2].append(_default_float.np)
    best = max(_category(d) for tier in tiers for d in tier)
    for tier in tiers:
        chosen = [d for d in tier if _category(d) == best]
        if chosen:
            result = chosen[0]
            for d in chosen[1:]:
                result = np.promote_types(result, d)
            return result


# ---- questions about dtypes: finfo, iinfo, promote_types, can_cast (PyTorch's answers) ----

_PYTHON_TYPES = {builtins.bool: bool, builtins.int: int64, builtins.float: float64, builtins.complex: complex128}


def _dtype_argument(d, function, name, position):
    """d as a distml dtype (Python's bool/int/float/complex as PyTorch reads them), or PyTorch's TypeError."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, type) and d in _PYTHON_TYPES:
        return _PYTHON_TYPES[d]
    raise TypeError(f"{function}(): argument '{name}' (position {position}) must be distml.dtype, "
                    f"not {type(d).__name__}")


class finfo:
    """The limits of a floating-point (or complex: its real part's) dtype: `distml.finfo(distml.float16).max`;
    `distml.finfo()` is the default dtype's."""

    __slots__ = ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype")

    def __init__(self, type=None):
        d = _default_float if type is None else _dtype_argument(type, "finfo", "type", 1)
        if not (d.is_floating_point or d.is_complex):
            raise TypeError("distml.finfo() requires a floating point input type. Use distml.iinfo to handle "
                            "'distml.finfo'")
        info = ml_dtypes.finfo(d.np) if d.np == _BFLOAT16 else np.finfo(d.np)
        self.bits = info.bits
        self.eps, self.max, self.min = builtins.float(info.eps), builtins.float(info.max), builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.smallest_normal)
        self.resolution = 10.0 ** -info.precision  # PyTorch's rounding (ml_dtypes' bfloat16 says 0.0100098)
        self.dtype = "bfloat16" if d.np == _BFLOAT16 else info.dtype.name

    def __eq__(self, other):
        return isinstance(other, finfo) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """The limits of an integer dtype: `distml.iinfo(distml.int32).max`."""

    __slots__ = ("bits", "max", "min", "dtype")

    def __init__(self, type):
        d = _dtype_argument(type, "iinfo", "type", 1)
        if d is bool:
            raise TypeError("distml.bool is not supported by distml.iinfo")
        if d.np.kind not in "iu":
            raise TypeError("distml.iinfo() requires an integer input type. Use distml.finfo to handle "
                            "'distml.iinfo'")
        info = np.iinfo(d.np)
        self.bits, self.max, self.min, self.dtype = info.bits, builtins.int(info.max), builtins.int(info.min), d.name

    def __eq__(self, other):
        return isinstance(other, iinfo) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"


def promote_types(type1, type2):
    """The dtype PyTorch promotes two dtypes to: `promote_types(distml.int64, distml.float16)` is float16
    (bool < integers < floats < complex; within a kind the wider; float16 with bfloat16 is float32)."""
    a = _dtype_argument(type1, "promote_types", "type1", 1)
    b = _dtype_argument(type2, "promote_types", "type2", 2)
    if a is b:
        return a
    ka, kb = _category(a.np), _category(b.np)
    if ka != kb:
        low, high = (a, b) if ka < kb else (b, a)
        if high.is_complex and low.is_floating_point and low.itemsize > high.itemsize // 2:
            return complex128
        return high
    if a.is_floating_point:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize > b.itemsize else b
    return _BY_NUMPY[np.promote_types(a.np, b.np)]


def can_cast(from_, to):
    """Whether PyTorch's casting rules allow from_ -> to (what an in-place op or out= may write):
    no complex to real, no float to integer, nothing but bool to bool."""
    a = _dtype_argument(from_, "can_cast", "from_", 1)
    b = _dtype_argument(to, "can_cast", "to", 2)
    if a.is_complex and not b.is_complex:
        return False
    if a.is_floating_point and not (b.is_floating_point or b.is_complex):
        return False
    return a is bool or b is not bool
