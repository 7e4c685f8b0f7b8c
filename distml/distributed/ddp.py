"""DistributedDataParallel: replicas that average gradients in buckets while backward runs.

    model = DistributedDataParallel(model)     # after init_process_group()
    loss_fn(model(x), y).backward()            # bucket allreduces overlap the backward pass
    optimizer.step()

Communication hooks replace the averaging allreduce of each bucket, with PyTorch's signature:

    def hook(state, bucket: dist.GradBucket) -> distml.futures.Future[distml.Tensor]:
        fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
        return fut.then(lambda f: f.value()[0].div_(dist.get_world_size()))
    model.register_comm_hook(state=None, hook=hook)

The hook is called from backward as soon as its bucket is full (buckets are handed over in
index order); the reducer waits for the returned Futures in bucket order when the last gradient
is ready (so `then` callbacks run at the end of backward, bucket by bucket) and copies each
Future's tensor into the bucket's `.grad`s. A hook can do more than communicate: to step an
optimizer shard as soon as its bucket is reduced (PyTorch's `hook_with_zero_step`), wrap a
hook and chain the step on its Future:

    def hook_with_step(state, bucket):
        fut = allreduce_hook(state.process_group, bucket)   # or a reduce-scatter of the buffer
        def step(f):
            reduced = f.value()
            state.step_shard(bucket.index(), bucket.parameters(), reduced)  # your shard's update
            return reduced                   # becomes the gradients (bucket.buffer() if unchanged)
        return fut.then(step)

`bucket.is_last()` tells the hook that the iteration's last bucket is being reduced. Hooks
also run on ranks that have joined (`join()`), on buffers of zeros, to match the others.
"""
import warnings
from contextlib import contextmanager

import numpy as np

from distml import distributed as dist
from distml.autograd.grad_mode import is_grad_enabled, no_grad
from distml.distributed.algorithms.join import Join, Joinable, JoinHook
from distml.distributed.grad_bucket import GradBucket
from distml.nn import Module
from distml.profiler import _recorder
from distml.tensor import Tensor

_FIRST_BUCKET_BYTES = 1 << 20  # small, so the first allreduce starts early in backward


def _bucket_parameters(params, cap_bytes):
    """Group parameters of one dtype together, in reverse registration order (roughly the order
    backward makes their gradients ready): each dtype's first bucket holds about 1 MiB, the rest
    up to `cap_bytes`. Buckets are ordered by the position of their first parameter."""
    done, open_buckets, seen = [], {}, set()
    for position, p in enumerate(reversed(params)):
        dtype = p.array.dtype
        if dtype not in open_buckets:
            cap = cap_bytes if dtype in seen else min(_FIRST_BUCKET_BYTES, cap_bytes)
            seen.add(dtype)
            open_buckets[dtype] = {"first": position, "params": [], "bytes": 0, "cap": cap}
        bucket = open_buckets[dtype]
        bucket["params"].append(p)
        bucket["bytes"] += p.array.nbytes
        if bucket["bytes"] >= bucket["cap"]:
            done.append(open_buckets.pop(dtype))
    done.extend(open_buckets.values())
    return [b["params"] for b in sorted(done, key=lambda b: b["first"])]


def _views(params, flat):
    """Views into the flat buffer, one per parameter, shaped like it."""
    views, offset = [], 0
    for p in params:
        views.append(flat[offset:offset + p.array.size].reshape(p.array.shape))
        offset += p.array.size
    return views


class _Bucket:
    def __init__(self, params, index, world_size):
        self.params, self.index = params, index
        numel = sum(p.array.size for p in params)
        # `buffer` starts `storage`, padded to a multiple of the group size, which a reduce-scatter
        # of the whole bucket (ddp_zero_hook) takes in place.
        self.storage = np.zeros(-(-numel // world_size) * world_size, dtype=params[0].array.dtype)
        self.buffer = self.storage[:numel]
        self.views = _views(params, self.buffer)
        self.pending = len(params)
        self.work = None    # the default allreduce
        self.future = None  # a comm hook's result

    def fill(self, as_view):
        """Gather the gradients into the flat buffer; with `as_view`, make each `.grad` the view."""
        for p, view in zip(self.params, self.views):
            if p.grad is None:
                view[...] = 0
            elif p.grad.array is not view:
                view[...] = p.grad.array
                if as_view:
                    p.grad = Tensor(view)

    def grad_bucket(self, count):
        return GradBucket(self.index, count, Tensor(self.buffer), [Tensor(v) for v in self.views],
                          list(self.params))

    def write_back(self, as_view, globally_unused=frozenset()):
        """The reduced buffer becomes the gradients (they already are, as views); the `.grad` of
        a parameter no rank used (ids in globally_unused) is left as it was, as PyTorch does."""
        for p, view in zip(self.params, self.views):
            if id(p) in globally_unused or (p.grad is not None and p.grad.array is view):
                continue
            if as_view:
                p.grad = Tensor(view)
            elif p.grad is None:
                p.grad = Tensor(view.copy())
            else:
                p.grad.array[...] = view


class _Reducer:
    """Tracks which gradients are ready and hands buckets, in index order, to the allreduce or
    the comm hook as they fill; at the last gradient it waits for them and writes the results."""

    def __init__(self, named_params, bucket_cap_mb, group, gradient_as_bucket_view):
        self.group = group
        self.world_size = dist.get_world_size(group)
        self.as_view = gradient_as_bucket_view
        self.names = {id(p): name for name, p in named_params}
        params = [p for _, p in named_params]
        groups = _bucket_parameters(params, int(bucket_cap_mb * (1 << 20)))
        self.buckets = [_Bucket(b, i, self.world_size) for i, b in enumerate(groups)]
        self.bucket_of = {id(p): bucket for bucket in self.buckets for p in bucket.params}
        self.hook, self.hook_state = None, None
        self.params = params
        self.find_unused = False  # find_unused_parameters or static_graph: skip the globally unused
        self.used_work = None     # the allreduce of which parameters each rank used
        self.ready = set()
        self.used = set()  # ids of the parameters whose gradient hook ran in this iteration
        self.next_bucket = 0
        self.active = False
        self.divisor = None  # join(divide_by_initial_world_size=False): the Work counting active ranks
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
        self.used.clear()
        self.launch_log = []
        self.next_bucket = 0
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)
        self.active = True
        for p in unused:
            self._mark_ready(p)

    def _missing_names(self):
        return [self.names[id(p)] for bucket in self.buckets for p in bucket.params if id(p) not in self.ready]

    def _on_gradient(self, param):
        if self.active:
            self.used.add(id(param))
            self._mark_ready(param)

    def _mark_ready(self, param):
        if id(param) in self.ready:
            return
        self.ready.add(id(param))
        self.bucket_of[id(param)].pending -= 1
        # Buckets go out in index order, so that every rank issues the same collectives in turn.
        while self.next_bucket < len(self.buckets) and self.buckets[self.next_bucket].pending == 0:
            bucket = self.buckets[self.next_bucket]
            self.next_bucket += 1
            outstanding = sum(b.pending for b in self.buckets)
            self.launch_log.append((bucket.index, outstanding))
            bucket.fill(self.as_view)
            self._launch(bucket)
        if self.next_bucket == len(self.buckets):
            if self.find_unused:
                self.used_work = self._allreduce_used([id(p) in self.used for p in self.params])
            self._finish()

    def _allreduce_used(self, flags):
        """Start summing, over the ranks, which parameters each used (PyTorch's local_used_map)."""
        used = Tensor(np.array(flags, np.int32))
        return dist.all_reduce(used, group=self.group, async_op=True)

    def _globally_unused(self):
        """Ids of the parameters no rank used; waits for the used-map allreduce only when some
        parameter was unused here (as PyTorch, models that use everything never wait for it)."""
        work, self.used_work = self.used_work, None
        if work is None or len(self.used) == len(self.params):
            return frozenset()
        work.wait()
        counts = work.result()[0].array
        return frozenset(id(p) for p, count in zip(self.params, counts) if count == 0)

    def _launch(self, bucket):
        with _recorder.comm_args(bucket_index=bucket.index):
            if self.hook is None:
                bucket.work = dist.all_reduce(Tensor(bucket.buffer), group=self.group, async_op=True)
            else:
                bucket.future = self.hook(self.hook_state, bucket.grad_bucket(len(self.buckets)))

    def _finish(self):
        divisor = self.world_size
        if self.divisor is not None:
            self.divisor.wait()
            divisor = int(self.divisor.result()[0].item())
            self.divisor = None
        unused = self._globally_unused()
        for bucket in self.buckets:
            if self.hook is None:
                bucket.work.wait()
                bucket.work = None
                np.divide(bucket.buffer, divisor, out=bucket.buffer)
            else:
                future, bucket.future = bucket.future, None
                self._copy_result(bucket, future.wait())
            bucket.write_back(self.as_view, unused)
        self.active = False

    def _copy_result(self, bucket, result):
        if not isinstance(result, Tensor):
            raise RuntimeError(f"Communication hook: the Future must hold a Tensor, got {type(result).__name__}")
        if result.array.size != bucket.buffer.size:
            raise RuntimeError(f"Communication hook: the Future's tensor has {result.array.size} elements, "
                               f"expected the bucket's {bucket.buffer.size}")
        if result.array is not bucket.buffer:
            np.copyto(bucket.buffer, result.array.reshape(-1), casting="unsafe")

    def shadow_backward(self):
        """A joined rank's part of one backward: the same collectives, on buckets of zeros."""
        pending = []
        for bucket in self.buckets:
            zeros = np.zeros_like(bucket.buffer)
            if self.hook is None:
                pending.append(dist.all_reduce(Tensor(zeros), group=self.group, async_op=True))
            else:
                views = [Tensor(v) for v in _views(bucket.params, zeros)]
                grad_bucket = GradBucket(bucket.index, len(self.buckets), Tensor(zeros), views, list(bucket.params))
                pending.append(self.hook(self.hook_state, grad_bucket))
        if self.find_unused:  # the used map of a rank that used nothing
            pending.append(self._allreduce_used([False] * len(self.params)))
        for handle in pending:
            handle.wait()


class _DDPJoinHook(JoinHook):
    """What a DDP rank that ran out of inputs does while others train: mirror their collectives."""

    def __init__(self, ddp, divide_by_initial_world_size):
        self.ddp = ddp
        ddp._divide_by_initial_world_size = divide_by_initial_world_size

    def main_hook(self):
        ddp = self.ddp
        if ddp._will_sync_buffers():
            ddp._sync_buffers(ddp._common_rank(False))
        should_sync = ddp._global_backward_sync(is_joined_rank=True)
        ddp.require_forward_param_sync = should_sync
        if should_sync:
            ddp.reducer.shadow_backward()

    def post_hook(self, is_last_joiner):
        ddp = self.ddp
        _broadcast_coalesced(list(ddp.module.parameters()) + list(ddp.module.buffers()),
                             ddp._common_rank(is_last_joiner), ddp.process_group)


class DistributedDataParallel(Module, Joinable):
    """Data parallelism over MPI ranks: every rank holds a replica; gradients are averaged.

    Parameters and buffers are broadcast from rank 0 at construction; gradients are averaged
    in buckets (`bucket_cap_mb`, one dtype each) whose allreduces start from autograd hooks as
    soon as each bucket is complete, overlapping the rest of backward; buffers are broadcast
    from rank 0 in one collective before each forward (`broadcast_buffers`).
    `gradient_as_bucket_view=True` makes each `.grad` a view into its bucket (no copy back);
    `static_graph=True` promises that the set of used parameters never changes: it is found
    in the first iteration (as `find_unused_parameters` does every iteration) and kept. With
    either, a parameter that no rank used keeps its `.grad` as it was (None at first), as in
    PyTorch; one used on some ranks gets their gradients summed over the world size.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        Joinable.__init__(self)
        if not dist.is_initialized():
            raise RuntimeError("Default process group has not been initialized, please make sure to call "
                               "init_process_group.")
        if check_reduction:
            warnings.warn("The `check_reduction` argument in `DistributedDataParallel` module is deprecated. "
                          "Please avoid using it.", FutureWarning, stacklevel=2)
        params = list(module.parameters())
        if not any(p.requires_grad for p in params):
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter "
                               "that requires a gradient.")
        self._set_devices(params, device_ids, output_device)
        self.module = module
        self.dim = dim
        self.process_group = process_group
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self.static_graph = False
        self._static_unused = None  # static_graph: the unused parameters found in the first iteration
        self._divide_by_initial_world_size = True
        _check_same_model(module, process_group)
        _broadcast_coalesced(params + list(module.buffers()), self._first_rank(), process_group)
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self.reducer = _Reducer(named, bucket_cap_mb, process_group, gradient_as_bucket_view)
        self.reducer.find_unused = find_unused_parameters
        if static_graph:
            self._set_static_graph()

    def _set_devices(self, params, device_ids, output_device):
        """PyTorch's rules: device_ids (one device) and output_device only for single-GPU modules."""
        if device_ids is not None and len(device_ids) > 1:
            raise ValueError("device_ids can only be None or contain a single element.")
        devices = {p.device for p in params}
        types = {d.type for d in devices}
        if len(types) != 1:
            raise ValueError("DistributedDataParallel's input module must be on the same type of devices, but "
                             f"input module parameters locate in {types}.")
        self.device_type = next(iter(types))
        self.device = params[0].device
        if device_ids is None or len(device_ids) == 0 or self.device_type == "cpu" or len(devices) > 1:
            if device_ids or output_device:
                raise ValueError("DistributedDataParallel device_ids and output_device arguments only work with "
                                 "single-device/multiple-device GPU modules or CPU modules, but got device_ids "
                                 f"{device_ids}, output_device {output_device}, and module parameters {devices}.")
            self.device_ids = self.output_device = None
        else:
            self.device_ids = [_device_index(d) for d in device_ids]
            self.output_device = _device_index(device_ids[0] if output_device is None else output_device)

    def _set_static_graph(self):
        """Promise that the graph (which parameters get gradients) is the same every iteration."""
        if self.static_graph:
            warnings.warn("You've set static_graph to be True, no need to set it again.", stacklevel=2)
            return
        self.static_graph = True
        self.reducer.find_unused = True
        if self.find_unused_parameters:
            warnings.warn("You passed find_unused_parameters=true to DistributedDataParallel, "
                          "`_set_static_graph` will detect unused parameters automatically, so you do not need "
                          "to set find_unused_parameters=true, just be sure these unused parameters will not "
                          "change during training loop while calling `_set_static_graph`.", stacklevel=2)

    def register_comm_hook(self, state, hook):
        """Reduce each gradient bucket with `hook(state, bucket) -> Future[Tensor]` instead of the
        averaging allreduce (see the module docstring). Only once, and before backward."""
        _check_comm_hook(hook)
        if self.reducer.hook is not None:
            raise RuntimeError("register_comm_hook or register_builtin_comm_hook can only be called once.")
        if self.reducer.active:
            raise RuntimeError("register_comm_hook must be called before the backward pass that uses it.")
        self.reducer.hook, self.reducer.hook_state = hook, state

    def forward(self, *inputs, **kwargs):
        syncing = is_grad_enabled() and self.require_backward_grad_sync
        work = Join.notify_join_context(self)
        if work is not None and not self._divide_by_initial_world_size:
            self.reducer.divisor = work
        if self._will_sync_buffers():
            self._sync_buffers(self._common_rank(True) if self._join_config.enable else self._first_rank())
        if self._join_config.enable:
            self._global_backward_sync(is_joined_rank=False)
        if self.device_ids:
            inputs, kwargs = _to_device((inputs, kwargs), f"{self.device_type}:{self.device_ids[0]}")
        output = self.module(*inputs, **kwargs)
        self.require_forward_param_sync = syncing
        if syncing:
            self.reducer.prepare(self._unused(output))
        elif self.reducer.divisor is not None:
            self.reducer.divisor.wait()
            self.reducer.divisor = None
        return output

    def _unused(self, output):
        if self.static_graph:
            if self._static_unused is None:
                self._static_unused = _unused_parameters(self.module, output)
            return self._static_unused
        return _unused_parameters(self.module, output) if self.find_unused_parameters else ()

    def _will_sync_buffers(self):
        return self.require_forward_param_sync and self.broadcast_buffers and any(True for _ in self.module.buffers())

    def _first_rank(self):
        """The global rank of the group's rank 0: the authoritative replica outside join."""
        return self.process_group.ranks[0] if self.process_group is not None else 0

    def _sync_buffers(self, src):
        _broadcast_coalesced(list(self.module.buffers()), src, self.process_group)

    def _common_rank(self, candidate):
        """The largest rank for which `candidate` holds (the one whose replica is authoritative)."""
        rank = Tensor(np.array([dist.get_rank(self.process_group) if candidate else -1], np.int64))
        dist.all_reduce(rank, op=dist.ReduceOp.MAX, group=self.process_group)
        group_rank = int(rank.array[0])
        if group_rank == -1:
            raise ValueError("BUG! Expected rank_cond to be true for at least one process.")
        return self.process_group.ranks[group_rank] if self.process_group is not None else group_rank

    def _global_backward_sync(self, is_joined_rank):
        """Under join: tell the joined ranks whether this iteration's backward synchronises."""
        flag = np.ones(1, np.float32) if not is_joined_rank and self.require_backward_grad_sync else \
            np.zeros(1, np.float32)
        work = dist.all_reduce(Tensor(flag), group=self.process_group, async_op=True)
        if is_joined_rank:
            work.wait()
            return bool(flag[0] != 0)
        return None

    def join(self, divide_by_initial_world_size=True, enable=True, throw_on_early_termination=False):
        """Train on uneven inputs: ranks that ran out of batches shadow the others' collectives.

            with model.join():
                for x, y in my_batches:          # a different count on each rank
                    loss_fn(model(x), y).backward(); opt.step(); opt.zero_grad()

        divide_by_initial_world_size: gradients are divided by the world size DDP started
        with (True) or by the number of ranks that still have inputs (False).
        """
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs):
        return _DDPJoinHook(self, kwargs.get("divide_by_initial_world_size", True))

    @property
    def join_device(self):
        return self.device

    @property
    def join_process_group(self):
        return self.process_group

    @contextmanager
    def no_sync(self):
        """Accumulate gradients locally (no allreduce) inside the block: gradient accumulation."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous


def _check_comm_hook(hook):
    """PyTorch's checks: callable, and annotations (if any) of GradBucket and Future[Tensor]."""
    import inspect

    from distml.futures import Future
    if not callable(hook):
        raise TypeError("Communication hook must be callable.")
    sig = inspect.signature(hook)
    bucket = sig.parameters.get("bucket")
    if bucket is not None and bucket.annotation not in (inspect.Parameter.empty, GradBucket):
        raise ValueError("Communication hook: bucket annotation should be dist.GradBucket.")
    if sig.return_annotation not in (inspect.Signature.empty, Future[Tensor]):
        raise ValueError("Communication hook: return annotation should be distml.futures.Future[distml.Tensor].")


def _broadcast_coalesced(tensors, src, group):
    """Broadcast many tensors from global rank src in one collective: their bytes, packed."""
    arrays = [t.array for t in tensors]
    if not arrays:
        return
    sizes = [a.nbytes for a in arrays]
    packed = np.empty(sum(sizes), np.uint8)
    offset = 0
    for a, n in zip(arrays, sizes):
        packed[offset:offset + n] = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        offset += n
    dist.broadcast(Tensor(packed), src=src, group=group)
    offset = 0
    with no_grad():
        for a, n in zip(arrays, sizes):
            np.copyto(a, packed[offset:offset + n].view(a.dtype).reshape(a.shape))
            offset += n


def _device_index(device):
    if isinstance(device, int):
        return device
    index = getattr(device, "index", None)
    if index is None:
        raise ValueError(f"Expected a device with an index, got {device!r}")
    return index


def _to_device(value, device):
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


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
