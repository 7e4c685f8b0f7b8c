"""`distml.backends.openmp`: whether distml's compiled kernels use OpenMP threads."""
from distml._backend import C


def is_available():
    return bool(C.build_info()["openmp"])
