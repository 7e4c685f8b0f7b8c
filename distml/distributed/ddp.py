"""DistributedDataParallel: replicas that average gradients in buckets while backward runs.

    model = DistributedDataParallel(model)     # after init_process_group()
    loss_fn(model(x), y).backward()            # bucket allreduces overlap the backward pass
    optimizer.step()
"""
from contextlib import contextmanager

import numpy as np

from distml import distributed as dist
from distml.autograd.grad_mode import is_grad_enabled
from distml.nn import Module
from distml.profiler import _recorder
from distml.tensor import Tensor

_FIRST_BUCKET_BYTES = 1 << 20  # small, so the first allreduce starts early in backward


def _bucket_parameters(params, cap_bytes):
    """Group parameters in reverse registration order (roughly the order backward makes their
    gradients ready): the first bucket holds about 1 MiB, the rest up to `cap_bytes`."""
    buckets, current, size, cap = [], [], 0, min(_FIRST_BUCKET_BYTES, cap_bytes)
    for p in reversed(params):
        current.append(p)
        size += p.array.nbytes
        if size >= cap:
            buckets.append(current)
            current, size, cap = [], 0, cap_bytes
    if current:
        buckets.append(current)
    return buckets


class _Bucket:
    def __init__(self, params, index):
        self.params, self.index = params, index
        self.buffer = np.empty(sum(p.array.size for p in params), dtype=np.result_type(*[p.array for p in params]))
        self.pending = len(params)
        self.work = None

    def launch(self, group):
        """Copy the gradients into the flat buffer and start its allreduce (average)."""
        offset = 0
        for p in self.params:
            n = p.array.size
            if p.grad is None:
                self.buffer[offset:offset + n] = 0
            else:
                self.buffer[offset:offset + n] = p.grad.array.reshape(-1)
            offset += n
        with _recorder.comm_args(bucket_index=self.index):
            self.work = dist.all_reduce(Tensor(self.buffer), op=dist.ReduceOp.AVG, group=group, async_op=True)

    def finish(self):
        """Wait for the allreduce and write the averages back into each `.grad`."""
        self.work.wait()
        self.work = None
        offset = 0
        for p in self.params:
            n = p.array.size
            averaged = self.buffer[offset:offset + n].reshape(p.array.shape)
            if p.grad is None:
                p.grad = Tensor(averaged.astype(p.array.dtype, copy=True))
            else:
                p.grad.array[...] = averaged
            offset += n


class _Reducer:
    """Tracks which gradients are ready and launches each bucket's allreduce when it fills."""

    def __init__(self, named_params, bucket_cap_mb, group):
        self.group = group
        self.names = {id(p): name for name, p in named_params}
        params = [p for _, p in named_params]
        groups = _bucket_parameters(params, int(bucket_cap_mb * (1 << 20)))
        self.buckets = [_Bucket(b, i) for i, b in enumerate(groups)]
        self.bucket_of = {id(p): bucket for bucket in self.buckets for p in bucket.params}
        self.ready = set()
        self.active = False
        self.launch_log = []  # (bucket index, gradients still outstanding at launch): shows the overlap
        for p in params:
            p.register_post_accumulate_grad_hook(self._on_gradient)

    def prepare(self, unused=()):
        if self.active:
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a new one. This "
                "error indicates that your module has parameters that were not used in producing loss. You "
                "can enable unused parameter detection by passing the keyword argument "
                "`find_unused_parameters=True` to `distml.nn.parallel.DistributedDataParallel`. Parameters "
                f"that did not receive a gradient: {self._missing_names()}")
        self.ready.clear()
        self.launch_log = []
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)
        self.active = True
        for p in unused:
            self._mark_ready(p)

    def _missing_names(self):
        return [self.names[id(p)] for bucket in self.buckets for p in bucket.params if id(p) not in self.ready]

    def _on_gradient(self, param):
        if self.active:
            self._mark_ready(param)

    def _mark_ready(self, param):
        if id(param) in self.ready:
            return
        self.ready.add(id(param))
        bucket = self.bucket_of[id(param)]
        bucket.pending -= 1
        if bucket.pending == 0:
            outstanding = sum(b.pending for b in self.buckets)
            self.launch_log.append((self.buckets.index(bucket), outstanding))
            bucket.launch(self.group)
            if outstanding == 0:
                self._finish()

    def _finish(self):
        for bucket in self.buckets:
            bucket.finish()
        self.active = False


class DistributedDataParallel(Module):
    """Data parallelism over MPI ranks: every rank holds a replica; gradients are averaged.

    Parameters and buffers are broadcast from rank 0 at construction; gradients are averaged
    in buckets (`bucket_cap_mb`) whose allreduces start from autograd hooks as soon as each
    bucket is complete, overlapping the rest of backward.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("Default process group has not been initialized, please make sure to call "
                               "init_process_group.")
        self.module = module
        self.process_group = process_group
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        _check_same_model(module, process_group)
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t, src=0, group=process_group)
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self.reducer = _Reducer(named, bucket_cap_mb, process_group)

    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers:
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0, group=self.process_group)
        output = self.module(*inputs, **kwargs)
        if is_grad_enabled() and self.require_backward_grad_sync:
            unused = _unused_parameters(self.module, output) if self.find_unused_parameters else ()
            self.reducer.prepare(unused)
        return output

    @contextmanager
    def no_sync(self):
        """Accumulate gradients locally (no allreduce) inside the block: gradient accumulation."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous


def _check_same_model(module, group):
    """Raise on every rank if the replicas' parameters differ in count or shape."""
    signature = [(name, tuple(p.shape), p.dtype.name) for name, p in module.named_parameters()]
    signatures = [None] * dist.get_world_size(group)
    dist.all_gather_object(signatures, signature, group=group)
    for rank, other in enumerate(signatures):
        if other != signatures[0]:
            raise RuntimeError(
                f"DistributedDataParallel: the replicas differ: rank 0 has {len(signatures[0])} parameters "
                f"{_describe(signatures[0])} but rank {rank} has {len(other)} parameters {_describe(other)}")


def _describe(signature):
    return "[" + ", ".join(f"{name}: {list(shape)} {dtype}" for name, shape, dtype in signature) + "]"


def _unused_parameters(module, output):
    """Parameters that the autograd graph of `output` does not reach."""
    reached, stack = set(), [t.grad_fn or t for t in _tensors_in(output) if t.requires_grad]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, Tensor):
            reached.add(id(node))
        else:
            stack.extend(e for e in node.next_edges if e is not None)
    return [p for p in module.parameters() if p.requires_grad and id(p) not in reached]


def _tensors_in(output):
    if isinstance(output, Tensor):
        yield output
    elif isinstance(output, dict):
        for value in output.values():
            yield from _tensors_in(value)
    elif isinstance(output, (list, tuple)):
        for value in output:
            yield from _tensors_in(value)
