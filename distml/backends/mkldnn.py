"""`distml.backends.mkldnn`: oneDNN, which distml is not built with (PyTorch's CPU build is, and says True)."""


def is_available():
    return False
