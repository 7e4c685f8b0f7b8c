"""distml: a PyTorch-style deep-learning framework for data-parallel training over MPI.

    import distml as torch
    x = torch.randn(3, requires_grad=True)
    (x * x).sum().backward()
"""
from distml import dtypes, return_types
from distml._backend import C as _C
from distml.autograd.grad_mode import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,
                                      no_grad, set_grad_enabled)
from distml.creation import (arange, as_tensor, empty, empty_like, empty_strided, eye, from_numpy, full, full_like,
                             linspace, logspace, ones, ones_like, scalar_tensor, tensor, zeros, zeros_like)
from distml.device import device
from distml.dtypes import (bfloat16, bool, can_cast, cdouble, cfloat, complex64, complex128, double, dtype, finfo,
                           float, float16, float32, float64, get_default_dtype, half, iinfo, int, int8, int16, int32,
                           int64, long, promote_types, set_default_dtype, short, uint8)
from distml.random import (Generator, bernoulli, default_generator, get_rng_state, initial_seed, manual_seed,
                           multinomial, normal, rand, rand_like, randint, randint_like, randn, randn_like, randperm,
                           seed, set_rng_state)
from distml.tensor import (BFloat16Tensor, BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor, HalfTensor,
                           IntTensor, LongTensor, ShortTensor, Size, Tensor, channels_last, channels_last_3d,
                           contiguous_format, get_printoptions, is_complex, is_floating_point, is_nonzero, is_tensor,
                           layout, memory_format, numel, preserve_format, result_type, set_default_tensor_type,
                           set_printoptions, strided)
from distml.threads import get_num_threads, set_num_threads
from distml.compiler import compile  # noqa: A001  (PyTorch's name)
from distml import autograd, nn, optim, utils  # noqa: E402
from distml import accelerator, amp, backends, cpu, cuda, multiprocessing  # noqa: E402
from distml import distributions, fft, linalg, special, testing  # noqa: E402
from distml import onnx  # noqa: E402  (imports the onnx package only when export runs)
from distml import profiler  # noqa: E402
from distml import futures  # noqa: E402
from distml.amp.autocast_mode import (autocast, clear_autocast_cache, get_autocast_dtype, is_autocast_cache_enabled,  # noqa: E402
                                      is_autocast_enabled, set_autocast_cache_enabled, set_autocast_dtype,
                                      set_autocast_enabled)
from distml.sparse import sparse_coo  # noqa: E402  (importing it binds distml.sparse too)
from distml.backends import (are_deterministic_algorithms_enabled,  # noqa: E402
                             is_deterministic_algorithms_warn_only_enabled, use_deterministic_algorithms)
from distml.serialization import load, save  # noqa: E402

from distml.ops.registry import FUNCTIONS as _FUNCTIONS, install_methods as _install_methods  # noqa: E402

globals().update(_FUNCTIONS)  # every op declared with @register is a top-level function ...
_install_methods(Tensor)  # ... and, where it says so, a Tensor method

from distml.version import __version__  # noqa: E402,F401
