"""`distml.backends.cudnn`: PyTorch's cuDNN switches.

distml calls no cuDNN kernel (its convolutions are im2col + matmul on numpy or cupy), so
`is_available()` is False and the flags, stored and read back as PyTorch's are so that programs
setting them run, change nothing:

    distml.backends.cudnn.benchmark = True
"""
from distml.backends._flags import install


def is_available():
    return False


def version():
    return None


install(__name__, enabled=True, benchmark=False, deterministic=False, allow_tf32=True)
