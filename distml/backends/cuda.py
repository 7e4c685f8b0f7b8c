"""`distml.backends.cuda`: whether distml has CUDA support, and PyTorch's cuBLAS switches.

    distml.backends.cuda.matmul.allow_tf32 = True

The matmul flag is stored and read back as PyTorch's is; distml's matrix products (numpy, or
cupy's defaults) do not read it.
"""
from distml import _backend
from distml.backends._flags import BoolFlag


def is_built():
    """True when cupy is installed (PyTorch: built with CUDA); a device may still be missing."""
    return _backend.cupy is not None


class _Matmul:
    __name__ = "distml.backends.cuda.matmul"
    allow_tf32 = BoolFlag(False)

    def __getattr__(self, name):
        raise AttributeError(f"Unknown attribute {name}")

    def __setattr__(self, name, value):
        if not isinstance(getattr(type(self), name, None), BoolFlag):
            raise AttributeError(f"Unknown attribute {name}")
        super().__setattr__(name, value)


matmul = _Matmul()
