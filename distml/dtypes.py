"""distml dtypes (PyTorch's names) over NumPy dtypes, and PyTorch's type promotion."""
import builtins

import ml_dtypes
import numpy as np

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def is_float(np_dtype):
    """Whether a NumPy dtype is floating point: kind 'f', or ml_dtypes' bfloat16 (whose kind is 'V')."""
    return np_dtype.kind == "f" or np_dtype == _BFLOAT16


class dtype:
    """A tensor element type: `distml.float32`, with `.is_floating_point` and `.itemsize`."""

    __slots__ = ("name", "legacy_name", "np", "is_floating_point", "is_signed", "itemsize")

    def __init__(self, name, np_dtype, legacy_name):
        self.name = name
        self.legacy_name = legacy_name  # what PyTorch's error messages call it: Float, Long, ...
        self.np = np.dtype(np_dtype)
        self.is_floating_point = is_float(self.np)
        self.is_signed = self.is_floating_point or self.np.kind == "i"
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

ALL = (float16, float32, float64, bfloat16, int8, int16, int32, int64, uint8, bool)
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


def _category(np_dtype):
    return 2 if np_dtype == _BFLOAT16 else {"b": 0, "u": 1, "i": 1, "f": 2}[np_dtype.kind]


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

