"""Tensors in shared memory, and how multiprocessing sends them: as the same memory, not a copy.

`share_memory_(t)` moves t's values, in place, into an anonymous shared-memory file (a memfd on
Linux). Registered on multiprocessing's ForkingPickler (Queues, Pipes, Pool, the arguments of
spawn/forkserver processes), a Tensor travels as that file's descriptor plus its offset, shape and
strides, and the receiver maps the same memory: writes on either side are seen by the other.
Plain `pickle` (distml.save) still copies the values.

The file has no name, so nothing is ever left in /dev/shm: the kernel frees the memory when the
last process holding a mapping or descriptor of it lets go (or dies). As with PyTorch's default
"file_descriptor" strategy, a process that puts a tensor on a queue must stay alive until the
receiver has taken it off.
"""
import mmap
import os
import uuid
import weakref
from multiprocessing.reduction import DupFd, ForkingPickler

import numpy as np

from distml.nn.parameter import Parameter
from distml.tensor import Tensor

_ALIGN = 64  # bytes between tensors packed into one segment


class _Segment(mmap.mmap):
    """A shared mapping of one anonymous file. `fd` is kept open to send the memory on, `key`
    names the file in every process, `address` is where the mapping starts in this one."""


# key -> the _Segment mapped in this process: a file received twice is mapped once.
_segments = weakref.WeakValueDictionary()


def _anonymous_file(nbytes):
    """A descriptor of a new nbytes-long shared-memory file that has no name in any directory."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("distml-shared")
    else:
        import _posixshmem
        name = f"/distml-{uuid.uuid4().hex}"
        fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        _posixshmem.shm_unlink(name)
    try:
        os.ftruncate(fd, nbytes)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _map(fd, nbytes, key):
    """Map the file `fd` (which the new segment owns from now on) and remember it under `key`."""
    try:
        segment = _Segment(fd, nbytes)
    except BaseException:
        os.close(fd)
        raise
    segment.fd, segment.key = fd, key
    segment.address = np.frombuffer(segment, np.uint8).ctypes.data
    weakref.finalize(segment, os.close, fd)
    _segments[key] = segment
    return segment


def _root(array):
    """The object that owns `array`'s memory (a _Segment for shared tensors)."""
    while isinstance(array, np.ndarray):
        array = array.base
    return array


def is_shared(tensor):
    """Whether the tensor's values are in shared memory: `is_shared(t)` (Tensor.is_shared)."""
    return isinstance(_root(tensor.array), _Segment)


def share_memory_(tensor):
    """Move the tensor's values into shared memory in place and return it: `share_memory_(t)`
    (Tensor.share_memory_). A tensor already shared is left as it is.

    The Tensor object, its values, dtype, shape, requires_grad and grad stay; only the array
    underneath is replaced. A tensor viewing another tensor's array no longer aliases it afterwards
    (PyTorch moves the whole storage; distml moves this tensor's array).
    """
    share_tensors([tensor])
    return tensor


def share_tensors(tensors):
    """Move every tensor not yet shared into shared memory, all into one segment (one file
    descriptor per process for a whole model, where one per tensor can exhaust the limit)."""
    todo = list({id(t): t for t in tensors if not is_shared(t)}.values())
    for t in todo:
        if not isinstance(t.array, np.ndarray):
            raise NotImplementedError(f"distml shares CPU tensors between processes only, got a tensor on "
                                      f"{t.device} (PyTorch uses CUDA IPC); keep the shared model on the CPU")
    if not todo:
        return
    offsets, nbytes = [], 0
    for t in todo:
        offsets.append(nbytes)
        nbytes += -(-max(t.array.nbytes, 1) // _ALIGN) * _ALIGN
    key = uuid.uuid4().hex
    segment = _map(_anonymous_file(nbytes), nbytes, key)
    for t, offset in zip(todo, offsets):
        array = np.ndarray(t.array.shape, t.array.dtype, buffer=segment, offset=offset)
        array[...] = t.array
        t.array = array


def _reduce_tensor(tensor):
    if tensor.requires_grad and tensor.grad_fn is not None:
        raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd "
                           "does not support crossing process boundaries.  If you just want to transfer the data, "
                           "call detach() on the tensor before serializing (e.g., putting it on the queue).")
    share_memory_(tensor)
    array = tensor.array
    segment = _root(array)
    offset = array.__array_interface__["data"][0] - segment.address if array.size else 0
    return _rebuild_tensor, (type(tensor), segment, offset, array.shape, array.dtype, array.strides,
                             tensor.requires_grad)


def _rebuild_tensor(cls, segment, offset, shape, dtype, strides, requires_grad):
    array = np.ndarray(shape, dtype, buffer=segment, offset=offset, strides=strides)
    if cls is Parameter:
        return Parameter(array, requires_grad=requires_grad)
    tensor = Tensor(array)
    tensor.requires_grad = requires_grad
    return tensor


def _reduce_segment(segment):
    # Pickle's memo sends a segment once per message, however many tensors view it.
    return _rebuild_segment, (segment.key, len(segment), DupFd(segment.fd))


def _rebuild_segment(key, nbytes, dup_fd):
    fd = dup_fd.detach()
    segment = _segments.get(key)
    if segment is None:
        return _map(fd, nbytes, key)
    if fd != segment.fd:
        os.close(fd)
    return segment


def init_reductions():
    """Send Tensors, Parameters and their shared memory through ForkingPickler as shared memory."""
    ForkingPickler.register(Tensor, _reduce_tensor)
    ForkingPickler.register(Parameter, _reduce_tensor)
    ForkingPickler.register(_Segment, _reduce_segment)
