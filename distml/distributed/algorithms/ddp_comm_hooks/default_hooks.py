"""Allreduce and half-precision compression hooks for DDP (PyTorch's default_hooks).

    model.register_comm_hook(None, fp16_compress_hook)   # float16 on the wire, half the bytes
"""
import numpy as np

import distml
from distml import distributed as dist, dtypes
from distml._backend import C
from distml.tensor import Tensor

__all__ = ["allreduce_hook", "fp16_compress_hook", "bf16_compress_hook"]


def _allreduce_fut(process_group, tensor):
    """Average `tensor` over the group (divided first, which keeps float16 from overflowing)."""
    tensor.div_(dist.get_world_size(process_group))
    return dist.all_reduce(tensor, group=process_group, async_op=True).get_future().then(lambda fut: fut.value()[0])


def allreduce_hook(process_group, bucket):
    """Average the bucket by allreduce: the same result as DDP without a hook.

        model.register_comm_hook(None, allreduce_hook)   # None: the default group
    """
    return _allreduce_fut(process_group, bucket.buffer())


def _to_half_divided(buffer, dtype, divisor):
    """buffer.to(dtype).div_(divisor) for float16 or bfloat16; float32 in one pass of C++ (NumPy's
    half casts are slow)."""
    array = buffer.array
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        return buffer.to(dtype).div_(divisor)
    out = np.empty(array.shape, dtypes.to_numpy(dtype))
    C.f32_to_half_divided(array, out, float(divisor))
    return Tensor(out)


def _copy_from_half(buffer, half):
    if buffer.array.dtype == np.float32 and buffer.array.flags.c_contiguous and half.array.flags.c_contiguous:
        C.half_to_f32(half.array, buffer.array)
    else:
        buffer.copy_(half)


def _compressed_allreduce(process_group, bucket, dtype):
    buffer = bucket.buffer()
    compressed = _to_half_divided(buffer, dtype, dist.get_world_size(process_group))

    def decompress(fut):
        _copy_from_half(buffer, fut.value()[0])
        return buffer

    return dist.all_reduce(compressed, group=process_group, async_op=True).get_future().then(decompress)


def fp16_compress_hook(process_group, bucket):
    """Cast the bucket to float16, divide by the group size, allreduce (float16 sums), and cast
    the result back into the bucket's dtype.

        model.register_comm_hook(None, fp16_compress_hook)
    """
    return _compressed_allreduce(process_group, bucket, distml.float16)


def bf16_compress_hook(process_group, bucket):
    """As fp16_compress_hook, in bfloat16 (float32's range, 8 bits of mantissa): the bfloat16
    allreduce sums in float32 and rounds to bfloat16 at every step, as PyTorch's.

        model.register_comm_hook(None, bf16_compress_hook)
    """
    return _compressed_allreduce(process_group, bucket, distml.bfloat16)
