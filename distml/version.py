"""`distml.version`, as torch.version: what this build is (`distml.version.__version__`)."""
__version__ = "0.1.0"
cuda = None  # the CUDA version the build targets, as torch's CPU build says: none yet
hip = None
debug = False
