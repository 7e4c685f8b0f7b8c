"""Allreduce and half-precision compression hooks for DDP (PyTorch's default_hooks).

    model.register_comm_hook(None, fp16_compress_hook)   # float16 on the wire, half the bytes
"""
import numpy as np

import distml
from distml import distributed as dist
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


def fp16_compress_hook(process_group, bucket):
    """Cast the bucket to float16, divide by the group size, allreduce (float16 sums), and cast
    the result back into the bucket's dtype.

        model.register_comm_hook(None, fp16_compress_hook)
    """
    buffer = bucket.buffer()
    compressed = buffer.to(distml.float16).div_(dist.get_world_size(process_group))

    def decompress(fut):
        buffer.copy_(fut.value()[0])
        return buffer

    return dist.all_reduce(compressed, group=process_group, async_op=True).get_future().then(decompress)


def bf16_compress_hook(process_group, bucket):
    """As fp16_compress_hook, in bfloat16 (float32's range, 8 bits of mantissa).

        model.register_comm_hook(None, bf16_compress_hook)

    distml's reducing collectives have no bfloat16 arithmetic yet, so the bfloat16 values are
    all-gathered (2 bytes an element on the wire) and summed here in float32 in rank order; the
    sum is rounded to bfloat16, as a bfloat16 allreduce returns it.
    """
    buffer = bucket.buffer()
    world_size = dist.get_world_size(process_group)
    compressed = buffer.to(distml.bfloat16).div_(world_size)
    bits = compressed.array.view(np.int16)  # the collectives move int16; the bits are bfloat16's
    gathered = np.empty(world_size * bits.size, np.int16)
    work = dist.all_gather_into_tensor(Tensor(gathered), Tensor(bits), group=process_group, async_op=True)

    def decompress(fut):
        values = gathered.view(compressed.array.dtype).reshape(world_size, -1).astype(np.float32)
        total = values[0].copy()
        for row in values[1:]:
            total += row
        buffer.copy_(Tensor(total.astype(compressed.array.dtype)))
        return buffer

    return work.get_future().then(decompress)
