"""ZeRO inside DDP's gradient buckets (PyTorch's ddp_zero_hook), at the communication cost of DDP alone.

    zero = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=distml.optim.Adam,
                                   overlap_with_ddp=True, lr=1e-3)
    ddp.register_comm_hook(None, hook_with_zero_step(allreduce_hook, ddp, zero))
    loss_fn(ddp(x), y).backward()     # the parameters are updated when backward returns
    zero.zero_grad()                  # no zero.step(): the hook steps

A ring allreduce is a reduce-scatter followed by an all-gather. The hook splits them: each
bucket is reduce-scattered (every rank gets the average of its 1/N slice of the bucket), the
rank steps its slice with the local optimizer, and the updated slices are all-gathered into the
parameters. Bytes sent per step equal plain DDP's allreduce (up to padding each bucket to a
multiple of N elements), where PyTorch's allreduce + per-rank broadcasts send 1.5 times as much.

Differences from PyTorch:
- Parameters are updated from the first iteration: DDP's buckets are fixed at construction, so
  the hook shards them at once (PyTorch skips the first two or three steps while it learns them),
  and state_dict / load_state_dict work before training.
- Every bucket is sharded over all ranks (PyTorch's `shard_buckets=True`, which is not an
  argument here); PyTorch's default gives whole buckets to ranks in turn.
- The `hook` argument must be `allreduce_hook`, whose averaging the reduce-scatter and
  all-gather replace; other hooks raise NotImplementedError.
- The step of bucket k runs when bucket k+1 is handed to the hook (its reduce-scatter, issued
  first, has then finished or is the one in progress), so the steps overlap the rest of
  backward; the last bucket's step and the all-gathers' wait end the backward pass. All ranks
  issue the collectives in the same order: RS0, RS1, AG0, RS2, AG1, ...
- After backward, each `.grad` holds the averaged gradient only in this rank's slice of its
  bucket: the averaged whole is never communicated, and the reduce-scatter runs in place in the
  bucket (no copy of it), leaving partial sums of the ring in the other slices.
- Memory: the bucket's parameters are views into one flat array per bucket, into which the
  all-gather writes directly, and each rank's slice of it is what its optimizer steps: beyond
  plain DDP, ZeRO holds only padding (under N elements a bucket), and 1/N of the optimizer state.
- The optimizer must be elementwise (SGD, Adam, AdamW, Adamax, Adagrad, Adadelta, RMSprop,
  Rprop, NAdam, RAdam, ASGD), as the step runs on flat slices; the gradients are averaged by the
  group size (DDP's join with divide_by_initial_world_size=False is not followed).
"""
from distml.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from distml.distributed.process_group import _group
from distml.futures import Future

__all__ = ["hook_with_zero_step"]


def hook_with_zero_step(hook, ddp, zero):
    """A DDP comm hook that reduce-scatters each bucket, steps `zero`'s slice of it and
    all-gathers the parameters: `ddp.register_comm_hook(None, hook_with_zero_step(allreduce_hook,
    ddp, zero))`, with `zero` made with overlap_with_ddp=True over `ddp`'s parameters."""
    if not zero._overlap_with_ddp:
        raise ValueError("ZeroRedundancyOptimizer must be constructed with `overlap_with_ddp=True` to use this "
                         "hook properly")
    if hook is not allreduce_hook:
        raise NotImplementedError(f"hook_with_zero_step: distml replaces allreduce_hook's averaging by a "
                                  f"reduce-scatter and an all-gather; wrapping {getattr(hook, '__name__', hook)} "
                                  "is not supported")
    if _group(zero.process_group) is not _group(ddp.process_group):  # None and group.WORLD are one group
        raise ValueError("hook_with_zero_step: the ZeroRedundancyOptimizer and the DistributedDataParallel must "
                         "use the same process group")
    zero._init_overlap([bucket.params for bucket in ddp.reducer.buckets])
    buffers = {}  # bucket index -> its flat gradient buffer, for this iteration

    def hook_with_zero_fn(state, bucket):
        index = bucket.index()
        shard = zero._shards[index]
        if len(bucket.parameters()) != len(shard.params) or any(
                p is not q for p, q in zip(bucket.parameters(), shard.params)):
            raise RuntimeError(f"hook_with_zero_step: bucket {index} holds other parameters than when the hook "
                               "was made")
        buffer = bucket.buffer()
        buffers[index] = buffer.array
        storage = ddp.reducer.buckets[index].storage
        zero._reduce_bucket(index, buffer.array, storage if buffer.array.base is storage else None)
        if index > 0:
            zero._step_bucket(index - 1, buffers.pop(index - 1))
        if bucket.is_last():
            zero._step_bucket(index, buffers.pop(index))
            zero._finish_overlap()
        done = Future()
        done.set_result(buffer)  # filled in by the step of this bucket, which precedes the reducer's wait
        return done

    return hook_with_zero_fn
