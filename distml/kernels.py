"""Where a fused kernel runs: the one place that picks `_C`'s kernel or the array-module version.

Each `_C` kernel binding serves both devices (csrc/buffer.h reads `__array_interface__` and
`__cuda_array_interface__`): numpy arrays run its CPU kernel, cupy arrays its CUDA twin when
`_C` was built with one (`build_info()["cuda_kernels"]`). Everything else (cupy without a twin,
dtypes the kernel lacks) takes the op's xp version. A call site reads

    xp = kernels.compiled("softmax_forward", x, kernels.FLOATS)
    if xp is not None:
        out = xp.empty_like(x)
        C.softmax_forward(x, out, outer, n, inner, log)
    else:
        out = _softmax_xp(x, dim, log)
"""
import numpy as np

from distml._backend import C, cupy

FLOATS = (np.float32, np.float64)

CUDA_KERNELS = frozenset(C.build_info()["cuda_kernels"])


def compiled(name, array, dtypes=None):
    """The array module (numpy or cupy) of `array` when `_C`'s kernel `name` takes it, else None:
    numpy arrays always, cupy arrays when `name` has a CUDA twin; `dtypes` (if given) lists the
    dtypes the kernel computes in."""
    if isinstance(array, np.ndarray):
        return np if dtypes is None or array.dtype in dtypes else None
    if (name in CUDA_KERNELS and cupy is not None and isinstance(array, cupy.ndarray)
            and (dtypes is None or array.dtype in dtypes)):
        return cupy
    return None


def choose(kernel, xp_version, array):
    """`kernel` (a `_C` function, or a Python one) where it serves `array`, else `xp_version`:
    `update = choose(C.sgd_step, sgd_xp, params[0])`."""
    return kernel if compiled(getattr(kernel, "__name__", ""), array) is not None else xp_version
